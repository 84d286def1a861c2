"""SpaIM (style-transfer imputer) on the bundled osmFISH + Allen SSp pair and the bundled Xenium sample."""

import json

import numpy as np
import pytest

import napari_spatial_impute as nsi
from napari_spatial_impute.clustering import cluster_means, leiden_labels, reference_clusters
from napari_spatial_impute.errors import InputError
from napari_spatial_impute.models import ImputeData, spaim_network
from napari_spatial_impute.models.spaim import SpaIMImputer, estimate_memory

# Measured (benchmarks/spaim_osmfish.md, seed 0): 5-fold CV, defaults (3 networks) → PCC median 0.252, kNN 0.207.
# The 3× faster setting below (one network with mixup, no weight averaging; measured while mixup was the
# default) gave 0.242 (the same network without mixup 0.204; the fold-to-fold spread of one network is large).
# These tests pin the published network (``anchor="none"``, no inner CV); the kNN anchor and expected r have
# their own tests at the end of the file.
CV_FAST = {"n_models": 1, "ema": 0.0, "mixup": True, "anchor": "none", "expected_r": False}
CV_PCC_MEDIAN_FLOOR = 0.21
FAST = {"epochs": 3, "hidden": (64, 32), "style_dim": 16, "n_models": 1, "anchor": "none", "expected_r": False}
# The defaults with a small budget on the bundled Xenium sample (~5 CPU s). Measured: the inner CV (2 epochs)
# gives SpaIM weight 0 here, so the prediction is kNN's (median r 0.558) and expected r ranks genes at ρ 0.85
# (full budget: w chosen by the inner CV, median r 0.571 vs kNN 0.558, benchmarks/spaim_generalisation.md).
XENIUM_SMALL = {"epochs": 6, "n_models": 1, "hidden": (128, 64)}
XENIUM_RHO_FLOOR = 0.6


@pytest.fixture(scope="module")
def data(osmfish):
    spatial, reference = osmfish
    d, _ = nsi.prepare(spatial, reference, ["Vip", "Gad2", "Slc32a1"])
    return d


def test_spaim_cv_on_osmfish_above_floor(osmfish):
    spatial, reference = osmfish
    result = nsi.cross_validate(spatial, reference, "spaim", folds=5, seed=0, device="cpu", **CV_FAST)
    m = result.metrics
    assert m["n_genes"] == 33 and result.prediction.shape == (3405, 33)
    assert np.isfinite(result.prediction).all() and (result.prediction >= 0).all()
    assert m["pcc_median"] > CV_PCC_MEDIAN_FLOOR
    # an inhibitory marker, well predicted by every method (measured r 0.632); a constant / reference-mean predictor
    # gives r = 0 and these predictions with the cells shuffled r ≈ 0 (checked here)
    assert m["per_gene"]["Slc32a1"]["pcc"] > 0.3
    j = list(result.genes).index("Slc32a1")
    shuffled = result.prediction[np.random.default_rng(0).permutation(3405), j]
    assert abs(np.corrcoef(shuffled, result.truth[:, j])[0, 1]) < 0.1


def test_same_seed_same_predictions_and_progress_per_epoch(data):
    events = []
    a = SpaIMImputer(seed=3, device="cpu", **FAST).fit(data, callback=events.append)
    b = SpaIMImputer(seed=3, device="cpu", **FAST).fit(data)
    np.testing.assert_array_equal(a.predict(data), b.predict(data))
    assert [e.step for e in events if "epoch" in e.message] == [1, 2, 3]
    c = SpaIMImputer(seed=4, device="cpu", **FAST).fit(data)
    assert not np.array_equal(a.predict(data), c.predict(data))


def test_cancel_between_epochs_leaves_model_unfitted(data):
    model = SpaIMImputer(device="cpu", **FAST)
    gen = model.fit_steps(data)
    next(gen), next(gen)  # clustering, epoch 1
    gen.close()
    with pytest.raises(InputError, match="not fitted"):
        model.predict(data)


def test_impute_gene_names_in_requested_order(osmfish):
    spatial, reference = osmfish
    genes = ["vip", "Slc32a1", "Gad2", "Pdgfra", "Mfge8"]  # lower-case on purpose
    out = nsi.impute(spatial, reference, "spaim", genes, device="cpu", batch_size=2, **FAST)
    assert list(out.var_names) == ["Vip", "Slc32a1", "Gad2", "Pdgfra", "Mfge8"]
    assert out.shape == (3405, 5) and list(out.obs_names) == list(spatial.obs_names)
    assert out.uns["napari_spatial_impute"]["method"] == "spaim"
    X = np.asarray(out.X)
    assert np.isfinite(X).all() and (X.std(axis=0) > 0).all()  # every batch of genes was predicted


def test_batches_do_not_change_predictions(data):
    model = SpaIMImputer(device="cpu", batch_size=2, **FAST).fit(data)
    all3 = model.predict(data)  # two batches: (Vip, Gad2), (Slc32a1)
    alone = model.predict(data.with_targets(["Slc32a1", "Vip"]))
    np.testing.assert_allclose(alone, all3[:, [2, 0]], rtol=1e-5, atol=1e-6)


def test_save_load_predict_without_training_data(data, tmp_path):
    model = SpaIMImputer(seed=1, device="cpu", **{**FAST, "n_models": 2}).fit(data)  # an ensemble of two
    pred = model.predict(data)
    model.save(tmp_path / "spaim")
    loaded = nsi.Imputer.load(tmp_path / "spaim")
    assert isinstance(loaded, SpaIMImputer) and loaded.hidden == (64, 32) and len(loaded.members_) == 2
    assert loaded.target_genes_ == ["Vip", "Gad2", "Slc32a1"] and loaded.n_cells_ == 3405
    assert loaded.cell_ids_ == data.spatial_obs_names
    np.testing.assert_array_equal(loaded.predict(), pred)  # no data needed
    np.testing.assert_array_equal(loaded.predict(data), pred)
    # any other reference gene can be asked for (the content of every reference gene is in the bundle)
    other = loaded.predict(data.with_targets(["Mfge8"]))
    assert other.shape == (3405, 1)


def test_model_is_tied_to_its_spatial_dataset(data, osmfish):
    spatial, reference = osmfish
    model = SpaIMImputer(device="cpu", **FAST).fit(data)
    fewer, _ = nsi.prepare(spatial[:100].copy(), reference, ["Vip"])
    with pytest.raises(InputError, match="trained on 3405 spatial cells"):
        model.predict(fewer)


def test_single_cluster_reference_is_refused(osmfish):
    spatial, reference = osmfish
    reference = reference.copy()
    reference.obs["type"] = "neuron"
    with pytest.raises(InputError, match="1 usable cluster"):
        nsi.impute(spatial, reference, "spaim", ["Vip"], device="cpu", cluster_key="type", **FAST)


def test_one_cell_clusters_are_dropped_with_a_warning(data):
    labels, _ = leiden_labels(data.reference, resolution=0.5, seed=0)
    obs = data.reference_obs.copy()
    obs["type"] = [f"c{v}" for v in labels]
    obs.iloc[0, obs.columns.get_loc("type")] = "lonely"
    obs.iloc[1, obs.columns.get_loc("type")] = np.nan  # unlabelled cells are ignored
    d = ImputeData(data.spatial, data.reference, data.reference_genes, data.shared_genes,
                              data.target_genes, data.spatial_obs_names, None, obs)
    with pytest.warns(UserWarning, match="fewer than 2 cells are dropped"):
        model = SpaIMImputer(device="cpu", cluster_key="type", **FAST).fit(d)
    assert "lonely" not in model.cluster_names_
    assert model.n_clusters_ == len(set(labels)) and model.content_.shape == (33, len(set(labels)))


def test_bad_cluster_key_and_absent_gene(osmfish, data):
    spatial, reference = osmfish
    with pytest.raises(InputError, match="no obs column 'celltype'"):
        SpaIMImputer(device="cpu", cluster_key="celltype", **FAST).fit(data)
    with pytest.raises(InputError, match="not in the reference"):
        nsi.impute(spatial, reference, "spaim", ["NotAGene"], device="cpu", **FAST)


def test_cluster_means_match_numpy():
    rng = np.random.default_rng(0)
    X = rng.random((50, 7)).astype(np.float32)
    labels = rng.integers(-1, 3, 50)
    out = cluster_means(X, labels, 3, chunk=3)
    for k in range(3):
        np.testing.assert_allclose(out[k], X[labels == k].mean(0), rtol=1e-5)
    groups = np.repeat(np.arange(3), 40)
    blobs = (rng.normal(size=(120, 7)) + 6 * np.eye(3, 7)[groups]).astype(np.float32)
    clusters = reference_clusters(blobs, None, None, resolution=0.5, seed=0)
    assert clusters.n_clusters >= 3 and clusters.labels.shape == (120,)
    # each Leiden cluster lies within one blob
    assert all(len(set(groups[clusters.labels == k])) == 1 for k in range(clusters.n_clusters))


def test_leiden_needs_igraph_only_and_kmeans_without_it(monkeypatch):
    """scanpy's igraph flavour: the same Leiden labels when leidenalg cannot be imported (it is not a dependency);
    without python-igraph, seeded KMeans with a warning naming the package to install."""
    import sys
    import warnings

    from napari_spatial_impute import clustering

    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(3), 40)
    blobs = (rng.normal(size=(120, 7)) + 6 * np.eye(3, 7)[groups]).astype(np.float32)
    monkeypatch.setattr(clustering, "_CLUSTER_CACHE", {})
    before, how_before = leiden_labels(blobs, resolution=0.5, seed=0)
    monkeypatch.setattr(clustering, "_CLUSTER_CACHE", {})
    monkeypatch.setitem(sys.modules, "leidenalg", None)  # `import leidenalg` raises ImportError
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        labels, how = leiden_labels(blobs, resolution=0.5, seed=0)
    assert how == how_before and how.startswith("leiden (") and np.array_equal(labels, before)
    assert not [w for w in seen if "igraph" in str(w.message) or "KMeans" in str(w.message)]
    assert all(len(set(groups[labels == k])) == 1 for k in np.unique(labels))

    monkeypatch.setattr(clustering, "_CLUSTER_CACHE", {})
    monkeypatch.setitem(sys.modules, "igraph", None)
    with pytest.warns(UserWarning, match=r"igraph is not installed.*KMeans.*pip install igraph"):
        labels, how = leiden_labels(blobs, resolution=0.5, seed=0)
    assert how == "kmeans (igraph not installed)" and len(set(labels)) >= 2

def test_memory_estimate_and_refusal(data, monkeypatch):
    small = estimate_memory(3405, 40, 12, n_models=1)
    big = estimate_memory(1_000_000, 40, 12, n_models=1)
    assert 80 << 20 < small < 200 << 20  # ~5.8 M parameters × 5 copies
    assert big > 25 << 30  # ~1.5 G parameters: more than most machines hold
    assert estimate_memory(3405, 40, 12, n_models=3) > small
    monkeypatch.setattr(spaim_network, "available_memory", lambda device="cpu": 10 << 20)
    with pytest.raises(InputError, match="GiB"):
        SpaIMImputer(device="cpu", **FAST).fit(data)
    need = estimate_memory(3405, 33, 16, (64, 32), 16, 64, 1)
    monkeypatch.setattr(spaim_network, "available_memory", lambda device="cpu": int(need * 1.5))
    with pytest.warns(UserWarning, match="GiB free on cpu"):
        SpaIMImputer(device="cpu", **FAST).fit(data)


# --- the kNN anchor, content dropout and expected r (issue 13; benchmarks/spaim_generalisation.md) ----------

def test_anchor_weight_zero_is_the_knn_imputation(data):
    knn = nsi.get_method("knn")(k=30, expected_r=False, seed=0, device="cpu").fit(data).predict(data)
    for anchor in ("blend", "residual"):
        model = SpaIMImputer(device="cpu", anchor_weight=0.0, **{**FAST, "anchor": anchor})
        np.testing.assert_allclose(model.fit(data).predict(data), knn, rtol=1e-5, atol=1e-5)


def test_anchor_and_content_dropout_round_trip(data, tmp_path):
    params = {**FAST, "anchor": "blend", "content_dropout": 0.3, "expected_r": True}
    model = SpaIMImputer(seed=2, device="cpu", **params).fit(data)
    assert 0.0 <= model.anchor_weight_ <= 1.0 and model.expected_r_.shape == (3,)
    plain = SpaIMImputer(seed=2, device="cpu", **{**params, "content_dropout": 0.0}).fit(data)
    assert not np.array_equal(model.members_[0]["history"], plain.members_[0]["history"])  # dropout is used
    pred = model.predict(data)
    loaded = nsi.load_model(model.save(tmp_path / "spaim"), device="cpu")
    assert (loaded.content_dropout, loaded.anchor, loaded.anchor_weight_) == (0.3, "blend", model.anchor_weight_)
    np.testing.assert_array_equal(loaded.predict(), pred)
    np.testing.assert_array_equal(loaded.gene_annotations()["expected_r"], model.expected_r_)
    assert loaded.predict(data.with_targets(["Mfge8"])).shape == (3405, 1)  # any reference gene, anchored too
    with pytest.raises(InputError, match="content_dropout"):
        nsi.impute(*nsi.load_osmfish_sample(), "spaim", ["Vip"], device="cpu", content_dropout=1.5)


@pytest.fixture(scope="module")
def xenium3():
    return nsi.load_xenium_sample(with_truth=True)


def test_spaim_on_xenium_not_below_knn_and_expected_r_ranks_genes(xenium3):
    from scipy.stats import spearmanr

    from napari_spatial_impute.metrics import pearson_per_gene

    spatial, reference, truth = xenium3
    genes = list(truth.var_names)
    totals = np.asarray(spatial.X.sum(axis=1)).ravel()
    want = np.log1p(truth.X.toarray() * (np.median(totals) / np.maximum(totals, 1))[:, None])
    knn = nsi.impute(spatial, reference, "knn", genes, seed=0, device="cpu", expected_r=False)
    spaim = nsi.impute(spatial, reference, "spaim", genes, seed=0, device="cpu", **XENIUM_SMALL)
    r_knn = pearson_per_gene(want, np.asarray(knn.X))
    r = pearson_per_gene(want, np.asarray(spaim.X))
    assert np.median(r) >= np.median(r_knn) - 0.01
    info = json.loads(spaim.uns["napari_spatial_impute"]["model_info"])
    assert info["anchor"] == "blend" and 0.0 <= info["anchor_weight"] <= 1.0
    assert spearmanr(spaim.var["expected_r"].to_numpy(), r)[0] > XENIUM_RHO_FLOOR
