"""The Python API: every task, AnnData in → AnnData out (imputation and histology alike).

>>> import napari_spatial_impute as nsi
>>> spatial, reference = nsi.load_osmfish_sample()
>>> imputed = nsi.impute(spatial, reference, method="knn", genes=["Gad2"])   # AnnData, same obs_names
>>> result = nsi.cross_validate(spatial, reference, method="knn", folds=5)  # metrics over shared genes
>>> model = nsi.train_histology([section_a, section_b], epochs=30)          # STco on H&E + spots
>>> predicted = nsi.predict_histology(model, section_c)                     # AnnData, one row per spot
"""

from __future__ import annotations

from .crossval import CVResult, cross_validate, cross_validate_steps, fold_genes
from .histology import (
    evaluate_histology,
    evaluate_histology_steps,
    predict_histology,
    predict_histology_steps,
    train_histology,
    train_histology_steps,
)
from .impute import impute, impute_steps, prepare, to_anndata
from .plan import RunPlan, plan_run

__all__ = ["RunPlan", "plan_run",
           "CVResult", "cross_validate", "cross_validate_steps", "fold_genes", "impute", "impute_steps", "prepare",
           "to_anndata", "train_histology", "train_histology_steps", "evaluate_histology",
           "evaluate_histology_steps", "predict_histology", "predict_histology_steps"]
