"""Layers of an H&E prediction (:func:`~napari_spatial_impute.predict_histology`), placed over the H&E layer.

The prediction holds tile / spot centres in pixels of the image it was computed from (``obsm["spatial_px"]``)
and in µm (``obsm["spatial"]``); the H&E layer may be shown with any ``scale`` / ``translate`` (y, x). Each
builder composes the two, so a heat-map element or a spot marker lands on its patch of tissue.
"""

from __future__ import annotations

import numpy as np

from .. import UNS_KEY
from ..coords import affine_to_napari, apply_affine_xy, invert_affine, layer_affine_xy, napari_to_affine, yx_to_xy
from ..errors import InputError
from .cells import LayerDataTuple, cells_points_layer, show_gene_on_points
from .colors import contrast_limits

#: marker diameter (µm) of per-spot predictions: a legacy-ST spot
SPOT_MARKER_UM = 100.0


def _info(prediction) -> dict:
    return dict(prediction.uns.get(UNS_KEY, {}))


def is_tiled(prediction) -> bool:
    """Whether the prediction covers the tissue with tiles (else: one row per spot)."""
    return "grid_shape" in _info(prediction)


def heatmap_grid(prediction, gene: str) -> tuple[np.ndarray, tuple, tuple]:
    """(rows × cols grid of ``gene``, NaN off tissue; napari scale (y, x); translate (y, x)) of a tiled prediction,
    placed over the H&E layer at scale 1 / translate 0 in the image's pixels."""
    info = _info(prediction)
    if "grid_shape" not in info:
        raise InputError("This prediction is per spot, not tiled.", "show it as Points instead.")
    if gene not in prediction.var_names:
        raise InputError(f"Gene {gene!r} is not among the predicted genes.", "choose one of adata.var_names.")
    grid = np.full(tuple(info["grid_shape"]), np.nan, np.float32)
    col = np.asarray(prediction[:, gene].X).ravel()
    grid[prediction.obs["tile_row"].to_numpy(), prediction.obs["tile_col"].to_numpy()] = col
    return grid, tuple(info["napari_scale_yx"]), tuple(info["napari_translate_yx"])


def _image_xy(image_scale, image_translate, image_affine) -> np.ndarray:
    """The H&E layer's (x, y) data → world affine: ``image_affine`` when given, else its scale / translate (y, x)."""
    if image_affine is not None:
        return np.asarray(image_affine, dtype=np.float64)
    return napari_to_affine(image_scale, image_translate)


def heatmap_layer(prediction, gene: str, *, image_scale=(1.0, 1.0), image_translate=(0.0, 0.0),
                  image_affine=None, image_units=None) -> LayerDataTuple:
    """Image layer of one gene of a tiled prediction over an H&E layer shown with ``image_scale`` /
    ``image_translate`` (y, x), or with ``image_affine`` (3×3, its pixels (col, row) → world (x, y), e.g.
    :func:`~napari_spatial_impute.coords.layer_affine_xy` of the layer: rotations and shears too). The layer
    lives in the H&E layer's world: pass that layer's ``units`` (y, x) as ``image_units`` to carry them."""
    grid, grid_scale, grid_translate = heatmap_grid(prediction, gene)
    grid_xy = napari_to_affine(grid_scale, grid_translate)  # cell (col, row) → image pixel (x, y)
    kwargs = {"name": f"H&E → {gene}", "colormap": "magma", "opacity": 0.7, "blending": "translucent",
              **affine_to_napari(_image_xy(image_scale, image_translate, image_affine) @ grid_xy),
              "contrast_limits": _limits(grid),
              "metadata": {"genes": list(map(str, prediction.var_names)), "gene": gene, "kind": "stco-heatmap",
                           "adata": prediction}}
    return grid, _in_units(kwargs, image_units), "image"


def spots_layer(prediction, gene: str, *, image_scale=(1.0, 1.0), image_translate=(0.0, 0.0),
                image_affine=None, image_units=None) -> LayerDataTuple:
    """Points (one per spot, every gene a feature column) over an H&E layer shown with ``image_scale`` /
    ``image_translate`` (y, x) or ``image_affine`` (as :func:`heatmap_layer`); µm data, placed on the image's
    pixels, in the H&E layer's world (its ``units`` as ``image_units``; none claimed when not given)."""
    pixel_size = float(_info(prediction)["pixel_size_um"])
    place = affine_to_napari(_image_xy(image_scale, image_translate, image_affine)
                             @ np.diag([1.0 / pixel_size, 1.0 / pixel_size, 1.0]))
    data, kwargs, kind = cells_points_layer(prediction, f"H&E → {gene}", features="genes", gene=gene,
                                            size=SPOT_MARKER_UM, metadata={"kind": "stco-spots"})
    kwargs = {k: v for k, v in kwargs.items() if k != "units"}  # the image's world, not the spots' µm
    return data, _in_units({**kwargs, **place}, image_units), kind  # scale / translate, or an affine


def prediction_layer(prediction, gene: str, *, image_scale=(1.0, 1.0), image_translate=(0.0, 0.0),
                     image_affine=None, image_units=None) -> LayerDataTuple:
    """:func:`heatmap_layer` for a tiled prediction, else :func:`spots_layer`."""
    build = heatmap_layer if is_tiled(prediction) else spots_layer
    return build(prediction, gene, image_scale=image_scale, image_translate=image_translate,
                 image_affine=image_affine, image_units=image_units)


def _in_units(kwargs: dict, image_units) -> dict:
    """``kwargs`` with the H&E layer's units (y, x), when known."""
    return {**kwargs, "units": tuple(image_units)} if image_units is not None else kwargs


#: what the heat map's values are (the model's training normalisation)
PREDICTED_UNIT = "log1p normalised expression\npredicted from H&E"  #: two short lines: a narrow canvas shows them


def title(gene: str, expected_r: float | None = None) -> str:
    """The canvas title of a histology prediction layer: the gene (with the bundle's expected r for it, when
    known), then the unit."""
    known = expected_r is not None and np.isfinite(expected_r)
    return f"{gene}" + (f"  (expected r {expected_r:.2f})" if known else "") + f"\n{PREDICTED_UNIT}"


def show_gene(layer, prediction, gene: str) -> None:
    """Show another gene of the prediction on a layer made by :func:`prediction_layer`."""
    if layer.metadata.get("kind") == "stco-heatmap":
        layer.data = heatmap_grid(prediction, gene)[0]
        layer.contrast_limits = _limits(layer.data)
    else:
        show_gene_on_points(layer, gene)
    layer.metadata["gene"] = gene
    layer.name = f"H&E → {gene}"


def value_colorbar(layer):
    """The colorbar of a prediction layer's values: the spot markers' face colours' (Points), else the heat map's
    (the layer may be napari's proxy of an Image or Points, so its attributes tell which)."""
    bar = getattr(layer, "face_colorbar", None)
    return bar if bar is not None else layer.colorbar


def points_in_image_px(points_layer, image_layer) -> np.ndarray:
    """(x, y) pixel coordinates, in ``image_layer``'s data, of a Points layer's markers (both layers' scale,
    translate, rotation and affine applied)."""
    yx = np.asarray(points_layer.data, dtype=np.float64)[:, -2:]
    world_xy = apply_affine_xy(layer_affine_xy(points_layer), yx_to_xy(yx))
    return apply_affine_xy(invert_affine(layer_affine_xy(image_layer)), world_xy)


def layer_pixel_size_um(image_layer) -> float | None:
    """µm per pixel of an image layer whose world is in a length unit (``units`` µm, mm, nm…: the plugin's
    instrument readers put their images in µm), from its scale, rotation and affine; None when the units are
    pixels or unknown, or the pixels are not square (> 1 % apart)."""
    try:
        to_um = [float((1.0 * u).to("micrometer").magnitude) for u in tuple(image_layer.units)[-2:]]
    except Exception:  # noqa: BLE001  (no units, "pixel", or not a length)
        return None
    if len(to_um) != 2:
        return None
    sizes = np.linalg.norm(layer_affine_xy(image_layer)[:2, :2], axis=0) * np.asarray(to_um[::-1])
    if not np.isfinite(sizes).all() or sizes.min() <= 0 or sizes.max() > 1.01 * sizes.min():
        return None
    return float(sizes.mean())


def _limits(grid: np.ndarray) -> tuple[float, float]:
    """Full (min, max) range of the finite values (never empty)."""
    return contrast_limits(grid, 0.0, 100.0)
