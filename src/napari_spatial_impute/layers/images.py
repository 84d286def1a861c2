"""Images as napari layers: a sample's stains / H&E (µm world) and the binned overview of imputed genes."""

from __future__ import annotations

import numpy as np

from .. import UNS_KEY
from ..coords import affine_to_napari
from .cells import LayerDataTuple, default_gene, typical_spacing
from .colors import contrast_limits


def image_layer(image, *, visible: bool = True, units=("um", "um")) -> LayerDataTuple:
    """Image layer of a :class:`SampleImage` (in its sample's world: ``units`` (y, x), None for a sample whose
    coordinates are not µm). Grey channels blend additively over RGB images."""
    data = image.data
    kwargs = {"name": image.name, "visible": visible, "metadata": {"source": image.source}}
    if units is not None:
        kwargs["units"] = tuple(units)
    kwargs.update(affine_to_napari(image.affine))
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
    h, w = level.shape[-2:]  # the last two axes are y, x (a z-stack's first is z)
    step = max(1, int(np.ceil(np.sqrt(h * w / 1_000_000))))
    lead = tuple(slice(None, None, max(1, n // 4)) for n in level.shape[:-2])  # a few planes of a stack
    sample = np.asarray(level[(*lead, slice(None, None, step), slice(None, None, step))])
    return contrast_limits(sample.ravel(), 0.5, 99.8)


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
    info = dict(imputed.uns.get(UNS_KEY, {}))
    reliability = ({g: float(v) for g, v in imputed.var["reliability"].items()}
                   if "reliability" in imputed.var else None)
    kwargs = dict(name=name or f"imputed ({info.get('method', 'model')}, binned)", colormap=colormap,
                  contrast_limits=contrast_limits(values), scale=grid.scale, translate=grid.translate,
                  metadata={"adata": imputed, "genes": list(map(str, imputed.var_names)), "gene": gene,
                            "grid": grid, "reliability": reliability, "info": info})
    return (grid.raster(values), kwargs, "image")
