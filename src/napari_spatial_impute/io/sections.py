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


def section_to_sample(adata, platform: str, path: str = "", notes: list[str] | None = None, images: bool = True):
    """A section AnnData → :class:`SpatialSample` with the H&E as an RGB image placed in µm (``images=False``: the
    spots alone, the H&E not decoded)."""
    from .images import read_plain_image
    from .spatial_sample import SampleImage, SpatialSample

    info = adata.uns.get("histology", {})
    sample = SpatialSample(adata=adata, platform=platform, path=path, notes=list(notes or []))
    image = info.get("image") if images else None
    if image is not None:
        img = image if isinstance(image, np.ndarray) else read_plain_image(Path(image))
        sample.images.append(SampleImage(name="H&E", data=img, affine=pixel_grid_affine(float(info["pixel_size_um"])),
                                         rgb=img.ndim == 3 and img.shape[-1] in (3, 4),
                                         source=str(image) if not isinstance(image, np.ndarray) else "uns"))
        if "spatial_px" in adata.obsm:
            sample.notes += warn_geometry(np.asarray(adata.obsm["spatial_px"]), img)
    return sample


#: her2st: 97–99 % of a section's spots lie on the tissue mask of its own image, 40–70 % on another section's
ON_TISSUE_MIN = 0.8


def warn_geometry(xy_px: np.ndarray, img: np.ndarray) -> list[str]:
    """Warn (and return the messages) when spot pixels lie outside the H&E image or (almost) none lie on tissue:
    the image belongs to another section, or the coordinates are in another scale. The layers still open, so
    the mismatch can be seen."""
    import warnings

    xy = np.asarray(xy_px, dtype=np.float64)[:, :2]
    h, w = img.shape[:2]
    if len(xy) == 0 or h == 0 or w == 0:
        return []
    msgs = []
    outside = ~np.isfinite(xy).all(axis=1) | (xy[:, 0] < 0) | (xy[:, 1] < 0) | (xy[:, 0] >= w) | (xy[:, 1] >= h)
    if outside.any():
        msgs.append(f"{int(outside.sum())} of {len(xy)} spots lie outside the {w}×{h} px H&E image: the image may "
                    "belong to another section, or the spot pixels use another scale (hires / lowres?).")
    inside = xy[~outside]
    if len(inside) and img.ndim == 3 and img.shape[-1] in (3, 4):
        from ..models.stco.tiling import tissue_mask

        arr = img if img.dtype == np.uint8 else np.clip(img, 0, 255).astype(np.uint8)
        mask, scale = tissue_mask(arr)
        iy = np.clip((inside[:, 1] / scale).astype(int), 0, mask.shape[0] - 1)
        ix = np.clip((inside[:, 0] / scale).astype(int), 0, mask.shape[1] - 1)
        frac = float(mask[iy, ix].sum()) / len(xy)
        if frac < ON_TISSUE_MIN:
            msgs.append(f"Only {100 * frac:.0f}% of the spots lie on tissue in the H&E image (expected nearly all): "
                        "the image may belong to another section.")
    for m in msgs:
        warnings.warn(m, UserWarning, stacklevel=3)
    return msgs


#: Visium HD bins are summed into squares of this side for the H&E model (about a legacy-ST spot's 100 µm)
PSEUDO_SPOT_UM = 100.0


def pseudo_spots(adata, size_um: float = PSEUDO_SPOT_UM):
    """A section of fine bins (Visium HD's 2 / 8 / 16 µm squares) summed over squares of ``size_um`` on the µm
    grid: one pseudo-spot per square holding any bin, its counts the bins' sum (sparse stays sparse), its centre
    the bins' mean position (µm and H&E pixels), in the order of their first bin; ``obs["n_bins"]`` counts them.
    The H&E model reads a 150 µm
    patch around each spot, so a target measured over a few µm would pair a patch with a fraction of it."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2]
    cells = np.floor(xy / float(size_um)).astype(np.int64)
    squares, first, group = np.unique(cells, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # pseudo-spots in the order of their first bin
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    squares, group = squares[order], rank[group.ravel()]
    n, m = adata.n_obs, len(squares)
    member = sp.csr_matrix((np.ones(n, np.float64), (group, np.arange(n))), shape=(m, n))
    counts = member @ (adata.X if sp.issparse(adata.X) else np.asarray(adata.X))
    n_bins = np.asarray(member.sum(axis=1)).ravel()
    mean = sp.diags(1.0 / n_bins) @ member
    names = pd.Index([f"sq{c}x{r}" for c, r in squares], name="pseudo_spot")
    out = ad.AnnData(X=sp.csr_matrix(counts, dtype=np.float32) if sp.issparse(counts) else counts.astype(np.float32),
                     obs=pd.DataFrame({"n_bins": n_bins.astype(np.int64)}, index=names), var=adata.var.copy())
    out.obsm["spatial"] = mean @ xy
    out.obsm["spatial_px"] = mean @ np.asarray(adata.obsm["spatial_px"], dtype=np.float64)[:, :2]
    out.uns["spatial_unit"] = adata.uns.get("spatial_unit", "um")
    out.uns["histology"] = {**adata.uns["histology"], "spot_diameter_um": float(size_um),
                            "spot_pitch_um": float(size_um), "pseudo_spots_of": int(n)}
    return out


def at_patch_scale(adata, patch_um: float):
    """``adata`` itself, or its :func:`pseudo_spots` when its spots are bins far smaller than a patch (under a
    quarter of ``patch_um``: Visium HD), with a warning that says so."""
    import warnings

    info = adata.uns.get("histology", {})
    size = float(info.get("spot_diameter_um") or 0.0)
    if not 0 < size < patch_um / 4:
        return adata
    out = pseudo_spots(adata, PSEUDO_SPOT_UM)
    warnings.warn(f"Section {info.get('section', '')!r}: its {adata.n_obs:,} bins of {size:g} µm are far smaller than "
                  f"the model's {patch_um:g} µm patches; they are summed into {out.n_obs:,} pseudo-spots of "
                  f"{PSEUDO_SPOT_UM:g} µm.", UserWarning, stacklevel=3)
    return out
