"""A :class:`~napari_spatial_impute.io.spatial_sample.SpatialSample` → napari layer-data tuples, Qt-free.

Every layer's world coordinates are micrometres (napari order (y, x)), so images, label masks, transcripts,
boundaries and cells of one sample line up. Genes (measured or imputed) are switched on the cells Points layer
(``features`` + ``face_color``) and on Labels layers (a :class:`napari.utils.DirectLabelColormap` built from
a plain ``{label_id: rgba}`` dict up to :data:`MAX_DIRECT_COLORMAP_LABELS` cells; above that napari's dict
handling takes seconds to tens of seconds per switch, so :func:`gene_image_layer` shows ``lut[mask]`` as an
Image instead). Imputation results come as Points with every imputed gene in ``features``
(:func:`imputed_points_layer`) or, above :data:`MAX_POINTS` cells, as a binned image (:class:`BinnedGrid`).
Nothing here imports napari or Qt; helpers that act on live layers only set attributes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..coords import affine_to_napari, xy_to_yx

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


#: Above this many transcripts the Points layer shows a random subsample (measured: benchmarks/readers.md).
MAX_TRANSCRIPT_POINTS = 200_000
#: Above this many cells no Shapes layer of boundaries is made (the Labels layer shows them).
MAX_BOUNDARY_SHAPES = 5_000
TRANSPARENT = (0.0, 0.0, 0.0, 0.0)
#: Above this many labelled cells a gene is shown as a value image (lut[mask]) instead of a per-label direct
#: colormap: napari takes ~3 s per 100k labels (~30 s per 1M) to apply a DirectLabelColormap
#: (benchmarks/readers.md).
MAX_DIRECT_COLORMAP_LABELS = 50_000


def napari_transform(affine) -> dict:
    """kwargs placing a layer: ``scale`` / ``translate`` for axis-aligned affines (keeps napari's scale bar
    right), else ``affine`` in napari (y, x) order. ``affine`` acts on (col, row) pixel centres → (x, y)."""
    return affine_to_napari(affine)


# --- colours ------------------------------------------------------------------------------------------------

def values_to_rgba(values, cmap: str = "magma", clim: tuple[float, float] | None = None,
                   nan_color=(0.5, 0.5, 0.5, 0.6)) -> np.ndarray:
    """(n, 4) float RGBA for values through a matplotlib colormap, clipped to ``clim`` (robust default)."""
    import matplotlib

    v = np.asarray(values, dtype=np.float64)
    lo, hi = clim if clim is not None else contrast_limits(v)
    t = np.clip((v - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    rgba = matplotlib.colormaps[cmap](np.nan_to_num(t))
    rgba[~np.isfinite(v)] = nan_color
    return rgba


def labels_colormap_for_gene(label_ids, values, cmap: str = "magma", clim: tuple[float, float] | None = None,
                             background=TRANSPARENT) -> dict:
    """``{label_id: rgba}`` (plus ``None`` → background for unlisted labels, 0 → transparent) colouring each
    label by its cell's value; pass it as a Labels ``colormap`` (napari builds a DirectLabelColormap)."""
    ids = np.asarray(label_ids).astype(np.int64)
    rgba = values_to_rgba(values, cmap, clim)
    cmap_dict: dict = {None: tuple(background), 0: TRANSPARENT}
    cmap_dict.update(zip(ids.tolist(), map(tuple, rgba.tolist())))
    return cmap_dict


def gene_values(adata, gene: str) -> np.ndarray:
    """Values of one gene (a var name, matched case-insensitively) or numeric obs column, per cell."""
    if gene in adata.obs.columns:
        return pd.to_numeric(adata.obs[gene], errors="coerce").to_numpy(np.float64)
    names = list(map(str, adata.var_names))
    if gene not in names:
        lower = {n.lower(): n for n in names}
        if gene.lower() not in lower:
            raise KeyError(f"{gene!r} is neither a gene nor an obs column")
        gene = lower[gene.lower()]
    col = adata[:, gene].X
    col = col.toarray() if hasattr(col, "toarray") else np.asarray(col)
    return np.asarray(col, dtype=np.float64).ravel()


def values_for_labels(label_to_obs: dict, obs_names, values) -> tuple[np.ndarray, np.ndarray]:
    """(label ids, values) for the labels of a mask, given per-cell ``values`` aligned with ``obs_names``."""
    series = pd.Series(np.asarray(values, dtype=np.float64), index=pd.Index(list(map(str, obs_names))))
    ids = np.fromiter(label_to_obs.keys(), dtype=np.int64, count=len(label_to_obs))
    names = pd.Index([str(v) for v in label_to_obs.values()])
    return ids, series.reindex(names).to_numpy()


# --- layers -------------------------------------------------------------------------------------------------

def image_layer(image, *, visible: bool = True) -> LayerDataTuple:
    """Image layer of a :class:`SampleImage` (µm world). Grey channels blend additively over RGB images."""
    data = image.data
    kwargs = {"name": image.name, "visible": visible, "metadata": {"source": image.source}}
    kwargs.update(napari_transform(image.affine))
    if isinstance(data, list):
        kwargs["multiscale"] = True
    if image.rgb:
        kwargs["rgb"] = True
    elif image.channel_axis is not None:
        kwargs["channel_axis"] = image.channel_axis
        if image.channel_names:
            kwargs["name"] = list(image.channel_names)
        kwargs["blending"] = "additive"
        kwargs.pop("metadata")
    else:
        kwargs.update(colormap="gray", blending="additive", contrast_limits=_image_contrast(data))
    return (data, kwargs, "image")


def _image_contrast(data) -> tuple[float, float]:
    """Robust contrast from the coarsest pyramid level (or a strided view of a large single level)."""
    level = data[-1] if isinstance(data, list) else data
    step = max(1, int(np.ceil(np.sqrt(level.shape[0] * level.shape[1] / 1_000_000))))
    sample = np.asarray(level[(slice(None, None, step), slice(None, None, step))])
    return contrast_limits(sample.ravel(), 0.5, 99.8)


def cell_features(adata) -> pd.DataFrame:
    """Every obs column (index reset) with ``cell_id`` (= obs_names) first: napari ``features`` of cells."""
    feats = adata.obs.reset_index(drop=True).copy()
    if "cell_id" in feats.columns:
        feats = feats.drop(columns="cell_id")
    feats.insert(0, "cell_id", np.asarray(adata.obs_names, dtype=str))
    return feats


def cells_points_layer(adata, name: str = "cells", *, gene: str | None = None, cmap: str = "magma",
                       size: float | None = None, extra_features: pd.DataFrame | None = None,
                       metadata: dict | None = None) -> LayerDataTuple:
    """Points at cell centroids (µm, (y, x)); ``features`` = every obs column (+ ``extra_features`` aligned
    with the cells, e.g. imputed genes), ``metadata["adata"]`` = the AnnData (the Impute widget's input).
    Coloured by ``gene`` (a gene of ``adata`` or a feature column) when given."""
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2]
    feats = cell_features(adata)
    if extra_features is not None:
        feats = pd.concat([feats, extra_features.reset_index(drop=True)], axis=1)
    meta = {"adata": adata}
    meta.update(metadata or {})
    kwargs = {"name": name, "features": feats, "size": size or 0.8 * typical_spacing(xy), "border_width": 0,
              "face_color": "#b0b0b0", "metadata": meta}
    if gene is not None:
        if gene not in feats.columns:
            feats[gene] = gene_values(adata, gene)
        kwargs.update(face_color=gene, face_colormap=cmap, face_contrast_limits=contrast_limits(feats[gene]))
        meta["gene"] = gene
    return (xy_to_yx(xy), kwargs, "points")


def labels_layer(labels, adata=None, *, gene: str | None = None, cmap: str = "magma", opacity: float = 0.6,
                 values=None) -> LayerDataTuple:
    """Labels layer of a :class:`SampleLabels`; ``features`` link each label id (``index``) to its cell; coloured
    per cell by ``gene`` (or by explicit per-cell ``values`` aligned with ``adata``) via a direct colormap."""
    ids = np.fromiter(labels.label_to_obs.keys(), dtype=np.int64, count=len(labels.label_to_obs))
    names = np.array([str(v) for v in labels.label_to_obs.values()], dtype=object)
    feats = pd.DataFrame({"index": ids, "cell_id": names})
    if adata is not None and len(ids):
        obs = adata.obs.reindex(pd.Index(names))
        obs = obs.drop(columns=[c for c in ("cell_id", "index") if c in obs.columns])
        feats = pd.concat([feats, obs.reset_index(drop=True)], axis=1)
    kwargs = {"name": labels.name, "features": feats, "opacity": opacity,
              "metadata": {"label_ids": ids, "label_obs": names, "source": labels.source}}
    kwargs.update(napari_transform(labels.affine))
    if gene is not None or values is not None:
        if values is None:
            values = gene_values(adata, gene)
        lab_ids, lab_values = values_for_labels(labels.label_to_obs, adata.obs_names, values)
        kwargs["colormap"] = labels_colormap_for_gene(lab_ids, lab_values, cmap)
        kwargs["metadata"]["gene"] = gene
    return (labels.data, kwargs, "labels")


def labels_value_image(mask, label_ids, values) -> np.ndarray:
    """float32 image with each label's value (NaN on background and unlisted labels): ``lut[mask]``."""
    ids = np.asarray(label_ids, dtype=np.int64)
    mask = np.asarray(mask)
    lut = np.full(int(max(ids.max(initial=0), mask.max(initial=0))) + 1, np.nan, dtype=np.float32)
    lut[ids] = np.asarray(values, dtype=np.float32)
    lut[0] = np.nan
    return lut[mask]


def gene_image_layer(labels, adata, gene: str | None = None, *, values=None, cmap: str = "magma",
                     clim: tuple[float, float] | None = None) -> LayerDataTuple:
    """Image layer colouring every cell of a label mask by ``gene`` (or per-cell ``values`` aligned with
    ``adata``): the path for 100k+ cells, where switching genes costs one ``lut[mask]`` (O(pixels))."""
    if values is None:
        values = gene_values(adata, gene)
    ids, vals = values_for_labels(labels.label_to_obs, adata.obs_names, values)
    img = labels_value_image(labels.data, ids, vals)
    kwargs = {"name": f"{labels.name}: {gene or 'values'}", "colormap": cmap, "blending": "translucent",
              "contrast_limits": clim or contrast_limits(vals),
              "metadata": {"label_ids": ids, "label_obs": np.array([str(v) for v in labels.label_to_obs.values()],
                                                                   dtype=object), "gene": gene}}
    kwargs.update(napari_transform(labels.affine))
    return (img, kwargs, "image")


def transcripts_layer(tx: pd.DataFrame, *, max_points: int = MAX_TRANSCRIPT_POINTS, size: float = 1.0,
                      seed: int = 0, visible: bool = False) -> LayerDataTuple:
    """Points of transcripts (µm) coloured by gene; a deterministic random subsample above ``max_points``."""
    n = len(tx)
    if n > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
        sub = tx.iloc[keep]
        name = f"transcripts ({max_points:,} of {n:,})"
    else:
        sub, name = tx, "transcripts"
    feats = pd.DataFrame({"gene": sub["gene"].astype("category").to_numpy()})
    for col in ("cell_id", "cell_ID", "z"):
        if col in sub:
            feats[col] = sub[col].to_numpy()
    kwargs = {"name": name, "features": feats, "size": size, "border_width": 0, "face_color": "gene",
              "visible": visible, "metadata": {"n_total": n, "subsampled": n > max_points}}
    return (xy_to_yx(sub[["x", "y"]].to_numpy(np.float64)), kwargs, "points")


def transcript_density_layer(tx: pd.DataFrame, bin_um: float = 10.0, gene: str | None = None) -> LayerDataTuple:
    """Image of transcript counts per ``bin_um`` square bin (all transcripts, or one gene): the scalable view."""
    sel = tx if gene is None else tx[tx["gene"].astype(str) == gene]
    x = sel["x"].to_numpy(np.float64)
    y = sel["y"].to_numpy(np.float64)
    x0, y0 = float(tx["x"].min()), float(tx["y"].min())
    nx = int((float(tx["x"].max()) - x0) // bin_um) + 1
    ny = int((float(tx["y"].max()) - y0) // bin_um) + 1
    img = np.zeros((ny, nx), dtype=np.float32)
    np.add.at(img, (((y - y0) // bin_um).astype(np.int64), ((x - x0) // bin_um).astype(np.int64)), 1.0)
    kwargs = {"name": f"transcript density{'' if gene is None else ' ' + gene} ({bin_um:g} µm bins)",
              "scale": (bin_um, bin_um), "translate": (y0 + bin_um / 2, x0 + bin_um / 2), "colormap": "viridis",
              "blending": "additive", "contrast_limits": contrast_limits(img[img > 0] if (img > 0).any() else img),
              "visible": False}
    return (img, kwargs, "image")


def boundaries_layer(boundaries: pd.DataFrame, *, max_shapes: int = MAX_BOUNDARY_SHAPES,
                     name: str = "cell boundaries") -> LayerDataTuple | None:
    """Shapes layer of cell outlines (closed paths, µm), or None above ``max_shapes`` cells (the Labels layer
    shows them then)."""
    ids = boundaries["cell_id"].to_numpy()
    start = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    if len(start) > max_shapes:
        return None
    yx = xy_to_yx(boundaries[["x", "y"]].to_numpy(np.float64))
    # closed paths, not polygons: outlines need no face triangulation (slow, and it fails on self-touching
    # instrument polygons)
    polys = [_closed_ring(p) for p in np.split(yx, start[1:])]
    polys = [p for p in polys if len(p) >= 4]
    kwargs = {"name": name, "shape_type": "path", "edge_color": "#3fd0ff",
              "edge_width": 0.4, "opacity": 0.8, "features": pd.DataFrame({"cell_id": ids[start]})
              if len(polys) == len(start) else None}
    if kwargs["features"] is None:
        kwargs.pop("features")
    return (polys, kwargs, "shapes")


def _closed_ring(p: np.ndarray) -> np.ndarray:
    """Drop repeated vertices (a zero-length segment makes napari draw a long miter spike), then close."""
    keep = np.r_[True, np.any(np.abs(np.diff(p, axis=0)) > 1e-9, axis=1)]
    p = p[keep]
    if len(p) > 1 and np.allclose(p[0], p[-1]):
        p = p[:-1]
    return np.vstack([p, p[:1]])


def sample_to_layers(sample, *, gene: str | None = None, max_transcripts: int = MAX_TRANSCRIPT_POINTS,
                     max_shapes: int = MAX_BOUNDARY_SHAPES) -> list[LayerDataTuple]:
    """All layers of a sample, bottom to top: images, label masks, boundaries, transcripts, cells."""
    # RGB images all visible; of the grey stains only the first (they would add up to white)
    first_grey = next((i for i, img in enumerate(sample.images) if not img.rgb), None)
    layers: list[LayerDataTuple] = [image_layer(img, visible=img.rgb or i == first_grey)
                                    for i, img in enumerate(sample.images)]
    for lab in sample.labels:
        big = len(lab.label_to_obs) > MAX_DIRECT_COLORMAP_LABELS
        layers.append(labels_layer(lab, sample.adata, gene=None if big else gene))
        if big and gene is not None:
            layers.append(gene_image_layer(lab, sample.adata, gene))
    if sample.boundaries is not None and len(sample.boundaries):
        shapes = boundaries_layer(sample.boundaries, max_shapes=max_shapes)
        if shapes is not None:
            layers.append(shapes)
    if sample.transcripts is not None and len(sample.transcripts):
        if len(sample.transcripts) > max_transcripts:
            layers.append(transcript_density_layer(sample.transcripts))
        layers.append(transcripts_layer(sample.transcripts, max_points=max_transcripts))
    spot_um = (sample.adata.uns.get("histology") or {}).get("spot_diameter_um")  # Visium / ST spots
    layers.append(cells_points_layer(sample.adata, name=f"{sample.platform} cells", gene=gene,
                                     size=float(spot_um) if spot_um else None,
                                     metadata={"platform": sample.platform, "unit": sample.unit,
                                               "source": sample.path, "notes": list(sample.notes)}))
    return layers


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
    ids = feats["cell_id"].astype(str) if "cell_id" in feats else pd.Series(
        np.asarray(points_layer.metadata["adata"].obs_names, dtype=str))
    new = imputed_features(ids, imputed)
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


def show_gene_on_labels(labels_layer, cell_ids: Sequence[str], values, cmap: str = "magma",
                        clim: tuple[float, float] | None = None, *, mask=None) -> None:
    """Colour a layer made by :func:`labels_layer` (direct colormap) or :func:`gene_image_layer` (value image;
    pass the label ``mask``) per cell: ``values`` aligned with ``cell_ids``."""
    meta = labels_layer.metadata
    mapping = dict(zip(meta["label_ids"].tolist(), meta["label_obs"].tolist()))
    ids, vals = values_for_labels(mapping, cell_ids, values)
    if mask is None:
        labels_layer.colormap = labels_colormap_for_gene(ids, vals, cmap, clim)
    else:
        labels_layer.data = labels_value_image(mask, ids, vals)
        labels_layer.colormap = cmap
        labels_layer.contrast_limits = clim or contrast_limits(vals)
