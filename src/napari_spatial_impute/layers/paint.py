"""Per-cell colouring that stays fast at 1 M cells: label masks → value images, cells → RGBA in one call.

A label mask is prepared once (:func:`prepare_mask`, run in a worker): it is strided down to at most
:data:`MAX_PAINT_PIXELS` pixels and a lookup ``rows[label id] = cell row`` is built. Showing any per-cell value
is then ``np.take(lut, mask)`` with ``lut = values[rows]`` — O(pixels), no per-label dictionaries (a napari
``DirectLabelColormap`` of 1 M entries takes ~30 s to apply, benchmarks/README.md). The value image is shown
as a napari Image (colormap, contrast limits and the layer's own colorbar) above the segmentation Labels.
Points are coloured with one RGBA array from a 256-entry lookup table (~20 ms per 1 M cells). Categories
(e.g. cell types) get distinct colours (:func:`category_colors`, any number of categories) and an RGBA image.
Nothing here imports napari or Qt.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

UM = ("um", "um")  #: layer units: everything the plugin paints is placed in µm
LEGEND_POSITION = "top_left"  #: title, colorbars and category lines stack there (napari tiles canvas overlays)
PAINT_KWARGS = {"blending": "translucent", "opacity": 0.85, "units": UM}  #: a value image over its Labels
PAINT_KWARGS_NO_UNITS = {k: v for k, v in PAINT_KWARGS.items() if k != "units"}

#: value images are computed on the mask strided down to at most this many pixels (4096²: ~60 ms per switch) …
MAX_PAINT_PIXELS = 4096 * 4096
#: … and to about this many pixels per labelled cell (each cell stays a patch of ~8×8 px; the full-resolution
#: outlines remain on the Labels layer)
PAINT_PIXELS_PER_CELL = 64
NAN_RGBA = (0.55, 0.55, 0.55, 0.5)


@dataclass
class PaintMask:
    """A label mask prepared for painting: ``mask`` (strided by ``step``), ``rows[label] = cell row`` (-1: none),
    and the napari ``scale`` / ``translate`` that place the strided mask like the original."""

    mask: np.ndarray
    rows: np.ndarray
    step: int
    scale: tuple[float, float]
    translate: tuple[float, float]
    name: str = "cells"

    @property
    def n_matched(self) -> int:
        return int((self.rows >= 0).sum())


def prepare_mask(mask, label_ids, label_obs, cell_ids, *, scale=(1.0, 1.0), translate=(0.0, 0.0),
                 name: str = "cells", max_pixels: int = MAX_PAINT_PIXELS) -> PaintMask:
    """Stride ``mask`` (a 2-D integer array, or a multiscale list: its finest level under ``max_pixels``) and
    link each label id (``label_ids`` → ``label_obs`` cell names) to its row in ``cell_ids``."""
    import pandas as pd

    g = paint_geometry(mask, len(label_ids), scale=scale, translate=translate, max_pixels=max_pixels)
    level, step, off = g.level, g.step, g.step // 2
    small = np.asarray(level[off::step, off::step] if step > 1 else level)
    if small.dtype.kind not in "iu" or small.dtype.itemsize > 4:
        small = small.astype(np.int32 if int(small.max(initial=0)) < 2**31 else np.int64)
    ids = np.asarray(label_ids, dtype=np.int64)
    top = int(max(ids.max(initial=0), small.max(initial=0)))
    rows = np.full(top + 1, -1, dtype=np.int64)
    pos = pd.Index(np.asarray(cell_ids, dtype=str)).get_indexer(np.asarray(label_obs, dtype=str))
    ok = (ids >= 0) & (ids <= top)
    rows[ids[ok]] = pos[ok]
    rows[0] = -1
    return PaintMask(small, rows, g.total, g.scale, g.translate, name)


@dataclass
class PaintGeometry:
    """Where the value image of a mask goes: the pyramid ``level`` used, its ``step`` (stride), the overall
    stride ``total`` and the napari ``scale`` / ``translate`` of the strided image (``shape`` pixels)."""

    level: object
    step: int
    total: int
    shape: tuple[int, int]
    scale: tuple[float, float]
    translate: tuple[float, float]


def paint_geometry(mask, n_labels: int, *, scale=(1.0, 1.0), translate=(0.0, 0.0),
                   max_pixels: int = MAX_PAINT_PIXELS) -> PaintGeometry:
    """The stride and placement :func:`prepare_mask` uses, from shapes alone (cheap: no pixel is read), so the
    value-image layer can be created with its final geometry before any result exists."""
    max_pixels = int(min(max_pixels, max(1 << 20, PAINT_PIXELS_PER_CELL * int(n_labels))))
    levels = mask if isinstance(mask, list | tuple) else [mask]
    level, level_step = levels[0], 1
    for i, lv in enumerate(levels):  # a pyramid: the finest level that fits (assumes 2× per level)
        level, level_step = lv, 2 ** i
        if int(np.prod(lv.shape[-2:])) <= max_pixels:
            break
    h, w = (int(v) for v in level.shape[-2:])
    step = max(1, int(np.ceil(np.sqrt(h * w / max_pixels))))
    off = step // 2
    total = step * level_step
    sy, sx = (float(v) for v in scale)
    ty, tx = (float(v) for v in translate)
    o = off * level_step + (level_step - 1) / 2
    shape = (len(range(off, h, step)), len(range(off, w, step)))
    return PaintGeometry(level, step, total, shape, (sy * total, sx * total), (ty + sy * o, tx + sx * o))


def paint_values(pm: PaintMask, values) -> np.ndarray:
    """float32 image of each cell's value under its label (NaN on background / cells without a value)."""
    v = np.asarray(values, dtype=np.float32)
    lut = np.full(len(pm.rows), np.nan, dtype=np.float32)
    ok = pm.rows >= 0
    lut[ok] = v[pm.rows[ok]]
    return np.take(lut, pm.mask)


def paint_rgba(pm: PaintMask, cell_rgba) -> np.ndarray:
    """uint8 (rows, cols, 4) image of each cell's colour (transparent on background)."""
    rgba = np.asarray(cell_rgba)
    if rgba.dtype != np.uint8:
        rgba = np.round(np.clip(rgba, 0, 1) * 255).astype(np.uint8)
    lut = np.zeros((len(pm.rows), 4), dtype=np.uint8)
    ok = pm.rows >= 0
    lut[ok] = rgba[pm.rows[ok]]
    return np.take(lut, pm.mask, axis=0)


@lru_cache(maxsize=32)
def colormap_lut(cmap: str = "magma", n: int = 256) -> np.ndarray:
    """(n, 4) float32 RGBA samples of a matplotlib colormap (cached; warm it in a worker: importing matplotlib
    takes ~0.3 s)."""
    import matplotlib

    lut = matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, n)).astype(np.float32)
    lut.flags.writeable = False
    return lut


def values_rgba(values, cmap: str = "magma", clim: tuple[float, float] = (0.0, 1.0), nan_rgba=NAN_RGBA) -> np.ndarray:
    """(n, 4) float32 RGBA of values through a 256-colour table (vectorised; ~10 ms per 1 M values)."""
    v = np.asarray(values, dtype=np.float32)
    lo, hi = float(clim[0]), float(clim[1])
    lut = colormap_lut(cmap)
    t = (v - lo) * (255.0 / (hi - lo if hi > lo else 1.0))
    finite = np.isfinite(t)
    idx = np.clip(np.where(finite, t, 0), 0, 255).astype(np.uint8)
    out = lut[idx]
    out[~finite] = nan_rgba
    return out


def category_colors(n: int) -> np.ndarray:
    """(n, 4) float32 distinct colours: tab20 first, then golden-angle hues with alternating lightness."""
    import matplotlib

    base = np.asarray(matplotlib.colormaps["tab20"].colors, dtype=np.float32)
    if n <= len(base):
        return np.c_[base[:n], np.ones(n, np.float32)]
    import colorsys

    i = np.arange(n - len(base))
    hues = (i * 0.618033988749895) % 1.0
    light = np.where(i % 3 == 0, 0.45, np.where(i % 3 == 1, 0.62, 0.75))
    sat = np.where(i % 2 == 0, 0.75, 0.55)
    extra = np.array([colorsys.hls_to_rgb(h, lt, s) for h, lt, s in zip(hues, light, sat)], dtype=np.float32)
    return np.c_[np.vstack([base, extra]), np.ones(n, np.float32)]


def categories_rgba(codes, n_categories: int, nan_rgba=NAN_RGBA) -> np.ndarray:
    """(n, 4) float32 RGBA per cell from category codes (-1 = missing)."""
    codes = np.asarray(codes, dtype=np.int64)
    table = np.vstack([category_colors(n_categories), np.asarray(nan_rgba, np.float32)[None]])
    return table[np.where(codes < 0, n_categories, codes)]


def show_title(viewer, text: str) -> None:
    """The canvas title (gene or column, unit) top left, where the colorbars and legend lines stack; position
    and visibility are set only when they change (each set re-lays the canvas overlays)."""
    overlay = viewer.text_overlay
    # napari sizes the text's background box about one glyph short: the longest line gets a trailing space, so
    # its last character (the unit's ")") is drawn inside the box, not white on the tissue beside it
    lines = text.split("\n")
    width = max(len(line) for line in lines)
    overlay.text = "\n".join(line + " " if len(line) == width else line for line in lines)
    if not overlay.visible or str(overlay.position) != LEGEND_POSITION:
        overlay.visible, overlay.position = True, LEGEND_POSITION
