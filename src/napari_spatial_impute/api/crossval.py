"""K-fold cross-validation over the genes both sides measure: each fold's genes are hidden and predicted.

Honest folds: a fold's spatial inputs are normalised with the library size of the genes the fold *keeps*
(every spatial gene except the held-out ones), exactly as :func:`~.impute.prepare` normalises a panel that
never measured the target genes, so no part of a held-out gene's signal leaks into the inputs through the
library size. The truth of the held-out genes is put on the same scale: their counts divided by that fold's
input library size, times the fold's median input library size, log1p (the scale the inputs of the model
had). Each gene is held out once, so its truth is defined by its own fold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..models import ImputeData, get_imputer
from ..models.params_spec import validate_params
from ..preprocessing import library_scale
from ..progress import ProgressGen, relay, run_to_end
from .impute import _jsonable, as_inputs, build_data, read_inputs


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


def fold_normalise(counts, input_cols, held_cols) -> tuple[np.ndarray, np.ndarray, float]:
    """(inputs, held-out truth, target sum) of one fold from spatial ``counts`` (cells × all spatial genes).

    Library size = the sum over every column *except* ``held_cols``; ``inputs`` are columns ``input_cols``
    and ``truth`` columns ``held_cols``, both normalised to that library's median and log1p'd.
    """
    import scipy.sparse as sp

    X = sp.csr_matrix(counts, dtype=np.float32) if sp.issparse(counts) else np.asarray(counts, np.float32)
    total = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
    held_block = X[:, np.asarray(held_cols, np.int64)]
    held_block = held_block.toarray() if sp.issparse(held_block) else np.asarray(held_block)
    scale, target = library_scale(total - held_block.sum(axis=1))
    scale = scale[:, None]
    inp = X[:, np.asarray(input_cols, np.int64)]
    inp = inp.toarray() if sp.issparse(inp) else np.asarray(inp)
    return (np.log1p(inp * scale).astype(np.float32), np.log1p(held_block * scale).astype(np.float32), target)


def cross_validate_steps(spatial, reference, method: str = "knn", folds: int = 5, *, seed: int = 0,
                         device: str = "auto", reference_values: str = "auto", spatial_values: str = "auto",
                         method_params: dict[str, Any] | None = None, **params: Any) -> ProgressGen[CVResult]:
    """K-fold CV over shared genes: each fold's genes are hidden from the spatial input (and from its library
    size) and predicted; see the module docstring for the normalisation of inputs and truth. The method's
    parameters come as keywords or as ``method_params`` (a dict: needed for names this function uses itself,
    e.g. auto's inner ``folds``)."""
    params = {**(method_params or {}), **params}
    from ..device import resolve_device
    from ..metrics import summarize

    t0 = time.perf_counter()
    klass = get_imputer(method)
    params = validate_params(klass.method, params, seed=seed)  # before any work: names, types, ranges
    seed = int(seed)
    dev = resolve_device(device)
    values = {"reference_values": reference_values, "spatial_values": spatial_values}
    spatial, reference = as_inputs(spatial, reference)
    sp_X, sp_names, ref, match = read_inputs(spatial, reference, **values)
    genes = list(match.shared_reference)
    sp_col = {g: i for i, g in enumerate(map(str, sp_names))}
    spatial_col = {r: sp_col[s] for r, s in zip(match.shared_reference, match.shared_spatial)}
    parts = fold_genes(genes, folds, seed)
    data = run_to_end(build_data(spatial, sp_X, sp_names, ref, match, genes, hold_out=False))  # reference, once
    truth = np.zeros((data.n_cells, len(genes)), np.float32)
    pred = np.zeros_like(truth)
    pos = {g: i for i, g in enumerate(genes)}
    annotations = []
    for f, part in enumerate(parts):
        held = set(part)
        keep = [g for g in genes if g not in held]
        inputs, fold_truth, target = fold_normalise(sp_X, [spatial_col[g] for g in keep],
                                                    [spatial_col[g] for g in part])
        constants = dict(data.constants, spatial_target_sum=target)
        fold_data = ImputeData(inputs, data.reference, data.reference_genes, keep, part, data.spatial_obs_names,
                               data.spatial_coords, data.reference_obs, constants)
        model = klass(seed=seed, device=dev, **params)
        fold_pred = yield from relay(model.fit_predict_steps(fold_data), "", round(100 * f / len(parts)), 100,
                                     span=round(100 / len(parts)), prefix=f"fold {f + 1}/{len(parts)}: ")
        cols = [pos[g] for g in part]
        pred[:, cols] = fold_pred
        truth[:, cols] = fold_truth
        ann = model.gene_annotations()
        if ann is not None:
            annotations.append(ann)
    metrics = summarize(truth, pred, genes)
    metrics = {"method": klass.method, "folds": len(parts), "seed": seed, "device": dev,
               "seconds": time.perf_counter() - t0, "params": _jsonable(model.get_params()),
               "truth": "held-out counts / the fold's input-gene library size × its median, log1p", **metrics}
    ann_df = pd.concat(annotations) if annotations else None
    return CVResult(klass.method, genes, truth, pred, metrics, parts, ann_df)


def cross_validate(spatial, reference, method: str = "knn", folds: int = 5, *, seed: int = 0,
                   device: str = "auto", callback=None, method_params: dict[str, Any] | None = None,
                   **params: Any) -> CVResult:
    """K-fold cross-validation over shared genes (see :func:`cross_validate_steps`)."""
    return run_to_end(cross_validate_steps(spatial, reference, method, folds, seed=seed, device=device,
                                           method_params=method_params, **params), callback)
