"""Spot expression for STco: the model's gene panel found in a section (ignoring case) and normalised like
every method (:func:`~napari_spatial_impute.preprocessing.normalize_log1p`)."""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ...preprocessing import match_genes, normalize_log1p


def section_name(adata) -> str:
    """The section's name from ``uns['histology']`` (``"?"`` when unknown)."""
    return str(getattr(adata, "uns", {}).get("histology", {}).get("section", "?"))


def gene_columns(adata, genes: list[str]) -> tuple[list[int], list[str]]:
    """Columns of ``adata`` holding ``genes`` (matched ignoring case), and the genes not found."""
    var = list(map(str, adata.var_names))
    match = match_genes(list(genes), var)
    found = dict(zip(match.shared_spatial, match.shared_reference))
    pos = {g: i for i, g in enumerate(var)}
    return [pos[found[g]] for g in genes if g in found], [g for g in genes if g not in found]


def section_expression(adata, genes: list[str], target_sum: float) -> np.ndarray:
    """Log-normalised expression (library size over all genes → ``target_sum`` → log1p) of ``genes``, which
    must all be in ``adata`` (matched ignoring case)."""
    adata = getattr(adata, "adata", adata)
    cols, missing = gene_columns(adata, genes)
    if missing:
        raise InputError(f"Genes of the panel are missing from section {section_name(adata)}: {missing[:5]}.",
                         "remove them from the gene list, or check the spelling.")
    return normalize_log1p(adata.X, target_sum, columns=cols)[0]
