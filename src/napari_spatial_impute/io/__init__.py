"""Readers: files and instrument folders → AnnData (+ images, transforms). No Qt, no napari."""

from __future__ import annotations

from .anndata_io import read_reference, read_spatial, write_h5ad_safely
from .sample import load_osmfish_sample

__all__ = ["read_spatial", "read_reference", "write_h5ad_safely", "load_osmfish_sample"]
