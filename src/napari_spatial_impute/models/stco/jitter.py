"""Jittered cuts: the feature ridges read each spot's tap features averaged over five cuts.

A spot's patch (and its context patch) is cut at the spot and at four positions moved diagonally by
``jitter_um`` in x and in y; the taps (view 0) of the five cuts are averaged before the feature ridge and the
kernel ridge, at training and at spot prediction. Moving every spot by one pixel moves a section's score by
≈ 0.004: one cut draws that noise once, five cuts average it away (histology_generalisation.md §0000000000).
Whole-slide tiles keep one cut: they already cover the tissue, and five would multiply the slide's time.
"""

from __future__ import annotations

import numpy as np

from ...progress import Progress, ProgressGen

#: the diagonal moves of the jittered cuts (× ``jitter_um``); the spot's own cut is the fifth
MOVES = np.array([(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)])
#: the predictors that read the (averaged) taps
TAP_PARTS = ("feature_ridge", "feature_krr")


def reads_moved_cuts(model, parts) -> bool:
    """Whether predicting ``parts`` (predictor names) with ``model`` reads jittered cuts."""
    return model.jitters and bool(set(parts) & set(TAP_PARTS))


def moved_centres(centres_xy: np.ndarray, jitter_px: float, width: int, height: int) -> np.ndarray:
    """(moves · n, 2) full-res pixel centres (x, y) moved by ±``jitter_px`` in x and y, move by move, kept
    inside the ``width`` × ``height`` image (a spot at its edge is cut there instead)."""
    c = np.asarray(centres_xy, dtype=np.float64)[:, :2]
    out = (c[None] + float(jitter_px) * MOVES[:, None]).reshape(-1, 2)
    out[:, 0] = np.clip(out[:, 0], 0.0, width - 1.0)
    out[:, 1] = np.clip(out[:, 1], 0.0, height - 1.0)
    return out


def by_move(patches: np.ndarray, n: int) -> np.ndarray:
    """Patches cut at all of :func:`moved_centres` at once → (moves, n, …)."""
    return patches.reshape(len(MOVES), n, *patches.shape[1:])


def moved_section_patches_steps(model, adata, label: str = "patches") -> ProgressGen[np.ndarray | None]:
    """Raw patches (moves, n, …) of a section's spots cut moved by ±``jitter_um`` in x and y, equal to what
    :func:`~.patches.section_patches` cuts there; None when the model does not jitter
    (:attr:`~.model.STco.jitters`). A JPEG / PNG is decoded once, at the resolution the patches need, then cut
    move by move with a progress event after each, so a Cancel never waits for more than one decode or one
    move; a TIFF is read region by region as always."""
    from .patches import _tiff_slide, image_wh, section_geometry, section_patches
    from .pixels import load_rgb, reduce_for

    if not model.jitters:
        return None
    cfg = model.cfg
    info, xy_px, _ = section_geometry(adata)
    image, px, n = info["image"], float(info["pixel_size_um"]), len(xy_px)
    centres = moved_centres(xy_px, cfg["jitter_um"] / px, *image_wh(image))
    scale, reduce = 1.0, None
    tiff = _tiff_slide(image)
    if tiff is not None:
        tiff.close()
    elif not isinstance(image, np.ndarray):  # the reduced decode the spots' own cut reads, then cut in memory
        image, scale = load_rgb(image, reduce_for(cfg["patch_um"] / px, cfg["patch_px"]))
        reduce = 1
        yield Progress(0, len(MOVES), f"{label}: image read for the moved cuts", "features")
    out = []
    for k in range(len(MOVES)):
        out.append(section_patches(image, centres[k * n:(k + 1) * n] / scale, px * scale, patch_um=cfg["patch_um"],
                                   out_px=cfg["patch_px"], check_tissue=False, reduce=reduce,
                                   context=cfg["context"], context_cut=cfg["context_cut"]))
        yield Progress(k + 1, len(MOVES), f"{label}: moved cut {k + 1}/{len(MOVES)} cut", "features")
    return np.stack(out)


def mean_taps_steps(model, taps: np.ndarray, moved: np.ndarray, source, use_cache: bool,
                    label: str = "patches") -> ProgressGen[np.ndarray]:
    """View 0's taps (n, T) of the spots' own cut averaged with those of their ``moved`` cuts (raw uint8
    patches (moves, n, …), stain-normalised here with ``source``, the spots' own stain estimate)."""
    total = taps.astype(np.float64)
    for i, raw in enumerate(moved):
        _, t = yield from model.backbone_features_steps(model.normalise(raw, source), [0], False,
                                                        f"{label}: moved cut {i + 1}/{len(moved)}", use_cache,
                                                        taps=True)
        total += t
    return (total / (1 + len(moved))).astype(np.float32)
