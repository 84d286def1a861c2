"""Colours and contrast for gene values: robust contrast limits, value → RGBA, per-label direct colormaps."""

from __future__ import annotations

import numpy as np

TRANSPARENT = (0.0, 0.0, 0.0, 0.0)


def contrast_limits(values, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """Robust (percentile) contrast range for a gene's values; never an empty range."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(v, [low, high])
    if hi <= lo:
        lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        hi = lo + 1.0
    return (float(lo), float(hi))


def values_to_rgba(values, cmap: str = "magma", clim: tuple[float, float] | None = None,
                   nan_color=(0.5, 0.5, 0.5, 0.6)) -> np.ndarray:
    """(n, 4) float RGBA for values through a colormap, clipped to ``clim`` (robust default): :func:`.paint.values_rgba`
    with the limits filled in."""
    from .paint import values_rgba

    v = np.asarray(values, dtype=np.float64)
    rgba = values_rgba(v, cmap, clim if clim is not None else contrast_limits(v)).astype(np.float64)
    rgba[~np.isfinite(v)] = nan_color
    return rgba


def labels_colormap_for_gene(label_ids, values, cmap: str = "magma", clim: tuple[float, float] | None = None,
                             background=TRANSPARENT) -> dict:
    """``{label_id: rgba}`` (plus ``None`` → background for unlisted labels, 0 → transparent) colouring each
    label by its cell's value; pass it as a Labels ``colormap`` (napari builds a DirectLabelColormap)."""
    ids = np.asarray(label_ids).astype(np.int64)
    rgba = values_to_rgba(values, cmap, clim)
    cmap_dict: dict = {None: tuple(background), 0: TRANSPARENT}
    cmap_dict.update(zip(ids.tolist(), map(tuple, rgba.tolist())))
    return cmap_dict
