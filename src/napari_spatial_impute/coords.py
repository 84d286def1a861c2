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


def image_layer_scale(pixel_size_um: float) -> tuple[float, float]:
    """napari ``scale`` for a 2-D image whose pixels are ``pixel_size_um`` µm wide (world in µm)."""
    _check_pixel_size(pixel_size_um)
    return (float(pixel_size_um), float(pixel_size_um))


def points_in_world(xy, *, unit_per_coord: float = 1.0) -> np.ndarray:
    """(x, y) coordinates in some unit → napari (y, x) world coordinates (multiplied by ``unit_per_coord``)."""
    return xy_to_yx(xy) * float(unit_per_coord)


def _check_pixel_size(pixel_size_um: float) -> None:
    if not np.isfinite(pixel_size_um) or pixel_size_um <= 0:
        raise ValueError(f"pixel size must be a positive number of µm, got {pixel_size_um!r}")
