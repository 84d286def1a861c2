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
    s = metrics.summarize(t, t * 0.5 + rng.random(t.shape), [f"g{i}" for i in range(5)])
    for key in ("pcc_median", "pcc_mean", "spearman_median", "ssim_median", "rmse_median", "js_median",
                "css_cell", "css_gene", "mse_gene", "n_genes", "n_cells"):
        assert np.isfinite(s[key])
    assert set(s["per_gene"]) == {f"g{i}" for i in range(5)}
