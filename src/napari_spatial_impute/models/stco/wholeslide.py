"""Prediction from an H&E image of any size, region by region.

The slide (:mod:`.slide`: array, JPEG / PNG, tiled or pyramidal TIFF) gives a small overview for the tissue
mask; tissue tiles of ``tile_um`` (or the given spots) are grouped into square blocks of ``block_px`` full-res
pixels, and each block's region (plus half a patch of margin) is read at the resolution the patches need, cut
into patches and predicted. Memory holds one block's pixels and the predictions, never the slide. The stain of
the slide is estimated once from up to ``stain_sample`` tissue patches spread over it, and so are the statistics of its
backbone features (``feature_norm="section"``).
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ...errors import InputError
from ...progress import Progress, ProgressGen, relay
from .jitter import MOVES, by_move, jitter_px, moved_centres, reads_moved_cuts
from .patches import check_pixel_size, check_spots_in_image, region_patches
from .pixels import reduce_for
from .slide import PIXEL_SIZE_NOTE, DecodedSlide, blocks_of, cut_patches, open_slide
from .tiling import make_grid, tissue_mask

#: test-time views per whole-slide tile unless asked: one, so a fully covered 10k × 10k px slide (≈ 4,900 tiles)
#: stays near 2 min on 2 cores (benchmarks/wholeslide.md); spots keep the model's ``tta``
TILE_TTA = 1


def predict_image_steps(model, image, pixel_size_um: float | None = None, *, spots_xy=None, tile_um: float = 100.0,
                        min_tissue: float = 0.5, tta: int | None = None, block_px: float = 2048.0,
                        stain_sample: int = 256, jitter: bool | None = None) -> ProgressGen[dict]:
    """Whole-slide (no ``spots_xy``: tissue tiles of ``tile_um``) or per-spot prediction from an image.

    ``image``: path (TIFF read lazily; JPEG / PNG decoded at the resolution the patches need), RGB array or
    :class:`~.slide.Slide`. ``pixel_size_um``: µm per pixel (default: the TIFF's own, else the training
    sections'). ``tta``: test-time views per patch (default: the model's for spots, :data:`TILE_TTA` for
    tiles). ``jitter``: spots are also cut at the four moved positions whose taps the feature ridges average
    (:mod:`.jitter`) when the model was trained so (None / True), not with False (one cut: 3× less backbone
    work per spot); tiles read one cut. Returns a dict: ``values`` (n, genes), ``centres_xy`` (full-res px), ``genes``,
    ``pixel_size_um``, ``weights`` (the blend used), ``cuts`` (per spot or tile) and for tiles ``grid``
    (:class:`~.tiling.TileGrid`, whose ``scale`` / ``translate`` put a heat map over the image layer).
    """
    model._check_fitted()
    if tta is None and spots_xy is None:
        tta = TILE_TTA
    slide = open_slide(image, 1)
    try:  # closed on every exit (an error such as "no tissue", a cancel, the end), unless the caller opened it
        return (yield from _predict_slide_steps(model, slide, pixel_size_um, spots_xy, tile_um, min_tissue, tta,
                                                block_px, stain_sample, jitter))
    finally:
        if slide is not image:
            slide.close()


def _predict_slide_steps(model, slide, pixel_size_um, spots_xy, tile_um, min_tissue, tta, block_px,
                         stain_sample, jitter) -> ProgressGen[dict]:
    cfg = model.cfg
    if pixel_size_um is None:
        if slide.pixel_size_um is not None and PIXEL_SIZE_NOTE[0] <= slide.pixel_size_um <= PIXEL_SIZE_NOTE[1]:
            pixel_size_um = slide.pixel_size_um
        else:
            pixel_size_um = model.train_pixel_size_um
            warnings.warn(f"No pixel size given; assuming the training sections' {pixel_size_um:.3f} µm/px.",
                          stacklevel=2)
    check_pixel_size(pixel_size_um, model.train_pixel_size_um, cfg["patch_um"], cfg["patch_px"])
    size_full = cfg["patch_um"] / pixel_size_um
    reduce = reduce_for(size_full, cfg["patch_px"])
    if isinstance(slide, DecodedSlide):
        slide.set_reduce(reduce)  # JPEG: decoded once, at the reduced DCT scale when patches are downsampled
    width, height = slide.width, slide.height
    overview, oscale = slide.overview(1024)
    yield Progress(0, 1, "image decoded", "tiles")
    mask, mscale = tissue_mask(overview, oscale)
    yield Progress(0, 1, "tissue found", "tiles")
    grid = None
    if spots_xy is None:
        grid = make_grid(mask, mscale, width, height, tile_um / pixel_size_um, min_tissue)
        centres = grid.centres_xy()
        if len(centres) == 0:
            raise InputError("No tissue found in the image.", "check the image, or lower min_tissue.")
    else:
        from .patches import warn_off_tissue

        centres = np.asarray(spots_xy, dtype=np.float64)
        check_spots_in_image(centres, width, height)
        iy = np.clip((centres[:, 1] / mscale).astype(int), 0, mask.shape[0] - 1)
        ix = np.clip((centres[:, 0] / mscale).astype(int), 0, mask.shape[1] - 1)
        warn_off_tissue(mask[iy, ix])
    blocks = blocks_of(centres, max(block_px, 2 * size_full * max(1.0, cfg["context"])))
    step = jitter_px(model, pixel_size_um) if spots_xy is not None and reads_moved_cuts(model, model.weights, jitter) \
        else 0.0
    source = stats = None
    if model.stain_reference is not None or model.section_norm:
        # patches spread over the slide: its stain, and its feature statistics (feature_norm="section")
        picked = centres[np.unique(np.linspace(0, len(centres) - 1, min(stain_sample, len(centres))).astype(int))]
        sample = region_patches(slide, picked, size_full, cfg["patch_px"], reduce, block_px, cfg["context"],
                                cfg["context_cut"])
        yield Progress(0, 1, "stain sample cut", "tiles")
        if model.stain_reference is not None:
            from .stain import estimate_stains

            source = estimate_stains(sample)
        moved = None
        if step and model.section_norm:  # statistics of the taps the ridges read: averaged over the moved cuts
            moved = by_move(region_patches(slide, moved_centres(picked, step, width, height), size_full,
                                           cfg["patch_px"], reduce, block_px, cfg["context"], cfg["context_cut"]),
                            len(picked))
        stats = yield from model.feature_stats_steps(sample, source, moved)
    values = np.empty((len(centres), len(model.genes)), np.float32)
    weights = model.weights

    def cut(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The block's patches and, for spots of a jittering model, their moved cuts, from one region read."""
        at = centres[idx]
        if step:
            at = np.concatenate([at, moved_centres(at, step, width, height)])
        p = cut_patches(slide, at, size_full, cfg["patch_px"], reduce, cfg["context"], cfg["context_cut"])
        return (p[:len(idx)], by_move(p[len(idx):], len(idx))) if step else (p, None)

    # the next block's patches are cut (region read + PIL resizing, outside the GIL) on a second thread while
    # this block's go through the backbone; only that thread reads the slide inside the loop
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nsi-patches")
    what = "tile batch" if grid is not None else "spot block"
    try:
        ahead = pool.submit(cut, blocks[0])
        for bi, idx in enumerate(blocks):
            patches, moved = ahead.result()
            if bi + 1 < len(blocks):
                ahead = pool.submit(cut, blocks[bi + 1])
            # the block's own feature batches are relayed, so a cancel or a redraw never waits for a whole block
            parts = yield from relay(model.predict_parts_steps(patches, tta, source=source, stats=stats, moved=moved),
                                     "predict", bi * 100, len(blocks) * 100,
                                     prefix=f"{what} {bi + 1}/{len(blocks)}: ")
            values[idx] = model.combine(parts)  # no smoothing yet: that needs every neighbour
            yield Progress(bi + 1, len(blocks), f"{what} {bi + 1}/{len(blocks)}", "predict")
    finally:  # also on cancel (the generator closed): the cutting thread ends before the slide closes
        pool.shutdown(wait=True, cancel_futures=True)
    sigma = float(model.choice.get("smoothing_um", 0.0))
    if sigma:
        from .fallback import smooth

        values = smooth(values, centres * pixel_size_um, sigma)
    return {"values": values, "centres_xy": centres, "genes": list(model.genes), "grid": grid,
            "pixel_size_um": float(pixel_size_um), "weights": weights, "smoothing_um": sigma,
            "cuts": 1 + len(MOVES) if step else 1}

