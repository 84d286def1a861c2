"""Xenium-like scale data, generated on the fly (never committed).

The real Xenium mouse-brain sample (36,602 cells × 248 genes, ../shared/datasets/xenium_mouse_brain_ctx_hp)
is split once: 10,000 random cells become the scRNA-seq-like *reference*; the remaining 26,602 cells are the
pool that spatial cells are resampled from. Each synthetic cell copies a pool cell with realistic noise
(per-cell capture efficiency ~ log-normal(0, 0.25), Poisson resampling of every count) and is placed on a
tiled copy of the slide (tile offset + 3 µm jitter). ``n_holdout`` genes are removed from the spatial
data (the reference keeps them): those are imputed, and their hidden counts give the truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

XENIUM = Path(__file__).resolve().parents[2] / "shared/datasets/xenium_mouse_brain_ctx_hp"


def load_xenium():
    from napari_spatial_impute.io import read_xenium

    if not XENIUM.exists():
        raise SystemExit(f"{XENIUM} not found: the scale benchmark needs ../shared/datasets")
    return read_xenium(XENIUM).adata


def make_scale_pair(n_cells: int, n_holdout: int = 50, n_reference: int = 10_000, seed: int = 0):
    """(spatial AnnData with n_cells, reference AnnData, held-out genes, truth counts CSR of held-out genes)."""
    import anndata as ad

    src = load_xenium()
    X = sp.csr_matrix(src.X, dtype=np.float32)
    rng = np.random.default_rng(seed)
    order = rng.permutation(src.n_obs)
    ref_rows, pool = np.sort(order[:n_reference]), order[n_reference:]
    genes = np.asarray(src.var_names)
    holdout = sorted(rng.choice(genes, size=min(n_holdout, len(genes) - 10), replace=False).tolist())
    keep = [g for g in genes if g not in set(holdout)]

    reference = ad.AnnData(X[ref_rows], obs=pd.DataFrame(index=src.obs_names[ref_rows].astype(str)),
                           var=pd.DataFrame(index=genes))
    picks = rng.choice(pool, size=n_cells, replace=True)
    cells = X[picks].tocsr()
    eff = rng.lognormal(0.0, 0.25, size=n_cells).astype(np.float32)
    rows = np.repeat(np.arange(n_cells), np.diff(cells.indptr))
    cells.data = rng.poisson(cells.data * eff[rows]).astype(np.float32)
    cells.eliminate_zeros()
    xy = np.asarray(src.obsm["spatial"], dtype=np.float64)[picks]
    width = float(np.ptp(np.asarray(src.obsm["spatial"])[:, 0])) + 100.0
    tiles = np.arange(n_cells) // len(pool)
    xy[:, 0] += tiles * width
    xy += rng.normal(0, 3.0, size=xy.shape)
    col = {g: i for i, g in enumerate(genes)}
    spatial = ad.AnnData(cells[:, [col[g] for g in keep]],
                         obs=pd.DataFrame(index=[f"cell_{i}" for i in range(n_cells)]),
                         var=pd.DataFrame(index=keep))
    spatial.obsm["spatial"] = xy
    totals = np.asarray(cells.sum(axis=1)).ravel()
    truth = cells[:, [col[g] for g in holdout]]
    return spatial, reference, holdout, truth, totals


def truth_log_normalised(truth: sp.csr_matrix, totals: np.ndarray) -> np.ndarray:
    """Held-out counts normalised with the full-panel library size (median target) and log1p."""
    target = float(np.median(totals[totals > 0]))
    scale = np.divide(target, totals, out=np.zeros_like(totals, dtype=np.float64), where=totals > 0)
    dense = truth.toarray().astype(np.float64) * scale[:, None]
    return np.log1p(dense).astype(np.float32)
