"""Simple predictors the STco bundle carries beside the contrastive model, and how they are combined.

* ``colour_ridge``: 30 colour / texture numbers per patch (RGB and HED mean / std, a 16-bin grey histogram,
  gradient-energy statistics) → ridge regression (α = 10 on standardised features);
* ``feature_ridge``: the frozen backbone's mid-level features (for Lite0 the mean and sd of every block's
  output — ``ridge_taps="all"``; ``"stages"``: four stage ends, as bundles before —, of the patch and its
  context patch; other backbones: their pooled features) → ridge regression
  (:func:`fit_feature_ridge`: α = ``ridge_alpha`` on standardised features, ``ridge_rank`` reduced rank,
  features smoothed over ``ridge_smoothing_um`` at training; chosen by leave-one-section-out within her2st
  C2–C5);
* ``feature_krr``: the same features → RBF kernel ridge regression (:func:`fit_feature_krr`: α = ``krr_alpha``,
  the kernel's width from the features' spread; Nyström above 3,000 training spots), a non-linear sibling of
  the feature ridge;
* ``feature_knn``: the frozen backbone's pooled features of the (stain-normalised, unrotated) patch → the mean
  expression of the ``k`` most cosine-similar training spots (for the default backbone: ImageNet Lite0);
* ``contrastive``: the STco retrieval itself.

At training time each training section is predicted by models fitted on the other sections (leave one section
out); :func:`choose_blend` picks the blend (by default the equal mean of the contrastive model, the feature
ridge and the feature kernel ridge, or one predictor alone when that validates clearly better) and a spatial
smoothing radius by the held-out top-gene Pearson. Prediction then returns that blend. With nothing to hold out
(one training section, ``validation="none"``) the bundle predicts the equal mean of the members it has, smoothed
100 µm (:func:`unvalidated`).
"""

from __future__ import annotations

import itertools

import numpy as np

from ...metrics import pearson_per_gene
from .defaults import SMOOTHING_CHOICES

COMPONENTS = ("contrastive", "feature_ridge", "feature_krr", "feature_knn", "colour_ridge")


def colour_texture_features(patches_u8: np.ndarray) -> np.ndarray:
    """(n, 30) hand-made features of RGB uint8 patches."""
    from .stain import HED_FROM_RGB, optical_density

    x = np.asarray(patches_u8, np.float32) / 255.0
    n = len(x)
    hed = optical_density(patches_u8) @ HED_FROM_RGB.astype(np.float32)
    grey = x.mean(axis=3)
    gy, gx = np.gradient(grey, axis=(1, 2))
    mag = np.hypot(gx, gy).reshape(n, -1)
    hist = np.stack([np.histogram(g, bins=16, range=(0, 1))[0] for g in grey]) / grey[0].size
    return np.concatenate([x.mean((1, 2)), x.std((1, 2)), hed.mean((1, 2)), hed.std((1, 2)), hist,
                           np.column_stack([mag.mean(1), mag.std(1), np.percentile(mag, 90, axis=1),
                                            (mag > 0.1).mean(1)])], axis=1).astype(np.float32)


class Ridge:
    """Ridge regression on standardised features (closed form; the dual form when features outnumber rows).
    ``rank`` > 0: reduced rank — predictions projected onto the ``rank`` leading directions (over genes) of
    the fitted training values, so the genes share a few expression programmes."""

    def __init__(self, alpha: float = 10.0, rank: int = 0):
        self.alpha, self.rank = float(alpha), int(rank)
        self.mu = self.sd = self.w = self.ym = self.v = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> Ridge:
        x = np.asarray(x, np.float64)
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        a = (x - self.mu) / self.sd
        self.ym = y.mean(0)
        yc = y - self.ym
        if a.shape[1] > a.shape[0]:  # n × n instead of D × D: the same solution
            self.w = a.T @ np.linalg.solve(a @ a.T + self.alpha * np.eye(a.shape[0]), yc)
        else:
            self.w = np.linalg.solve(a.T @ a + self.alpha * np.eye(a.shape[1]), a.T @ yc)
        if 0 < self.rank < min(yc.shape):
            self.v = np.linalg.svd(a @ self.w, full_matrices=False)[2][: self.rank].T
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        p = ((np.asarray(x, np.float64) - self.mu) / self.sd) @ self.w
        if self.v is not None:
            p = (p @ self.v) @ self.v.T
        return (p + self.ym).astype(np.float32)

    def state(self, prefix: str = "ridge") -> dict[str, np.ndarray]:
        keys = ("mu", "sd", "w", "ym") + (("v",) if self.v is not None else ())
        return {f"{prefix}_{k}": getattr(self, k) for k in keys}

    @classmethod
    def from_state(cls, z, prefix: str = "ridge") -> Ridge:
        r = cls()
        r.mu, r.sd, r.w, r.ym = (np.asarray(z[f"{prefix}_{k}"], np.float64) for k in ("mu", "sd", "w", "ym"))
        if f"{prefix}_v" in z.files:
            r.v = np.asarray(z[f"{prefix}_v"], np.float64)
            r.rank = r.v.shape[1]
        return r


def fit_feature_ridge(x: np.ndarray, y: np.ndarray, groups: np.ndarray, xy_um: np.ndarray, cfg: dict) -> Ridge:
    """The ``feature_ridge`` of training spots from several sections: each section's features smoothed over its
    spots (``ridge_smoothing_um``; a spot's label is an average over its neighbourhood's tissue too) and its
    expression centred on its own mean (a within-section Pearson ignores a section's offset), then a ridge of
    ``ridge_alpha`` and ``ridge_rank``."""
    x = np.array(x, np.float32)
    for g in np.unique(groups):
        m = groups == g
        x[m] = smooth(x[m], xy_um[m], float(cfg.get("ridge_smoothing_um", 0.0)))
    return Ridge(cfg["ridge_alpha"], int(cfg.get("ridge_rank", 0))).fit(x, centred_per_section(y, groups))


def centred_per_section(y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``y`` with each section's (``groups``) mean replaced by the overall mean: a within-section Pearson ignores
    a section's offset, so the fallbacks do not spend their fit on it."""
    yc = np.array(y, np.float64)
    for g in np.unique(groups):
        yc[groups == g] -= yc[groups == g].mean(0)
    return yc + np.asarray(y, np.float64).mean(0)


def rbf_kernel(a: np.ndarray, b: np.ndarray, gamma: float) -> np.ndarray:
    """exp(−γ‖a_i − b_j‖²) (float64)."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.exp(-gamma * np.maximum(d, 0.0))


class KernelRidge:
    """RBF kernel ridge regression on standardised features: a non-linear sibling of :class:`Ridge` on the same
    frozen mid-level features. γ = 1 / (2 · mean squared norm of the standardised training rows), so the
    kernel's scale follows the feature width. Up to ``max_rows`` training rows the exact dual solution; above,
    Nyström with ``max_rows`` landmark rows drawn with ``seed`` (memory and time stay bounded). The bundle keeps
    the landmarks (float32) and the dual coefficients."""

    def __init__(self, alpha: float = 0.3, max_rows: int = 3000, seed: int = 0):
        self.alpha, self.max_rows, self.seed = float(alpha), int(max_rows), int(seed)
        self.mu = self.sd = self.ym = self.landmarks = self.coef = None
        self.gamma = 0.0

    def _z(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.mu) / self.sd

    def fit(self, x: np.ndarray, y: np.ndarray) -> KernelRidge:
        x = np.asarray(x, np.float64)
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        z = self._z(x)
        self.ym = np.asarray(y, np.float64).mean(0)
        yc = np.asarray(y, np.float64) - self.ym
        self.gamma = 1.0 / (2.0 * max(float((z * z).sum(1).mean()), 1e-12))
        if len(z) <= self.max_rows:
            land = z
            k = rbf_kernel(z, z, self.gamma)
            self.coef = np.linalg.solve(k + self.alpha * np.eye(len(z)), yc)
        else:
            rows = np.sort(np.random.default_rng(self.seed).choice(len(z), self.max_rows, replace=False))
            land = z[rows]
            k_nm, k_mm = rbf_kernel(z, land, self.gamma), rbf_kernel(land, land, self.gamma)
            lhs = k_nm.T @ k_nm + self.alpha * k_mm + 1e-8 * np.eye(len(land))
            self.coef = np.linalg.solve(lhs, k_nm.T @ yc)
        # rounded as the bundle stores them (float32), so a loaded model predicts exactly the same
        self.landmarks, self.coef = _as_stored(land), _as_stored(self.coef)
        return self

    def predict(self, x: np.ndarray, rows: int = 4096) -> np.ndarray:
        z = self._z(x)
        land, coef = self.landmarks, self.coef
        out = np.empty((len(z), len(self.ym)), np.float32)
        for start in range(0, len(z), rows):  # bounded memory: one block of rows × landmarks at a time
            out[start:start + rows] = rbf_kernel(z[start:start + rows], land, self.gamma) @ coef + self.ym
        return out

    def state(self, prefix: str = "krr") -> dict[str, np.ndarray]:
        return {f"{prefix}_mu": self.mu, f"{prefix}_sd": self.sd, f"{prefix}_ym": self.ym,
                f"{prefix}_landmarks": self.landmarks.astype(np.float32),
                f"{prefix}_coef": self.coef.astype(np.float32),
                f"{prefix}_gamma": np.float64(self.gamma), f"{prefix}_alpha": np.float64(self.alpha)}

    @classmethod
    def from_state(cls, z, prefix: str = "krr") -> KernelRidge:
        k = cls(float(z[f"{prefix}_alpha"]))
        k.mu, k.sd, k.ym = (np.asarray(z[f"{prefix}_{n}"], np.float64) for n in ("mu", "sd", "ym"))
        k.landmarks, k.coef = _as_stored(z[f"{prefix}_landmarks"]), _as_stored(z[f"{prefix}_coef"])
        k.gamma = float(z[f"{prefix}_gamma"])
        return k


def _as_stored(a) -> np.ndarray:
    """float64 holding float32-rounded values: what the bundle stores, in the precision predict computes in."""
    return np.asarray(a, np.float32).astype(np.float64)


def fit_feature_krr(x: np.ndarray, y: np.ndarray, groups: np.ndarray, cfg: dict, seed: int = 0) -> KernelRidge:
    """The ``feature_krr`` of training spots from several sections: each section's expression centred on its own
    mean (as :func:`fit_feature_ridge`; features as they are), then a :class:`KernelRidge` of ``krr_alpha``."""
    return KernelRidge(cfg["krr_alpha"], seed=seed).fit(x, centred_per_section(y, groups))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-9)


def knn_predict(bank_feats: np.ndarray, bank_expr: np.ndarray, feats: np.ndarray, k: int = 50) -> np.ndarray:
    """Mean expression of the ``k`` most cosine-similar bank rows (unweighted), in chunks."""
    bank = _unit(bank_feats)
    k = min(k, len(bank))
    out = np.empty((len(feats), bank_expr.shape[1]), np.float32)
    for s in range(0, len(feats), 1024):
        sims = _unit(feats[s:s + 1024]) @ bank.T
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        out[s:s + 1024] = bank_expr[idx].mean(1)
    return out


def smooth(values: np.ndarray, xy_um: np.ndarray | None, sigma_um: float, max_pairs: int = 2_000_000) -> np.ndarray:
    """Gaussian-weighted mean of each point's and its neighbours' values (within 3σ µm): image context at the
    scale of several spots, for spots or tiles of one section. Rows are done in blocks of about ``max_pairs``
    neighbour pairs, so memory stays bounded however dense the points (10 µm whole-slide tiles, σ 200 µm)."""
    if not sigma_um or xy_um is None or len(values) < 2:
        return values
    from scipy.sparse import csr_matrix
    from scipy.spatial import cKDTree

    xy = np.asarray(xy_um, np.float64)
    values = np.asarray(values)
    n, radius = len(xy), 3.0 * float(sigma_um)
    tree = cKDTree(xy)
    # neighbours per point if spread evenly over the points' bounding box: the block size
    area = max(float(np.prod(np.ptp(xy, axis=0) + 2 * radius)), 1e-9)
    per_point = min(n, max(1.0, n * np.pi * radius ** 2 / area))
    rows = int(np.clip(max_pairs / per_point, 64, n))
    out = np.empty((n, values.shape[1]), np.float32)
    for s in range(0, n, rows):
        e = min(n, s + rows)
        d = cKDTree(xy[s:e]).sparse_distance_matrix(tree, radius, output_type="coo_matrix")
        keep = d.data > 0  # the point itself (distance 0, not stored anyway) weighs 1 below
        w = csr_matrix((np.exp(-0.5 * (d.data[keep] / sigma_um) ** 2), (d.row[keep], d.col[keep])),
                       shape=(e - s, n))
        own = values[s:e].astype(np.float64)
        out[s:e] = (np.asarray(w @ values) + own) / (np.asarray(w.sum(axis=1)) + 1.0)
    return out



def blend(parts: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Σ weight · prediction over the components with a non-zero weight."""
    used = [(parts[k], w) for k, w in weights.items() if w > 0]
    return sum(w * p for p, w in used).astype(np.float32)


def _weight_grid(names: list[str], step: float = 0.25):
    ticks = np.arange(0, 1 + 1e-9, step)
    for combo in itertools.product(ticks, repeat=len(names)):
        if abs(sum(combo) - 1.0) < 1e-9:
            yield dict(zip(names, map(float, combo)))


def section_gene_r(pred: np.ndarray, truth: np.ndarray, groups: np.ndarray, xy_um: np.ndarray,
                   smoothing_um: float, cols=None) -> np.ndarray:
    """Pearson r (sections, genes) of ``pred`` smoothed ``smoothing_um`` over each section's spots against
    ``truth``, section by section (``groups``); ``cols``: those genes only."""
    if cols is not None:
        pred, truth = pred[:, cols], truth[:, cols]
    return np.array([pearson_per_gene(truth[m], smooth(pred[m], xy_um[m], float(smoothing_um)))
                     for m in (groups == s for s in np.unique(groups))])


def gene_expected_r(oof: dict[str, np.ndarray], truth: np.ndarray, groups: np.ndarray, xy_um: np.ndarray,
                    weights: dict[str, float], smoothing_um: float) -> np.ndarray:
    """Per-gene Pearson r of the blend ``weights`` (smoothed ``smoothing_um``) on the out-of-fold predictions
    ``oof``, averaged over the held-out sections: what each gene can be expected to reach on a new section of
    the training patients (never in-sample; optimistic for another patient or lab)."""
    pred = blend({k: v for k, v in oof.items() if k in weights}, weights)
    return section_gene_r(pred, truth, groups, xy_um, smoothing_um).mean(0).astype(np.float32)


def unvalidated(members=("contrastive",)) -> dict:
    """What a bundle predicts without validation (one training section, ``validation="none"``): the equal mean of
    ``members`` (those of :data:`EQUAL_BLEND` it has), smoothed :data:`UNVALIDATED_SMOOTHING_UM` when more than one
    (a new dict)."""
    members = list(members)
    return {"weights": {c: 1.0 / len(members) for c in members},
            "smoothing_um": UNVALIDATED_SMOOTHING_UM if len(members) > 1 else 0.0, "scores": {}, "winner": None,
            "validated_on": []}


#: the smoothing of an unvalidated blend. One her2st section training a model alone, each other of C2–C5 predicted
#: (12 pairs × 3 seeds): the equal blend smoothed 100 µm 0.358, unsmoothed 0.355, the contrastive member alone
#: 0.303 (benchmarks/histology_generalisation.md §000000000000)
UNVALIDATED_SMOOTHING_UM = 100.0


#: the default blend: the equal-weight mean of these predictors (those that validate), see :func:`choose_blend`
EQUAL_BLEND = ("contrastive", "feature_ridge", "feature_krr")


def choose_blend(oof: dict[str, np.ndarray], truth: np.ndarray, groups: np.ndarray, xy_um: np.ndarray,
                 top_idx: list[int], smoothing_um=SMOOTHING_CHOICES, margin: float = 0.002, mode: str = "equal",
                 leave_margin: float = 0.01) -> dict:
    """The blend weights and smoothing from out-of-fold predictions ``oof`` {component: (n, genes)}, scored by
    the mean over held-out sections of the mean top-gene Pearson. Returns {weights, smoothing_um, scores:
    {component and "blend": held-out top-gene PCC}, winner, mode}.

    ``mode="equal"`` (default): the equal-weight mean of :data:`EQUAL_BLEND` (without any of them that scores
    below half the best single predictor), replaced by a single predictor only when that is better by
    ``leave_margin``; a few training sections cannot pick finer weights reliably (her2st C2–C5: a searched
    blend gave 0.352, the equal blend 0.383 by leave-one-section-out). ``mode="grid"``: convex weights on a
    grid of quarters, replacing the best single predictor when better by ``margin``. The smoothing radius is
    chosen from ``smoothing_um`` either way."""
    names = [c for c in COMPONENTS if c in oof]
    sections = np.unique(groups)

    def score(pred: np.ndarray, sigma: float) -> float:
        return float(section_gene_r(pred, truth, groups, xy_um, sigma, cols=top_idx).mean(1).mean())

    def best_smoothing(w: dict[str, float]) -> tuple[float, float]:
        pred = blend(oof, w)
        return max((score(pred, float(sig)), float(sig)) for sig in smoothing_um)

    single = {c: score(oof[c], 0.0) for c in names}
    winner = max(single, key=single.get)
    best = (single[winner], {c: float(c == winner) for c in names}, 0.0)
    prior = [c for c in EQUAL_BLEND if c in single and single[c] >= 0.5 * single[winner]]
    if mode == "equal" and prior:
        w_prior = {c: (1.0 / len(prior) if c in prior else 0.0) for c in names}
        s, sig = best_smoothing(w_prior)
        best = (s, w_prior, sig)
        for c in names:  # a single predictor only when clearly better than the equal blend
            s, sig = best_smoothing({k: float(k == c) for k in names})
            if s > best[0] + leave_margin:
                best = (s, {k: float(k == c) for k in names}, sig)
    else:
        for sigma in smoothing_um:  # a blend or smoothing replaces the best single predictor only when it is
            for w in _weight_grid(names):  # clearly better (by `margin`), so a useless component gets no weight
                s = score(blend(oof, w), sigma)
                if s > best[0] + margin:
                    best = (s, w, float(sigma))
    return {"weights": best[1], "smoothing_um": best[2], "scores": {**single, "blend": best[0]},
            "winner": winner, "mode": mode if mode != "equal" or prior else "grid",
            "validated_on": [str(s) for s in sections]}
