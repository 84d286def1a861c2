"""Models, looked up by method name (lazy imports keep start-up fast); :func:`load_model` reads any bundle."""

from __future__ import annotations

from .base import ImputeData, Imputer
from .bundle import load_model
from .registry import IMPUTATION_METHODS, METHODS, available_methods, get_imputer, get_method

__all__ = ["IMPUTATION_METHODS", "ImputeData", "Imputer", "METHODS", "available_methods", "get_imputer", "get_method",
           "load_model"]
