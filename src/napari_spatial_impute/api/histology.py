"""Python API of the histology half: train / evaluate / predict, AnnData in and out."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..errors import InputError
from ..progress import ProgressGen, run_to_end
from .model import STco, log_normalise


def train_steps(sections, *, genes: list[str] | None = None, seed: int = 0, device: str = "auto",
                **params) -> ProgressGen[STco]:
    """Train STco on sections (AnnData from :func:`~.io_st.read_section`); yields progress, returns the model."""
    model = STco(genes=genes, seed=seed, device=device, **params)
    return (yield from model.fit_steps(list(sections)))


def train(sections, *, callback=None, **kwargs) -> STco:
    return run_to_end(train_steps(sections, **kwargs), callback)


def load_model(path, device: str = "auto") -> STco:
    """Load a model bundle directory."""
    return STco.load(path, device=device)


def truth_for(model: STco, adata) -> tuple[np.ndarray, list[str]]:
    """Log-normalised measured expression of the model's genes present in ``adata`` (and those genes)."""
    names = set(map(str, adata.var_names))
    genes = [g for g in model.genes if g in names]
    if not genes:
        raise InputError(f"None of the model's {len(model.genes)} genes is measured in this section.",
                         "evaluate on a section measuring the model's panel (same species / gene symbols).")
    return log_normalise(adata.X, adata.var_names, genes, model.target_sum), genes


def evaluate_steps(model: STco, adata) -> ProgressGen[dict]:
    """Predict a held-out section from its H&E and compare with its measured expression.

    Returns metrics: n_spots, n_genes, pcc_mean_all, pcc_median_all, pcc_mean_top50 (the 50 most expressed
    genes on the training sections), spearman_mean_all, seconds, per_gene {gene: {pcc, spearman}}.
    """
    from ..metrics import pearson_per_gene, spearman_per_gene

    t0 = time.perf_counter()
    truth, genes = truth_for(model, adata)
    pred = yield from model.predict_section_steps(adata)
    cols = [model.genes.index(g) for g in genes]
    pred = pred[:, cols]
    pcc = pearson_per_gene(truth, pred)
    spr = spearman_per_gene(truth, pred)
    top = [i for i, g in enumerate(genes) if g in set(model.top50)]
    return {
        "n_spots": int(adata.n_obs), "n_genes": len(genes),
        "n_genes_missing": len(model.genes) - len(genes),
        "pcc_mean_all": float(np.mean(pcc)), "pcc_median_all": float(np.median(pcc)),
        "pcc_mean_top50": float(np.mean(pcc[top])) if top else float("nan"),
        "spearman_mean_all": float(np.mean(spr)),
        "seconds": float(time.perf_counter() - t0),
        "per_gene": {g: {"pcc": float(p), "spearman": float(s), "top50": g in set(model.top50)}
                     for g, p, s in zip(genes, pcc, spr)},
    }


def evaluate(model: STco, adata, callback=None) -> dict:
    return run_to_end(evaluate_steps(model, adata), callback)


def prediction_to_anndata(result: dict, obs_names=None, *, model: STco | None = None):
    """The dict of :meth:`STco.predict_image_steps` → AnnData (X = predicted log-normalised expression,
    obsm['spatial'] = (x, y) full-res px, uns['histology_prediction'] with the tile grid when tiled)."""
    import anndata as ad

    values, centres = result["values"], result["centres_xy"]
    if obs_names is None:
        obs_names = [f"tile_{i}" if result.get("grid") is not None else f"spot_{i}" for i in range(len(values))]
    out = ad.AnnData(X=np.asarray(values, np.float32), obs=pd.DataFrame(index=pd.Index(list(map(str, obs_names)))),
                     var=pd.DataFrame(index=pd.Index(result["genes"], name="gene")))
    out.obsm["spatial"] = np.asarray(centres, np.float64)
    info = {"method": "stco", "pixel_size_um": float(result["pixel_size_um"]), "values": "log1p(normalised)"}
    if model is not None:
        info["top50"] = list(model.top50)
        info["target_sum"] = float(model.target_sum)
    grid = result.get("grid")
    if grid is not None:
        rows, cols = np.nonzero(grid.keep)
        out.obs["tile_row"], out.obs["tile_col"] = rows, cols
        info.update(grid_shape=list(grid.shape), grid_step_px=float(grid.step), grid_origin_yx=list(grid.origin),
                    napari_scale_yx=list(grid.scale), napari_translate_yx=list(grid.translate))
    out.uns["histology_prediction"] = info
    return out


def heatmap_from_anndata(adata, gene: str) -> tuple[np.ndarray, tuple, tuple]:
    """(grid, scale, translate) for one gene of a tiled prediction AnnData — ready for ``viewer.add_image``."""
    info = adata.uns["histology_prediction"]
    if "grid_shape" not in info:
        raise InputError("This prediction is per spot, not tiled.", "show it as Points instead.")
    if gene not in adata.var_names:
        raise InputError(f"Gene {gene!r} is not among the predicted genes.", "choose one of adata.var_names.")
    grid = np.full(tuple(info["grid_shape"]), np.nan, np.float32)
    col = np.asarray(adata[:, gene].X).ravel()
    grid[adata.obs["tile_row"].to_numpy(), adata.obs["tile_col"].to_numpy()] = col
    return grid, tuple(info["napari_scale_yx"]), tuple(info["napari_translate_yx"])
