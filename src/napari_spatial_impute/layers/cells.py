"""Cells as napari Points: the one cell Points builder, per-cell ``features`` and gene colouring.

One builder, :func:`cells_points_layer`, makes every cells layer: a reader's cells (``features`` = obs
columns), the bundled sample (a paired reference in ``metadata``), and imputation results
(``features="genes"``: every imputed gene a feature column, so switching genes needs no recomputation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import UNS_KEY
from ..coords import napari_units, xy_to_yx
from ..preprocessing import gene_key
from .colors import contrast_limits

LayerDataTuple = tuple

def typical_spacing(xy, sample: int = 5000, seed: int = 0) -> float:
    """Median nearest-neighbour distance between points (used to size markers)."""
    from scipy.spatial import cKDTree

    xy = np.asarray(xy, dtype=np.float64)[:, :2]
    if len(xy) < 2:
        return 1.0
    rng = np.random.default_rng(seed)
    pick = xy[rng.permutation(len(xy))[:sample]] if len(xy) > sample else xy
    d, _ = cKDTree(xy).query(pick, k=2)
    spacing = float(np.median(d[:, 1]))
    return spacing if spacing > 0 else 1.0


def gene_values(adata, gene: str) -> np.ndarray:
    """Values of one gene (a var name, matched by :func:`~napari_spatial_impute.preprocessing.gene_key`: case
    and Ensembl version ignored) or numeric obs column, per cell."""
    if gene in adata.obs.columns:
        return pd.to_numeric(adata.obs[gene], errors="coerce").to_numpy(np.float64)
    names = list(map(str, adata.var_names))
    if gene not in names:
        keys = {gene_key(n): n for n in names}
        if gene_key(gene) not in keys:
            raise KeyError(f"{gene!r} is neither a gene nor an obs column")
        gene = keys[gene_key(gene)]
    col = adata[:, gene].X
    col = col.toarray() if hasattr(col, "toarray") else np.asarray(col)
    return np.asarray(col, dtype=np.float64).ravel()


def cells_layer_names(viewer, *, saved_results: bool = False) -> list[str]:
    """Names of the viewer's cells layers (Points holding an AnnData; not the measured-vs-imputed grid's);
    ``saved_results``: also imputation results opened from a file (cells without measured genes: something to
    colour, not to impute from or evaluate)."""
    return [ly.name for ly in viewer.layers
            if type(ly).__name__ == "Points" and ly.metadata.get("adata") is not None
            and ly.metadata.get("grid_of") is None and (saved_results or ly.metadata.get("saved_result") is None)]


def layer_cell_ids(layer) -> np.ndarray:
    """The cell ids of a cells Points layer, in row order: its ``cell_id`` feature, else its AnnData's obs_names."""
    feats = layer.features
    if "cell_id" in feats:
        return feats["cell_id"].astype(str).to_numpy()
    return np.asarray(layer.metadata["adata"].obs_names, dtype=str)


def cell_features(adata) -> pd.DataFrame:
    """Every obs column (index reset) with ``cell_id`` (= obs_names) first: napari ``features`` of cells."""
    feats = adata.obs.reset_index(drop=True).copy()
    if "cell_id" in feats.columns:
        feats = feats.drop(columns="cell_id")
    feats.insert(0, "cell_id", np.asarray(adata.obs_names, dtype=str))
    return feats


def default_gene(imputed) -> str:
    """The gene shown first: the most reliable one when reliabilities exist, else the first."""
    if "reliability" in imputed.var and imputed.n_vars:
        return str(imputed.var["reliability"].astype(float).idxmax())
    return str(imputed.var_names[0])


def genes_by_reliability(genes, reliability: dict | None, threshold: float | None = None) -> list[str]:
    """Genes sorted by decreasing reliability (alphabetical without scores), optionally above a threshold."""
    genes = list(genes)
    if not reliability:
        return sorted(genes, key=str.lower)
    kept = [g for g in genes if threshold is None or reliability.get(g, -np.inf) >= threshold]
    return sorted(kept, key=lambda g: (-reliability.get(g, -np.inf), g.lower()))


def cells_points_layer(adata, name: str | None = None, *, features: str = "obs", gene: str | None = None,
                       cmap: str = "magma", size: float | None = None,
                       extra_features: pd.DataFrame | None = None, metadata: dict | None = None,
                       scale=(1.0, 1.0), translate=(0.0, 0.0), units="auto") -> LayerDataTuple:
    """Points at cell centroids (µm, (y, x)) with ``metadata["adata"]`` = the AnnData (the Impute widget's input).

    ``features="obs"``: every obs column with ``cell_id`` first (+ ``extra_features`` aligned with the cells),
    grey markers (0.8 × the typical spacing), coloured by ``gene`` (a gene of ``adata`` or a feature column)
    when given; default name ``"cells"``.
    ``features="genes"`` (an imputation result): ``cell_id`` + every gene of ``adata`` as feature columns,
    coloured by ``gene`` (default: the most reliable, see :func:`default_gene`), markers 1.2 × the spacing,
    ``metadata`` also holding ``genes``, ``reliability`` and the run ``info``; default name
    ``"imputed (<method>)"``.
    ``metadata`` adds entries (e.g. a paired scRNA-seq ``reference``); ``scale`` / ``translate`` place the
    layer like the one it was computed from; ``units``: its world units (y, x), None to claim none (coordinates
    that are not µm, e.g. an .h5ad in pixels); ``"auto"``: from ``uns["spatial_unit"]`` (µm when it says nothing,
    as the instrument readers' cells are).
    """
    if features not in ("obs", "genes"):
        raise ValueError(f"features must be 'obs' or 'genes', not {features!r}")
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2]
    meta = {"adata": adata}
    if features == "genes":
        genes = list(map(str, adata.var_names))
        X = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
        feats = pd.DataFrame(X, columns=genes)
        feats.insert(0, "cell_id", np.asarray(adata.obs_names, dtype=str))
        gene = gene if gene is not None else default_gene(adata)
        info = dict(adata.uns.get(UNS_KEY, {}))
        reliability = ({g: float(v) for g, v in adata.var["reliability"].items()}
                       if "reliability" in adata.var else None)
        meta.update(genes=genes, reliability=reliability, info=info)
        name = name or f"imputed ({info.get('method', 'model')})"
        spacing_factor = 1.2
    else:
        feats = cell_features(adata)
        name = name or "cells"
        spacing_factor = 0.8
    if extra_features is not None:
        feats = pd.concat([feats, extra_features.reset_index(drop=True)], axis=1)
    meta.update(metadata or {})
    kwargs = {"name": name, "features": feats, "size": size or spacing_factor * typical_spacing(xy),
              "border_width": 0, "border_color": "transparent", "face_color": "#b0b0b0", "metadata": meta,
              "scale": tuple(scale), "translate": tuple(translate)}
    if isinstance(units, str) and units == "auto":
        units = napari_units(adata.uns.get("spatial_unit", "um"))
    if units is not None:
        kwargs["units"] = tuple(units)
    if gene is not None:
        if gene not in feats.columns:
            feats[gene] = gene_values(adata, gene)
        kwargs.update(face_color=gene, face_colormap=cmap, face_contrast_limits=contrast_limits(feats[gene]))
        meta["gene"] = gene
    return (xy_to_yx(xy), kwargs, "points")


# --- writing results back onto live layers (duck-typed: no napari import) -------------------------------

def imputed_features(cell_ids: Sequence[str], imputed) -> pd.DataFrame:
    """Imputed genes as a features table aligned with ``cell_ids`` (NaN for cells the prediction lacks)."""
    X = imputed.X.toarray() if hasattr(imputed.X, "toarray") else np.asarray(imputed.X)
    table = pd.DataFrame(np.asarray(X, dtype=np.float32), index=pd.Index(list(map(str, imputed.obs_names))),
                         columns=list(map(str, imputed.var_names)))
    return table.reindex(pd.Index(list(map(str, cell_ids)))).reset_index(drop=True)


def add_imputed_to_points(points_layer, imputed, *, suffix: str = "") -> list[str]:
    """Add every predicted gene of ``imputed`` as a feature column of a cells Points layer (matched by
    ``cell_id``); returns the new column names. Existing columns of the same name are replaced."""
    feats = points_layer.features.copy()
    new = imputed_features(pd.Series(layer_cell_ids(points_layer)), imputed)
    if suffix:
        new.columns = [f"{c}{suffix}" for c in new.columns]
    feats = feats.drop(columns=[c for c in new.columns if c in feats.columns])
    points_layer.features = pd.concat([feats.reset_index(drop=True), new], axis=1)
    return list(new.columns)


def show_gene_on_points(points_layer, gene: str, cmap: str = "magma") -> None:
    """Colour a cells Points layer by a feature column (a measured or imputed gene)."""
    if gene not in points_layer.features.columns:
        adata = points_layer.metadata.get("adata")
        if adata is None:
            raise KeyError(f"{gene!r} is not a feature of layer {points_layer.name!r}")
        feats = points_layer.features.copy()
        feats[gene] = gene_values(adata, gene)
        points_layer.features = feats
    values = points_layer.features[gene].to_numpy(np.float64)
    points_layer.face_color = gene
    points_layer.face_colormap = cmap
    points_layer.face_contrast_limits = contrast_limits(values)
    points_layer.refresh_colors(update_color_mapping=False)
    points_layer.metadata["gene"] = gene
