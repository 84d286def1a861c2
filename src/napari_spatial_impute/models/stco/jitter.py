"""Jittered cuts: the feature ridges read each spot's tap features averaged over five cuts.

A spot's patch (and its context patch) is cut at the spot and at four positions moved diagonally by
``jitter_um`` in x and in y; the taps (view 0) of the five cuts are averaged before the feature ridge and the
kernel ridge, at training and at spot prediction. Moving every spot by one pixel moves a section's score by
≈ 0.004: one cut draws that noise once, five cuts average it away (histology_generalisation.md §0000000000).
Whole-slide tiles keep one cut: they already cover the tissue, and five would multiply the slide's time.
"""

from __future__ import annotations

import numpy as np

from ...progress import ProgressGen

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
    """Patches cut at :func:`moved_centres` → (moves, n, …)."""
    return patches.reshape(len(MOVES), n, *patches.shape[1:])


def moved_section_patches(model, adata) -> np.ndarray | None:
    """Raw patches (moves, n, …) of a section's spots cut moved by ±``jitter_um`` in x and y; None when the
    model does not jitter (:attr:`~.model.STco.jitters`)."""
    from .patches import image_wh, section_geometry, section_patches

    if not model.jitters:
        return None
    cfg = model.cfg
    info, xy_px, _ = section_geometry(adata)
    px = float(info["pixel_size_um"])
    centres = moved_centres(xy_px, cfg["jitter_um"] / px, *image_wh(info["image"]))
    patches = section_patches(info["image"], centres, px, patch_um=cfg["patch_um"], out_px=cfg["patch_px"],
                              check_tissue=False, context=cfg["context"], context_cut=cfg["context_cut"])
    return by_move(patches, len(xy_px))


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
