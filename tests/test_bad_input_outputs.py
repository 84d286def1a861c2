"""Family 2 — tracebacks instead of messages: unwritable outputs, bad method parameters, damaged model bundles,
and interrupted runs. Each is one message (CLI: exit 2 / 130, no traceback; API: InputError), nothing written,
no partial file, the inputs untouched."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from _badinput import checksum, cli
from napari_spatial_impute.errors import InputError

OLD = Path(__file__).resolve().parent / "data" / "bundles_0.1.0"


@pytest.fixture
def files(osmfish, tmp_path):
    spatial, reference = osmfish
    d = tmp_path / "in"
    d.mkdir()
    spatial.write_h5ad(d / "spatial.h5ad")
    reference.write_h5ad(d / "reference.h5ad")
    return d / "spatial.h5ad", d / "reference.h5ad"


def _impute(files, *extra):
    """The CLI on the bundled osmFISH pair with kNN (fast; a later --method in ``extra`` wins)."""
    return ["impute", files[0], files[1], "--genes", "Gad2", "--quiet", "--method", "knn", *extra]


# ---- outputs that cannot be written ---------------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["--out", "--metrics"])
def test_output_under_a_file_is_refused_before_any_work(files, tmp_path, capsys, flag):
    sums = [checksum(p) for p in files]
    target = files[0] / "o.json"  # a "folder" that is a file
    extra = ["--out", target] if flag == "--out" else ["--cv", "2", "--metrics", target]
    rc, err = cli(_impute(files, *extra), capsys)
    assert rc == 2 and "is a file, not a folder" in err and "Traceback" not in err
    assert [checksum(p) for p in files] == sums


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused(files, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc, err = cli(_impute(files, "--out", ro / "o.h5ad"), capsys)
        assert rc == 2 and "read-only" in err
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("flag", ["--out", "--metrics"])
def test_read_only_folder_is_refused_even_as_root(files, tmp_path, capsys, monkeypatch, flag):
    """The same refusal where the test runs as root (root writes into 0o555 folders, so the check above is
    skipped): os.access reports the folder read-only, as it does for a normal user. Refused before the inputs are
    read, one message naming the folder and the fix, nothing written, the inputs unchanged."""
    import anndata as ad

    import napari_spatial_impute.io.anndata_io as io
    from napari_spatial_impute import atomic
    from napari_spatial_impute.io import write_h5ad_safely

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    real_access = os.access
    monkeypatch.setattr(atomic.os, "access", lambda path, mode, *a, **k: False if Path(path) == ro and mode & os.W_OK
                        else real_access(path, mode, *a, **k))
    monkeypatch.setattr(io, "_read", lambda *a, **k: pytest.fail("inputs were read before the output was checked"))
    sums = [checksum(p) for p in files]
    extra = ["--out", ro / "o.h5ad"] if flag == "--out" else ["--cv", "2", "--metrics", ro / "cv.json"]
    try:
        rc, err = cli(_impute(files, *extra), capsys)
        assert rc == 2 and "Traceback" not in err, err
        assert f"the folder {ro} is read-only" in err and "choose a folder you can write to" in err
        assert list(ro.iterdir()) == []  # no output, no .partial file
        assert [checksum(p) for p in files] == sums
        with pytest.raises(InputError, match="read-only"):  # the API's writer: the same check
            write_h5ad_safely(ad.AnnData(np.zeros((2, 2), np.float32)), ro / "api.h5ad")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)

@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied"), OSError(28, "No space left on device")])
def test_a_write_failing_midway_leaves_no_partial_file(files, tmp_path, capsys, monkeypatch, error):
    """h5py's PermissionError / a full disk while the file is being written: one message, no partial file."""
    import anndata as ad

    def failing(self, path, **kw):
        Path(path).write_bytes(b"half a file")
        raise error

    monkeypatch.setattr(ad.AnnData, "write_h5ad", failing)
    out = tmp_path / "out"
    out.mkdir()
    rc, err = cli(_impute(files, "--out", out / "o.h5ad"), capsys)
    assert rc == 2 and "Could not write" in err and "nothing was written" in err
    assert list(out.iterdir()) == []


def test_metrics_json_failing_midway_leaves_nothing(tmp_path, monkeypatch):
    from napari_spatial_impute.cli.common import write_json

    def failing(self, text, *a, **k):
        Path.write_bytes(self, b"{")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(InputError, match="No space left"):
        write_json({"a": 1}, tmp_path / "m.json")
    assert list(tmp_path.iterdir()) == []


def test_metrics_with_nan_are_written_as_null(tmp_path):
    from napari_spatial_impute.cli.common import write_json

    write_json({"pcc": float("nan"), "per_gene": {"A": {"r": float("inf")}}}, tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == {"pcc": None, "per_gene": {"A": {"r": None}}}


def test_bundle_and_zarr_writers_refuse_unwritable_destinations(tmp_path, osmfish):
    from napari_spatial_impute.io.results import ResultWriter
    from napari_spatial_impute.models.bundle import write_bundle

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        write_bundle(blocker / "model", "knn", {}, lambda folder: None)
    import pandas as pd

    with pytest.raises(InputError, match=r"Cannot write the result store .*r\.zarr: .*file is a file, not a folder"):
        ResultWriter(blocker / "r.zarr", pd.DataFrame(index=["a"]), pd.DataFrame(index=["g"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


# ---- method parameters --------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra,words", [
    (["--param", "kk=3"], "'kk' is not a parameter of knn"),
    (["--param", "k=abc"], "k='abc' is not valid"),
    (["--param", "k=2.5"], "k=2.5 is not valid"),
    (["--param", "k=0"], "k=0 is not valid"),
    (["--param", "weighting=cosine"], "similarity | uniform"),
    (["--seed", "-1"], "seed -1 is not valid"),
    (["--param", "cluster_key=cell_type"], "it is a parameter of spaim"),
    (["--cluster-key", "cell_type"], "it is a parameter of spaim"),
    (["--param", "k"], "not KEY=VALUE"),
    (["--param", "=3"], "no valid name"),
    (["--param", "k=3", "--param", "k=4"], "given twice"),
    (["--method", "stimpute", "--param", "alpha=2"], "alpha=2 is not valid"),
    (["--method", "spaim", "--param", "hidden=[512]"], "hidden=[512] is not valid"),
])
def test_cli_parameters_are_checked_before_reading(files, tmp_path, capsys, monkeypatch, extra, words):
    import napari_spatial_impute.io.anndata_io as io

    monkeypatch.setattr(io, "_read", lambda *a, **k: pytest.fail("inputs were read before the parameters were "
                                                                 "checked"))
    rc, err = cli(_impute(files, "--out", tmp_path / "o.h5ad", *extra), capsys)
    assert rc == 2 and words in err and "Traceback" not in err, err
    assert not (tmp_path / "o.h5ad").exists()


@pytest.mark.parametrize("method", ["knn", "stimpute", "spaim", "stco"])
def test_the_error_lists_the_valid_parameters(method):
    from napari_spatial_impute.models.params_spec import param_specs, validate_params

    with pytest.raises(InputError) as info:
        validate_params(method, {"no_such_parameter": 1})
    names = [n for n in param_specs(method) if n != "seed"]
    assert names and all(n in str(info.value) for n in names)


def test_a_forced_predictor_that_the_parameters_leave_out_is_refused():
    from napari_spatial_impute.models.params_spec import validate_params

    with pytest.raises(InputError, match="krr_alpha=0"):
        validate_params("stco", {"predictor": "feature_krr", "krr_alpha": 0})
    assert validate_params("stco", {"predictor": "feature_krr"})["predictor"] == "feature_krr"


def test_api_and_histology_check_parameters_first(osmfish):
    import napari_spatial_impute as nsi

    spatial, reference = osmfish
    with pytest.raises(InputError, match="not a parameter of knn"):
        nsi.impute(spatial, reference, "knn", ["Gad2"], device="cpu", cluster_key="x")
    with pytest.raises(InputError, match="seed"):
        nsi.cross_validate(spatial, reference, "knn", 2, seed=-5, device="cpu")
    with pytest.raises(InputError, match="tta=0 is not valid"):
        nsi.train_histology([], tta=0)


# ---- damaged model bundles ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def knn_bundle(tmp_path_factory):
    import napari_spatial_impute as nsi
    from test_bundle import problem

    model = nsi.get_method("knn")(k=5, device="cpu").fit(problem())
    return model.save(tmp_path_factory.mktemp("b") / "model")


def _damage(src: Path, dst: Path, how: str) -> Path:
    shutil.copytree(src, dst)
    cfg_path = dst / "config.json"
    cfg = json.loads(cfg_path.read_text())
    if how == "truncated_weights":
        raw = (dst / "weights.pt").read_bytes()
        (dst / "weights.pt").write_bytes(raw[: len(raw) // 3])
    elif how == "truncated_config":
        cfg_path.write_text(cfg_path.read_text()[:120])
    elif how == "edited_param":
        cfg["params"]["k"] = 7
        cfg_path.write_text(json.dumps(cfg))
    elif how == "edited_wrong_type":
        cfg["params"]["k"] = "many"
        cfg.pop("config_sha256", None)
        cfg_path.write_text(json.dumps(cfg))
    elif how == "missing_weights":
        (dst / "weights.pt").unlink()
    elif how == "missing_bank":
        (dst / "bank.npz").unlink()
    elif how == "checksums_removed":
        cfg.pop("checksums")
        cfg.pop("config_sha256", None)
        cfg_path.write_text(json.dumps(cfg))
    elif how == "not_json_object":
        cfg_path.write_text("[1, 2, 3]")
    return dst


@pytest.mark.parametrize("how,words", [
    ("truncated_weights", "weights.pt of the bundle .* is damaged"),
    ("truncated_config", "damaged: config.json cannot be read"),
    ("edited_param", "was changed after the model was saved"),
    ("edited_wrong_type", "parameters are not valid"),
    ("missing_weights", "weights.pt of the bundle .* is missing"),
    ("checksums_removed", "lists no file checksums"),
    ("not_json_object", "not a napari-spatial-impute model bundle"),
])
def test_damaged_imputer_bundles_are_named(knn_bundle, tmp_path, how, words):
    import napari_spatial_impute as nsi

    bad = _damage(knn_bundle, tmp_path / how, how)
    before = checksum(bad)
    with pytest.raises(InputError, match=words):
        nsi.load_model(bad, device="cpu")
    assert checksum(bad) == before


@pytest.mark.parametrize("how,words", [("missing_bank", "bank.npz"), ("truncated_weights", "damaged"),
                                       ("edited_wrong_type", "damaged")])
def test_damaged_histology_bundles_exit_2(tmp_path, capsys, how, words):
    bad = _damage(OLD / "stco_lite0" / "bundle", tmp_path / "model", how)
    if how == "edited_wrong_type":  # the 0.1.0 STco config has no k: break top_k instead
        cfg = json.loads((bad / "config.json").read_text())
        cfg["params"]["top_k"] = "many"
        (bad / "config.json").write_text(json.dumps(cfg))
    img = tmp_path / "he.png"
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(img)
    rc, err = cli(["histology", "predict", bad, "--image", img, "--out", tmp_path / "p.h5ad", "--quiet",
                   "--device", "cpu"], capsys)
    assert rc == 2 and words in err and "Traceback" not in err
    assert not (tmp_path / "p.h5ad").exists()


# ---- interrupted runs ---------------------------------------------------------------------------------------
def _interrupting_bar(stage: str):
    def factory(quiet, desc):
        def callback(event):
            if event.stage == stage:
                raise KeyboardInterrupt
        return callback, lambda: None
    return factory


@pytest.mark.parametrize("out_name,stage", [("o.h5ad", "predict"), ("o.zarr", "predict"), ("o.zarr", "fit")])
def test_ctrl_c_leaves_no_partial_output(files, tmp_path, capsys, monkeypatch, out_name, stage):
    import napari_spatial_impute.cli.impute as cli_impute

    monkeypatch.setattr(cli_impute, "progress_bar", _interrupting_bar(stage))
    out = tmp_path / "out"
    out.mkdir()
    from napari_spatial_impute.cli import main

    rc = main([str(a) for a in ["impute", *files, "--genes", "Gad2", "--out", out / out_name, "--device", "cpu",
                                "--method", "knn"]])
    assert rc == 130 and "nothing written" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_ctrl_c_while_the_file_is_written_leaves_nothing(files, tmp_path, capsys, monkeypatch):
    import anndata as ad

    def interrupted(self, path, **kw):
        Path(path).write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(ad.AnnData, "write_h5ad", interrupted)
    out = tmp_path / "out"
    out.mkdir()
    rc, err = cli(_impute(files, "--out", out / "o.h5ad"), capsys)
    assert rc == 130 and list(out.iterdir()) == []
