"""Cell label masks as napari layers: Labels coloured per cell (direct colormap) or, for 100k+ cells, a value
image (``lut[mask]``); ``features`` link each label id to its cell."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..coords import affine_to_napari
from .cells import LayerDataTuple, gene_values
from .colors import contrast_limits, labels_colormap_for_gene

#: Above this many labelled cells a gene is shown as a value image (lut[mask]) instead of a per-label direct
#: colormap: napari takes ~3 s per 100k labels (~30 s per 1M) to apply a DirectLabelColormap
#: (benchmarks/readers.md).
MAX_DIRECT_COLORMAP_LABELS = 50_000


def values_for_labels(label_to_obs: dict, obs_names, values) -> tuple[np.ndarray, np.ndarray]:
    """(label ids, values) for the labels of a mask, given per-cell ``values`` aligned with ``obs_names``."""
    series = pd.Series(np.asarray(values, dtype=np.float64), index=pd.Index(list(map(str, obs_names))))
    ids = np.fromiter(label_to_obs.keys(), dtype=np.int64, count=len(label_to_obs))
    names = pd.Index([str(v) for v in label_to_obs.values()])
    return ids, series.reindex(names).to_numpy()


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
    kwargs.update(affine_to_napari(labels.affine))
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
    kwargs.update(affine_to_napari(labels.affine))
    return (img, kwargs, "image")


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
