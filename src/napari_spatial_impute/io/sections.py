"""Spot sections with an H&E image (legacy ST, Visium): the shared AnnData layout and its SpatialSample.

A section AnnData holds raw counts in ``X``, spot centres in ``obsm["spatial"]`` as (x, y) **µm** (like every
reader) and in ``obsm["spatial_px"]`` as (x, y) pixels of the H&E image, and ``uns["histology"]`` = {image
(path or array), pixel_size_um, spot_diameter_um, spot_pitch_um, platform, section}. Models cut patches at a
fixed physical size from the pixel coordinates, so scanners with other resolutions still work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..coords import pixel_grid_affine, px_to_um
from ..errors import InputError


def existing_file(path, what: str) -> Path:
    """``path`` as a Path, or a clear error when the file is not there."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"The {what} file {path} does not exist.", "check the path.")
    return path


def set_spot_coordinates(adata, xy_px, pixel_size_um: float, **info) -> None:
    """Store spot centres (pixels of the H&E) in ``obsm['spatial_px']``, in µm in ``obsm['spatial']``, and
    ``uns['histology']`` (``info`` + the pixel size)."""
    xy_px = np.asarray(xy_px, dtype=np.float64)[:, :2]
    adata.obsm["spatial_px"] = xy_px
    adata.obsm["spatial"] = px_to_um(xy_px, pixel_size_um)
    adata.uns["spatial_unit"] = "um"
    adata.uns["histology"] = {**info, "pixel_size_um": float(pixel_size_um)}


def section_to_sample(adata, platform: str, path: str = "", notes: list[str] | None = None):
    """A section AnnData → :class:`SpatialSample` with the H&E as an RGB image placed in µm."""
    from .images import read_plain_image
    from .spatial_sample import SampleImage, SpatialSample

    info = adata.uns.get("histology", {})
    sample = SpatialSample(adata=adata, platform=platform, path=path, notes=list(notes or []))
    image = info.get("image")
    if image is not None:
        img = image if isinstance(image, np.ndarray) else read_plain_image(Path(image))
        sample.images.append(SampleImage(name="H&E", data=img, affine=pixel_grid_affine(float(info["pixel_size_um"])),
                                         rgb=img.ndim == 3 and img.shape[-1] in (3, 4),
                                         source=str(image) if not isinstance(image, np.ndarray) else "uns"))
    return sample
