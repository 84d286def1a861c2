"""Histology API: train STco on spot sections with H&E, evaluate it on a held-out section, predict genes from an
H&E image (per spot or tiled over the tissue). AnnData in, AnnData out, with the same provenance layout as
imputation (one ``uns["napari_spatial_impute"]`` entry) and the shared metric names beside the histology ones.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import UNS_KEY
from ..errors import InputError
from ..progress import Progress, ProgressGen, run_to_end


def train_histology_steps(sections, *, genes: list[str] | None = None, seed: int = 0, device: str = "auto",
                          **params: Any) -> ProgressGen[Any]:
    """Train STco on sections (from :func:`~napari_spatial_impute.read_section`); yields progress, returns it."""
    from ..models.params_spec import validate_params
    from ..models.stco import STco

    params = validate_params("stco", params, seed=seed)  # before any work: names, types, ranges
    model = STco(genes=genes, seed=seed, device=device, **params)
    return (yield from model.fit_steps(list(sections)))


def train_histology(sections, *, callback=None, **kwargs: Any):
    """Train an STco model (see :func:`train_histology_steps`); returns the fitted model."""
    return run_to_end(train_histology_steps(sections, **kwargs), callback)


def as_histology_model(model, device: str = "auto"):
    """An STco model: ``model`` itself, or the bundle folder it names loaded on ``device``."""
    from ..models.bundle import load_model, read_config
    from ..models.stco import STco

    if isinstance(model, STco):
        return model
    path = Path(model)
    if not (path / "config.json").is_file():
        raise InputError(f"{path} is not a histology model bundle (no config.json).",
                         "give the folder written by 'napari-spatial-impute histology train --out'.")
    if read_config(path)["method"] != "stco":
        raise InputError(f"{path} holds an imputation model, not a histology model bundle.",
                         "give a folder written by 'histology train'.")
    return load_model(path, device=device)


def describe_choice(model) -> str:
    """One line: the validation scores and the predictor the bundle uses."""
    choice = model.choice
    if not choice.get("scores"):
        weights = " + ".join(f"{w:.2f}·{k}" for k, w in model.weights.items())
        return (f"predictor: {weights}, smoothing {choice.get('smoothing_um', 0.0):g} µm (not validated: nothing "
                "held out; the equal blend of its members)")
    scores = ", ".join(f"{k} {v:.3f}" for k, v in choice["scores"].items())
    weights = " + ".join(f"{w:.2f}·{k}" for k, w in model.weights.items())
    line = (f"validation (top-50 PCC, sections {', '.join(choice['validated_on'])} held out in turn): {scores} → "
            f"predicts {weights}, smoothing {choice['smoothing_um']:g} µm")
    r = model.expected_r
    if r is not None:
        line += (f"; expected r per gene (var['expected_r']): median {np.median(r):.2f}, "
                 f"{int((r >= 0.3).sum())} of {len(r)} genes ≥ 0.3")
    return line


def truth_for(model, adata) -> tuple[np.ndarray, list[str], Any]:
    """Log-normalised measured expression of the model's genes found in ``adata`` (ignoring case), those genes
    (model spelling) and the gene match."""
    from ..models.stco.expression import section_expression
    from ..preprocessing import match_genes

    adata = getattr(adata, "adata", adata)
    match = match_genes(model.genes, adata.var_names)
    if match.n_shared == 0:
        raise InputError(f"None of the model's {len(model.genes)} genes is measured in this section.",
                         "evaluate on a section measuring the model's panel (same species / gene symbols).")
    found = set(match.shared_spatial)
    genes = [g for g in model.genes if g in found]
    return section_expression(adata, genes, model.target_sum), genes, match


def _pcc_summary(truth: np.ndarray, pred: np.ndarray, top: list[int]) -> dict[str, float]:
    """A predictor's r summaries, by the same definition as the model's headline r (:func:`~..metrics.summarize`)."""
    from ..metrics import pearson_per_gene

    r = pearson_per_gene(truth, pred)
    return {"pcc_mean_all": float(np.mean(r)), "pcc_median_all": float(np.median(r)),
            "pcc_mean_top50": float(np.mean(r[top])) if top else float("nan")}


def evaluate_histology_steps(model, section, *, jitter: bool | None = None) -> ProgressGen[dict]:
    """Predict a held-out section from its H&E and compare with its measured expression.

    Returns metrics of what the model predicts: n_spots, n_genes, n_genes_missing, pcc_mean_all,
    pcc_median_all, pcc_mean_top50 (the model's top genes: most expressed on the training sections),
    spearman_mean_all, seconds; beside them the names imputation uses
    (:func:`~napari_spatial_impute.metrics.summarize`: pcc_median, pcc_mean, spearman_median, ssim_median, …),
    the gene match and per_gene {gene: {pcc, spearman, …, top}}. Side by side, every predictor the bundle
    carries, unblended and unsmoothed: ``components`` {contrastive, feature_ridge, feature_krr, feature_knn,
    colour_ridge: {pcc_mean_all, pcc_median_all, pcc_mean_top50}} (also flat as ``pcc_mean_top50_<name>``,
    ``pcc_mean_all_<name>``), and ``predictor``: the blend weights, smoothing and validation scores chosen at
    training time. A bundle validated at training time also has its per-gene expected r checked here:
    ``expected_r_spearman``, ``expected_r_mae`` (over the ``expected_r_genes`` genes that vary in the section),
    ``expected_r_mean_top50`` and ``per_gene[gene]["expected_r"]``. ``jitter=False``: each spot read from one
    cut (as :func:`predict_histology_steps`; whole-slide tiles always are).
    """
    from ..metrics import summarize

    t0 = time.perf_counter()
    from ..io.sections import at_patch_scale

    model = as_histology_model(model)
    adata = at_patch_scale(getattr(section, "adata", section), model.cfg["patch_um"])  # Visium HD bins: summed
    truth, genes, match = truth_for(model, adata)
    out = yield from model.predict_section_steps(adata, parts=True, jitter=jitter)
    cols = [model.genes.index(g) for g in genes]
    pred = out.pop("model")[:, cols]
    shared = summarize(truth, pred, genes)
    pcc = np.array([shared["per_gene"][g]["pcc"] for g in genes])
    spr = np.array([shared["per_gene"][g]["spearman"] for g in genes])
    top_set = set(model.top_genes)
    top = [i for i, g in enumerate(genes) if g in top_set]
    if not top:
        import warnings

        warnings.warn("None of the bundle's top genes is measured in this section: the top-50 figures are NaN; "
                      "read pcc_mean_all / per_gene instead.", UserWarning, stacklevel=2)
    per_gene = {g: {**row, "top": g in top_set} for g, row in shared.pop("per_gene").items()}
    expected = _expected_r_check(model, genes, pcc, top, varies=truth.std(0) > 0)
    if expected:
        for g, r in zip(genes, expected.pop("values")):
            per_gene[g]["expected_r"] = r
    components = {name: _pcc_summary(truth, values[:, cols], top) for name, values in out.items()}
    flat = {f"{k}_{name}": v for name, row in components.items() for k, v in row.items() if k != "pcc_median_all"}
    return {
        "method": "stco", "n_spots": int(adata.n_obs), "n_genes": len(genes),
        "n_genes_missing": len(model.genes) - len(genes),
        "pcc_mean_all": float(np.mean(pcc)), "pcc_median_all": float(np.median(pcc)),
        "pcc_mean_top50": float(np.mean(pcc[top])) if top else float("nan"),
        "spearman_mean_all": float(np.mean(spr)),
        "seconds": float(time.perf_counter() - t0),
        **{k: v for k, v in shared.items() if k != "n_genes"},
        "components": components, **flat,
        "predictor": {"weights": model.weights, "smoothing_um": float(model.choice.get("smoothing_um", 0.0)),
                      "winner": model.choice.get("winner"), "validation_top": model.choice.get("scores", {}),
                      "validated_on": model.choice.get("validated_on", [])},
        **expected,
        "gene_match": match.as_dict(),
        "per_gene": per_gene,
    }


def expected_r_of(model, genes: list[str]) -> np.ndarray | None:
    """The bundle's per-gene expected r (:attr:`STco.expected_r`) for ``genes`` (NaN for a gene it does not
    predict); None for a bundle without it."""
    if model.expected_r is None:
        return None
    r = dict(zip(model.genes, model.expected_r.tolist()))
    return np.array([r.get(g, np.nan) for g in genes], np.float64)


def _expected_r_check(model, genes: list[str], pcc: np.ndarray, top: list[int], varies: np.ndarray) -> dict:
    """How the bundle's per-gene expected r (its training validation) compares with the r reached here, over
    the genes measured as varying in this section (``expected_r_genes`` of them; a constant gene has no r):
    ``expected_r_spearman`` (rank agreement), ``expected_r_mae`` (mean |expected − reached|), and
    ``expected_r_mean_top50`` (over all top genes, beside ``pcc_mean_top50``); {} for a bundle without it."""
    from scipy.stats import spearmanr

    exp = expected_r_of(model, genes)
    if exp is None:
        return {}
    e, p = exp[varies], pcc[varies]
    rho = spearmanr(e, p).statistic if len(e) > 2 and np.ptp(e) > 0 and np.ptp(p) > 0 else np.nan
    return {"expected_r_spearman": float(rho), "expected_r_mae": float(np.mean(np.abs(e - p))) if len(e) else np.nan,
            "expected_r_genes": int(len(e)),
            "expected_r_mean_top50": float(np.mean(exp[top])) if top else float("nan"), "values": exp.tolist()}


def evaluate_histology(model, section, callback=None, *, jitter: bool | None = None) -> dict:
    """Metrics of ``model`` (or a bundle folder) on a held-out ``section`` (see :func:`evaluate_histology_steps`)."""
    return run_to_end(evaluate_histology_steps(model, section, jitter=jitter), callback)


def predict_histology_steps(model, image, pixel_size_um: float | None = None, *, spots_xy=None, obs_names=None,
                            tile_um: float = 100.0, min_tissue: float = 0.5, tta: int | None = None,
                            jitter: bool | None = None, device: str = "auto") -> ProgressGen[Any]:
    """Predict genes from H&E; returns AnnData (X = predicted log-normalised expression).

    ``image``: a section (AnnData / SpatialSample from the readers: its spots are predicted) or an H&E image
    (path or RGB array) with optional ``spots_xy`` (x, y) in its pixels; without spots the tissue is tiled with
    ``tile_um`` tiles. ``model``: an STco model or a bundle folder. ``jitter=False`` reads each spot's patch
    once instead of also at the four moved cuts the model's feature ridges average (``jitter_um``; 3× less
    backbone work per spot, 1.7× less time on her2st C6); None (or True): as the model was trained.
    """
    from ..coords import check_positive
    from ..device import resolve_device

    t0 = time.perf_counter()
    check_positive(tile_um, "tile size (tile_um)", "µm", high=10_000, fix="e.g. tile_um=100 (--tile-um 100).")
    if pixel_size_um is not None:
        check_positive(pixel_size_um, "pixel size", "µm per pixel", high=100,
                       fix="give the image's µm per pixel (e.g. 0.5 for a 20× scan), or leave it out.")
        pixel_size_um = float(pixel_size_um)
    spots_xy, obs_names = as_spots(spots_xy, obs_names)
    if not 0.0 <= float(min_tissue) <= 1.0:
        raise InputError(f"min_tissue is {min_tissue!r}; it must lie in [0, 1] (share of a tile on tissue).",
                         "e.g. min_tissue=0.5.")
    model = as_histology_model(model, device)
    adata = getattr(image, "adata", image)
    if hasattr(adata, "obsm"):  # a section (Visium HD bins: summed into pseudo-spots)
        from ..io.sections import at_patch_scale
        from ..models.stco.patches import section_geometry

        adata = at_patch_scale(adata, model.cfg["patch_um"])
        info, spots_xy, _ = section_geometry(adata)
        image, obs_names = info["image"], list(map(str, adata.obs_names))
        pixel_size_um = pixel_size_um or float(info["pixel_size_um"])
    yield Progress(0, 1, "starting", "predict")
    result = yield from model.predict_image_steps(image, pixel_size_um, spots_xy=spots_xy, tile_um=tile_um,
                                                  min_tissue=min_tissue, tta=tta, jitter=jitter)
    out = prediction_to_anndata(result, obs_names, model=model)
    out.uns[UNS_KEY].update(device=resolve_device(model.device), seconds=float(time.perf_counter() - t0))
    return out


#: DataFrame columns holding spot centres in the image's pixels, (x, y), in the order they are looked for
SPOT_PIXEL_COLUMNS = (("pixel_x", "pixel_y"), ("x", "y"), ("x_px", "y_px"),
                      ("pxl_col_in_fullres", "pxl_row_in_fullres"))


def as_spots(spots_xy, obs_names=None) -> tuple[np.ndarray | None, list[str] | None]:
    """Spot centres as (n, 2) (x, y) pixels of the image, and their names: from an array, a DataFrame (its
    columns named x / y, pixel_x / pixel_y, …; its index names the spots) or an AnnData (``obsm['spatial_px']``,
    else scanpy's full-resolution ``obsm['spatial']``; its obs_names). Refuses other shapes and names of another
    length."""
    if spots_xy is None:
        return None, obs_names
    names = None
    if hasattr(spots_xy, "obsm"):
        key = "spatial_px" if "spatial_px" in spots_xy.obsm else "spatial"
        if key not in spots_xy.obsm:
            raise InputError("The spots AnnData has no obsm['spatial_px'] or obsm['spatial'].",
                             "give the spot centres in the image's pixels, (x, y).")
        xy, names = np.asarray(spots_xy.obsm[key], np.float64)[:, :2], list(map(str, spots_xy.obs_names))
    elif isinstance(spots_xy, pd.DataFrame):
        cols = next((c for c in SPOT_PIXEL_COLUMNS if set(c) <= set(spots_xy.columns)), None)
        if cols is None:
            raise InputError(f"The spots table has columns {list(spots_xy.columns)[:8]}: none names the pixel "
                             "positions.", "name them x, y (or pixel_x, pixel_y), in the image's pixels.")
        xy = spots_xy[list(cols)].to_numpy(np.float64)
        if not isinstance(spots_xy.index, pd.RangeIndex):
            names = list(map(str, spots_xy.index))
    else:
        try:
            xy = np.asarray(spots_xy, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise InputError(f"The spots ({type(spots_xy).__name__}) are not numbers: {err}",
                             "give (n, 2) (x, y) positions in the image's pixels.") from err
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise InputError(f"The spots have shape {xy.shape}; expected (n, 2): one (x, y) pixel position per spot.",
                         "give (n, 2) (x, y) positions in the image's pixels (napari Points are (y, x): "
                         "flip them with points[:, ::-1]).")
    # NaN positions and positions off the image: check_spots_in_image, which every prediction path runs
    names = obs_names if obs_names is not None else names
    if names is not None and len(names) != len(xy):
        raise InputError(f"{len(names)} spot names for {len(xy)} spots.", "give one name per spot.")
    return xy, (list(map(str, names)) if names is not None else None)


def predict_histology(model, image, pixel_size_um: float | None = None, *, callback=None, **kwargs: Any):
    """Predict genes from H&E → AnnData (see :func:`predict_histology_steps`)."""
    return run_to_end(predict_histology_steps(model, image, pixel_size_um, **kwargs), callback)


def prediction_to_anndata(result: dict, obs_names=None, *, model=None):
    """The dict of :meth:`STco.predict_image_steps` → AnnData: ``obsm['spatial']`` (x, y) µm and
    ``obsm['spatial_px']`` (x, y) H&E pixels; ``var['expected_r']`` (the bundle's per-gene validation r, when it
    was validated; also as ``var['reliability']``, which the viewer sorts by); ``uns['napari_spatial_impute']``
    with the method, its parameters, the patch cuts read per spot (``cuts_per_spot``: 5 with the model's jittered
    cuts, 1 for tiles or ``jitter=False``) and, when tiled, the tile grid (``napari_scale_yx`` / ``napari_translate_yx``
    place it over the H&E in pixels)."""
    import anndata as ad

    from ..coords import px_to_um
    from .impute import _jsonable

    values, centres = result["values"], np.asarray(result["centres_xy"], np.float64)
    grid = result.get("grid")
    if obs_names is None:
        obs_names = [f"tile_{i}" if grid is not None else f"spot_{i}" for i in range(len(values))]
    out = ad.AnnData(X=np.asarray(values, np.float32), obs=pd.DataFrame(index=pd.Index(list(map(str, obs_names)))),
                     var=pd.DataFrame(index=pd.Index(result["genes"], name="gene")))
    out.obsm["spatial"] = px_to_um(centres, result["pixel_size_um"])
    out.obsm["spatial_px"] = centres
    info: dict[str, Any] = {"method": "stco", "pixel_size_um": float(result["pixel_size_um"]),
                            "values": "log1p(normalised)", "cuts_per_spot": int(result.get("cuts", 1))}
    expected = expected_r_of(model, list(out.var_names)) if model is not None else None
    if expected is not None:  # the validation's per-gene r, as imputation has
        out.var["expected_r"] = expected.astype(np.float32)
        out.var["reliability"] = out.var["expected_r"]  # the column the viewer sorts by, as for imputation
    if model is not None:
        info.update(params=_jsonable(model.cfg), seed=model.seed, top_genes=list(model.top_genes),
                    target_sum=float(model.target_sum), predictor=dict(model.weights),
                    smoothing_um=float(model.choice.get("smoothing_um", 0.0)))
    if grid is not None:
        rows, cols = np.nonzero(grid.keep)
        out.obs["tile_row"], out.obs["tile_col"] = rows, cols
        info.update(grid_shape=list(grid.shape), grid_step_px=float(grid.step), grid_origin_yx=list(grid.origin),
                    napari_scale_yx=list(grid.scale), napari_translate_yx=list(grid.translate))
    out.uns[UNS_KEY] = info
    return out
