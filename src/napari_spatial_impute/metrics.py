"""Imputation metrics.

Per gene (as Li et al. 2022, Nat Methods 19:662, define them): Pearson (PCC), Spearman, SSIM (each
gene scaled to [0, 1] by its maximum, global SSIM with C1 = 0.01², C2 = 0.03²), RMSE of per-gene
z-scores, and Jensen–Shannon divergence (natural log) of each gene's expression normalised to a
distribution over cells. Also the cosine similarity per cell (``css_cell``, mean over cells) and per gene
(``css_gene``), and ``mse_gene``: per-gene mean squared error after scaling each gene to [0, 1] by its
maximum (scale-free, so reference and spatial platforms compare).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata


def _as2d(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[:, None] if a.ndim == 1 else a


def pearson_per_gene(truth, pred) -> np.ndarray:
    """Pearson r per column; 0 where either column is constant — a prediction counts as constant when its sd is
    below 1e-5 of its mean (a flat prediction's rounding noise would otherwise give an arbitrary r)."""
    t, p = _as2d(truth), _as2d(pred)
    flat = p.std(0) <= 1e-5 * (np.abs(p.mean(0)) + 1e-3)
    t = t - t.mean(0)
    p = p - p.mean(0)
    denom = np.sqrt((t * t).sum(0) * (p * p).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (t * p).sum(0) / denom
    return np.where((denom > 0) & ~flat, r, 0.0)


def spearman_per_gene(truth, pred) -> np.ndarray:
    t, p = _as2d(truth), _as2d(pred)
    return pearson_per_gene(rankdata(t, axis=0), rankdata(p, axis=0))


def _scale_max(a: np.ndarray) -> np.ndarray:
    a = np.clip(a, 0, None)
    m = a.max(0)
    return np.divide(a, m, out=np.zeros_like(a), where=m > 0)


def ssim_per_gene(truth, pred, c1: float = 0.01 ** 2, c2: float = 0.03 ** 2) -> np.ndarray:
    t, p = _scale_max(_as2d(truth)), _scale_max(_as2d(pred))
    mt, mp = t.mean(0), p.mean(0)
    vt, vp = t.var(0), p.var(0)
    cov = ((t - mt) * (p - mp)).mean(0)
    return ((2 * mt * mp + c1) * (2 * cov + c2)) / ((mt ** 2 + mp ** 2 + c1) * (vt + vp + c2))


def _zscore(a: np.ndarray) -> np.ndarray:
    sd = a.std(0)
    return np.divide(a - a.mean(0), sd, out=np.zeros_like(a), where=sd > 0)


def rmse_per_gene(truth, pred) -> np.ndarray:
    t, p = _zscore(_as2d(truth)), _zscore(_as2d(pred))
    return np.sqrt(((t - p) ** 2).mean(0))


def js_per_gene(truth, pred) -> np.ndarray:
    t, p = np.clip(_as2d(truth), 0, None), np.clip(_as2d(pred), 0, None)
    out = np.empty(t.shape[1])
    for j in range(t.shape[1]):
        a, b = t[:, j], p[:, j]
        sa, sb = a.sum(), b.sum()
        if sa <= 0 or sb <= 0:
            out[j] = np.log(2.0) if (sa > 0) != (sb > 0) else 0.0
            continue
        a, b = a / sa, b / sb
        m = 0.5 * (a + b)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl_a = np.where(a > 0, a * np.log(a / m), 0.0).sum()
            kl_b = np.where(b > 0, b * np.log(b / m), 0.0).sum()
        out[j] = 0.5 * (kl_a + kl_b)
    return out


def cosine_per_gene(truth, pred) -> np.ndarray:
    t, p = _as2d(truth), _as2d(pred)
    denom = np.linalg.norm(t, axis=0) * np.linalg.norm(p, axis=0)
    return np.divide((t * p).sum(0), denom, out=np.zeros(t.shape[1]), where=denom > 0)


def cosine_per_cell(truth, pred) -> np.ndarray:
    return cosine_per_gene(_as2d(truth).T, _as2d(pred).T)


def mse_per_gene(truth, pred) -> np.ndarray:
    t, p = _scale_max(_as2d(truth)), _scale_max(_as2d(pred))
    return ((t - p) ** 2).mean(0)


def per_gene_metrics(truth, pred, genes) -> pd.DataFrame:
    """All per-gene metrics as a DataFrame indexed by gene."""
    t, p = _as2d(truth), _as2d(pred)
    if t.shape != p.shape:
        raise ValueError(f"truth {t.shape} and prediction {p.shape} differ in shape")
    return pd.DataFrame({
        "pcc": pearson_per_gene(t, p), "spearman": spearman_per_gene(t, p), "ssim": ssim_per_gene(t, p),
        "rmse": rmse_per_gene(t, p), "js": js_per_gene(t, p), "cosine": cosine_per_gene(t, p),
        "mse": mse_per_gene(t, p),
    }, index=pd.Index([str(g) for g in genes], name="gene"))


def summarize(truth, pred, genes) -> dict:
    """The summary dict used by the CLI's metrics JSON (medians, means, cosine/MSE, per_gene)."""
    table = per_gene_metrics(truth, pred, genes)
    css_cell = cosine_per_cell(truth, pred)
    out = {
        "n_genes": int(table.shape[0]),
        "n_cells": int(np.asarray(truth).shape[0]),
        "pcc_median": float(table.pcc.median()), "pcc_mean": float(table.pcc.mean()),
        "spearman_median": float(table.spearman.median()), "spearman_mean": float(table.spearman.mean()),
        "ssim_median": float(table.ssim.median()), "ssim_mean": float(table.ssim.mean()),
        "rmse_median": float(table.rmse.median()), "js_median": float(table.js.median()),
        "css_cell": float(np.mean(css_cell)), "css_gene": float(table.cosine.mean()),
        "mse_gene": float(table.mse.mean()),
        "per_gene": {g: {k: float(v) for k, v in row.items()} for g, row in table.iterrows()},
    }
    return out
