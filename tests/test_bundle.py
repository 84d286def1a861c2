"""The one model-bundle format: save → load_model → predict for all four models, atomic writes, checksums,
versions, and bundles written by 0.1.0 (tests/data/bundles_0.1.0)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import napari_spatial_impute as nsi
from napari_spatial_impute.errors import InputError
from napari_spatial_impute.models import ImputeData
from napari_spatial_impute.models.bundle import FORMAT, VERSION
from napari_spatial_impute.progress import run_to_end

OLD = Path(__file__).resolve().parent / "data" / "bundles_0.1.0"
GENES = [f"G{i}" for i in range(10)]
IMPUTERS = {
    "knn": dict(k=5),
    "stimpute": dict(k=5, gene_embeddings="none", rounds=1, ae_epochs=2, gnn_epochs=1, ae_round_epochs=1, hidden=8,
                     latent=8, reliability=False),
    "spaim": dict(cluster_key="cell_type", hidden=(16, 8), style_dim=4, epochs=2, n_models=1),
}


def problem(spatial=None, reference=None, coords=None) -> ImputeData:
    """The synthetic problem the 0.1.0 fixtures were made with (arrays from their expected.npz when given)."""
    import pandas as pd

    rng = np.random.default_rng(0)
    ref = np.log1p(rng.poisson(3.0, size=(60, 10)).astype(np.float32)) if reference is None else reference
    sp = np.log1p(rng.poisson(3.0, size=(25, 6)).astype(np.float32)) if spatial is None else spatial
    obs = pd.DataFrame({"cell_type": np.repeat(["a", "b", "c"], 20)}, index=[f"r{i}" for i in range(60)])
    xy = rng.uniform(0, 100, size=(25, 2)) if coords is None else coords
    return ImputeData(sp, ref, GENES, GENES[:6], GENES[6:], [f"s{i}" for i in range(25)], xy, obs)


@pytest.mark.parametrize("method", list(IMPUTERS))
def test_imputer_round_trip_through_the_one_format(method, tmp_path):
    data = problem()
    model = nsi.get_method(method)(seed=0, device="cpu", **IMPUTERS[method]).fit(data)
    pred = model.predict(data)
    path = model.save(tmp_path / method)
    cfg = json.loads((path / "config.json").read_text())
    assert (cfg["format"], cfg["version"], cfg["method"]) == (FORMAT, VERSION, method)
    assert cfg["genes"] == {"shared": GENES[:6], "target": GENES[6:]} and "constants" in cfg
    assert set(cfg["checksums"]) == {"weights.pt"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [method]  # no .partial left behind
    loaded = nsi.load_model(path, device="cpu")
    assert type(loaded) is type(model)
    np.testing.assert_allclose(loaded.predict(data), pred, rtol=1e-5, atol=1e-6)


def test_stco_round_trip_through_the_one_format(tmp_path):
    from napari_spatial_impute.models.stco import STco

    old = nsi.load_model(OLD / "stco_torchscript" / "bundle", device="cpu")
    with np.load(OLD / "stco_torchscript" / "expected.npz") as z:
        patches = z["patches"]
    pred = run_to_end(old.predict_patches_steps(patches))
    path = old.save(tmp_path / "stco")
    cfg = json.loads((path / "config.json").read_text())
    assert (cfg["format"], cfg["version"], cfg["method"]) == (FORMAT, VERSION, "stco")
    assert set(cfg["checksums"]) == {"weights.pt", "bank.npz", "backbone.torchscript.pt"}
    loaded = nsi.load_model(path, device="cpu")
    assert isinstance(loaded, STco) and loaded.genes == old.genes and loaded.top_genes == old.top_genes
    np.testing.assert_array_equal(run_to_end(loaded.predict_patches_steps(patches)), pred)


@pytest.mark.parametrize("method", list(IMPUTERS))
def test_imputer_bundles_of_0_1_0_load_and_predict_the_same(method):
    with np.load(OLD / method / "expected.npz") as z:
        data = problem(z["spatial"], z["reference"], z["coords"])
        expected = z["prediction"]
    model = nsi.load_model(OLD / method / "bundle", device="cpu")
    assert model.method == method and model.target_genes_ == GENES[6:]
    np.testing.assert_allclose(model.predict(data), expected, rtol=1e-5, atol=1e-5)
    assert isinstance(nsi.Imputer.load(OLD / method / "bundle"), type(model))


@pytest.mark.parametrize("name", ["stco_lite0", "stco_torchscript"])
def test_stco_bundles_of_0_1_0_load_and_predict_the_same(name):
    from napari_spatial_impute.models.stco import STco
    from napari_spatial_impute.models.stco.encoders import lite_weights_path

    if name == "stco_lite0" and lite_weights_path("lite0") is None:
        with pytest.raises(InputError, match="EfficientNet-Lite0"):
            nsi.load_model(OLD / name / "bundle", device="cpu")
        return
    model = STco.load(OLD / name / "bundle", device="cpu")
    assert model.genes == ["ERBB2", "ACTB", "GAPDH", "MGP"] and len(model.top_genes) == 4
    with np.load(OLD / name / "expected.npz") as z:
        np.testing.assert_allclose(run_to_end(model.predict_patches_steps(z["patches"])), z["prediction"],
                                   rtol=1e-5, atol=1e-5)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_newer_versions_and_damaged_files_fail_clearly(tmp_path):
    model = nsi.get_method("knn")(k=5, device="cpu").fit(problem())
    path = model.save(tmp_path / "m")
    with pytest.raises(InputError, match="exists"):
        model.save(path)
    model.save(path, overwrite=True)
    newer = _copy(path, tmp_path / "newer")
    cfg = json.loads((newer / "config.json").read_text())
    (newer / "config.json").write_text(json.dumps({**cfg, "version": VERSION + 1}))
    with pytest.raises(InputError, match=f"version {VERSION + 1}"):
        nsi.load_model(newer)
    legacy_newer = _copy(OLD / "knn" / "bundle", tmp_path / "legacy_newer")
    cfg = json.loads((legacy_newer / "config.json").read_text())
    (legacy_newer / "config.json").write_text(json.dumps({**cfg, "bundle_version": 7}))
    with pytest.raises(InputError, match="version 7"):
        nsi.load_model(legacy_newer)
    damaged = _copy(path, tmp_path / "damaged")
    raw = bytearray((damaged / "weights.pt").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (damaged / "weights.pt").write_bytes(bytes(raw))
    with pytest.raises(InputError, match="weights.pt of the bundle .* is damaged"):
        nsi.load_model(damaged)
    with pytest.raises(InputError, match="not a model bundle"):
        nsi.load_model(tmp_path)
    with pytest.raises(InputError, match="predicts genes from H&E"):
        nsi.impute(*_tiny_anndata(), method="stco")


def test_a_failed_write_leaves_nothing(tmp_path):
    from napari_spatial_impute.models.bundle import write_bundle

    def broken(folder: Path) -> None:
        (folder / "weights.pt").write_bytes(b"x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_bundle(tmp_path / "m", "knn", {}, broken)
    assert list(tmp_path.iterdir()) == []


def _tiny_anndata():
    import anndata as ad

    rng = np.random.default_rng(0)
    spatial = ad.AnnData(rng.poisson(2.0, (20, 4)).astype(np.float32))
    spatial.var_names = GENES[:4]
    spatial.obsm["spatial"] = rng.uniform(0, 10, (20, 2))
    reference = ad.AnnData(rng.poisson(2.0, (30, 6)).astype(np.float32))
    reference.var_names = GENES[:6]
    return spatial, reference
