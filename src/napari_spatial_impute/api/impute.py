"""Imputation API: a scRNA-seq reference's genes onto spatial cells, AnnData in → AnnData out
(:func:`impute`), and K-fold cross-validation over the shared genes (:func:`cross_validate`)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..models import ImputeData, get_imputer
from ..preprocessing import GeneMatch, get_counts, match_genes, normalize_log1p, resolve_genes
from ..progress import Progress, ProgressGen, relay, run_to_end


def _check_inputs(spatial, reference) -> None:
    from ..io.anndata_io import check_spatial

    check_spatial(spatial, "spatial data")
    get_counts(reference, what="reference")


def prepare(spatial, reference, genes: list[str] | None = None, *,
            hold_out: bool = True) -> tuple[ImputeData, GeneMatch]:
    """Validate, normalise (median library size + log1p) and match genes.

    ``genes``: genes to impute (reference spelling resolved case-insensitively); ``None`` = every
    reference gene the spatial data does not measure. With ``hold_out`` a requested gene that the
    spatial data *does* measure is removed from the input features, so it is predicted, not copied.
    """
    _check_inputs(spatial, reference)
    match = match_genes(spatial.var_names, reference.var_names)
    if match.n_shared == 0:
        raise InputError(
            f"The spatial data and the reference share no gene (spatial e.g. {list(spatial.var_names[:3])}, "
            f"reference e.g. {list(reference.var_names[:3])}).",
            "use a reference of the same species/panel, or map gene ids to symbols in var_names first.")
    if genes is None:
        targets = list(match.reference_only)
        if not targets:
            raise InputError("Every reference gene is already measured in the spatial data: nothing to impute.",
                             "name genes to predict (--genes), or use --cv to evaluate.")
    else:
        targets = resolve_genes(genes, reference.var_names)
        if not targets:
            raise InputError("No genes to impute were given.", "name at least one reference gene.")
    sp_norm, sp_total = normalize_log1p(get_counts(spatial))
    ref_norm, ref_total = normalize_log1p(get_counts(reference))
    sp_pos = {g: i for i, g in enumerate(map(str, spatial.var_names))}
    shared_ref = list(match.shared_reference)
    shared_sp = list(match.shared_spatial)
    if hold_out:
        keep = [i for i, g in enumerate(shared_ref) if g not in set(targets)]
        shared_ref = [shared_ref[i] for i in keep]
        shared_sp = [shared_sp[i] for i in keep]
    if not shared_ref:
        raise InputError("After holding out the requested genes no shared gene is left as input.",
                         "request fewer measured genes.")
    data = ImputeData(
        spatial=sp_norm[:, [sp_pos[g] for g in shared_sp]],
        reference=ref_norm,
        reference_genes=list(map(str, reference.var_names)),
        shared_genes=shared_ref,
        target_genes=targets,
        spatial_obs_names=list(map(str, spatial.obs_names)),
        spatial_coords=np.asarray(spatial.obsm["spatial"])[:, :2].astype(np.float64),
        reference_obs=reference.obs.copy(),
        constants={"spatial_target_sum": sp_total, "reference_target_sum": ref_total},
    )
    return data, match


def to_anndata(pred: np.ndarray, spatial, genes: list[str], *, var: pd.DataFrame | None = None,
               uns: dict | None = None):
    """Predictions (n_cells × genes) → AnnData with the spatial ``obs``/``obsm['spatial']`` carried over."""
    import anndata as ad

    var_df = pd.DataFrame(index=pd.Index(list(genes), name=None))
    if var is not None:
        var_df = var_df.join(var.reindex(var_df.index))
    out = ad.AnnData(np.asarray(pred, dtype=np.float32), obs=spatial.obs.copy(), var=var_df)
    out.obs_names = spatial.obs_names.copy()
    for key in ("spatial",):
        if key in spatial.obsm:
            out.obsm[key] = np.asarray(spatial.obsm[key]).copy()
    out.uns["napari_spatial_impute"] = uns or {}
    return out


def impute_steps(spatial, reference, method: str = "knn", genes: list[str] | None = None, *,
                 seed: int = 0, device: str = "auto", **params: Any) -> ProgressGen[Any]:
    """Generator version of :func:`impute` (yields :class:`Progress`, returns the AnnData)."""
    from ..device import resolve_device

    t0 = time.perf_counter()
    klass = get_imputer(method)
    dev = resolve_device(device)
    yield Progress(0, 100, "preparing data", "prepare")
    data, match = prepare(spatial, reference, genes)
    model = klass(seed=seed, device=dev, **params)
    pred = yield from model.fit_predict_steps(data)
    var = model.gene_annotations()
    uns = {"method": klass.method, "params": _jsonable(model.get_params()), "device": dev,
           "seconds": time.perf_counter() - t0, "gene_match": match.as_dict(),
           "input_genes": list(data.shared_genes), "values": "log1p(counts / total * median total) of reference"}
    info = model.info() if hasattr(model, "info") else None
    if info:
        uns["model_info"] = json.dumps(info, default=str)  # a JSON string: always storable in .h5ad
    return to_anndata(pred, spatial, data.target_genes, var=var, uns=uns)


def impute(spatial, reference, method: str = "knn", genes: list[str] | None = None, *, seed: int = 0,
           device: str = "auto", callback=None, **params: Any):
    """Impute ``genes`` (default: reference genes the spatial data lacks) for every spatial cell."""
    return run_to_end(impute_steps(spatial, reference, method, genes, seed=seed, device=device, **params),
                      callback)


@dataclass
class CVResult:
    """Cross-validation result: predictions of every shared gene from the others, and its metrics."""

    method: str
    genes: list[str]
    truth: np.ndarray
    prediction: np.ndarray
    metrics: dict
    folds: list[list[str]] = field(default_factory=list)
    gene_annotations: pd.DataFrame | None = None

    def per_gene(self) -> pd.DataFrame:
        return pd.DataFrame(self.metrics["per_gene"]).T


def fold_genes(genes: list[str], folds: int, seed: int = 0) -> list[list[str]]:
    """Split genes into ``folds`` disjoint groups (seeded shuffle, stable for a given seed)."""
    if folds < 2:
        raise InputError(f"--cv needs at least 2 folds (got {folds}).", "use --cv 5.")
    if folds > len(genes):
        raise InputError(f"{folds} folds asked for but only {len(genes)} shared genes.",
                         f"use --cv {len(genes)} or fewer.")
    order = np.random.default_rng(seed).permutation(len(genes))
    return [[genes[i] for i in sorted(part)] for part in np.array_split(order, folds)]


def cross_validate_steps(spatial, reference, method: str = "knn", folds: int = 5, *, seed: int = 0,
                         device: str = "auto", **params: Any) -> ProgressGen[CVResult]:
    """K-fold CV over shared genes: each fold's genes are hidden from the spatial input and predicted."""
    from ..device import resolve_device
    from ..metrics import summarize

    t0 = time.perf_counter()
    klass = get_imputer(method)
    dev = resolve_device(device)
    _check_inputs(spatial, reference)
    match = match_genes(spatial.var_names, reference.var_names)
    if match.n_shared == 0:
        raise InputError("The spatial data and the reference share no gene.",
                         "use a reference of the same species/panel, or map gene ids to symbols first.")
    genes = list(match.shared_reference)
    parts = fold_genes(genes, folds, seed)
    data, _ = prepare(spatial, reference, genes, hold_out=False)
    truth = data.spatial  # all shared genes, spatial normalisation, in `genes` order
    pred = np.zeros_like(truth)
    pos = {g: i for i, g in enumerate(genes)}
    annotations = []
    for f, part in enumerate(parts):
        keep = [g for g in genes if g not in set(part)]
        fold_data = ImputeData(truth[:, [pos[g] for g in keep]], data.reference, data.reference_genes, keep,
                               part, data.spatial_obs_names, data.spatial_coords, data.reference_obs,
                               dict(data.constants))
        model = klass(seed=seed, device=dev, **params)
        fold_pred = yield from relay(model.fit_predict_steps(fold_data), "", round(100 * f / len(parts)), 100,
                                     span=round(100 / len(parts)), prefix=f"fold {f + 1}/{len(parts)}: ")
        pred[:, [pos[g] for g in part]] = fold_pred
        ann = model.gene_annotations()
        if ann is not None:
            annotations.append(ann)
    metrics = summarize(truth, pred, genes)
    metrics = {"method": klass.method, "folds": len(parts), "seed": seed, "device": dev,
               "seconds": time.perf_counter() - t0, "params": _jsonable(model.get_params()), **metrics}
    ann_df = pd.concat(annotations) if annotations else None
    return CVResult(klass.method, genes, truth, pred, metrics, parts, ann_df)


def cross_validate(spatial, reference, method: str = "knn", folds: int = 5, *, seed: int = 0,
                   device: str = "auto", callback=None, **params: Any) -> CVResult:
    """K-fold cross-validation over shared genes (see :func:`cross_validate_steps`)."""
    return run_to_end(cross_validate_steps(spatial, reference, method, folds, seed=seed, device=device,
                                           **params), callback)


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif isinstance(v, np.generic):
            out[k] = v.item()
        else:
            out[k] = str(v)
    return out
