"""Readers: files and instrument folders → AnnData (+ images, transforms). No Qt, no napari.

The readers are imported on first use, so the npe2 reader's cheap path checks (:mod:`.detect`) do not pull
in pandas / anndata."""

from __future__ import annotations

from .._lazy import lazy_getattr

_LAZY = {
    "read_spatial": ".anndata_io", "read_reference": ".anndata_io", "write_h5ad_safely": ".anndata_io",
    "SpatialSample": ".spatial_sample", "SampleImage": ".spatial_sample", "SampleLabels": ".spatial_sample",
    "read_xenium": ".xenium", "read_cosmx": ".cosmx", "read_merscope": ".merscope", "read_anndata": ".h5ad",
    "read_sample": ".detect", "detect_platform": ".detect", "read_section": ".detect", "read_cells": ".detect",
    "read_visium": ".visium",
    "read_visium_section": ".visium", "read_legacy_st": ".legacy_st", "read_st_section": ".legacy_st",
    "read_spots_table": ".legacy_st",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY)
