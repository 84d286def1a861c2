"""Preprocessing shared by every method: counts → median-library-size normalisation → log1p,
and case-insensitive gene matching with a report of what matched."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .errors import InputError


def library_scale(totals, target_sum: float | None = None) -> tuple[np.ndarray, float]:
    """Per-cell factors bringing library sizes ``totals`` to ``target_sum`` (default: the median of the positive
    totals, 1 when none is positive; cells with zero total get 0), in the float dtype of ``totals``, and the target
    used. ``log1p(counts * scale[:, None])`` is then the median-library normalisation every method uses."""
    totals = np.asarray(totals)
    if not np.issubdtype(totals.dtype, np.floating):
        totals = totals.astype(np.float64)
    positive = totals > 0
    if target_sum is None:
        target_sum = float(np.median(totals[positive])) if positive.any() else 1.0
    scale = np.divide(target_sum, totals, out=np.zeros_like(totals), where=positive)
    return scale, float(target_sum)


def library_totals(X, exclude=None, dtype=np.float64) -> np.ndarray:
    """Per-cell library sizes: the sum over every column of ``X`` (dense or sparse) but ``exclude`` (indices of
    genes held out, whose counts must not reach the inputs through the library size)."""
    totals = np.asarray(X.sum(axis=1), dtype=dtype).ravel()
    if exclude is not None and len(exclude):
        totals = totals - np.asarray(X[:, np.asarray(exclude, dtype=np.int64)].sum(axis=1), dtype=dtype).ravel()
    return totals


def normalize_log1p(X, target_sum: float | None = None, *, columns=None, dense: bool = True, exclude=None):
    """Per-cell library-size normalisation to ``target_sum`` (default: the median total), then log1p.

    Library sizes are taken over all columns but ``exclude`` (indices: genes held out, whose counts must not
    reach the inputs through the library size); ``columns`` (indices) selects the columns returned. A sparse
    ``X`` is normalised as CSR and only the returned columns are made dense (``dense=False`` keeps them CSR).
    Returns the float32 matrix and the target sum used (stored so a model can apply it again). Cells with zero
    total stay zero.
    """
    X = sp.csr_matrix(X, dtype=np.float32) if sp.issparse(X) else np.asarray(X, dtype=np.float32)
    totals = library_totals(X, exclude, np.float32)
    scale, target_sum = library_scale(totals, target_sum)
    if columns is not None:
        X = X[:, np.asarray(columns, dtype=np.int64)]
    if sp.issparse(X):
        X = sp.csr_matrix(sp.diags(scale) @ X, dtype=np.float32)
        np.log1p(X.data, out=X.data)
        return (X.toarray() if dense else X), float(target_sum)
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
    #: what was noticed while reading the inputs (which matrix held counts, which identifier matched, …)
    notes: list[str] = field(default_factory=list)
    #: how the reference was read (:class:`~napari_spatial_impute.io.reference.ReferenceReport` as a dict)
    reference: dict = field(default_factory=dict)

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
        if self.reference:
            r = self.reference
            lines.append(f"Reference counts from {r['matrix']} ({r['values']}); genes identified by "
                         f"{r['identifier']}.")
        lines += [f"Note: {n}" for n in self.notes]
        if self.spatial_only:
            lines.append("Only in spatial: " + ", ".join(self.spatial_only[:10])
                         + (" …" if len(self.spatial_only) > 10 else ""))
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"n_shared": self.n_shared, "shared": self.shared_spatial,
                "spatial_only": self.spatial_only, "reference_only": self.reference_only,
                "case_mismatches": [list(p) for p in self.case_mismatches], "notes": list(self.notes),
                "reference": dict(self.reference)}


_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$", re.IGNORECASE)


def gene_key(name) -> str:
    """The key genes are matched on: upper case, Ensembl version suffix dropped (``ENSG…1.4`` → ``ENSG…1``)."""
    name = str(name)
    if _ENSEMBL.match(name):
        name = name.split(".", 1)[0]
    return name.upper()


def _upper_index(names, what: str) -> dict[str, str]:
    index: dict[str, str] = {}
    dups = []
    for name in map(str, names):
        key = gene_key(name)
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


def resolve_genes(requested, reference_genes, *, what: str = "requested genes",
                  aliases: dict[str, str] | None = None) -> list[str]:
    """Map user-typed gene names onto the reference's spelling (case-insensitive), or raise. ``aliases``: other
    identifiers' keys (:func:`gene_key`) → reference gene (a symbol for genes named by Ensembl id, …); one name
    (a string) is one gene."""
    ref_idx = {gene_key(g): str(g) for g in reference_genes}
    out, missing = [], []
    for g in [requested] if isinstance(requested, str) else requested:
        g = str(g).strip()
        if not g:
            continue
        if gene_key(g) in ref_idx:
            out.append(ref_idx[gene_key(g)])
        elif aliases and gene_key(g) in aliases:
            out.append(aliases[gene_key(g)])
        else:
            missing.append(g)
    if missing:
        raise InputError(f"{len(missing)} of the {what} are not in the reference: {missing[:10]}.",
                         "check the spelling or choose genes the reference measures.")
    if len(set(out)) != len(out):
        out = list(dict.fromkeys(out))
    return out


def select_variable_genes(counts, genes: list[str], n_top: int = 2000, *, counts_are_integers: bool = True,
                          seed: int = 0) -> tuple[list[str], str]:
    """The ``n_top`` most variable of ``genes`` in a reference (AnnData of counts, sparse kept), in their order.

    scanpy's ``seurat_v3`` on raw counts (needs scikit-misc); ``seurat`` dispersion on log-normalised values when
    the counts are not integers or scikit-misc is missing. Returns (genes, how they were chosen).
    """
    import scanpy as sc

    if len(genes) <= n_top:
        return list(genes), f"all {len(genes)} candidate genes (≤ {n_top})"
    sub = counts[:, list(genes)]
    flavor = "seurat_v3"
    if counts_are_integers:
        try:
            import skmisc  # noqa: F401 - seurat_v3's loess
        except ImportError:
            flavor = "seurat"
    else:
        flavor = "seurat"
    table = None
    if flavor == "seurat_v3":
        try:
            table = sc.pp.highly_variable_genes(sub, flavor="seurat_v3", n_top_genes=n_top, inplace=False)
        except (ValueError, RuntimeError, ArithmeticError):  # skmisc's loess fails on a handful of genes
            flavor = "seurat"
    if table is None:
        import anndata as ad
        import pandas as pd

        logged, _ = normalize_log1p(sub.X, dense=False)
        table = sc.pp.highly_variable_genes(ad.AnnData(logged, var=pd.DataFrame(index=sub.var_names)),
                                            flavor="seurat", n_top_genes=n_top, inplace=False)
    hv = np.asarray(table["highly_variable"], dtype=bool)
    if hv.sum() != n_top:  # ties (e.g. a handful of genes, one per dispersion bin): rank by the scores themselves
        keys = ["variances_norm"] if flavor == "seurat_v3" else ["dispersions_norm", "dispersions"]
        cols = [np.nan_to_num(np.asarray(table[k], np.float64), nan=-np.inf) for k in reversed(keys)]
        hv = np.zeros(len(hv), bool)
        hv[np.lexsort([-c for c in cols])[:n_top]] = True
    chosen = set(np.asarray(sub.var_names)[hv])
    return [g for g in genes if g in chosen], f"top {n_top} of {len(genes)} by scanpy {flavor}"
