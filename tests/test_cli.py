import json

import anndata as ad
import numpy as np
import pytest

from napari_spatial_impute.cli import main
from test_knn import KNN_PCC_MEDIAN_FLOOR

REQUIRED_KEYS = ["method", "n_genes", "n_cells", "seconds", "pcc_median", "pcc_mean", "spearman_median",
                 "ssim_median", "rmse_median", "js_median", "css_cell", "css_gene", "mse_gene", "per_gene"]


def test_cli_cv_metrics_json(sample_paths, tmp_path):
    sp, ref = sample_paths
    out = tmp_path / "metrics.json"
    rc = main(["impute", str(sp), str(ref), "--method", "knn", "--cv", "5", "--metrics", str(out), "--quiet"])
    assert rc == 0
    m = json.loads(out.read_text())
    for key in REQUIRED_KEYS:
        assert key in m
    assert m["method"] == "knn" and m["n_genes"] == 33 and m["n_cells"] == 3405
    # the same 5-fold kNN CV as test_knn (measured median r 0.207); a constant / reference-mean predictor gives 0
    assert m["pcc_median"] > KNN_PCC_MEDIAN_FLOOR
    for key in REQUIRED_KEYS[3:-1]:
        assert np.isfinite(m[key]), key
    assert len(m["per_gene"]) == 33
    assert all(np.isfinite(v) for g in m["per_gene"].values() for v in g.values())


def test_cli_impute_named_genes_writes_h5ad(sample_paths, tmp_path):
    sp, ref = sample_paths
    out = tmp_path / "out.h5ad"
    rc = main(["impute", str(sp), str(ref), "--method", "knn", "--genes", "gad2,Vip", "--out", str(out),
               "--seed", "0", "--device", "auto", "--quiet"])
    assert rc == 0
    res = ad.read_h5ad(out)
    src = ad.read_h5ad(sp)
    assert list(res.var_names) == ["Gad2", "Vip"]
    assert list(res.obs_names) == list(src.obs_names)
    np.testing.assert_array_equal(res.obsm["spatial"], src.obsm["spatial"])
    assert np.isfinite(res.X).all() and res.X.std(0).min() > 0
    # a second run must not overwrite
    assert main(["impute", str(sp), str(ref), "--genes", "Vip", "--out", str(out), "--quiet"]) == 2


def _write(adata, path):
    adata.write_h5ad(path)
    return str(path)


@pytest.fixture
def bad_inputs(osmfish, tmp_path):
    spatial, reference = osmfish
    no_common = spatial.copy()
    no_common.var_names = [f"X{i}" for i in range(no_common.n_vars)]
    no_xy = spatial.copy()
    del no_xy.obsm["spatial"]
    nan = spatial.copy()
    nan.X = nan.X.copy()
    nan.X[0, 0] = np.nan
    empty = tmp_path / "empty.h5ad"
    empty.write_bytes(b"")
    return {
        "share no gene": _write(no_common, tmp_path / "nocommon.h5ad"),
        "obsm['spatial'] is missing": _write(no_xy, tmp_path / "noxy.h5ad"),
        "NaN": _write(nan, tmp_path / "nan.h5ad"),
        "empty": str(empty),
    }


@pytest.mark.parametrize("problem", ["share no gene", "obsm['spatial'] is missing", "NaN", "empty"])
def test_cli_bad_input_clear_error_nothing_written(problem, bad_inputs, sample_paths, tmp_path, capsys):
    _, ref = sample_paths
    out, met = tmp_path / "o.h5ad", tmp_path / "m.json"
    rc = main(["impute", bad_inputs[problem], str(ref), "--genes", "Gad2", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc != 0
    assert problem in err and "Fix:" in err
    assert "Traceback" not in err
    assert not out.exists() and not met.exists()
    assert not list(tmp_path.glob("*.partial"))


def test_cli_unknown_method(sample_paths, tmp_path, capsys):
    sp, ref = sample_paths
    rc = main(["impute", str(sp), str(ref), "--method", "magic", "--cv", "5", "--metrics", str(tmp_path / "m.json")])
    assert rc == 2 and "Unknown method" in capsys.readouterr().err


def test_impute_reads_an_instrument_folder_as_the_spatial_input(tmp_path, capsys):
    """``impute XENIUM_FOLDER REFERENCE``: the cells of a real Xenium output folder (36,602 × 248, read without
    its images, transcripts or boundaries) are cross-validated as an .h5ad of them would be; a folder that is no
    instrument output is named with what to give."""
    from conftest import shared_dataset
    from napari_spatial_impute.datasets import sample_path
    from napari_spatial_impute.io.detect import read_cells

    folder = shared_dataset("xenium_mouse_brain_ctx_hp")
    reference = str(sample_path("reference.h5ad", "data/xenium_mouse_brain"))
    out = tmp_path / "m.json"
    assert main(["impute", str(folder), reference, "--method", "knn", "--cv", "2", "--metrics", str(out),
                 "--quiet"]) == 0
    m = json.loads(out.read_text())
    assert m["n_cells"] == 36_602 and m["n_genes"] == 248 and m["pcc_median"] > 0.5
    cells = read_cells(folder)
    assert cells.n_obs == 36_602 and cells.obsm["spatial"].shape == (36_602, 2)
    (tmp_path / "notes").mkdir()
    assert main(["impute", str(tmp_path / "notes"), reference, "--method", "knn", "--cv", "2", "--metrics",
                 str(tmp_path / "n.json"), "--quiet"]) == 2
    assert "neither an .h5ad nor an instrument's output folder" in capsys.readouterr().err


def test_spot_sections_as_spatial_input_leave_their_h_and_e_undecoded(monkeypatch):
    """``read_cells`` on a legacy-ST section (her2st C6) gives its 178 spots without decoding its 10k × 9k H&E
    (imputation never looks at it: 3.0 s / 1.06 GB before, 0.95 s / 0.24 GB after on this machine)."""
    import napari_spatial_impute.io.images as images
    from conftest import shared_dataset
    from napari_spatial_impute.io.detect import read_cells

    def refuse(*_a, **_k):
        raise AssertionError("the H&E was decoded")

    monkeypatch.setattr(images, "read_plain_image", refuse)
    cells = read_cells(shared_dataset("her2st_subset") / "ST-cnts" / "C6.tsv.gz")
    assert cells.n_obs == 178 and cells.obsm["spatial"].shape == (178, 2)
