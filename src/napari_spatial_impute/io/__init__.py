"""Readers: files and instrument folders → AnnData (+ images, transforms). No Qt, no napari."""

from __future__ import annotations

from .anndata_io import read_reference, read_spatial, write_h5ad_safely
from .cosmx import read_cosmx
from .detect import detect_platform, read_sample, read_section
from .h5ad import read_anndata
from .legacy_st import read_legacy_st, read_spots_table, read_st_section
from .merscope import read_merscope
from .spatial_sample import SampleImage, SampleLabels, SpatialSample
from .visium import read_visium, read_visium_section
from .xenium import read_xenium

__all__ = ["read_spatial", "read_reference", "write_h5ad_safely",
           "SpatialSample", "SampleImage", "SampleLabels", "read_xenium", "read_cosmx", "read_merscope",
           "read_anndata", "read_sample", "detect_platform", "read_visium", "read_visium_section", "read_legacy_st",
           "read_st_section", "read_section", "read_spots_table"]
