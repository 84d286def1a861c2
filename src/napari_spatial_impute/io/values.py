"""What the numbers of a matrix are: raw counts, linear values, log-normalised or scaled (:func:`check_values`,
judged from a sample of the stored values), and whether declared values are usable (:func:`check_declared`,
:func:`check_all_finite`). Used wherever counts are looked for (:mod:`.reference`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import InputError

#: What the values of a matrix can be declared as (``--reference-values``).
VALUE_KINDS = ("auto", "counts", "log1p")
_SAMPLE_VALUES = 200_000


@dataclass
class ValueCheck:
    """What the numbers of a matrix look like."""

    kind: str  # "counts" | "linear" | "log1p" | "scaled" | "empty" | "invalid"
    reason: str


def _sample_values(X, rng: np.random.Generator) -> np.ndarray:
    """Up to ``_SAMPLE_VALUES`` non-zero stored values of ``X`` (never densifies the whole matrix)."""
    if sp.issparse(X):
        data = np.asarray(X.data)
    else:
        arr = np.asarray(X)
        if arr.size > _SAMPLE_VALUES * 5:
            rows = rng.choice(arr.shape[0], size=max(1, (_SAMPLE_VALUES * 5) // max(1, arr.shape[1])), replace=False)
            arr = arr[np.sort(rows)]
        data = arr.ravel()
    data = data[data != 0]
    if data.size > _SAMPLE_VALUES:
        data = rng.choice(data, size=_SAMPLE_VALUES, replace=False)
    return data.astype(np.float64, copy=False)


def _row_totals(X, rows: np.ndarray, transform=None) -> np.ndarray:
    sub = X[rows]
    if transform is not None:
        sub = sub.copy()
        if sp.issparse(sub):
            sub.data = transform(sub.data)
        else:
            sub = transform(np.asarray(sub, dtype=np.float64))
    return np.asarray(sub.sum(axis=1), dtype=np.float64).reshape(-1)


def check_values(X, *, log1p_flag: bool = False, seed: int = 0) -> ValueCheck:
    """Classify a matrix as raw counts, linear non-integer values, log-normalised or scaled."""
    rng = np.random.default_rng(seed)
    vals = _sample_values(X, rng)
    if vals.size == 0:
        return ValueCheck("empty", "every sampled value is zero")
    if not np.all(np.isfinite(vals)):
        return ValueCheck("invalid", "NaN or infinite values")
    if vals.max() > np.finfo(np.float32).max:
        return ValueCheck("invalid", f"values up to {vals.max():.3g}, beyond float32's range")
    if vals.min() < 0:
        return ValueCheck("scaled", f"negative values (min {vals.min():.3g}): centred/scaled data")
    integer = np.allclose(vals, np.round(vals), atol=1e-6)
    if integer:
        return ValueCheck("counts", "non-negative integers")
    constant_after_expm1 = False
    if vals.max() < 50:  # expm1 of larger values overflows: not log data anyway
        n = X.shape[0]
        rows = np.sort(rng.choice(n, size=min(n, 2000), replace=False))
        totals_log = _row_totals(X, rows, np.expm1)
        pos = totals_log[totals_log > 0]
        constant_after_expm1 = pos.size > 10 and np.std(pos) / np.mean(pos) < 0.01
    if log1p_flag or constant_after_expm1 or vals.max() < 20:
        why = ("uns['log1p'] is set" if log1p_flag else
               "expm1 of every cell sums to the same total" if constant_after_expm1 else
               f"non-integer values with a small maximum ({vals.max():.3g})")
        return ValueCheck("log1p", f"log-normalised ({why})")
    return ValueCheck("linear", f"non-integer values up to {vals.max():.3g} (e.g. volume-normalised)")


def declare_hint(flag: str, value: str) -> str:
    """How to declare the values in each front end: the Impute widget's "Reference values" control (the
    reference only), the CLI flag and the API keyword."""
    api = f"{flag.lstrip('-').replace('-', '_')}='{value}'"
    if flag == "--reference-values":
        return f"'Reference values: {value}' in the Impute widget, {flag} {value} on the command line, {api} in the API"
    return f"{flag} {value} on the command line, {api} in the API"


#: log1p values above this overflow float32 when turned back with expm1 (log(3.4e38) ≈ 88.7)
_MAX_LOG1P = 80.0


def check_declared(X, values: str, what: str, flag: str) -> None:
    """Even declared values must be usable: finite, non-negative, not all zero, within float32; ``log1p``
    values small enough for ``expm1``."""
    vals = _sample_values(X, np.random.default_rng(0))
    if vals.size == 0:
        raise InputError(f"The {what} is all zeros: there is nothing to learn from.",
                         "check that the right file / layer was exported.")
    if not np.all(np.isfinite(vals)):
        raise InputError(f"The {what} holds NaN or infinite values.", "fix or drop those cells / genes.")
    if vals.max() > np.finfo(np.float32).max:
        raise InputError(f"The {what} holds values up to {vals.max():.3g}, beyond float32's range "
                         f"(≈ {np.finfo(np.float32).max:.3g}): they would become infinite.",
                         "export the raw counts (integers) instead.")
    if vals.min() < 0:
        kind = "not counts." if values == "counts" else f"neither {values} nor counts."
        raise InputError(f"The {what} holds negative values (min {vals.min():.3g}): centred or scaled data, {kind}",
                         "keep raw counts in layers['counts'] or .raw.")
    if values == "log1p" and vals.max() > _MAX_LOG1P:
        raise InputError(f"The {what} is declared log1p-normalised ({flag} log1p) but holds values up to "
                         f"{vals.max():.3g}: not log data (expm1 would overflow).",
                         f"declare auto instead (raw counts are found automatically) or counts: "
                         f"{declare_hint(flag, 'counts')}.")


def check_all_finite(X, what: str, label: str, block: int = 1 << 24) -> None:
    """Every value of ``X`` finite (the value checks only sample it): a dense matrix is scanned in row blocks of
    about ``block`` values (a 16 M-value block's mask is 16 MB, whatever the width)."""
    if sp.issparse(X):
        data = np.asarray(X.data)
        for start in range(0, data.size, block):
            bad = ~np.isfinite(data[start:start + block])
            if bad.any():
                first = start + int(np.flatnonzero(bad)[0])
                row = int(np.searchsorted(np.asarray(X.indptr), first, side="right") - 1) if X.format == "csr" else None
                _not_finite(what, label, row)
        return
    rows = max(1, block // max(1, X.shape[1]))
    for start in range(0, X.shape[0], rows):
        part = np.asarray(X[start:start + rows])
        if part.dtype.kind == "f" and not np.isfinite(part).all():
            _not_finite(what, label, start + int(np.flatnonzero(~np.isfinite(part).all(axis=1))[0]))


def _not_finite(what: str, label: str, row: int | None) -> None:
    at = f" (first in cell {row})" if row is not None else ""
    raise InputError(f"The {what} holds NaN or infinite values in {label}{at}.",
                     "fix or drop those cells / genes (e.g. adata = adata[np.isfinite(adata.X).all(axis=1)]).")
