"""Spot expression for STco: the model's gene panel found in a section (ignoring case) and normalised like
every method (:func:`~napari_spatial_impute.preprocessing.normalize_log1p`)."""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from ...preprocessing import library_scale, match_genes, normalize_log1p


def section_name(adata) -> str:
    """The section's name from ``uns['histology']`` (``"?"`` when unknown)."""
    return str(getattr(adata, "uns", {}).get("histology", {}).get("section", "?"))


def check_distinct(sections) -> None:
    """Refuse a section given twice (same spots, same counts): held out in turn, it would be scored on itself
    and the bundle's validation (and every gene's expected r) would be far too high."""
    import hashlib

    seen: dict[str, int] = {}
    for i, adata in enumerate(sections):
        h = hashlib.sha1()
        xy = adata.obsm.get("spatial_px", adata.obsm.get("spatial")) if hasattr(adata, "obsm") else None
        if xy is not None:
            h.update(np.round(np.asarray(xy, np.float64), 3).tobytes())
        h.update(np.asarray(adata.X.sum(axis=1), dtype=np.float64).round(3).tobytes())
        key = h.hexdigest()
        if key in seen:
            raise InputError(f"Training sections {seen[key] + 1} and {i + 1} are the same section "
                             f"({section_name(sections[seen[key]])}): validation would score it on itself.",
                             "give each section once.")
        seen[key] = i


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


def choose_panel(sections, requested: list[str] | None, n_genes: int, n_top: int):
    """The model's gene panel from its training sections: ``requested`` (all must be in every section), else
    the ``n_genes`` most expressed genes shared by all of them (ignoring case). Returns (genes, the ``n_top``
    most expressed of them, the normalisation target sum — the median library size —, expression mean, sd)."""
    first = list(map(str, sections[0].var_names))
    if requested is not None:
        panel = [first[i] for i in gene_columns(sections[0], requested)[0]]
        missing = {}
        for ad_ in sections:
            miss = gene_columns(ad_, list(requested))[1]
            if miss:
                missing[section_name(ad_)] = miss[:5]
        if missing:
            raise InputError(f"Genes of the panel are missing from training sections: {missing}.",
                             "remove them from the gene list, or check the spelling.")
        panel = list(dict.fromkeys(panel))
    else:
        keys = set(g.upper() for g in first)
        for ad_ in sections[1:]:
            keys &= {str(g).upper() for g in ad_.var_names}
        panel = sorted(g for g in first if g.upper() in keys)
    totals = np.concatenate([np.asarray(a.X.sum(axis=1)).ravel() for a in sections])
    target_sum = library_scale(totals)[1]
    expr = np.vstack([section_expression(a, panel, target_sum) for a in sections])
    order = np.argsort(-expr.mean(0), kind="stable")
    if requested is None:
        keep = order[: n_genes]
        panel = [panel[i] for i in keep]
        expr = expr[:, keep]
        order = np.arange(len(panel))
    return panel, [panel[i] for i in order[:n_top]], target_sum, expr.mean(0), expr.std(0) + 1e-3
