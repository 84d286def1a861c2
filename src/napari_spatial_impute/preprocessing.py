"""Preprocessing shared by every method: counts → median-library-size normalisation → log1p,
and case-insensitive gene matching with a report of what matched."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .errors import InputError


def get_counts(adata, *, what: str = "data"):
    """Raw counts of an AnnData: ``layers["counts"]`` when present, else ``X``; validated."""
    X = adata.layers["counts"] if "counts" in adata.layers else adata.X
    if X is None or adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(f"The {what} is empty ({adata.n_obs} cells × {adata.n_vars} genes).",
                         "point at a file with cells in rows and genes in columns.")
    data = X.data if sp.issparse(X) else np.asarray(X)
    if not np.all(np.isfinite(data)):
        n_bad = int(np.size(data) - np.isfinite(data).sum())
        raise InputError(f"The {what} holds {n_bad} NaN/inf values in its expression matrix.",
                         "fill or drop them (e.g. adata.X = np.nan_to_num(adata.X)) before imputing.")
    if data.size and data.min() < 0:
        raise InputError(f"The {what} holds negative expression values; raw counts are expected.",
                         "put raw counts in X or in layers['counts'].")
    return X


def normalize_log1p(X, target_sum: float | None = None, *, columns=None) -> tuple[np.ndarray, float]:
    """Per-cell library-size normalisation to ``target_sum`` (default: the median total), then log1p.

    Library sizes are taken over *all* columns; ``columns`` (indices) selects the columns returned. A sparse
    ``X`` is normalised as CSR and only the returned columns are made dense. Returns the dense float32 matrix
    and the target sum used (stored so a model can apply it again). Cells with zero total stay zero.
    """
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float32)
        totals = np.asarray(X.sum(axis=1), dtype=np.float32).ravel()
    else:
        X = np.asarray(X, dtype=np.float32)
        totals = X.sum(axis=1)
    positive = totals > 0
    if target_sum is None:
        target_sum = float(np.median(totals[positive])) if positive.any() else 1.0
    scale = np.zeros_like(totals)
    scale[positive] = target_sum / totals[positive]
    if columns is not None:
        X = X[:, np.asarray(columns, dtype=np.int64)]
    if sp.issparse(X):
        X = sp.csr_matrix(sp.diags(scale) @ X, dtype=np.float32)
        np.log1p(X.data, out=X.data)
        return X.toarray(), float(target_sum)
    X = X * scale[:, None]  # a new array: the caller's X is never modified
    np.log1p(X, out=X)
    return X.astype(np.float32, copy=False), float(target_sum)


@dataclass
class GeneMatch:
    """Result of matching spatial genes to reference genes (case-insensitive)."""

    shared_spatial: list[str]
    shared_reference: list[str]
    spatial_only: list[str]
    reference_only: list[str]
    case_mismatches: list[tuple[str, str]] = field(default_factory=list)

    @property
    def n_shared(self) -> int:
        return len(self.shared_spatial)

    def report(self) -> str:
        """A short human-readable summary of the match."""
        lines = [f"{self.n_shared} shared genes; {len(self.spatial_only)} only in spatial; "
                 f"{len(self.reference_only)} only in reference (imputable)."]
        if self.case_mismatches:
            ex = ", ".join(f"{a}~{b}" for a, b in self.case_mismatches[:5])
            lines.append(f"{len(self.case_mismatches)} matched ignoring case (e.g. {ex}).")
        if self.spatial_only:
            lines.append("Only in spatial: " + ", ".join(self.spatial_only[:10])
                         + (" …" if len(self.spatial_only) > 10 else ""))
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"n_shared": self.n_shared, "shared": self.shared_spatial,
                "spatial_only": self.spatial_only, "reference_only": self.reference_only,
                "case_mismatches": [list(p) for p in self.case_mismatches]}


def _upper_index(names, what: str) -> dict[str, str]:
    index: dict[str, str] = {}
    dups = []
    for name in map(str, names):
        key = name.upper()
        if key in index:
            dups.append(name)
        index[key] = name
    if dups:
        raise InputError(f"The {what} has gene names that repeat when case is ignored: {dups[:5]}.",
                         "make var_names unique (adata.var_names_make_unique()) before imputing.")
    return index


def match_genes(spatial_genes, reference_genes) -> GeneMatch:
    """Match gene symbols case-insensitively; keep spatial order for the shared genes."""
    sp_idx = _upper_index(spatial_genes, "spatial data")
    ref_idx = _upper_index(reference_genes, "reference")
    shared_sp, shared_ref, mism = [], [], []
    for key, name in sp_idx.items():
        if key in ref_idx:
            shared_sp.append(name)
            shared_ref.append(ref_idx[key])
            if ref_idx[key] != name:
                mism.append((name, ref_idx[key]))
    sp_only = [n for k, n in sp_idx.items() if k not in ref_idx]
    ref_only = [n for k, n in ref_idx.items() if k not in sp_idx]
    return GeneMatch(shared_sp, shared_ref, sp_only, ref_only, mism)


def resolve_genes(requested, reference_genes, *, what: str = "requested genes") -> list[str]:
    """Map user-typed gene names onto the reference's spelling (case-insensitive), or raise."""
    ref_idx = {str(g).upper(): str(g) for g in reference_genes}
    out, missing = [], []
    for g in requested:
        g = str(g).strip()
        if not g:
            continue
        if g.upper() in ref_idx:
            out.append(ref_idx[g.upper()])
        else:
            missing.append(g)
    if missing:
        raise InputError(f"{len(missing)} of the {what} are not in the reference: {missing[:10]}.",
                         "check the spelling or choose genes the reference measures.")
    if len(set(out)) != len(out):
        out = list(dict.fromkeys(out))
    return out
