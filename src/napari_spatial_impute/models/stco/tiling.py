"""Tissue mask and whole-slide tiling.

A tile grid covers the image with square tiles of ``tile_um`` µm; tiles whose area is mostly tissue are
kept. :class:`TileGrid` knows the napari ``scale`` / ``translate`` (y, x) that put a (rows, cols) array of
per-tile values exactly over the H&E image layer (image at scale 1, translate 0, full-resolution pixels).

napari places the centre of array element (i, j) at ``translate + (i, j) * scale`` and draws it ±scale/2.
Image pixel p of the H&E covers world [p - 0.5, p + 0.5]; tile i covers image pixels
[origin + i·step, origin + (i+1)·step), i.e. world [origin + i·step - 0.5, …), whose centre is
origin + (i + 0.5)·step - 0.5 — so ``scale = step`` and ``translate = origin + step/2 - 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def tissue_mask(arr: np.ndarray, factor: float = 1.0, max_side: int = 1024) -> tuple[np.ndarray, float]:
    """Foreground (tissue) mask of an RGB H&E array: saturated or dark pixels (Otsu thresholds on the HSV
    saturation and on brightness), closed, small holes and specks removed.

    ``factor`` = full-resolution pixels per pixel of ``arr``. Returns (mask, full-res pixels per mask pixel).
    """
    from scipy import ndimage
    from skimage import filters

    step = max(1, int(np.ceil(max(arr.shape[:2]) / max_side)))
    small = arr[::step, ::step, :3]
    hi = small.max(axis=2).astype(np.float32)  # HSV value and saturation, in float32 (as skimage's rgb2hsv)
    sat = np.divide(hi - small.min(axis=2), hi, out=np.zeros_like(hi), where=hi > 0)
    val = hi / (255.0 if small.dtype == np.uint8 else 1.0)
    # near-black is canvas, not tissue: the corners of a rotated slide, padding, a transparent export's fill;
    # it is left out of the thresholds too
    lit = val >= 0.06
    s_lit, v_lit = sat[lit], val[lit]
    t_sat = filters.threshold_otsu(s_lit) if s_lit.size and s_lit.max() > s_lit.min() else 1.0
    t_val = filters.threshold_otsu(v_lit) if v_lit.size and v_lit.max() > v_lit.min() else 0.0
    mask = ((sat > max(t_sat, 0.05)) | (val < min(t_val, 0.5))) & lit
    radius = max(1, int(round(min(small.shape[:2]) / 200)))
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    mask = ndimage.binary_closing(mask, structure=(yy ** 2 + xx ** 2) <= radius ** 2, border_value=0)
    min_area = max(16, mask.size // 5000)
    mask = _drop_small(mask, min_area)
    mask = ~_drop_small(~mask, min_area * 4)  # fill small holes
    return mask, float(step * factor)


def _drop_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_area
    keep[0] = False
    return keep[labels]


@dataclass
class TileGrid:
    """Square tiles of ``step`` full-res pixels starting at ``origin`` (y, x); ``keep`` marks tissue tiles."""

    origin: tuple[float, float]
    step: float
    shape: tuple[int, int]
    keep: np.ndarray  # (rows, cols) bool

    @property
    def scale(self) -> tuple[float, float]:
        return (float(self.step), float(self.step))

    @property
    def translate(self) -> tuple[float, float]:
        return (self.origin[0] + self.step / 2 - 0.5, self.origin[1] + self.step / 2 - 0.5)

    def centres_xy(self) -> np.ndarray:
        """(x, y) full-res pixel centres of the kept tiles, in row-major order."""
        rows, cols = np.nonzero(self.keep)
        return np.column_stack([self.origin[1] + (cols + 0.5) * self.step - 0.5,
                                self.origin[0] + (rows + 0.5) * self.step - 0.5])

    def to_grid(self, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Per-kept-tile values (n,) or (n, g) → (rows, cols) or (g, rows, cols) array, ``fill`` elsewhere."""
        values = np.asarray(values, dtype=np.float32)
        if values.ndim == 1:
            out = np.full(self.shape, fill, np.float32)
            out[self.keep] = values
            return out
        out = np.full((values.shape[1], *self.shape), fill, np.float32)
        out[:, self.keep] = values.T
        return out


def make_grid(mask: np.ndarray, mask_scale: float, width: int, height: int, step: float,
              min_tissue: float = 0.5) -> TileGrid:
    """Tile a ``width`` × ``height`` image with ``step``-px tiles; keep those ≥ ``min_tissue`` tissue."""
    rows, cols = int(np.ceil(height / step)), int(np.ceil(width / step))
    # tissue fraction per tile: average the mask over each tile's footprint (mask rows / columns → tile index),
    # summed separably so memory stays O(tiles + one mask row per tile row)
    ty = np.minimum(((np.arange(mask.shape[0]) + 0.5) * mask_scale / step).astype(int), rows - 1)
    tx = np.minimum(((np.arange(mask.shape[1]) + 0.5) * mask_scale / step).astype(int), cols - 1)
    per_row = np.zeros((rows, mask.shape[1]), np.int64)
    np.add.at(per_row, ty, mask.astype(np.int64))
    fg = np.zeros((cols, rows), np.int64)
    np.add.at(fg, tx, per_row.T)
    tot = np.outer(np.bincount(ty, minlength=rows), np.bincount(tx, minlength=cols))
    frac = np.divide(fg.T, tot, out=np.zeros((rows, cols)), where=tot > 0)
    return TileGrid(origin=(0.0, 0.0), step=float(step), shape=(rows, cols), keep=frac >= min_tissue)
