"""Expected Pearson r per imputed gene, learnt from cross-validation on the genes the panel measures.

Inner folds hide part of the measured genes (their counts leave the inputs *and* the library size, see
:func:`renormalise`), predict them with the method itself on a seeded subsample of cells, and score each
held-out gene by its Pearson r with the truth. A ridge regression maps gene descriptors that need no spatial
truth (:data:`DESCRIPTORS`) to that r; applied to the target genes it gives ``var["expected_r"]``: an estimate
of the per-gene Pearson r on the truth's scale (not a rank), clipped to [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..metrics import pearson_per_gene
from ..preprocessing import library_scale
from ..progress import Progress, ProgressGen, relay
from .base import ImputeData

#: gene descriptors (per gene, from the reference and from the method's own prediction)
DESCRIPTORS = ("ref_mean", "ref_sd", "ref_frac_expressed", "max_corr_inputs", "top5_corr_inputs",
               "pred_signal")


def renormalise(spatial_log: np.ndarray, keep: np.ndarray, held: np.ndarray | None = None):
    """Log-normalised cells → (columns ``keep``, columns ``held``) normalised again with the library size of
    ``keep`` only (target: the median of that library). ``expm1`` of log1p values is counts / library ×
    constant, so this equals normalising the counts of ``keep`` directly: held-out genes leave the inputs
    *and* the library size."""
    scaled = np.expm1(np.asarray(spatial_log, np.float64))
    scale = library_scale(scaled[:, keep].sum(axis=1))[0][:, None]
    inputs = np.log1p(scaled[:, keep] * scale).astype(np.float32)
    truth = None if held is None else np.log1p(scaled[:, held] * scale).astype(np.float32)
    return inputs, truth



def gene_descriptors(data: ImputeData, genes: list[str], inputs: list[str], pred: np.ndarray,
                     block: int = 512) -> np.ndarray:
    """(len(genes), len(DESCRIPTORS)) descriptors of ``genes`` imputed from ``inputs``; ``pred``: the method's
    prediction of ``genes`` (cells × genes) on some spatial cells. Genes are read in blocks of ``block`` columns
    (wide references stay sparse: never the whole reference dense)."""

    def unit(x):
        x = x - x.mean(0)
        n = np.linalg.norm(x, axis=0)
        return np.divide(x, n, out=np.zeros_like(x), where=n > 0)

    inp_unit = unit(data.reference_columns(list(inputs)).astype(np.float64))
    pred = np.asarray(pred, np.float64)
    rows = []
    for b in range(0, len(genes), block):
        part = list(genes)[b:b + block]
        ref = data.reference_columns(part).astype(np.float64)
        corr = np.abs(unit(ref).T @ inp_unit)
        own = np.asarray([[g == h for h in inputs] for g in part], bool)
        corr[own] = 0.0
        top = -np.sort(-corr, axis=1)
        sd = ref.std(0)
        signal = np.divide(pred[:, b:b + block].std(0), sd, out=np.zeros_like(sd), where=sd > 0)
        rows.append(np.column_stack([ref.mean(0), sd, (ref > 0).mean(0), top[:, 0], top[:, :5].mean(1), signal]))
    return np.vstack(rows).astype(np.float64)


@dataclass
class ExpectedR:
    """Ridge regression: standardised descriptors → per-gene Pearson r (fitted on inner-CV genes)."""

    mean: np.ndarray
    sd: np.ndarray
    coef: np.ndarray
    intercept: float

    @classmethod
    def fit(cls, X: np.ndarray, r: np.ndarray, alpha: float = 3.0) -> ExpectedR:
        X = np.asarray(X, np.float64)
        r = np.asarray(r, np.float64)
        mean, sd = X.mean(0), X.std(0)
        sd = np.where(sd > 1e-9, sd, 1.0)
        Z = (X - mean) / sd
        coef = np.linalg.solve(Z.T @ Z + alpha * np.eye(Z.shape[1]), Z.T @ (r - r.mean()))
        return cls(mean, sd, coef, float(r.mean()))

    def predict(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, np.float64) - self.mean) / self.sd
        return np.clip(self.intercept + Z @ self.coef, -1.0, 1.0)

    def as_dict(self) -> dict:
        return {"descriptors": list(DESCRIPTORS), "mean": self.mean.tolist(), "sd": self.sd.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept}

    @classmethod
    def from_dict(cls, d: dict) -> ExpectedR:
        return cls(np.asarray(d["mean"]), np.asarray(d["sd"]), np.asarray(d["coef"]), float(d["intercept"]))


def subsample_rows(n: int, max_cells: int, seed: int) -> np.ndarray:
    """Seeded sorted subsample of ``max_cells`` of ``n`` rows (all rows when ``n`` is small)."""
    if n <= max_cells:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_cells, replace=False))


def inner_folds(n_genes: int, folds: int, seed: int) -> list[np.ndarray]:
    """Seeded split of gene positions into ``min(folds, n_genes // 2)`` folds (at least 2)."""
    folds = max(2, min(int(folds), n_genes // 2))
    order = np.random.default_rng(seed + 7).permutation(n_genes)
    return [np.sort(p) for p in np.array_split(order, folds)]


@dataclass
class InnerCV:
    """Per measured gene: CV prediction on the subsampled cells, its truth, and descriptors."""

    genes: list[str]
    rows: np.ndarray
    truth: np.ndarray
    pred: np.ndarray
    descriptors: np.ndarray
    seconds: float = 0.0

    @property
    def pcc(self) -> np.ndarray:
        return pearson_per_gene(self.truth, self.pred)

    def table(self) -> pd.DataFrame:
        df = pd.DataFrame(self.descriptors, index=self.genes, columns=list(DESCRIPTORS))
        df["cv_r"] = self.pcc
        return df


def fold_data(data: ImputeData, rows: np.ndarray, keep: np.ndarray, held: np.ndarray):
    """(ImputeData of one inner fold on cells ``rows``, truth of the held-out genes)."""
    genes = list(data.shared_genes)
    inputs, truth = renormalise(data.spatial[rows], keep, held)
    names = None if data.spatial_obs_names is None else [data.spatial_obs_names[i] for i in rows]
    coords = None if data.spatial_coords is None else data.spatial_coords[rows]
    sub = ImputeData(inputs, data.reference, data.reference_genes, [genes[i] for i in keep],
                     [genes[i] for i in held], names, coords, data.reference_obs, dict(data.constants))
    return sub, truth


def inner_cv_steps(factory: Callable[[], object], data: ImputeData, *, folds: int = 5, max_cells: int = 3000,
                   seed: int = 0, fold_ids: list[int] | None = None, rows: np.ndarray | None = None,
                   label: str = "inner CV") -> ProgressGen[InnerCV]:
    """Run ``factory()`` models over inner folds of the measured genes (only folds ``fold_ids`` when given)."""
    import time

    t0 = time.process_time()
    genes = list(data.shared_genes)
    parts = inner_folds(len(genes), folds, seed)
    if fold_ids is not None:
        parts = [parts[i] for i in fold_ids if i < len(parts)]
    rows = subsample_rows(data.n_cells, max_cells, seed + 3) if rows is None else rows
    held_all = np.concatenate(parts)
    truth = np.zeros((len(rows), len(held_all)), np.float32)
    pred = np.zeros_like(truth)
    desc = np.zeros((len(held_all), len(DESCRIPTORS)))
    at = 0
    all_idx = np.arange(len(genes))
    for f, held in enumerate(parts):
        keep = np.setdiff1d(all_idx, held)
        sub, t = fold_data(data, rows, keep, held)
        model = factory()
        # the fold's own progress is relayed (a Cancel lands within its epochs / batches, not after the fold)
        p = yield from relay(model.fit_predict_steps(sub), "cv", 100 * f, 100 * len(parts), span=100,
                             prefix=f"{label}: fold {f + 1}/{len(parts)}: ")
        sl = slice(at, at + len(held))
        truth[:, sl], pred[:, sl] = t, p
        desc[sl] = gene_descriptors(data, sub.target_genes, sub.shared_genes, p)
        at += len(held)
        yield Progress(f + 1, len(parts), f"{label}: fold {f + 1}/{len(parts)}", "cv")
    return InnerCV([genes[i] for i in held_all], rows, truth, pred, desc, time.process_time() - t0)


def expected_r_for(cv: InnerCV, pcc: np.ndarray | None = None) -> ExpectedR:
    """Fit :class:`ExpectedR` on inner-CV genes (``pcc`` overrides their r, e.g. of a blend)."""
    return ExpectedR.fit(cv.descriptors, cv.pcc if pcc is None else pcc)


def target_expected_r(model_r: ExpectedR, data: ImputeData, pred_sample: np.ndarray) -> np.ndarray:
    """Expected r of ``data.target_genes`` given the method's prediction of them on some cells."""
    D = gene_descriptors(data, list(data.target_genes), list(data.shared_genes), pred_sample)
    return model_r.predict(D)
