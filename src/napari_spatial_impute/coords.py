"""The one place that converts coordinates.

Conventions
-----------
* Spatial tables and ``obsm["spatial"]`` hold **(x, y)** = (column, row).
* napari holds **(y, x)** = (row, column) for Points, and ``scale`` / ``translate`` in (y, x) order.
* Physical units are micrometres; ``pixel_size_um`` is µm per pixel of the image a layer sits on.
* Per-platform quirks live in :data:`PLATFORM_PIXEL_SIZE_UM` and :func:`flip_y`.
"""

from __future__ import annotations

import numpy as np

#: Default µm per pixel of the morphology image per platform (used when metadata says nothing).
PLATFORM_PIXEL_SIZE_UM = {
    "xenium": 0.2125,
    "cosmx": 0.12028,  # CosMx SMI, 0.12028 µm/px (NanoString docs, 6k/1k panels)
    "merscope": 0.108,  # mosaic images: ~0.108 µm/px (read the transform file when present)
}


#: how data may spell micrometres (``uns['spatial_unit']``, a sample's ``unit``)
MICROMETRES = ("um", "µm", "μm", "micron", "microns", "micrometer", "micrometre", "micrometers", "micrometres")


def napari_units(unit: str | None) -> tuple[str, str] | None:
    """napari layer ``units`` (y, x) for data whose coordinates are in ``unit``: µm, or None (claim none: pixels
    or an unknown unit must not show as µm on the scale bar or be read as a physical size)."""
    return ("um", "um") if str(unit).strip().lower() in MICROMETRES else None


def as_xy(coords) -> np.ndarray:
    """Validate an (n, 2) array of (x, y) coordinates and return it as float64."""
    arr = np.asarray(coords, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"expected an (n, 2) array of (x, y) coordinates, got shape {arr.shape}")
    return arr[:, :2]


def xy_to_yx(xy) -> np.ndarray:
    """(x, y) table coordinates → napari (y, x) order (no unit change)."""
    arr = as_xy(xy)
    return arr[:, ::-1].copy()


def yx_to_xy(yx) -> np.ndarray:
    """napari (y, x) → (x, y) table order (no unit change)."""
    arr = as_xy(yx)
    return arr[:, ::-1].copy()


def um_to_px(values, pixel_size_um: float) -> np.ndarray:
    """Micrometres → pixels of an image with ``pixel_size_um`` µm per pixel."""
    _check_pixel_size(pixel_size_um)
    return np.asarray(values, dtype=np.float64) / float(pixel_size_um)


def px_to_um(values, pixel_size_um: float) -> np.ndarray:
    """Pixels → micrometres."""
    _check_pixel_size(pixel_size_um)
    return np.asarray(values, dtype=np.float64) * float(pixel_size_um)


def flip_y(xy, height: float) -> np.ndarray:
    """Mirror y for platforms whose y axis points up (CosMx global coordinates): y' = height - y."""
    arr = as_xy(xy).copy()
    arr[:, 1] = float(height) - arr[:, 1]
    return arr


def affine_xy_to_yx(matrix) -> np.ndarray:
    """A 3×3 homogeneous affine acting on (x, y) → the same transform acting on napari (y, x)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (3, 3):
        raise ValueError(f"expected a 3x3 affine, got {m.shape}")
    perm = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float64)
    return perm @ m @ perm


def pixel_grid_affine(pixel_size_um: float, corner_x_um: float = 0.0, corner_y_um: float = 0.0,
                      pixel_size_y_um: float | None = None) -> np.ndarray:
    """3×3 affine from pixel-centre indices (col, row) to (x, y) µm for a grid of ``pixel_size_um`` pixels whose
    top-left corner is at (``corner_x_um``, ``corner_y_um``): pixel i covers [corner + i·s, corner + (i+1)·s),
    so its centre (napari's data coordinate i) sits at corner + (i + ½)·s."""
    _check_pixel_size(pixel_size_um)
    _check_pixel_size(pixel_size_y_um if pixel_size_y_um is not None else pixel_size_um)
    sx = float(pixel_size_um)
    sy = float(pixel_size_y_um if pixel_size_y_um is not None else pixel_size_um)
    return np.array([[sx, 0.0, corner_x_um + sx / 2], [0.0, sy, corner_y_um + sy / 2], [0.0, 0.0, 1.0]])


def apply_affine_xy(affine, xy) -> np.ndarray:
    """Apply a 3×3 (x, y) affine to an (n, 2) array of (x, y) points."""
    xy = as_xy(xy)
    a = np.asarray(affine, dtype=np.float64)
    return xy @ a[:2, :2].T + a[:2, 2]


def invert_affine(affine) -> np.ndarray:
    """Inverse of a 3×3 affine (e.g. (x, y) µm → pixel-centre indices (col, row))."""
    return np.linalg.inv(np.asarray(affine, dtype=np.float64))


def layer_affine_xy(layer) -> np.ndarray:
    """3×3 (x, y) affine from a napari layer's data pixels (col, row) of its last two axes to world (x, y): its
    scale, translate, rotate, shear and ``affine`` together, read through the public ``layer.data_to_world``."""
    n = max(2, int(layer.ndim))

    def world_xy(row: float, col: float) -> np.ndarray:
        pos = np.zeros(n)
        pos[-2:] = (row, col)
        return np.asarray(layer.data_to_world(pos), dtype=np.float64)[-2:][::-1]

    origin = world_xy(0.0, 0.0)
    along_x, along_y = world_xy(0.0, 1.0) - origin, world_xy(1.0, 0.0) - origin
    return np.array([[along_x[0], along_y[0], origin[0]], [along_x[1], along_y[1], origin[1]], [0.0, 0.0, 1.0]])


def napari_to_affine(scale_yx=(1.0, 1.0), translate_yx=(0.0, 0.0)) -> np.ndarray:
    """3×3 (col, row) → (x, y) affine of a napari ``scale`` / ``translate`` (y, x; last two axes): the inverse of
    :func:`affine_to_napari` for axis-aligned placements."""
    (sy, sx), (ty, tx) = np.asarray(scale_yx, float)[-2:], np.asarray(translate_yx, float)[-2:]
    return np.array([[sx, 0.0, tx], [0.0, sy, ty], [0.0, 0.0, 1.0]])


def affine_to_napari(affine) -> dict:
    """napari layer kwargs for a (col, row) → (x, y) affine: ``scale`` / ``translate`` in (y, x) order when it is
    axis-aligned (keeps the scale bar right), else ``affine`` in (y, x) order."""
    a = np.asarray(affine, dtype=np.float64)
    if abs(a[0, 1]) < 1e-12 and abs(a[1, 0]) < 1e-12:
        return {"scale": (float(a[1, 1]), float(a[0, 0])), "translate": (float(a[1, 2]), float(a[0, 2]))}
    return {"affine": affine_xy_to_yx(a)}


def cosmx_global_px_to_um(xy_px, pixel_size_um: float) -> np.ndarray:
    """CosMx global pixel coordinates (y pointing up) → world µm with y pointing down: (x·s, −y·s)."""
    return flip_y(px_to_um(as_xy(xy_px), pixel_size_um), 0.0)


def check_positive(value, name: str, unit: str = "µm", *, high: float = np.inf, fix: str | None = None) -> float:
    """A physical size as float, or :class:`~napari_spatial_impute.errors.InputError` naming the valid range
    (0, ``high``] when it is zero, negative, NaN/inf, beyond ``high`` or not a number."""
    from .errors import InputError

    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if isinstance(value, bool) or not np.isfinite(v) or v <= 0 or v > high:
        rng = "> 0" if not np.isfinite(high) else f"in (0, {high:g}]"
        raise InputError(f"The {name} is {value!r} {unit}; it must be a number {rng} {unit}.",
                         fix or f"give a positive {name} in {unit}.")
    return v


def _check_pixel_size(pixel_size_um: float) -> None:
    check_positive(pixel_size_um, "pixel size", "µm per pixel",
                   fix="give the physical pixel size in µm per pixel (e.g. 0.2125 for Xenium, 0.5 for a 20× scan).")
