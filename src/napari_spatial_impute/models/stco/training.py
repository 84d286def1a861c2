"""STco training pieces: the contrastive heads on cached backbone features (frozen backbone), end-to-end
training (trainable backbone), retrieval, and the leave-one-section-out validation that weighs the contrastive
model against the simple predictors of :mod:`.fallback`."""

from __future__ import annotations

import math

import numpy as np

from ...progress import Progress, ProgressGen, iter_chunks, relay
from .expression import section_expression
from .fallback import COMPONENTS, Ridge, choose_blend, fit_feature_krr, fit_feature_ridge, gene_expected_r, knn_predict
from .network import build_heads, clip_loss, position_encoding


def training_inputs_steps(model, sections: list, progress: tuple[int, int] = (0, 1)) -> ProgressGen[tuple]:
    """Per training section (AnnData): its patches (stain-normalised into the model's reference with
    ``stain="macenko"``), position encodings, expression, spot positions (µm), section index and stain estimate
    (None without normalisation); sets the model's training pixel size and stain reference. An event (at
    ``progress`` (step, total)) while each section is cut, so Cancel never waits for every section; a warning
    when the sections' pixel sizes differ by more than a quarter (their mean becomes the model's)."""
    import warnings

    from ...cache import max_bytes
    from .expression import section_name
    from .jitter import section_cuts_steps
    from .stain import DEFAULT_REFERENCE, estimate_stains, normalize_stains

    model.train_pixel_size_um = None  # nothing to check a section against until they are all read
    sizes = [float(a.uns["histology"]["pixel_size_um"]) for a in sections]  # one per section, names may repeat
    if max(sizes) > 1.25 * min(sizes):
        warnings.warn("The training sections were scanned at different magnifications ("
                      + ", ".join(f"{section_name(a)} {v:.3g}" for a, v in zip(sections, sizes))
                      + " µm/px). Patches are cut at the "
                      "same physical size from each, but the model's pixel size is their mean. Fix: train on "
                      "sections of one magnification, or rescale the images first.", UserWarning, stacklevel=2)
    # the jittered cuts the feature ridges read later (section by section, for memory) are cut now from the same
    # decode and put in the cache, so a section's image is decoded once (her2st JPEG: 0.9 s + its tissue mask 0.2 s)
    cache_moved = model.frozen and model.jitters and max_bytes() > 0
    raw, pos, expr, xy, groups = [], [], [], [], []
    for i, a in enumerate(sections):
        label = f"section {i + 1}/{len(sections)}: "
        p, _, xy_um = yield from relay(section_cuts_steps(model, a, cache_moved=cache_moved), "patches",
                                       progress[0], progress[1], span=0, prefix=label)
        raw.append(p)
        xy.append(xy_um)
        pos.append(position_encoding(xy_um))
        expr.append(section_expression(a, model.genes, model.target_sum))
        groups.append(np.full(len(p), i))
    model.train_pixel_size_um = float(np.mean(sizes))
    sources = [None] * len(raw)
    if model.cfg["stain"] == "macenko":  # one estimate per section, into the fixed reference
        model.stain_reference = DEFAULT_REFERENCE
        sources = []
        for i, p in enumerate(raw):
            yield Progress(*progress, f"section {i + 1}/{len(raw)}: stain normalisation", "patches")
            sources.append(estimate_stains(p))
        raw = [normalize_stains(p, s, model.stain_reference) for p, s in zip(raw, sources)]
    return raw, pos, expr, xy, groups, sources


def training_features_steps(model, raw: list[np.ndarray], n_views: int, total: int, moved=None, sources=None):
    """The frozen backbone's features of the training sections' stain-normalised patches: ``(features (views, n,
    D), the feature ridge's input (n, ·))``, section by section (each cached on its own; progress steps 0 … one
    per section of ``total``); with ``feature_norm="section"`` each section z-scored by its own statistics and
    ``model.feature_reference`` set to their mean. ``moved``: per section, a callable giving the steps that cut
    its spots' jittered cuts (raw, :func:`.jitter.moved_section_patches_steps`; normalised with ``sources``, the
    sections' stain estimates), whose taps are averaged with the spots' own (:mod:`.jitter`)."""
    from .features import reference_stats, section_stats, stat_rows
    from .jitter import mean_taps_steps

    def section_steps(i: int, p: np.ndarray):
        label = f"section {i + 1}/{len(raw)}"
        own = 60 if moved is not None else 100  # progress: own views 0–60 %, moved cuts cut 60–65 %, their taps
        f, t = yield from relay(model.backbone_features_steps(p, range(n_views), model.cfg["stain_augment"], label,
                                                              taps=True), "features", 0, 100, span=own)
        cuts = (yield from relay(moved[i](), "features", 60, 100, span=5)) if own < 100 and t is not None else None
        if cuts is not None:
            t = yield from relay(mean_taps_steps(model, t, cuts, sources[i], True, label), "features", 65, 100,
                                 span=35)
        return f, t

    parts = []
    for i, p in enumerate(raw):
        parts.append((yield from relay(section_steps(i, p), "features", i, total, span=1)))
    if model.cfg["feature_norm"] == "section":
        stats = [section_stats(stat_rows(f, t)) for f, t in parts]
        model.feature_reference = reference_stats(stats)
        parts = [model.standardised(f, t, st) for (f, t), st in zip(parts, stats)]
    feats = np.concatenate([f for f, _ in parts], axis=1)
    taps = None if parts[0][1] is None else np.concatenate([t for _, t in parts])
    return feats, model.ridge_input(feats, taps)


def retrieve(emb: np.ndarray, bank_emb: np.ndarray, bank_expr: np.ndarray, k: int, weighting: str,
             logit_scale: float) -> np.ndarray:
    """Expression (n, genes): the weighted mean over the ``k`` bank spots most similar to each embedding."""
    k = min(int(k), len(bank_emb))
    scale = float(np.exp(min(logit_scale, math.log(100.0))))
    out = np.empty((len(emb), bank_expr.shape[1]), np.float32)
    for sl in iter_chunks(len(emb), 2048):
        sims = emb[sl] @ bank_emb.T
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        s = np.take_along_axis(sims, idx, axis=1)
        if weighting == "softmax":
            w = np.exp(scale * (s - s.max(axis=1, keepdims=True)))
        elif weighting == "uniform":
            w = np.ones_like(s)
        else:
            w = np.clip(s, 0.0, None) + 1e-6
        w /= w.sum(axis=1, keepdims=True)
        out[sl] = np.einsum("nk,nkg->ng", w, bank_expr[idx])
    return out


def _optimiser(params, cfg: dict):
    """AdamW over ``params`` with a cosine schedule across ``cfg["epochs"]``."""
    import torch

    opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg["epochs"]))


def _epoch(opt, n: int, bs: int, rng, batch_loss) -> float:
    """One epoch over a fresh permutation of ``n`` rows in batches of ``bs`` (batches under 2 rows skipped);
    ``batch_loss(idx)`` gives each batch's loss. Returns the mean loss (nan if no batch ran)."""
    perm = rng.permutation(n)
    losses = []
    for start in range(0, n - bs + 1 if n >= bs else 1, bs):
        idx = perm[start:start + bs]
        if len(idx) < 2:
            continue
        loss = batch_loss(idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return float(np.mean(losses)) if losses else float("nan")


def train_heads_steps(feats, expr_z, pos, cfg: dict, seed: int, label: str = "train",
                      progress: tuple[int, int] = (0, 0)) -> ProgressGen[tuple]:
    """Contrastive heads on fixed features ``feats`` (views, n, D) (torch); returns (heads, loss history)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_views, n = feats.shape[0], feats.shape[1]
    heads = build_heads(feats.shape[2], expr_z.shape[1], cfg).to(feats.device)
    opt, sched = _optimiser(heads.parameters(), cfg)
    bs = min(cfg["batch_size"], n)

    def batch_loss(idx):
        idx_t = torch.from_numpy(idx).to(feats.device)
        views = torch.from_numpy(rng.integers(n_views, size=len(idx))).to(feats.device)
        img = heads.image(feats[views, idx_t])
        spot = heads.spot(expr_z[idx_t], pos[idx_t] if pos is not None else None)
        return clip_loss(img, spot, heads.logit_scale)

    history = []
    for epoch in range(cfg["epochs"]):
        heads.train()
        history.append(_epoch(opt, n, bs, rng, batch_loss))
        sched.step()
        if progress[1]:
            yield Progress(progress[0] + epoch + 1, progress[1], f"{label}: epoch {epoch + 1}/{cfg['epochs']} "
                           f"loss {history[-1]:.3f}", "train")
    heads.eval()
    return heads, history


def spot_bank(heads, expr_z, pos) -> np.ndarray:
    """L2-normalised spot embeddings of every (expression, position) row."""
    import torch

    with torch.no_grad():
        bank = [heads.spot(expr_z[sl], pos[sl] if pos is not None else None) for sl in iter_chunks(len(expr_z), 1024)]
        return torch.nn.functional.normalize(torch.cat(bank), dim=1).cpu().numpy()


def image_embedding(heads, feats_views) -> np.ndarray:
    """L2-normalised image embedding averaged over the views of ``feats_views`` (views, n, D) (torch)."""
    import torch

    with torch.no_grad():
        emb = 0
        for v in range(feats_views.shape[0]):
            emb = emb + torch.nn.functional.normalize(heads.image(feats_views[v]), dim=1)
        return torch.nn.functional.normalize(emb, dim=1).cpu().numpy()


def validate_steps(feats, ridge_x, colour, expr, expr_z, pos, groups, xy_um, top_idx, cfg: dict, seed: int,
                   progress: tuple[int, int]) -> ProgressGen[dict]:
    """Leave each training section out in turn: fit the heads, the feature ridge and kernel ridge (on
    ``ridge_x``), the feature kNN and the colour ridge on the others, predict it; choose the blend on these
    out-of-fold predictions (see :func:`~.fallback.choose_blend`). ``feats`` (torch) may be None (trainable
    backbone: no kNN)."""
    import torch

    sections = list(dict.fromkeys(groups.tolist()))
    held = sections if cfg["validation"] == "loso" else sections[-1:]
    krr = cfg["krr_alpha"] > 0
    oof = {c: np.zeros_like(expr) for c in COMPONENTS if krr or c != "feature_krr"}
    done = np.zeros(len(expr), bool)
    start, total = progress
    for fi, h in enumerate(held):
        te = groups == h
        tr = ~te
        tr_t, te_t = torch.from_numpy(np.flatnonzero(tr)), torch.from_numpy(np.flatnonzero(te))
        p_tr = pos[tr_t] if pos is not None else None
        # the heads' epochs yield too (relayed at this fold's step), so a slow machine never waits a second
        fold_heads = train_heads_steps(feats[:, tr_t], expr_z[tr_t], p_tr, cfg, seed, progress=(0, cfg["epochs"]),
                                       label=f"validation: section {h} held out, contrastive heads")
        heads, _ = yield from relay(fold_heads, "validate", start + fi, total, span=0)
        bank = spot_bank(heads, expr_z[tr_t], p_tr)
        emb = image_embedding(heads, feats[:1, te_t])
        oof["contrastive"][te] = retrieve(emb, bank, expr[tr], cfg["top_k"], cfg["weighting"],
                                          float(heads.logit_scale.detach()))
        f0 = feats[0].cpu().numpy()
        oof["feature_knn"][te] = knn_predict(f0[tr], expr[tr], f0[te], cfg["knn_k"])
        yield Progress(start + fi, total, f"validation: section {h} held out, feature ridge", "validate")
        ridge = fit_feature_ridge(ridge_x[tr], expr[tr], groups[tr], xy_um[tr], cfg)
        oof["feature_ridge"][te] = ridge.predict(ridge_x[te])
        yield Progress(start + fi, total, f"validation: section {h} held out, kernel ridge", "validate")
        if krr:
            oof["feature_krr"][te] = fit_feature_krr(ridge_x[tr], expr[tr], groups[tr], cfg, seed).predict(ridge_x[te])
        oof["colour_ridge"][te] = Ridge().fit(colour[tr], expr[tr]).predict(colour[te])
        done |= te
        yield Progress(start + fi + 1, total, f"validation: section {h} held out", "validate")
    oof = {c: v[done] for c, v in oof.items()}
    choice = choose_blend(oof, expr[done], groups[done], xy_um[done], top_idx,
                          smoothing_um=cfg["smoothing_choices"], mode=cfg["blend"])
    # what each gene reached out of fold, with the predictor the bundle will use (a forced one: unsmoothed)
    weights, smoothing = ((choice["weights"], choice["smoothing_um"]) if cfg["predictor"] == "auto"
                          else ({cfg["predictor"]: 1.0}, 0.0))
    if all(k in oof for k, w in weights.items() if w > 0):  # (a forced predictor may not have been validated)
        r = gene_expected_r(oof, expr[done], groups[done], xy_um[done], weights, smoothing)
        choice["expected_r"] = [round(float(v), 4) for v in r]
    return choice


def train_end_to_end_steps(model, patches, expr_z, pos, rng, progress: tuple[int, int]) -> ProgressGen[list]:
    """Train backbone + heads end to end on patches (GPU advised); returns the loss history."""
    import torch

    from .features import view_batch

    cfg = model.cfg
    dev = expr_z.device
    model.backbone.to(dev)
    opt, sched = _optimiser(list(model.heads.parameters()) + list(model.backbone.parameters()), cfg)
    n = len(patches)
    bs = min(cfg["batch_size"], n)

    def batch_loss(idx):
        idx_t = torch.from_numpy(idx).to(dev)
        x = view_batch(patches[idx], int(rng.integers(8)), dev, True, rng)
        img = model.heads.image(model.backbone(x))
        spot = model.heads.spot(expr_z[idx_t], pos[idx_t] if pos is not None else None)
        return clip_loss(img, spot, model.heads.logit_scale)

    history = []
    for epoch in range(cfg["epochs"]):
        model.heads.train()
        model.backbone.train()
        history.append(_epoch(opt, n, bs, rng, batch_loss))
        sched.step()
        yield Progress(progress[0] + epoch + 1, progress[1], f"epoch {epoch + 1}/{cfg['epochs']} "
                       f"loss {history[-1]:.3f}", "train")
    model.backbone.eval()
    model.heads.eval()
    return history
