"""Consistency checks between the parts of one sample (images vs. coordinates)."""

from __future__ import annotations

import numpy as np

from ..coords import apply_affine_xy, invert_affine
from ..errors import InputError


def fraction_inside(affine: np.ndarray, shape: tuple[int, ...], xy_um: np.ndarray) -> float:
    """Fraction of (x, y) µm points that fall inside an image of ``shape`` (rows, cols, ...) placed by ``affine``."""
    if len(xy_um) == 0:
        return 1.0
    cr = apply_affine_xy(invert_affine(affine), xy_um)
    rows, cols = shape[0], shape[1]
    inside = (cr[:, 0] >= -0.5) & (cr[:, 0] < cols - 0.5) & (cr[:, 1] >= -0.5) & (cr[:, 1] < rows - 0.5)
    return float(inside.mean())


def check_covers(affine: np.ndarray, shape: tuple[int, ...], xy_um: np.ndarray, *, file: str,
                 what: str = "cell centroids", min_fraction: float = 0.9) -> float:
    """Raise :class:`InputError` naming ``file`` when fewer than ``min_fraction`` of the points lie on the image."""
    frac = fraction_inside(affine, shape, xy_um)
    if frac < min_fraction:
        raise InputError(
            f"The image {file} ({shape[1]} × {shape[0]} px) does not match the coordinates: only {frac:.0%} of "
            f"the {what} fall inside it.",
            "check that the image belongs to this sample (and its pixel size / transform file).")
    return frac
