"""Imputation models, looked up by method name (lazy imports keep start-up fast)."""

from __future__ import annotations

from importlib import import_module

from ..errors import InputError
from .base import ImputeData, Imputer

#: method name → "module:class" (relative to this package)
METHODS: dict[str, str] = {
    "knn": ".knn:KNNImputer",
    "stimpute": ".stimpute:STImputer",
    "spaim": ".spaim:SpaIMImputer",
}


def available_methods() -> list[str]:
    return list(METHODS)


def get_method(name: str) -> type[Imputer]:
    """The model class registered under ``name`` (e.g. ``"knn"``)."""
    key = str(name).lower()
    if key not in METHODS:
        raise InputError(f"Unknown method {name!r}.", f"choose one of: {', '.join(METHODS)}.")
    module, attr = METHODS[key].split(":")
    return getattr(import_module(module, __name__), attr)


__all__ = ["ImputeData", "Imputer", "METHODS", "available_methods", "get_method"]
