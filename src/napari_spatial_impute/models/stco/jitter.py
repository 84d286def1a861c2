"""Jittered cuts: the feature ridges read each spot's tap features averaged over five cuts.

A spot's patch (and its context patch) is cut at the spot and at four positions moved diagonally by
``jitter_um`` in x and in y; the taps (view 0) of the five cuts are averaged before the feature ridge and the
kernel ridge, at training and at spot prediction. Moving every spot by one pixel moves a section's score by
≈ 0.004: one cut draws that noise once, five cuts average it away (histology_generalisation.md §0000000000).
Whole-slide tiles keep one cut: they already cover the tissue, and five would multiply the slide's time.
"""

from __future__ import annotations

import numpy as np

from ...progress import ProgressGen, relay

#: the diagonal moves of the jittered cuts (× ``jitter_um``); the spot's own cut is the fifth
MOVES = np.array([(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)])
#: the predictors that read the (averaged) taps
TAP_PARTS = ("feature_ridge", "feature_krr")


def reads_moved_cuts(model, parts, jitter: bool | None = None) -> bool:
    """Whether predicting ``parts`` (predictor names) of spots with ``model`` reads jittered cuts: when it was
    trained so, unless ``jitter`` is False (one cut per spot, what whole-slide tiles read)."""
    return jitter is not False and model.jitters and bool(set(parts) & set(TAP_PARTS))


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


def jitter_px(model, pixel_size_um: float) -> float:
    """The model's ``jitter_um`` in full-res pixels of an image of ``pixel_size_um``."""
    return float(model.cfg["jitter_um"]) / float(pixel_size_um)


def section_cuts_steps(model, adata, *, own: bool = True, moved: bool = False, check_tissue: bool = True,
                       label: str = "patches", cache_moved: bool = False) -> ProgressGen[tuple]:
    """(raw patches of a section's spots as cut, their moved cuts (moves, n, …) or None, spot positions (x, y)
    in µm) of a section read by :mod:`napari_spatial_impute.io`, its pixel size checked against the model's
    (with the own cut).
    ``own=False`` leaves the spots' own cut out (None); ``moved``: also cut them moved by ±``jitter_um``. All
    cut by one :func:`~.patches.section_patch_sets_steps` (one decode, each set cached on its own, an event after
    each); with ``check_tissue`` a warning when (almost) no spot lies on tissue. ``cache_moved`` (with ``own``): the
    moved cuts are cut from the same decode but only put in the cache (None comes back), for
    :func:`moved_section_patches_steps` to read later without decoding the image again."""
    from .expression import section_name
    from .patches import check_pixel_size, image_wh, section_geometry, section_patch_sets_steps, warn_off_tissue

    cfg = model.cfg
    info, xy_px, xy_um = section_geometry(adata)
    px, n = float(info["pixel_size_um"]), len(xy_px)
    if own:  # the moved cuts alone (training) belong to a section whose own cut was checked when it was read
        check_pixel_size(px, model.train_pixel_size_um, cfg["patch_um"], cfg["patch_px"], section_name(adata))
    sets = [xy_px] if own else []
    if moved or cache_moved:
        centres = moved_centres(xy_px, jitter_px(model, px), *image_wh(info["image"]))
        sets += [centres[k * n:(k + 1) * n] for k in range(len(MOVES))]
    keep = [True] * (len(sets) - len(MOVES)) + [not cache_moved] * len(MOVES) if cache_moved else None
    # with a context factor, channels 3–5 hold the context patch, cut from the same read as the patch
    cuts = yield from section_patch_sets_steps(info["image"], sets, px, patch_um=cfg["patch_um"],
                                               out_px=cfg["patch_px"], context=cfg["context"],
                                               context_cut=cfg["context_cut"], label=label, keep=keep)
    if own and check_tissue:
        warn_off_tissue(cuts[0][1])
    mine = cuts.pop(0)[0] if own else None
    return mine, (np.stack([p for p, _ in cuts]) if moved and not cache_moved else None), xy_um


def moved_section_patches_steps(model, adata, label: str = "patches") -> ProgressGen[np.ndarray | None]:
    """Raw patches (moves, n, …) of a section's spots cut moved by ±``jitter_um`` in x and y (each move cut and
    cached as :func:`~.patches.section_patches` cuts a section: one decode for all moves, an event after each);
    None when the model does not jitter (:attr:`~.model.STco.jitters`)."""
    if not model.jitters:
        return None
    _, moved, _ = yield from section_cuts_steps(model, adata, own=False, moved=True, label=f"{label}: moved cuts")
    return moved


def mean_taps_steps(model, taps: np.ndarray, moved: np.ndarray, source, use_cache: bool,
                    label: str = "patches", pooled: bool = False) -> ProgressGen:
    """View 0's taps (n, T) of the spots' own cut averaged with those of their ``moved`` cuts (raw uint8
    patches (moves, n, …), stain-normalised here with ``source``, the spots' own stain estimate); with
    ``pooled``: (those taps, the moved cuts' pooled features (moves, n, D) from the same backbone pass)."""
    total, kept = taps.astype(np.float64), []
    for i, raw in enumerate(moved):
        f, t = yield from relay(model.backbone_features_steps(model.normalise(raw, source), [0], False,
                                                              f"{label}: moved cut {i + 1}/{len(moved)}", use_cache,
                                                              taps=True), "features", i, len(moved), span=1)
        total += t
        kept.append(f[0])
    mean = (total / (1 + len(moved))).astype(np.float32)
    return (mean, np.stack(kept)) if pooled else mean


def spot_features_steps(model, patches: np.ndarray, views, source, use_cache: bool, taps: bool,
                        moved: np.ndarray | None) -> ProgressGen:
    """The backbone features (views, n, D) of normalised spot ``patches`` and view 0's taps (or None without
    ``taps``), the taps averaged over the ``moved`` cuts when given (the progress split by backbone passes).
    With ``moved`` and a model whose ``jitter_contrastive`` is on, the moved cuts' pooled features follow the
    spots' own views as more views (the contrastive embedding averages over them); view 0 stays the own cut."""
    if moved is None or not taps:
        return (yield from model.backbone_features_steps(patches, views, False, "patches", use_cache, taps=taps))
    own = round(1000 * len(views) / (len(views) + len(moved)))
    feats, tap_x = yield from relay(model.backbone_features_steps(patches, views, False, "patches", use_cache,
                                                                  taps=True), "features", 0, 1000, span=own)
    tap_x, pooled = yield from relay(mean_taps_steps(model, tap_x, moved, source, use_cache, pooled=True),
                                     "features", own, 1000, span=1000 - own)
    if model.cfg["jitter_contrastive"]:
        feats = np.concatenate([feats, pooled])
    return feats, tap_x
