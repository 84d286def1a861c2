"""napari-spatial-impute: impute unmeasured genes in spatial transcriptomics and view them in napari.

Heavy modules (torch, anndata, napari) are imported lazily on first attribute access.
"""

from __future__ import annotations

from ._lazy import lazy_getattr

__version__ = "0.1.0"

#: the ``uns`` key of every result (imputation and histology): method, parameters, provenance
UNS_KEY = "napari_spatial_impute"

_LAZY = {
    "impute": ".api",
    "impute_steps": ".api",
    "cross_validate": ".api",
    "cross_validate_steps": ".api",
    "prepare": ".api",
    "CVResult": ".api",
    "train_histology": ".api",
    "train_histology_steps": ".api",
    "evaluate_histology": ".api",
    "evaluate_histology_steps": ".api",
    "predict_histology": ".api",
    "predict_histology_steps": ".api",
    "load_osmfish_sample": ".datasets",
    "load_xenium_sample": ".datasets",
    "read_spatial": ".io.anndata_io",
    "read_reference": ".io.anndata_io",
    "read_sample": ".io.detect",
    "read_cells": ".io.detect",
    "read_xenium": ".io.xenium",
    "read_cosmx": ".io.cosmx",
    "read_merscope": ".io.merscope",
    "read_anndata": ".io.h5ad",
    "read_visium": ".io.visium",
    "read_legacy_st": ".io.legacy_st",
    "read_section": ".io.detect",
    "SpatialSample": ".io.spatial_sample",
    "sample_to_layers": ".layers",
    "get_method": ".models",
    "available_methods": ".models",
    "Imputer": ".models.base",
    "ImputeData": ".models.base",
    "KNNImputer": ".models.knn",
    "STImputer": ".models.stimpute",
    "SpaIMImputer": ".models.spaim",
    "STco": ".models.stco",
    "load_model": ".models.bundle",
    "InputError": ".errors",
    "impute_dask": ".distributed",
    "resolve_device": ".device",
}

__all__ = ["__version__", "UNS_KEY", *_LAZY]


__getattr__ = lazy_getattr(__name__, _LAZY)
