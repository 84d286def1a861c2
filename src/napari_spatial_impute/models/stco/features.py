"""Backbone features of patch views, fast and cached.

View ``v`` (0–7) of a patch is its dihedral transform ``v`` (rot90 × flip); with ``augment`` every view but 0
is also re-stained / re-scanned by :func:`.stain.stain_augment` with a generator seeded by (view, patch bytes),
so the same patches always give the same views. For a frozen backbone with a known identity (stock Lite0,
a TorchScript or state-dict file: its SHA-1) the features are cached on disk by (patch bytes, views, augment,
backbone), so retraining, other seeds and other head settings reuse them. A frozen EfficientNet-Lite0 runs with
its batch norms folded into the convolutions and channels-last memory (≈ 1.5–2× faster on CPU, same output to
1e-5).
"""

from __future__ import annotations

import copy
import hashlib
import math
import warnings
import weakref

import numpy as np

from ...cache import entry as cache_entry
from ...cache import load_npz, store_npz
from ...progress import Progress, ProgressGen, iter_chunks

# v3: taps of all 16 Lite0 blocks; v4: sd 0 (not NaN) of 1 × 1 maps; v5: .npz, view-0 taps; v6: taps' sd by two
# passes of sums (equal within float32 rounding)
FEATURE_VERSION = "v6"


def fold_batchnorm(model):
    """An inference copy of an :class:`~.encoders.EfficientNetLite` with every BatchNorm folded into the
    convolution before it (other modules are returned as they are)."""
    import torch
    from torch import nn

    from .encoders import EfficientNetLite

    if not isinstance(model, EfficientNetLite):
        return model
    fused = copy.deepcopy(model).eval()

    def fold(conv, bn):
        s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv.weight = nn.Parameter((conv.weight * s.view(-1, 1, 1, 1)).detach())
        conv.bias = nn.Parameter((bn.bias - bn.running_mean * s).detach())
        return nn.Identity()

    with torch.no_grad():
        fused._bn0 = fold(fused._conv_stem, fused._bn0)
        for b in fused._blocks:
            if b.expand:
                b._bn0 = fold(b._expand_conv, b._bn0)
            b._bn1 = fold(b._depthwise_conv, b._bn1)
            b._bn2 = fold(b._project_conv, b._bn2)
        fused._bn1 = fold(fused._conv_head, fused._bn1)
    return fused.to(memory_format=torch.channels_last)


_INFERENCE_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def inference_net(backbone, device):
    """:func:`fold_batchnorm` of ``backbone`` on ``device``, in eval mode, made once and reused while the
    backbone's parameters and buffers are unchanged (whole-slide prediction asks for it once per block)."""
    state = tuple((t.data_ptr(), t._version) for t in (*backbone.parameters(), *backbone.buffers()))
    key = (str(device), state)
    cached = _INFERENCE_COPIES.get(backbone)
    if cached is not None and cached[0] == key:
        return cached[1].eval()
    net = fold_batchnorm(backbone).to(device).eval()
    try:
        _INFERENCE_COPIES[backbone] = (key, net)
    except TypeError:  # not weak-referenceable: no reuse
        pass
    return net


def _view_rng(view: int, patches: np.ndarray) -> np.random.Generator:
    digest = hashlib.sha1(np.ascontiguousarray(patches).tobytes()).digest()[:8]
    return np.random.default_rng([view, int.from_bytes(digest, "little")])


def _cache_key(patches: np.ndarray, views, augment: bool, backbone_key: str, taps: bool = False,
               batch: int = 64) -> str:
    """The features' cache entry name; re-stained views depend on the batch size too (a view's re-staining draws
    run through its batches in turn)."""
    h = hashlib.sha1(np.ascontiguousarray(patches).tobytes())
    h.update(f"{list(views)}|{augment}|{backbone_key}|{FEATURE_VERSION}{'|taps' if taps else ''}".encode())
    if augment and any(v > 0 for v in views):
        h.update(f"|batch {int(batch)}".encode())
    return h.hexdigest()


def view_batch(patches_u8: np.ndarray, view: int, device, augment: bool, rng=None):
    """Float tensor (n, 3, px, px) in [0, 1] of dihedral view ``view`` (re-stained first when ``augment``)."""
    import torch

    from .network import to_tensor

    if augment and view > 0:
        from .stain import stain_augment

        if patches_u8.shape[-1] > 3:  # patch + context: the same re-staining draws for both
            state = copy.deepcopy(rng.bit_generator.state)
            first = stain_augment(patches_u8[..., :3], rng)
            rng.bit_generator.state = state
            patches_u8 = np.concatenate([first, stain_augment(patches_u8[..., 3:], rng)], axis=-1)
        else:
            patches_u8 = stain_augment(patches_u8, rng)
    x = to_tensor(patches_u8, device)
    if view % 8 >= 4:
        x = torch.flip(x, dims=(3,))
    return torch.rot90(x, view % 4, dims=(2, 3))


def features_steps(backbone, patches: np.ndarray, views, *, device, batch: int = 64, augment: bool = False,
                   backbone_key: str | None = None, label: str = "patches", use_cache: bool = True,
                   taps: bool = False) -> ProgressGen:
    """Features (len(views), n, D) of ``backbone`` (frozen, eval) for the given views, batched and cached.
    With ``taps`` (a backbone with ``forward_taps``): ``(features, taps)``, the mid-level tap features
    (n, parts · tap_dim) of the first view only (the one the feature ridge reads), so the other views hold
    pooled features alone."""
    import torch

    views = list(views)
    taps = bool(taps) and hasattr(backbone, "forward_taps")
    path = None
    if use_cache and backbone_key:
        path = cache_entry("features", f"{_cache_key(patches, views, augment, backbone_key, taps, batch)}.npz")
        cached = load_npz(path, "features", "taps") if taps else load_npz(path, "features")
        if cached is not None:
            yield Progress(1, 1, f"{label}: cached features", "features")
            return cached if taps else cached[0]
    net = inference_net(backbone, device)
    out_dim = getattr(backbone, "out_dim", 1)
    n = len(patches)
    out = tap_out = None
    parts = max(1, -(-patches.shape[-1] // 3)) if patches.ndim == 4 else 1  # the patch (+ its context patch)
    total = max(1, len(views) * math.ceil(n / batch) * parts)
    step = 0
    # inference mode is thread-local: it is entered around each forward pass only, never across a yield (a job
    # cancelled at a yield would leave its worker thread in inference mode, and the next job there would make
    # inference tensors: "Inference tensors do not track version counter")
    for vi, view in enumerate(views):
        rng = _view_rng(view, patches) if augment else None
        forward = net.forward_taps if taps and vi == 0 else net
        for sl in iter_chunks(n, batch):
            x = view_batch(patches[sl], view, device, augment, rng).contiguous(memory_format=torch.channels_last)
            # the patch (and the context patch, channels 3–5): their features side by side; a yield after
            # each part keeps a Cancel within a second on a slow CPU (the same sums either way)
            fs = []
            for i in range(0, x.shape[1], 3):
                if fs:
                    step += 1
                    yield Progress(step, total, f"{label}: view {vi + 1}/{len(views)}", "features")
                with torch.inference_mode():
                    fs.append(forward(x[:, i:i + 3].contiguous(memory_format=torch.channels_last))
                              .float().cpu().numpy())
            f = np.concatenate(fs, axis=1)
            if forward is not net:
                f, t = split_taps(f, out_dim, backbone.tap_dim)
                if tap_out is None:
                    tap_out = np.empty((n, t.shape[1]), np.float32)
                tap_out[sl] = t
            if out is None:
                out = np.empty((len(views), n, f.shape[1]), np.float32)
            out[vi, sl] = f
            step += 1
            yield Progress(step, total, f"{label}: view {vi + 1}/{len(views)}", "features")
    if out is None:
        out = np.empty((len(views), 0, out_dim), np.float32)
    if taps and tap_out is None:
        tap_out = np.empty((0, backbone.tap_dim), np.float32)
    if path is not None:
        store_npz(path, features=out, **({"taps": tap_out} if taps else {}))
    return (out, tap_out) if taps else out


def split_taps(feats: np.ndarray, out_dim: int, tap_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``forward_taps`` outputs of the patch parts side by side → (pooled features (…, parts · out_dim), tap
    features (…, parts · tap_dim)), each patch part (the patch, then its context patch) in order."""
    width = out_dim + tap_dim
    parts = feats.shape[-1] // width
    f = feats.reshape(*feats.shape[:-1], parts, width)
    flat = (*feats.shape[:-1], -1)
    return (np.ascontiguousarray(f[..., :out_dim]).reshape(flat),
            np.ascontiguousarray(f[..., out_dim:]).reshape(flat))


# ---- per-section feature standardisation (``feature_norm="section"``) -------------------------------------
#: fewest patches whose own feature statistics are trusted; fewer use the training sections' mean statistics
MIN_SECTION_PATCHES = 32
#: a section's feature sd is floored at this fraction of the training sections' mean sd (a feature nearly
#: constant in one section must not blow its noise up)
SD_FLOOR = 0.1


def section_stats(view0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, sd) per feature over the patches (n, D) of one section / slide (view 0, unrotated)."""
    v = np.asarray(view0, np.float64)
    return v.mean(0).astype(np.float32), v.std(0).astype(np.float32)


def own_stats(view0: np.ndarray, reference: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`section_stats` of patches (n, D) that are a whole section / slide, or the ``reference`` (with a
    warning) when there are fewer than :data:`MIN_SECTION_PATCHES` of them."""
    if len(view0) >= MIN_SECTION_PATCHES:
        return section_stats(view0)
    warnings.warn(f"Only {len(view0)} patches: their features are standardised with the training sections' "
                  f"statistics (a section's own need ≥ {MIN_SECTION_PATCHES}); predict the whole section or "
                  "slide to use its own.", stacklevel=4)
    return reference


def reference_stats(stats: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The training sections' mean (mean, sd): used for inputs too small for their own statistics, and as the
    sd floor's scale."""
    return (np.mean([m for m, _ in stats], axis=0).astype(np.float32),
            np.mean([s for _, s in stats], axis=0).astype(np.float32))


def standardise(feats: np.ndarray, stats: tuple[np.ndarray, np.ndarray],
                reference: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Features (…, n, D) of one section z-scored with that section's ``stats``; each sd floored at
    :data:`SD_FLOOR` × the ``reference`` sd. Removes a section's (stain, scanner, thickness, patient) shift and
    scale of every feature before the heads, the kNN and the ridge see them — for the feature ridge a per-gene
    offset and a scale, which a within-section Pearson ignores; for retrieval it decides which training spots
    are near."""
    mean, sd = stats
    sd = np.maximum(sd, SD_FLOOR * reference[1]) + 1e-6
    return ((feats - mean) / sd).astype(np.float32)


def stat_rows(feats: np.ndarray, taps: np.ndarray | None) -> np.ndarray:
    """View 0's features beside its taps (n, D + T): the rows a section's feature statistics are taken over."""
    return feats[0] if taps is None else np.hstack([feats[0], taps])


def standardise_with_taps(feats: np.ndarray, taps: np.ndarray | None, stats, reference) -> tuple:
    """(features (views, n, D), view 0's taps (n, T) or None) z-scored by ``stats`` — over :func:`stat_rows`;
    None: the section's own (:func:`own_stats`) — each sd floored against ``reference``."""
    stats = own_stats(stat_rows(feats, taps), reference) if stats is None else stats
    d = feats.shape[-1]

    def part(sl):
        return [(m[sl], sd[sl]) for m, sd in (stats, reference)]

    return standardise(feats, *part(slice(0, d))), None if taps is None else standardise(taps, *part(slice(d, None)))
