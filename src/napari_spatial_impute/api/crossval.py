"""K-fold cross-validation over the genes both sides measure: each fold's genes are hidden and predicted."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..models import ImputeData, get_imputer
from ..progress import ProgressGen, relay, run_to_end
from .impute import _jsonable, prepare, read_inputs


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
                         device: str = "auto", reference_values: str = "auto", spatial_values: str = "auto",
                         **params: Any) -> ProgressGen[CVResult]:
    """K-fold CV over shared genes: each fold's genes are hidden from the spatial input and predicted."""
    from ..device import resolve_device
    from ..metrics import summarize

    t0 = time.perf_counter()
    klass = get_imputer(method)
    dev = resolve_device(device)
    values = {"reference_values": reference_values, "spatial_values": spatial_values}
    _, _, _, match = read_inputs(spatial, reference, **values)
    genes = list(match.shared_reference)
    parts = fold_genes(genes, folds, seed)
    data, _ = prepare(spatial, reference, genes, hold_out=False, **values)
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


