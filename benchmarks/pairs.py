"""Real spatial / reference pairs for the accuracy benchmarks (built on the fly, never committed).

- ``osmfish``: bundled osmFISH (3,405 cells × 33 genes) + bundled Allen SSp SMART-seq (1,000 cells); 5-fold CV.
- ``osmfish_self``: full osmFISH (Codeluppi 2018): a seeded half of its 6,471 cells as spatial, the other half as
  reference; 5-fold CV over the 33 genes.
- ``xenium``: bundled Xenium sample (7,621 cells × 150-gene panel; 8,000 other cells × 248 genes as reference);
  the 98 hidden genes against their measured truth.
- ``xenium18k``: shared Xenium slide, a seeded half (18,301 cells) × the same 150-gene panel, the other half as
  reference; the 98 hidden genes against their truth.

``osmfish`` is the tuning pair (SpaIM's and ``auto``'s defaults were chosen on it); the others are report pairs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
PAIRS = ("osmfish", "osmfish_self", "xenium", "xenium18k")


def load_pair(name: str, seed: int = 0):
    """(spatial, reference, truth AnnData or None). ``truth`` None = evaluate by CV over shared genes."""
    import napari_spatial_impute as nsi

    if name == "osmfish":
        spatial, reference = nsi.load_osmfish_sample()
        return spatial, reference, None
    if name == "xenium":
        return nsi.load_xenium_sample(with_truth=True)
    if name == "osmfish_self":
        return _osmfish_self(seed)
    if name == "xenium18k":
        return _xenium_half(seed)
    raise SystemExit(f"unknown pair {name!r}; choose from {PAIRS}")


def _need(path: Path) -> Path:
    if not path.exists():
        raise SystemExit(f"{path} not found: this pair needs ../shared/datasets")
    return path


def _osmfish_self(seed: int):
    import anndata as ad
    import h5py

    path = _need(SHARED / "osmfish_codeluppi2018" / "osmFISH_SScortex_mouse_all_cells.loom")
    with h5py.File(path, "r") as f:
        X = np.asarray(f["matrix"][:], dtype=np.float32).T  # loom: genes × cells
        genes = [g.decode() if isinstance(g, bytes) else str(g) for g in f["row_attrs"]["Gene"][:]]
        ca = f["col_attrs"]
        xy = np.column_stack([np.asarray(ca["X"][:], float), np.asarray(ca["Y"][:], float)])
    keep = X.sum(1) > 0
    X, xy = X[keep], xy[keep]
    order = np.random.default_rng(seed).permutation(len(X))
    half = len(X) // 2
    a, b = np.sort(order[:half]), np.sort(order[half:])
    var = pd.DataFrame(index=genes)
    spatial = ad.AnnData(X[a], obs=pd.DataFrame(index=[f"c{i}" for i in a]), var=var.copy())
    spatial.obsm["spatial"] = xy[a]
    reference = ad.AnnData(X[b], obs=pd.DataFrame(index=[f"c{i}" for i in b]), var=var.copy())
    return spatial, reference, None


def _xenium_half(seed: int):
    import anndata as ad

    import napari_spatial_impute as nsi
    from napari_spatial_impute.io import read_xenium

    src = read_xenium(_need(SHARED / "xenium_mouse_brain_ctx_hp")).adata
    panel = list(nsi.load_xenium_sample()[0].var_names)
    X = sp.csr_matrix(src.X, dtype=np.float32)
    order = np.random.default_rng(seed).permutation(X.shape[0])
    half = len(order) // 2
    a, b = np.sort(order[:half]), np.sort(order[half:])
    genes = list(map(str, src.var_names))
    col = {g: i for i, g in enumerate(genes)}
    hidden = [g for g in genes if g not in set(panel)]
    names = np.asarray(src.obs_names).astype(str)
    spatial = ad.AnnData(X[a][:, [col[g] for g in panel]], obs=pd.DataFrame(index=names[a]),
                         var=pd.DataFrame(index=panel))
    spatial.obsm["spatial"] = np.asarray(src.obsm["spatial"], float)[a]
    reference = ad.AnnData(X[b], obs=pd.DataFrame(index=names[b]), var=pd.DataFrame(index=genes))
    truth = ad.AnnData(X[a][:, [col[g] for g in hidden]], obs=pd.DataFrame(index=names[a]),
                       var=pd.DataFrame(index=hidden))
    return spatial, reference, truth


def truth_log(spatial, truth, genes: list[str]) -> np.ndarray:
    """Held-out truth on the evaluation scale: counts of ``genes`` / the cell's panel library size × the
    panel's median library size, log1p — the normalisation the imputed genes' inputs had."""
    Xs = spatial.X.toarray() if sp.issparse(spatial.X) else np.asarray(spatial.X)
    lib = Xs.sum(1).astype(np.float64)
    target = float(np.median(lib[lib > 0]))
    T = truth[:, genes].X
    T = T.toarray() if sp.issparse(T) else np.asarray(T)
    scale = np.divide(target, lib, out=np.zeros_like(lib), where=lib > 0)
    return np.log1p(T * scale[:, None]).astype(np.float32)
