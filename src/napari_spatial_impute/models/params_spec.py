"""Each method's declared parameters (name, type, default, valid range), checked before any work starts.

Names, types and defaults come from the model classes' ``__init__`` signatures (STco: its ``DEFAULTS``), so a new
parameter is declared once; the valid ranges live here, in one table. :func:`validate_params` is used by the
Python API, the CLI (``--param``), the widgets' Parameters field and :func:`~.bundle.load_model` (hand-edited
configs): an unknown key, a key of another method, a value of the wrong type or out of range is one
:class:`~napari_spatial_impute.errors.InputError` listing the valid parameters.
"""

from __future__ import annotations

import inspect
import math
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

#: the largest seed every random generator used here accepts (numpy's SeedSequence takes any ≥ 0; torch < 2**64)
MAX_SEED = 2**32 - 1
_INF = math.inf

#: valid ranges: name → (low, high, low inclusive, high inclusive) or a tuple of allowed strings.
#: Method-specific entries override :data:`_COMMON`.
_COMMON: dict[str, Any] = {
    "seed": (0, MAX_SEED, True, True), "k": (1, _INF, True, False), "epochs": (1, _INF, True, False),
    "batch_size": (1, _INF, True, False), "lr": (0, 10, False, True), "weight_decay": (0, _INF, True, False),
    "hidden": (1, _INF, True, False), "chunk_size": (1, _INF, True, False), "n_components": (1, _INF, True, False),
    "weighting": ("similarity", "uniform"),
    # cells of the inner CV behind expected r (kNN, stImpute, SpaIM, auto): a Pearson r needs a few cells
    "cv_cells": (4, _INF, True, False),
}
RANGES: dict[str, dict[str, Any]] = {
    "knn": {},
    "stimpute": {"graph_k": (1, _INF, True, False), "alpha": (0, 1, True, True), "rounds": (1, _INF, True, False),
                 "ae_epochs": (0, _INF, True, False), "gnn_epochs": (0, _INF, True, False),
                 "ae_round_epochs": (0, _INF, True, False), "latent": (1, _INF, True, False),
                 "mask_fraction": (0, 1, True, False), "reliability_folds": (2, _INF, True, False),
                 "max_train_cells": (2, _INF, True, False), "chunk_mb": (1, _INF, True, False),
                 "gnn_cells": (2, _INF, True, False)},  # a GNN batch needs 2 cells (smaller ones are skipped)
    "spaim": {"resolution": (0, _INF, False, False), "style_dim": (1, _INF, True, False),
              "scale_weight": (0, _INF, True, False), "n_models": (1, _INF, True, False),
              "ema": (0, 1, True, False), "content_dropout": (0, 1, True, False),
              "anchor": ("none", "blend", "residual"), "anchor_weight": (0, 1, True, True)},
    # inner folds: at least 2 (more than the measured genes allow are capped, recorded in model_info)
    "auto": {"folds": (2, _INF, True, False), "screen_folds": (1, _INF, True, False)},
    # the backbone names of models/stco/defaults.BACKBONES (not imported: that loads the STco model module)
    "stco": {"backbone": ("lite0", "lite1", "lite2", "resnet_small", "resnet_large", "vit", "torchscript"),
             "stain": ("macenko", "none"), "validation": ("loso", "last", "none"),
             "predictor": ("auto", "contrastive", "feature_ridge", "feature_krr", "feature_knn", "colour_ridge"),
             "knn_k": (1, _INF, True, False), "ridge_alpha": (0, _INF, False, False),
             "ridge_rank": (0, _INF, True, False), "ridge_smoothing_um": (0, _INF, True, False),
             "ridge_taps": ("all", "stages"), "krr_alpha": (0, _INF, True, False),
             "blend": ("equal", "grid"), "feature_norm": ("section", "global"),
             "context_cut": ("box", "resize"), "jitter_um": (0, _INF, True, False),
             "patch_um": (0, _INF, False, False),
             "patch_px": (8, 4096, True, True), "n_genes": (1, _INF, True, False), "embed_dim": (1, _INF, True, False),
             "temperature": (0, _INF, False, False), "top_k": (1, _INF, True, False),
             "weighting": ("linear", "softmax", "uniform"), "n_views": (1, _INF, True, False),
             "tta": (1, 8, True, True), "dropout": (0, 1, True, False), "feature_batch": (1, _INF, True, False)},
}
#: parameters that are not the model's own (given as separate arguments, never through ``params``)
_NOT_PARAMS = ("self", "device", "genes")


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter: ``kind`` is "int", "float", "bool", "str", "ints" (a pair of widths) or "any"."""

    name: str
    kind: str
    default: Any
    optional: bool = False  # None allowed
    valid: Any = None  # (low, high, low_incl, high_incl) or a tuple of strings

    def describe(self) -> str:
        what = {"ints": "list of ints", "any": "value"}.get(self.kind, self.kind)
        if isinstance(self.valid, tuple) and self.valid and isinstance(self.valid[0], str):
            what = " | ".join(self.valid)
        elif self.valid is not None:
            what += " " + _range_text(self.valid)
        return f"{self.name} ({what}{' or null' if self.optional else ''}, default {self.default!r})"

    def check(self, value: Any, method: str) -> Any:
        """The value converted to the declared type, or an InputError naming the parameter and its range."""
        if value is None and (self.optional or self.default is None):
            return None
        bad = InputError(f"{method} parameter {self.name}={value!r} is not valid: expected {self.describe()}.",
                         f"e.g. {self.name}={self.default if self.default is not None else '…'}"
                         if self.kind != "ints" else "e.g. hidden=[512,256].")
        out = _convert(value, self.kind)
        if out is _BAD:
            raise bad
        if isinstance(self.valid, tuple) and self.valid and isinstance(self.valid[0], str):
            if out not in self.valid:
                raise bad
        elif self.valid is not None:
            values = out if isinstance(out, tuple) else (out,)
            if not all(_in_range(v, self.valid) for v in values):
                raise bad
        return out


_BAD = object()


def _convert(value: Any, kind: str) -> Any:
    if kind == "any":
        return value
    if isinstance(value, np.generic):  # numpy scalars (np.int64 from np.arange, np.bool_ from a mask, …)
        value = value.item()
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        return _BAD
    if kind == "str":
        return value if isinstance(value, str) else _BAD
    if kind == "ints":
        if not isinstance(value, list | tuple) or len(value) != 2:
            return _BAD
        conv = [_convert(v, "int") for v in value]
        return _BAD if any(c is _BAD for c in conv) else tuple(conv)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        return _BAD
    if kind == "int":
        return int(value) if float(value).is_integer() else _BAD
    return float(value)


def _in_range(v: float, valid: tuple) -> bool:
    lo, hi, lo_in, hi_in = valid
    return (v >= lo if lo_in else v > lo) and (v <= hi if hi_in else v < hi)


def _range_text(valid: tuple) -> str:
    lo, hi, lo_in, hi_in = valid
    if hi == _INF:
        return f"{'≥' if lo_in else '>'} {_num(lo)}"
    return f"in {'[' if lo_in else '('}{_num(lo)}, {_num(hi)}{']' if hi_in else ')'}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _kind(annotation: Any, default: Any) -> tuple[str, bool]:
    text = str(annotation).replace("typing.", "")
    optional = "None" in text or default is None
    if text in ("Any", "<class 'inspect._empty'>") and not isinstance(default, str | bool | int | float):
        return "any", optional
    if text == "Any":
        return "any", optional
    for kind in ("tuple", "bool", "int", "float", "str"):
        if kind in text:
            return ("ints" if kind == "tuple" else kind), optional
    if default is not None and not isinstance(default, str | bool | int | float):
        return "any", optional
    if isinstance(default, bool):
        return "bool", optional
    if isinstance(default, int | float | str):
        return type(default).__name__, optional
    return "any", optional


def param_specs(method: str) -> dict[str, ParamSpec]:
    """``{name: ParamSpec}`` of a registered method (``seed`` included; ``device`` and STco's ``genes`` are
    separate arguments)."""
    from .registry import get_method

    klass = get_method(method)
    key = str(getattr(klass, "method", method)).lower()
    ranges = {**_COMMON, **RANGES.get(key, {})}
    if key == "stco":  # STco declares its parameters in its module's DEFAULTS (looked up without a static import)
        from importlib import import_module

        DEFAULTS = import_module(klass.__module__).DEFAULTS  # noqa: N806
        items = [(n, "", d) for n, d in DEFAULTS.items()] + [("seed", "int", 0)]
        items = [(n, "str | None" if n == "backbone_path" else a, d) for n, a, d in items]
    else:
        try:
            hints = typing.get_type_hints(klass.__init__)
        except Exception:  # noqa: BLE001 - fall back to the raw annotation strings
            hints = {}
        sig = inspect.signature(klass.__init__)
        items = [(p.name, hints.get(p.name, p.annotation), p.default) for p in sig.parameters.values()
                 if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    specs = {}
    for name, annotation, default in items:
        if name in _NOT_PARAMS:
            continue
        kind, optional = _kind(annotation, default)
        specs[name] = ParamSpec(name, kind, default, optional, ranges.get(name))
    return specs


def describe_params(method: str) -> str:
    """One line per parameter of ``method`` (for help texts and error messages)."""
    return "; ".join(s.describe() for s in param_specs(method).values() if s.name != "seed")


def _owner(name: str, method: str) -> str | None:
    from .registry import METHODS

    for other in METHODS:
        if other != method and name in param_specs(other):
            return other
    return None


def validate_params(method: str, params: dict | None, *, seed: Any = 0) -> dict:
    """Check ``params`` (and ``seed``) against ``method``'s declared parameters; returns them converted to the
    declared types. Raises :class:`InputError` listing the valid parameters."""
    from .registry import get_method

    method = str(getattr(get_method(method), "method", method)).lower()
    specs = param_specs(method)
    try:
        specs["seed"].check(seed, method)
    except InputError:
        raise InputError(f"The seed {seed!r} is not valid: it must be a whole number from 0 to {MAX_SEED}.",
                         "pass e.g. --seed 0 (API: seed=0).") from None
    out = {}
    for name, value in (params or {}).items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InputError(f"Parameter name {name!r} is not valid.", f"{method} parameters: "
                             f"{', '.join(n for n in specs if n != 'seed')}.")
        if name == "seed":
            raise InputError("The seed is not a method parameter.", "pass it as --seed N (API: seed=N).")
        if name == "device":
            raise InputError("The device is not a method parameter.", "pass it as --device NAME (API: device=...).")
        if name not in specs:
            owner = _owner(name, method)
            where = f" (it is a parameter of {owner})" if owner else ""
            raise InputError(f"{name!r} is not a parameter of {method}{where}.",
                             f"{method} takes: {describe_params(method)}.")
        out[name] = specs[name].check(value, method)
    if method == "stco" and out.get("predictor") == "feature_krr" and out.get("krr_alpha", 1.0) == 0:
        raise InputError("predictor='feature_krr' asks for the kernel ridge, which krr_alpha=0 leaves out.",
                         "give krr_alpha > 0 (default 0.3), or another predictor.")
    return out


__all__ = ["MAX_SEED", "RANGES", "ParamSpec", "describe_params", "param_specs", "validate_params"]
