"""An instrument's sample as napari layers: transcripts, their density, cell boundaries, and
:func:`sample_to_layers`, which assembles every layer of a sample (what the reader returns)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..coords import napari_units, xy_to_yx
from .cells import LayerDataTuple, cells_points_layer
from .colors import contrast_limits
from .images import image_layer
from .labels import MAX_DIRECT_COLORMAP_LABELS, gene_image_layer, labels_layer

#: Above this many transcripts the Points layer shows a random subsample (measured: benchmarks/readers.md).
MAX_TRANSCRIPT_POINTS = 200_000
#: Above this many cells no Shapes layer of boundaries is made (the Labels layer shows them).
MAX_BOUNDARY_SHAPES = 5_000


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
    units = napari_units(sample.unit)
    layers: list[LayerDataTuple] = [image_layer(img, visible=img.rgb or i == first_grey, units=units)
                                    for i, img in enumerate(sample.images)]
    key = sample.path or f"{sample.platform}:{id(sample)}"  # links a sample's cells and labels layers
    for lab in sample.labels:
        big = len(lab.label_to_obs) > MAX_DIRECT_COLORMAP_LABELS
        layers.append(labels_layer(lab, sample.adata, gene=None if big else gene))
        layers[-1][1]["metadata"]["sample"] = key
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
    layers.append(cells_points_layer(sample.adata, name=f"{sample.platform} cells", gene=gene, units=units,
                                     size=float(spot_um) if spot_um else None,
                                     metadata={"platform": sample.platform, "unit": sample.unit, "sample": key,
                                               "source": sample.path, "notes": list(sample.notes)}))
    if sample.platform == "visium_hd":  # square bins that tile the tissue
        layers[-1][1]["symbol"] = "square"
    if units is not None:
        for _, kwargs, _kind in layers:  # napari ≥ 0.6 takes units per layer; the scale bar shows µm
            kwargs.setdefault("units", ("um", "um"))
    return layers
