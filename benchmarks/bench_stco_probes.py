"""The H&E probes behind STco's defaults, her2st C2–C5 only (leave one section out; C6 is never scored here).

* ``ridge`` — a ridge on frozen Lite0 features of the unrotated, stain-normalised patch, per feature set
  (pooled head features / mid-level "tap" features, with or without a context patch of 2×, 3×, 4× or 6×,
  and two contexts together) and ridge α: the exploration behind ``feature_ridge`` and ``context=4``
  (histology_generalisation.md §00 / §000).
* ``features`` — richer frozen-feature sets for the ridge (all 16 blocks, 2 × 2 pooled maps, 8-view means,
  the patch at 224 px), each section's features z-scored and targets centred: leads not adopted (§0000).
* ``contexts`` — ridge v2 on one or two context patches (2×, 4×, 6×; two = a third Lite0 pass).
* ``scales`` — ridge v2 on other patch sizes at 112 px (75–200 µm, context near 600 µm) and a fine third scale.
* ``ensembles[@N]`` — the contrastive half averaged over three seeds' heads (N seeds trained per fold, default
  6: two replicates) in the equal blend, against one seed.
* ``bank[@SEED]`` — the retrieval bank's expression smoothed over each training section (σ 100 / 150 µm).
* ``finetune@HELD`` — a pilot of the one lead left on a CPU: Lite0 fine-tuned end to end (``finetune=True``,
  patch only, the package's 30 epochs, no inner validation), trained on the other three of C2–C5, scored on
  HELD (seed 0); ≈ 20 min per fold on one core.
* ``blends[@SEED][:CONTEXT]`` — the package model trained on three sections, each of its predictors on the
  fourth, and fixed blends of them (equal contrastive + feature ridge, with / without 100 µm smoothing, + kNN)
  beside what the model predicts with ``blend="equal"`` (the default) and with ``blend="grid"`` (the weight
  search it replaced): the probe behind ``blend="equal"``. ``CONTEXT``: the context factor (default: the
  package default).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_stco_probes.py ridge blends@0:2 blends@1:2
(features are cached in the package cache; ≈ 5 min for ``ridge``, ≈ 3 min per ``blends`` seed on 2 cores).
"""

from __future__ import annotations

import sys

import numpy as np
from bench_generalisation import sections

INNER = ["C2", "C3", "C4", "C5"]


def _model(context: float, ridge_taps: str = "all", **params):
    from napari_spatial_impute.models.stco.model import STco
    from napari_spatial_impute.models.stco.stain import DEFAULT_REFERENCE

    m = STco(seed=0, device="cpu", context=context, ridge_taps=ridge_taps, **params)
    m._make_backbone()
    m.stain_reference = DEFAULT_REFERENCE
    return m


def view0_features(secs, context: float, ridge_taps: str = "all", **params) -> dict:
    """{section: (pooled features, tap features)} of the unrotated, stain-normalised patches (+ context);
    ``ridge_taps="stages"``: the four stage ends' taps (§00 / §000), "all": every block's (ridge v2);
    ``params``: other STco parameters (e.g. ``patch_um``)."""
    from napari_spatial_impute.models.stco.stain import estimate_stains, normalize_stains
    from napari_spatial_impute.progress import run_to_end

    m = _model(context, ridge_taps, **params)
    out = {}
    for s in INNER:
        p, _ = m.section_inputs(secs[s])
        p = normalize_stains(p, estimate_stains(p), m.stain_reference)
        feats, taps = run_to_end(m.backbone_features_steps(p, [0], False, s, taps=True))
        out[s] = (feats[0], m.ridge_input(feats, taps))
    return out


def loso_ridge(feats: dict, expr: dict, top: list[int], alpha: float) -> tuple[list[float], float]:
    from napari_spatial_impute.models.stco.fallback import Ridge, pearson_per_gene

    scores = []
    for h in INNER:
        tr = [s for s in INNER if s != h]
        r = Ridge(alpha).fit(np.vstack([feats[s] for s in tr]), np.vstack([expr[s] for s in tr]))
        scores.append(float(pearson_per_gene(expr[h][:, top], r.predict(feats[h])[:, top]).mean()))
    return scores, float(np.mean(scores))


def stage_ridge(secs) -> None:
    from napari_spatial_impute.models.stco.expression import section_expression

    m = _model(0.0)
    m._choose_genes([secs[s] for s in INNER])
    expr = {s: section_expression(secs[s], m.genes, m.target_sum) for s in INNER}
    top = [m.genes.index(g) for g in m.top_genes]
    by_ctx = {c: view0_features(secs, c, "stages") for c in (2.0, 3.0, 4.0, 6.0)}
    half = {c: {s: f[1].shape[1] // 2 for s, f in by_ctx[c].items()} for c in by_ctx}
    sets = {"pooled, patch": {s: by_ctx[2.0][s][0][:, :1280] for s in INNER},
            "pooled, patch + 2x context": {s: by_ctx[2.0][s][0] for s in INNER},
            "mid-level, patch": {s: by_ctx[2.0][s][1][:, :half[2.0][s]] for s in INNER}}
    for c in by_ctx:
        sets[f"mid-level, patch + {c:g}x context"] = {s: by_ctx[c][s][1] for s in INNER}
    for c in (4.0, 6.0):
        sets[f"mid-level, patch + 2x + {c:g}x contexts"] = {
            s: np.hstack([by_ctx[2.0][s][1], by_ctx[c][s][1][:, half[c][s]:]]) for s in INNER}
    print("| features (ridge, LOSO within C2–C5, top-50 PCC) | α 3·10³ | α 10⁴ | α 3·10⁴ |")
    print("|---|---|---|---|")
    for name, feats in sets.items():
        cells = [loso_ridge(feats, expr, top, a)[1] for a in (3e3, 1e4, 3e4)]
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in cells) + " |", flush=True)


def _block_stats(m, patches: np.ndarray, views) -> dict:
    """Per patch part, mean and sd of every Lite0 block's output (16 blocks), the blocks 4/7/10/14 outputs
    average-pooled to 2 × 2 (the "grid"), for dihedral views ``views`` (no re-staining), averaged over them."""
    import torch
    import torch.nn.functional as F

    from napari_spatial_impute.models.stco.features import inference_net, view_batch

    net = inference_net(m.backbone, torch.device("cpu"))
    out = {"all": [], "grid": []}
    with torch.inference_mode():
        for v in views:
            x = view_batch(patches, v, torch.device("cpu"), False).contiguous()
            a_, g_ = [], []
            for i in range(0, x.shape[1], 3):
                y = F.relu6(net._bn0(net._conv_stem((x[:, i:i + 3] - 0.5) / 0.5)))
                for b, block in enumerate(net._blocks):
                    y = block(y)
                    a_ += [y.mean((2, 3)), y.std((2, 3))]
                    if b in (4, 7, 10, 14):
                        g_.append(F.adaptive_avg_pool2d(y, 2).flatten(1))
            out["all"].append(torch.cat(a_, 1).numpy())
            out["grid"].append(torch.cat(g_, 1).numpy())
    return {k: np.mean(v, 0) for k, v in out.items()}


def stage_features(secs) -> None:
    """Richer frozen-feature sets for the ridge (context 4×, features z-scored per section, targets centred per
    section, α 3·10³ / 10⁴ / 3·10⁴): the four tapped blocks (as shipped), all 16 blocks, 2 × 2 pooled maps,
    the mean over the 8 dihedral views, and the patch read at 224 px instead of 112 (4× the backbone time)."""
    from napari_spatial_impute.models.stco.expression import section_expression
    from napari_spatial_impute.models.stco.fallback import Ridge, fit_feature_ridge, pearson_per_gene, smooth
    from napari_spatial_impute.models.stco.model import STco
    from napari_spatial_impute.models.stco.stain import DEFAULT_REFERENCE, estimate_stains, normalize_stains

    ch = [16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192, 320]
    off = np.concatenate([[0], np.cumsum(ch)])

    def cols(blocks):
        return np.array([p * 2 * off[-1] + 2 * off[b] + j for p in (0, 1) for b in blocks for j in range(2 * ch[b])])

    sets: dict = {}
    for px in (112, 224):
        m = STco(seed=0, device="cpu", context=4.0, patch_px=px)
        m._make_backbone()
        m.stain_reference = DEFAULT_REFERENCE
        m._choose_genes([secs[s] for s in INNER])
        for s in INNER:
            p, _ = m.section_inputs(secs[s])
            p = normalize_stains(p, estimate_stains(p), m.stain_reference)
            one = _block_stats(m, p, [0])
            taps = cols([4, 7, 10, 14])
            sets.setdefault(f"4 tapped blocks, {px} px", {})[s] = one["all"][:, taps]
            if px == 112:
                eight = _block_stats(m, p, range(8))
                sets.setdefault("all 16 blocks, 112 px", {})[s] = one["all"]
                sets.setdefault("4 tapped blocks + 2 × 2 maps, 112 px", {})[s] = np.hstack([one["all"][:, taps],
                                                                                          one["grid"]])
                sets.setdefault("4 tapped blocks, mean of 8 views, 112 px", {})[s] = eight["all"][:, taps]
                sets.setdefault("all 16 blocks, mean of 8 views, 112 px", {})[s] = eight["all"]
    expr = {s: section_expression(secs[s], m.genes, m.target_sum) for s in INNER}
    top = [m.genes.index(g) for g in m.top_genes]
    print("| ridge features (context 4×, LOSO within C2–C5, top-50 PCC) | α 3·10³ | α 10⁴ | α 3·10⁴ |")
    print("|---|---|---|---|")
    for name, feats in sets.items():
        z = {s: (f - f.mean(0)) / (f.std(0) + 1e-6) for s, f in feats.items()}
        cells = []
        for alpha in (3e3, 1e4, 3e4):
            sc = []
            for h in INNER:
                tr = [s for s in INNER if s != h]
                r = Ridge(alpha).fit(np.vstack([z[s] for s in tr]), np.vstack([expr[s] - expr[s].mean(0) for s in tr]))
                sc.append(float(pearson_per_gene(expr[h][:, top], r.predict(z[h])[:, top]).mean()))
            cells.append(np.mean(sc))
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in cells) + " |", flush=True)
    # the pieces of ridge v2, through the package's fit (per-section target centring always on); every
    # prediction smoothed over 100 µm, as the model's validated smoothing would
    xy = {s: m.section_inputs(secs[s])[1] for s in INNER}
    groups = {s: np.full(len(xy[s]), i) for i, s in enumerate(INNER)}
    print("\n| ridge v2 pieces (LOSO within C2–C5, predictions smoothed 100 µm) | α 3·10³ | α 10⁴ | α 3·10⁴ |")
    print("|---|---|---|---|")
    for name in ("4 tapped blocks, 112 px", "all 16 blocks, 112 px"):
        for rank, sm in ((0, 0.0), (0, 100.0), (10, 100.0), (20, 100.0)):
            cells = []
            for alpha in (3e3, 1e4, 3e4):
                cfg = {"ridge_alpha": alpha, "ridge_rank": rank, "ridge_smoothing_um": sm}
                sc = []
                for h in INNER:
                    tr = [s for s in INNER if s != h]
                    fit_on = (np.concatenate([d[s] for s in tr]) for d in (sets[name], expr, groups, xy))
                    p = smooth(fit_feature_ridge(*fit_on, cfg).predict(sets[name][h]), xy[h], 100.0)
                    sc.append(float(pearson_per_gene(expr[h][:, top], p[:, top]).mean()))
                cells.append(np.mean(sc))
            label = f"{name}, rank {rank or 'full'}, training features smoothed {sm:g} µm"
            print(f"| {label} | " + " | ".join(f"{v:.3f}" for v in cells) + " |", flush=True)


def project(m, values: np.ndarray) -> np.ndarray:
    """``values`` projected onto the feature ridge's reduced-rank gene directions (unchanged without)."""
    v = getattr(m.feature_ridge, "v", None)
    if v is None:
        return values
    mean = m.feature_ridge.ym
    return ((values - mean) @ v) @ v.T + mean


def ridge_v2_table(secs, sets: dict, per_fold: bool = False) -> None:
    """Print ridge v2 (rank 10, training features smoothed 100 µm) LOSO within C2–C5 on each feature set
    ({name: {section: features}}), predictions smoothed 100 µm, α 10⁴ / 3·10⁴ (and α 10⁴'s folds)."""
    from napari_spatial_impute.models.stco.expression import section_expression
    from napari_spatial_impute.models.stco.fallback import fit_feature_ridge, pearson_per_gene, smooth

    m = _model(4.0)
    m._choose_genes([secs[s] for s in INNER])
    expr = {s: section_expression(secs[s], m.genes, m.target_sum) for s in INNER}
    top = [m.genes.index(g) for g in m.top_genes]
    xy = {s: m.section_inputs(secs[s])[1] for s in INNER}
    groups = {s: np.full(len(xy[s]), i) for i, s in enumerate(INNER)}
    extra = " | per fold (α 10⁴)" if per_fold else ""
    print(f"| ridge v2 features (LOSO within C2–C5, predictions smoothed 100 µm) | α 10⁴ | α 3·10⁴{extra} |")
    print("|---|---|---|" + ("---|" if per_fold else ""))
    for name, feats in sets.items():
        cells = []
        for alpha in (1e4, 3e4):
            cfg = {"ridge_alpha": alpha, "ridge_rank": 10, "ridge_smoothing_um": 100.0}
            sc = []
            for h in INNER:
                tr = [s for s in INNER if s != h]
                fit_on = (np.concatenate([d[s] for s in tr]) for d in (feats, expr, groups, xy))
                p = smooth(fit_feature_ridge(*fit_on, cfg).predict(feats[h]), xy[h], 100.0)
                sc.append(float(pearson_per_gene(expr[h][:, top], p[:, top]).mean()))
            cells.append(sc)
        folds = (" | " + " / ".join(f"{v:.3f}" for v in cells[0])) if per_fold else ""
        print(f"| {name} | " + " | ".join(f"{np.mean(v):.3f}" for v in cells) + folds + " |", flush=True)


def stage_contexts(secs) -> None:
    """Ridge v2 (all 16 blocks' taps, rank 10, training features smoothed 100 µm) on the patch + one context
    (2×, 4× as shipped, 6×) or two contexts (a third Lite0 pass per tile): the lead for a next step."""
    by_ctx = {c: view0_features(secs, c) for c in (2.0, 4.0, 6.0)}
    half = by_ctx[4.0]["C2"][1].shape[1] // 2
    sets = {f"patch + {c:g}x": {s: by_ctx[c][s][1] for s in INNER} for c in by_ctx}
    for a_, b_ in ((2.0, 4.0), (2.0, 6.0)):
        sets[f"patch + {a_:g}x + {b_:g}x"] = {s: np.hstack([by_ctx[a_][s][1], by_ctx[b_][s][1][:, half:]])
                                            for s in INNER}
    ridge_v2_table(secs, sets)


def stage_scales(secs) -> None:
    """Ridge v2 on other patch sizes at the same 112 px (finer pixels, same Lite0 cost) with the context patch
    kept near 600 µm, and a fine 75 µm patch as a third scale beside the shipped 150 + 600 µm (1.5× the cost)."""
    configs = {"150 µm + 4x (600 µm), as shipped": (150.0, 4.0), "100 µm + 6x (600 µm)": (100.0, 6.0),
               "75 µm + 8x (600 µm)": (75.0, 8.0), "75 µm + 4x (300 µm)": (75.0, 4.0),
               "200 µm + 3x (600 µm)": (200.0, 3.0)}
    by_cfg = {name: view0_features(secs, c, patch_um=pu) for name, (pu, c) in configs.items()}
    sets = {name: {s: f[s][1] for s in INNER} for name, f in by_cfg.items()}
    base, fine = by_cfg["150 µm + 4x (600 µm), as shipped"], by_cfg["75 µm + 4x (300 µm)"]
    half = base["C2"][1].shape[1] // 2
    sets["75 + 150 + 600 µm (three Lite0 passes)"] = {s: np.hstack([base[s][1], fine[s][1][:, :half]])
                                                     for s in INNER}
    ridge_v2_table(secs, sets, per_fold=True)


def stage_blends(secs, seed: int, context: float | None = None) -> None:
    from napari_spatial_impute.models.stco.expression import section_expression
    from napari_spatial_impute.models.stco.fallback import pearson_per_gene, smooth
    from napari_spatial_impute.models.stco.model import STco
    from napari_spatial_impute.progress import run_to_end

    rows = {}
    extra = {} if context is None else {"context": context}
    for held in INNER:
        train = [secs[s] for s in INNER if s != held]
        grid = STco(seed=seed, device="cpu", blend="grid", **extra).fit(train)
        m = STco(seed=seed, device="cpu", **extra).fit(train)
        parts = run_to_end(m.predict_section_steps(secs[held], parts=True))
        _, xy = m.section_inputs(secs[held])
        truth = section_expression(secs[held], m.top_genes, m.target_sum)
        idx = [m.genes.index(g) for g in m.top_genes]

        def score(p, sigma=0.0, truth=truth, xy=xy, idx=idx):
            return float(pearson_per_gene(truth, smooth(p, xy, sigma)[:, idx]).mean())

        c, r, k = parts["contrastive"], parts["feature_ridge"], parts["feature_knn"]
        searched = run_to_end(grid.predict_section_steps(secs[held]))
        rows[held] = {"model, blend=grid": score(searched), "model (default)": score(parts["model"]),
                      "contrastive": score(c), "feature ridge": score(r),
                      "equal c + r": score((c + r) / 2), "equal c + r, 100 µm": score((c + r) / 2, 100.0),
                      "equal c + r + kNN": score((c + r + k) / 3),
                      "0.25 c + 0.75 r, 100 µm": score(0.25 * c + 0.75 * r, 100.0),
                      "equal c + r, on the ridge's rank, 100 µm": score(project(m, (c + r) / 2), 100.0)}
        print(held, {k_: round(v, 3) for k_, v in rows[held].items()}, m.weights, flush=True)
    cols = list(rows[INNER[0]])
    ctx = f", context {context:g}" if context is not None else ""
    print(f"\n| LOSO within C2–C5, seed {seed}{ctx} | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for h in INNER:
        print(f"| {h} | " + " | ".join(f"{rows[h][c_]:.3f}" for c_ in cols) + " |")
    print("| mean | " + " | ".join(f"{np.mean([rows[h][c_] for h in INNER]):.3f}" for c_ in cols) + " |")


def stage_ensembles(secs, n_seeds: int = 6) -> None:
    """Seed ensembles of the contrastive half: per fold, the package model trained with seeds 0 … n−1; the
    default blend of one seed (the model as predicted) against the equal blend of the ridge with the mean of
    three seeds' contrastive predictions (seeds 0–2 and 3–5: two replicates), 100 µm smoothing."""
    from napari_spatial_impute.models.stco.expression import section_expression
    from napari_spatial_impute.models.stco.fallback import pearson_per_gene, smooth
    from napari_spatial_impute.models.stco.model import STco
    from napari_spatial_impute.progress import run_to_end

    rows = {}
    for held in INNER:
        train = [secs[s] for s in INNER if s != held]
        parts = []
        for seed in range(n_seeds):
            m = STco(seed=seed, device="cpu").fit(train)
            parts.append(run_to_end(m.predict_section_steps(secs[held], parts=True)))
        _, xy = m.section_inputs(secs[held])
        truth = section_expression(secs[held], m.top_genes, m.target_sum)
        idx = [m.genes.index(g) for g in m.top_genes]

        def score(p, sigma=100.0, truth=truth, xy=xy, idx=idx):
            return float(pearson_per_gene(truth, smooth(p, xy, sigma)[:, idx]).mean())

        r = parts[0]["feature_ridge"]
        row = {"model, one seed (mean over seeds)": np.mean([score(q["model"], 0.0) for q in parts]),
               "contrastive, one seed (mean)": np.mean([score(q["contrastive"], 0.0) for q in parts])}
        for lo in range(0, n_seeds - 2, 3):
            c = np.mean([q["contrastive"] for q in parts[lo:lo + 3]], axis=0)
            row[f"contrastive, seeds {lo}–{lo + 2} averaged"] = score(c, 0.0)
            row[f"equal blend with seeds {lo}–{lo + 2} averaged, 100 µm"] = score((c + r) / 2)
        rows[held] = row
        print(held, {k: round(v, 3) for k, v in row.items()}, flush=True)
    cols = list(rows[INNER[0]])
    print("\n| LOSO within C2–C5 | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for h in INNER:
        print(f"| {h} | " + " | ".join(f"{rows[h][c_]:.3f}" for c_ in cols) + " |")
    print("| mean | " + " | ".join(f"{np.mean([rows[h][c_] for h in INNER]):.3f}" for c_ in cols) + " |")


def stage_bank(secs, seed: int = 0) -> None:
    """The retrieval bank's expression smoothed over each training section's spots (σ 100 / 150 µm) against
    as measured: the contrastive half retrieves denoised neighbourhoods instead of single noisy spots."""
    from napari_spatial_impute.models.stco.expression import section_expression
    from napari_spatial_impute.models.stco.fallback import pearson_per_gene, smooth
    from napari_spatial_impute.models.stco.model import STco
    from napari_spatial_impute.progress import run_to_end

    rows = {}
    for held in INNER:
        train = [secs[s] for s in INNER if s != held]
        m = STco(seed=seed, device="cpu").fit(train)
        _, xy = m.section_inputs(secs[held])
        truth = section_expression(secs[held], m.top_genes, m.target_sum)
        idx = [m.genes.index(g) for g in m.top_genes]

        def score(p, sigma=100.0, truth=truth, xy=xy, idx=idx):
            return float(pearson_per_gene(truth, smooth(p, xy, sigma)[:, idx]).mean())

        bank, ends = m.bank_expr, np.cumsum([0] + [a.n_obs for a in train])
        train_xy = [m.section_inputs(a)[1] for a in train]
        row = {}
        for sigma in (0.0, 100.0, 150.0):
            m.bank_expr = np.concatenate([smooth(bank[a:b], xy_, sigma) for a, b, xy_ in
                                          zip(ends[:-1], ends[1:], train_xy)]) if sigma else bank
            parts = run_to_end(m.predict_section_steps(secs[held], parts=True))
            c, r = parts["contrastive"], parts["feature_ridge"]
            row[f"contrastive, bank σ {sigma:g}"] = score(c, 0.0)
            row[f"equal blend, bank σ {sigma:g}, 100 µm"] = score((c + r) / 2)
        m.bank_expr = bank
        rows[held] = row
        print(held, {k: round(v, 3) for k, v in row.items()}, flush=True)
    cols = list(rows[INNER[0]])
    print(f"\n| LOSO within C2–C5, seed {seed} | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for h in INNER:
        print(f"| {h} | " + " | ".join(f"{rows[h][c_]:.3f}" for c_ in cols) + " |")
    print("| mean | " + " | ".join(f"{np.mean([rows[h][c_] for h in INNER]):.3f}" for c_ in cols) + " |")


def stage_finetune(secs, held: str, seed: int = 0) -> None:
    """One LOSO fold of the fine-tuned Lite0 (seed 0), beside the time it took."""
    import time

    from napari_spatial_impute import evaluate_histology, train_histology

    t0 = time.perf_counter()
    model = train_histology([secs[s] for s in INNER if s != held], seed=seed, device="cpu", finetune=True,
                            validation="none")
    seconds = time.perf_counter() - t0
    m = evaluate_histology(model, secs[held])
    print(f"| fine-tuned Lite0, held out {held}, seed {seed} | {m['pcc_mean_top50']:.3f} | {seconds:.0f} s |",
          flush=True)


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)
    secs = {s: getattr(a, "adata", a) for s, a in sections().items()}
    for stage in argv or ["ridge", "blends"]:
        name, _, rest = stage.partition("@")
        seed, _, context = rest.partition(":")
        if name == "ridge":
            stage_ridge(secs)
        elif name == "contexts":
            stage_contexts(secs)
        elif name == "features":
            stage_features(secs)
        elif name == "scales":
            stage_scales(secs)
        elif name == "blends":
            stage_blends(secs, int(seed or 0), float(context) if context else None)
        elif name == "ensembles":
            stage_ensembles(secs, int(seed or 6))
        elif name == "bank":
            stage_bank(secs, int(seed or 0))
        elif name == "finetune":
            stage_finetune(secs, seed or "C5")
        else:
            raise SystemExit(f"unknown stage {stage!r}: ridge | features | contexts | scales | "
                             "blends[@SEED][:CONTEXT] | ensembles[@N_SEEDS] | bank[@SEED]")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
