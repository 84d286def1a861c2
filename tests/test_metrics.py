import numpy as np
from scipy.stats import pearsonr, spearmanr

from napari_spatial_impute import metrics


def test_pearson_and_spearman_match_scipy():
    rng = np.random.default_rng(0)
    t = rng.gamma(1.0, size=(200, 4))
    p = t + rng.normal(0, 0.5, size=t.shape)
    np.testing.assert_allclose(metrics.pearson_per_gene(t, p), [pearsonr(t[:, j], p[:, j])[0] for j in range(4)])
    np.testing.assert_allclose(metrics.spearman_per_gene(t, p), [spearmanr(t[:, j], p[:, j])[0] for j in range(4)])


def test_perfect_prediction_extremes():
    rng = np.random.default_rng(1)
    t = rng.gamma(1.0, size=(100, 3))
    np.testing.assert_allclose(metrics.ssim_per_gene(t, t), 1.0)
    np.testing.assert_allclose(metrics.js_per_gene(t, t), 0.0, atol=1e-12)
    np.testing.assert_allclose(metrics.rmse_per_gene(t, t), 0.0, atol=1e-12)
    np.testing.assert_allclose(metrics.cosine_per_cell(t, t), 1.0)


def test_js_disjoint_support_is_ln2_and_ssim_hand_value():
    t = np.array([[1.0], [0.0]])
    p = np.array([[0.0], [1.0]])
    np.testing.assert_allclose(metrics.js_per_gene(t, p), np.log(2))
    # hand-computed global SSIM of [1, 0] vs [0, 1]: means 0.5, var 0.25, cov -0.25
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    expected = ((2 * 0.25 + c1) * (2 * -0.25 + c2)) / ((0.5 + c1) * (0.5 + c2))
    np.testing.assert_allclose(metrics.ssim_per_gene(t, p), expected)


def test_rmse_is_on_zscores():
    t = np.array([[1.0], [2.0], [3.0]])
    np.testing.assert_allclose(metrics.rmse_per_gene(t, 10 * t + 5), 0.0, atol=1e-12)  # scale-free


def test_summarize_keys_and_finiteness():
    rng = np.random.default_rng(2)
    t = rng.gamma(1.0, size=(50, 5))
    p = t * 0.5 + rng.random(t.shape)
    s = metrics.summarize(t, p, [f"g{i}" for i in range(5)])
    for key in ("pcc_median", "pcc_mean", "spearman_median", "ssim_median", "rmse_median", "js_median",
                "css_cell", "css_gene", "mse_gene", "n_genes", "n_cells"):
        assert np.isfinite(s[key])
    assert set(s["per_gene"]) == {f"g{i}" for i in range(5)}
    assert s["n_genes"] == 5 and s["n_cells"] == 50
    # the summary values are the per-gene / per-cell metrics, computed here directly
    r = [pearsonr(t[:, j], p[:, j])[0] for j in range(5)]
    np.testing.assert_allclose(s["pcc_median"], np.median(r))
    np.testing.assert_allclose(s["pcc_mean"], np.mean(r))
    np.testing.assert_allclose([s["per_gene"][f"g{j}"]["pcc"] for j in range(5)], r)
    np.testing.assert_allclose(s["spearman_median"], np.median([spearmanr(t[:, j], p[:, j])[0] for j in range(5)]))
    cos_cell = (t * p).sum(1) / (np.linalg.norm(t, axis=1) * np.linalg.norm(p, axis=1))
    np.testing.assert_allclose(s["css_cell"], cos_cell.mean())
    # a perfect prediction: cosine 1 per cell and per gene, zero MSE, r = 1
    same = metrics.summarize(t, t, [f"g{i}" for i in range(5)])
    np.testing.assert_allclose([same["css_cell"], same["css_gene"], same["pcc_median"]], 1.0)
    assert same["mse_gene"] == 0.0


def test_summarize_hand_computed():
    t = np.array([[1.0, 0.0], [0.0, 2.0]])
    p = np.array([[1.0, 1.0], [0.0, 1.0]])
    s = metrics.summarize(t, p, ["a", "b"])
    # cells: cos((1, 0), (1, 1)) = 1/√2, cos((0, 2), (0, 1)) = 1; genes: a identical (cos 1), b cos((0, 2), (1, 1))
    np.testing.assert_allclose(s["css_cell"], (1 / np.sqrt(2) + 1) / 2)
    np.testing.assert_allclose(s["css_gene"], (1 + 1 / np.sqrt(2)) / 2)
    # each gene scaled to [0, 1] by its maximum: a (1, 0) vs (1, 0) → 0; b (0, 1) vs (1, 1) → (1 + 0) / 2
    np.testing.assert_allclose(s["mse_gene"], 0.25)
    # r: a 1; b's prediction is constant, scored 0 (not NaN)
    assert s["per_gene"]["a"]["pcc"] == 1.0 and s["per_gene"]["b"]["pcc"] == 0.0 and s["pcc_median"] == 0.5
