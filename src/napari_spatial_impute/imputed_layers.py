"""Qt-free conversion of (imputed) AnnData into napari layer-data tuples ``(data, kwargs, layer_type)``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .coords import xy_to_yx

LayerDataTuple = tuple


def contrast_limits(values, low: float = 1.0, high: float = 99.0) -> tuple[float, float]:
    """Robust (percentile) contrast range for a gene's values; never an empty range."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(v, [low, high])
    if hi <= lo:
        lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        hi = lo + 1.0
    return (float(lo), float(hi))


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


def obs_features(adata) -> pd.DataFrame:
    """obs columns usable as napari features (index reset, plus a ``cell_id`` column)."""
    feats = adata.obs.reset_index(drop=True).copy()
    key = "cell_id" if "cell_id" not in feats.columns else "obs_name"
    if key not in feats.columns:
        feats.insert(0, key, np.asarray(adata.obs_names, dtype=str))
    return feats


def spatial_points_layer(adata, name: str = "cells", *, reference=None, size: float | None = None,
                         scale=(1.0, 1.0), translate=(0.0, 0.0)) -> LayerDataTuple:
    """Points layer of spatial cells, carrying the AnnData in ``metadata["adata"]``.

    ``metadata["reference"]`` optionally carries a paired scRNA-seq reference (the bundled sample does).
    """
    xy = np.asarray(adata.obsm["spatial"])[:, :2]
    meta = {"adata": adata}
    if reference is not None:
        meta["reference"] = reference
    kwargs = dict(name=name, features=obs_features(adata), size=size or 0.8 * typical_spacing(xy),
                  face_color="#9a9a9a", border_width=0, border_color="transparent", metadata=meta, scale=tuple(scale),
                  translate=tuple(translate))
    return (xy_to_yx(xy), kwargs, "points")


def imputed_points_layer(imputed, gene: str | None = None, *, name: str | None = None, size: float | None = None,
                         colormap: str = "viridis", scale=(1.0, 1.0), translate=(0.0, 0.0)) -> LayerDataTuple:
    """Points layer whose ``features`` hold every imputed gene, coloured by ``gene`` (default: the first,
    or the most reliable when ``var['reliability']`` exists)."""
    genes = list(map(str, imputed.var_names))
    X = imputed.X.toarray() if hasattr(imputed.X, "toarray") else np.asarray(imputed.X)
    feats = pd.DataFrame(X, columns=genes)
    feats.insert(0, "cell_id", np.asarray(imputed.obs_names, dtype=str))
    if gene is None:
        gene = default_gene(imputed)
    xy = np.asarray(imputed.obsm["spatial"])[:, :2]
    info = dict(imputed.uns.get("napari_spatial_impute", {}))
    reliability = None
    if "reliability" in imputed.var:
        reliability = {g: float(v) for g, v in imputed.var["reliability"].items()}
    kwargs = dict(
        name=name or f"imputed ({info.get('method', 'model')})",
        features=feats, face_color=gene, face_colormap=colormap,
        face_contrast_limits=contrast_limits(feats[gene]), border_width=0, border_color="transparent",
        size=size or 1.2 * typical_spacing(xy), scale=tuple(scale), translate=tuple(translate),
        metadata={"adata": imputed, "genes": genes, "reliability": reliability, "gene": gene, "info": info},
    )
    return (xy_to_yx(xy), kwargs, "points")


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


#: Above this many cells the widget shows imputed genes as a binned image instead of Points markers
#: (1 M markers recolour in seconds; a binned image in milliseconds — see benchmarks/napari_scale.md).
MAX_POINTS = 50_000


class BinnedGrid:
    """Cells assigned to square bins once; any gene is then rasterised with one ``bincount``."""

    def __init__(self, xy, bin_size: float | None = None, max_side: int = 2048):
        xy = np.asarray(xy, dtype=np.float64)[:, :2]
        lo = xy.min(0)
        extent = float(np.max(xy.max(0) - lo)) or 1.0
        if bin_size is None:
            bin_size = max(2.0 * typical_spacing(xy), extent / max_side)
        self.bin_size = float(bin_size)
        self.origin = lo
        ij = np.floor((xy - lo) / self.bin_size).astype(np.int64)  # (col, row)
        self.shape = (int(ij[:, 1].max()) + 1, int(ij[:, 0].max()) + 1)  # (rows, cols)
        self.flat = ij[:, 1] * self.shape[1] + ij[:, 0]
        self.counts = np.bincount(self.flat, minlength=self.shape[0] * self.shape[1]).astype(np.float32)

    def raster(self, values) -> np.ndarray:
        """Mean of ``values`` per bin (NaN where no cell)."""
        sums = np.bincount(self.flat, weights=np.asarray(values, dtype=np.float64),
                           minlength=self.counts.size).astype(np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            img = sums / self.counts
        img[self.counts == 0] = np.nan
        return img.reshape(self.shape)

    @property
    def scale(self) -> tuple[float, float]:
        return (self.bin_size, self.bin_size)

    @property
    def translate(self) -> tuple[float, float]:
        # napari places pixel centres at translate + index * scale: centre of bin 0 is origin + bin/2
        return (float(self.origin[1] + self.bin_size / 2), float(self.origin[0] + self.bin_size / 2))


def binned_image_layer(imputed, gene: str | None = None, *, grid: BinnedGrid | None = None,
                       colormap: str = "viridis", name: str | None = None) -> LayerDataTuple:
    """Image layer of a gene's mean imputed value per spatial bin (the scalable view for 1 M+ cells)."""
    gene = gene or default_gene(imputed)
    grid = grid or BinnedGrid(np.asarray(imputed.obsm["spatial"]))
    col = list(map(str, imputed.var_names)).index(gene)
    values = imputed.X[:, col]
    values = values.toarray().ravel() if hasattr(values, "toarray") else np.asarray(values).ravel()
    info = dict(imputed.uns.get("napari_spatial_impute", {}))
    reliability = ({g: float(v) for g, v in imputed.var["reliability"].items()}
                   if "reliability" in imputed.var else None)
    kwargs = dict(name=name or f"imputed ({info.get('method', 'model')}, binned)", colormap=colormap,
                  contrast_limits=contrast_limits(values), scale=grid.scale, translate=grid.translate,
                  metadata={"adata": imputed, "genes": list(map(str, imputed.var_names)), "gene": gene,
                            "grid": grid, "reliability": reliability, "info": info})
    return (grid.raster(values), kwargs, "image")
