"""H&E images → RGB arrays → square patches of a fixed physical size around spot centres.

Patches are cut at ``patch_um`` micrometres (converted with the image's µm/px), then resampled to
``out_px`` pixels, so a model trained on one scanner applies to another. JPEGs are decoded once at a
reduced DCT scale (PIL ``draft``) when the patches are downsampled anyway. Extracted patches of a section
are cached as ``.npz`` keyed by the image file's hash and the extraction parameters.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np

from ...cache import entry as cache_entry
from ...cache import load_npz, store_npz
from ...coords import um_to_px
from ...errors import InputError
from ...progress import Progress, ProgressGen, run_to_end
from ..bundle import file_digest
from .defaults import CONTEXT_CUT
from .pixels import (  # noqa: F401 (re-exported)
    CONTEXT_GAP,
    as_rgb,
    crop_patches,
    cut_with_context,
    image_size,
    load_rgb,
    reduce_for,
)


def section_geometry(adata) -> tuple[dict, np.ndarray, np.ndarray]:
    """(``uns['histology']``, spot centres in full-res image pixels (x, y), in µm (x, y)) of a section read by
    :mod:`napari_spatial_impute.io` (``obsm['spatial']`` µm; pixels in ``obsm['spatial_px']``)."""
    adata = getattr(adata, "adata", adata)  # a SpatialSample gives its AnnData
    info = adata.uns.get("histology")
    if not info:
        raise InputError("The section has no uns['histology'] (image and pixel size).",
                         "read it with napari_spatial_impute.read_section(...).")
    xy_um = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2]
    if "spatial_px" in adata.obsm:
        xy_px = np.asarray(adata.obsm["spatial_px"], dtype=np.float64)[:, :2]
    else:
        xy_px = um_to_px(xy_um, float(info["pixel_size_um"]))
    return info, xy_px, xy_um


#: pixel sizes outside this range (µm/px) are not an H&E scan at any magnification
PIXEL_SIZE_RANGE_UM = (0.05, 20.0)


def check_pixel_size(pixel_size_um, model_pixel_size_um: float | None = None, patch_um: float = 150.0,
                     patch_px: int = 112, what: str = "the image") -> float:
    """Refuse a nonsense pixel size; say when ``what`` has another magnification than the model (its patches
    are cut at ``patch_um`` µm and rescaled) or too few pixels per patch. Returns the pixel size."""
    try:
        px = float(pixel_size_um)
    except (TypeError, ValueError):
        px = float("nan")
    lo, hi = PIXEL_SIZE_RANGE_UM
    subject = what[:1].upper() + what[1:]  # "the image" → "The image"; a section's own name kept as it is spelled
    if not np.isfinite(px) or not lo <= px <= hi:
        raise InputError(f"The pixel size of {what} is {pixel_size_um!r} µm/px, which is no H&E scan "
                         f"(expected {lo}–{hi}; 40× ≈ 0.25, 20× ≈ 0.5).",
                         "give the physical pixel size in µm per pixel (--pixel-size / pixel_size_um).")
    if model_pixel_size_um:
        ratio = px / float(model_pixel_size_um)
        if ratio > 1.25 or ratio < 0.8:
            warnings.warn(f"{subject} has {px:.3f} µm/px, the model was trained at "
                          f"{model_pixel_size_um:.3f} µm/px ({1 / ratio:.2g}× its magnification): patches are cut "
                          f"at {patch_um:g} µm and rescaled to the model's {patch_px} px.", stacklevel=3)
    if patch_um / px < patch_px / 4:
        warnings.warn(f"{subject} has only {patch_um / px:.0f} px per {patch_um:g} µm patch (the model "
                      f"uses {patch_px}): patches are upsampled > 4×, predictions will be weak.", stacklevel=3)
    return px


def check_spots_in_image(xy: np.ndarray, width: int, height: int, what: str = "spots") -> None:
    """Refuse no spots, positions that are not (x, y) pairs, and positions outside the image."""
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise InputError(f"The {what} have shape {xy.shape}; expected (n, 2) (x, y) pixel positions.",
                         "give one (x, y) position per spot, or none to tile the whole tissue.")
    if len(xy) == 0:
        raise InputError(f"No {what} given: expected (n, 2) (x, y) pixel positions, got shape {xy.shape}.",
                         "give at least one (x, y) position, or none to tile the whole tissue.")
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        raise InputError(f"{int(bad.sum())} of the {len(xy)} {what} have no position (NaN or infinite; the first "
                         f"is row {int(np.flatnonzero(bad)[0])}).", "drop them or fill in their positions.")
    outside = (xy[:, 0] < 0) | (xy[:, 1] < 0) | (xy[:, 0] >= width) | (xy[:, 1] >= height)
    if outside.any():
        ex = xy[np.flatnonzero(outside)[:3]].round(1).tolist()
        raise InputError(f"{int(outside.sum())} of {len(xy)} {what} lie outside the {width}×{height} px image "
                         f"(e.g. (x, y) = {ex}).",
                         "check that the coordinates are full-resolution pixels of this image (not µm, not "
                         "hires/lowres pixels) and that x/y are not swapped.")


def section_patches(image, centres_xy: np.ndarray, pixel_size_um: float, *, patch_um: float = 150.0,
                    out_px: int = 96, use_cache: bool = True, check_tissue: bool = True,
                    reduce: int | None = None, context: float = 0.0, context_cut: str = CONTEXT_CUT) -> np.ndarray:
    """Patches (n, out_px, out_px, 3) uint8 of ``patch_um`` µm around each (x, y) full-res pixel centre, cut
    from the image read at 1/``reduce`` (default: the largest power of 2 that keeps ≥ ``out_px`` pixels). With
    ``context`` the patches of ``context`` × ``patch_um`` around the same centres follow as channels 3–5, cut from
    the same read (as whole-slide blocks are; ``context_cut``: see :func:`~.pixels.cut_with_context`).

    Raises :class:`InputError` when a centre lies outside the image; warns when (almost) no spot sits on
    tissue, the sign of an image from another section.
    """
    [(patches, on_tissue)] = run_to_end(section_patch_sets_steps(
        image, [centres_xy], pixel_size_um, patch_um=patch_um, out_px=out_px, use_cache=use_cache, reduce=reduce,
        context=context, context_cut=context_cut))
    if check_tissue:
        warn_off_tissue(on_tissue)
    return patches


def section_patch_sets_steps(image, centre_sets: list[np.ndarray], pixel_size_um: float, *, patch_um: float = 150.0,
                             out_px: int = 96, use_cache: bool = True, reduce: int | None = None,
                             context: float = 0.0, context_cut: str = CONTEXT_CUT, label: str = "patches",
                             keep: list[bool] | None = None) -> ProgressGen[list[tuple[np.ndarray, np.ndarray]]]:
    """(patches, on tissue) of each set of centres, as :func:`section_patches` cuts them: each set cached on its
    own; a JPEG / PNG decoded once for all the sets not cached, a TIFF read region by region. An event after the
    decode and after each set, so a Cancel never waits for more than one of them. ``keep`` (one flag per set): a
    set not kept is only put in the cache (cut from the same decode when missing, never loaded when there) and
    comes back as (None, None); without the cache it is not cut at all."""
    from .tiling import tissue_mask

    sets = [np.asarray(c, dtype=np.float64) for c in centre_sets]
    slide = _tiff_slide(image)
    try:
        width, height = _wh(image, slide)
        for c in sets:
            check_spots_in_image(c, width, height)
        size_full = patch_um / pixel_size_um
        read = reduce if reduce is not None else reduce_for(size_full, out_px)
        arr = mask = None
        out = []
        for i, c in enumerate(sets):
            key = None
            kept = keep is None or keep[i]
            if use_cache and not isinstance(image, np.ndarray):
                key = _patches_key(image, c, pixel_size_um, patch_um, out_px, reduce, context, context_cut,
                                   slide is not None)
            if not kept and (key is None or key.is_file()):  # wanted in the cache only: there already, or no cache
                out.append((None, None))
                continue
            if key is not None and kept:
                cached = load_npz(key, "patches", "on_tissue")  # None: missing, pruned or damaged → cut again
                if cached is not None:
                    out.append(tuple(cached))
                    yield Progress(i + 1, len(sets), f"{label}: {i + 1}/{len(sets)} cached", "patches")
                    continue
            if slide is not None:  # a TIFF: only the tiles / strips under the spots (pyramid level if any)
                patches = region_patches(slide, c, size_full, out_px, read, context=context, context_cut=context_cut)
                if mask is None:
                    mask, mscale = tissue_mask(*slide.overview(1024))
            else:
                if arr is None:
                    arr, factor = load_rgb(image, read)
                    mask, mscale = tissue_mask(arr, factor)
                    yield Progress(i, len(sets), f"{label}: image read", "patches")
                patches = cut_with_context(arr, c / factor, size_full / factor, out_px, context=context,
                                           context_cut=context_cut)
            iy = np.clip((c[:, 1] / mscale).astype(int), 0, mask.shape[0] - 1)
            ix = np.clip((c[:, 0] / mscale).astype(int), 0, mask.shape[1] - 1)
            on_tissue = mask[iy, ix]
            if key is not None:
                store_npz(key, compressed=True, patches=patches, on_tissue=on_tissue)
            out.append((patches, on_tissue) if kept else (None, None))
            yield Progress(i + 1, len(sets), f"{label}: {i + 1}/{len(sets)} cut", "patches")
    finally:
        if slide is not None:
            slide.close()
    return out


def _patches_key(image, centres_xy, pixel_size_um, patch_um, out_px, reduce, context, context_cut, tiff: bool):
    """The cache entry of a section's patches: the image file's hash and every extraction parameter."""
    h = hashlib.sha1()
    h.update(file_digest(Path(image)).encode())
    h.update(np.round(centres_xy, 3).tobytes())
    # v2 / tiff-v3: a PNG or TIFF reduced by block means (before: every k-th pixel); JPEGs unchanged (DCT draft)
    jpeg = Path(image).suffix.lower() in (".jpg", ".jpeg")
    h.update(f"{pixel_size_um:.6f}|{patch_um:.3f}|{out_px}|{'tiff-v3' if tiff else 'v1' if jpeg else 'v2'}".encode())
    if reduce is not None:
        h.update(f"|reduce {reduce}".encode())
    if context:
        cut = "" if context_cut == "resize" else f" box-v2 gap {CONTEXT_GAP}"
        h.update(f"|context {context:.3f}{cut}".encode())
    return cache_entry("patches", f"{h.hexdigest()}.npz")


def image_wh(image) -> tuple[int, int]:
    """(width, height) in full-res pixels of an image path (TIFF: its header) or array, without decoding it."""
    slide = _tiff_slide(image)
    try:
        return _wh(image, slide)
    finally:
        if slide is not None:
            slide.close()


def _wh(image, slide) -> tuple[int, int]:
    """(width, height) of ``image``, read from its open TIFF ``slide`` when it has one."""
    return (slide.width, slide.height) if slide is not None else image_size(image)


def _tiff_slide(image):
    """A :class:`~.slide.TiffSlide` for a TIFF path tifffile can read region by region, else None."""
    from .slide import TIFF_SUFFIXES, TiffSlide, open_slide

    if isinstance(image, np.ndarray) or not str(image).lower().endswith(TIFF_SUFFIXES):
        return None
    slide = open_slide(image)
    return slide if isinstance(slide, TiffSlide) else None


def region_patches(slide, centres_xy: np.ndarray, size_full: float, out_px: int, reduce: int,
                   block_px: float = 2048.0, context: float = 0.0, context_cut: str = CONTEXT_CUT) -> np.ndarray:
    """Patches of ``size_full`` full-res pixels around ``centres_xy`` from a :class:`~.slide.Slide`, read block
    by block (squares of ``block_px`` full-res pixels plus half a patch), never whole; in the input order."""
    from .slide import blocks_of, cut_patches

    out = np.empty((len(centres_xy), out_px, out_px, 6 if context else 3), np.uint8)
    for idx in blocks_of(centres_xy, max(block_px, 2 * size_full * max(1.0, context))):
        out[idx] = cut_patches(slide, centres_xy[idx], size_full, out_px, reduce, context, context_cut)
    return out


def warn_off_tissue(on_tissue: np.ndarray) -> None:
    """Spots are placed under tissue (her2st: 97–99 % on the mask of their own image; 40–70 % on another
    section's image), so fewer than 80 % on tissue means a mismatch."""
    frac = float(np.mean(on_tissue)) if len(on_tissue) else 0.0
    if frac < 0.8:
        warnings.warn(f"Only {100 * frac:.0f}% of the spots lie on tissue in the H&E image (expected nearly all): "
                      "the image may belong to another section, or the coordinates may be in another unit/scale "
                      "(e.g. hires instead of full-resolution pixels).", stacklevel=3)
