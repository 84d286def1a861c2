"""The model registry: method name → model class (imported on first use, so start-up stays fast)."""

from __future__ import annotations

from importlib import import_module

from ..errors import InputError

#: method name → "module:class" (relative to the models package)
METHODS: dict[str, str] = {
    "auto": ".auto:AutoImputer",
    "knn": ".knn:KNNImputer",
    "stimpute": ".stimpute:STImputer",
    "spaim": ".spaim:SpaIMImputer",
    "stco": ".stco:STco",
}
#: methods that impute genes from a scRNA-seq reference (the others predict from H&E images)
IMPUTATION_METHODS: tuple[str, ...] = ("auto", "knn", "stimpute", "spaim")


def available_methods(kind: str = "impute") -> list[str]:
    """Registered method names: the imputation methods (``kind="impute"``) or every model (``"all"``)."""
    return list(IMPUTATION_METHODS) if kind == "impute" else list(METHODS)


def get_method(name: str) -> type:
    """The model class registered under ``name`` (e.g. ``"knn"``, ``"stco"``)."""
    key = str(name).lower()
    if key not in METHODS:
        raise InputError(f"Unknown method {name!r}.", f"choose one of: {', '.join(METHODS)}.")
    module, attr = METHODS[key].split(":")
    return getattr(import_module(module, __package__), attr)


def get_imputer(name: str) -> type:
    """The imputation model class registered under ``name``; a clear error for an H&E model such as STco."""
    if str(name).lower() in METHODS and str(name).lower() not in IMPUTATION_METHODS:
        raise InputError(f"{name!r} predicts genes from H&E images, not from a scRNA-seq reference.",
                         f"use one of {', '.join(IMPUTATION_METHODS)}, or napari_spatial_impute.train_histology.")
    return get_method(name)
