"""Out-of-core results: a zarr-backed AnnData written block by block, atomically."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from napari_spatial_impute.errors import InputError
from napari_spatial_impute.io.results import ResultWriter, choose_cell_chunk, open_result, read_gene, zarr_support

needs_zarr = pytest.mark.skipif(zarr_support() is not None, reason=f".zarr results unavailable: {zarr_support()}")


def _frames(n=5000, g=37):
    obs = pd.DataFrame({"cell_type": pd.Categorical(np.arange(n) % 3)}, index=[f"c{i}" for i in range(n)])
    var = pd.DataFrame({"expected_r": np.linspace(0, 1, g)}, index=[f"G{i}" for i in range(g)])
    X = np.random.default_rng(0).random((n, g), dtype=np.float32)
    return obs, var, X


@needs_zarr
def test_written_block_by_block_reads_back_as_anndata(tmp_path):
    obs, var, X = _frames()
    xy = np.random.default_rng(1).random((len(obs), 2))
    path = tmp_path / "result.zarr"
    with ResultWriter(path, obs, var, obsm={"spatial": xy}, uns={"napari_spatial_impute": {"method": "knn"}},
                      cell_chunk=1200) as w:
        for start in range(0, len(obs), 1200):
            rows = slice(start, min(len(obs), start + 1200))
            w.write(rows, X[rows])
    assert not (tmp_path / "result.zarr.partial").exists()
    back = ad.read_zarr(path)
    np.testing.assert_array_equal(back.X, X)
    np.testing.assert_array_equal(back.obsm["spatial"], xy)
    assert list(back.obs_names) == list(obs.index) and back.uns["napari_spatial_impute"]["method"] == "knn"
    np.testing.assert_array_equal(read_gene(path, "G5"), X[:, 5])
    lazy, values = open_result(path)
    assert lazy.n_obs == len(obs) and values.shape == X.shape
    # X is the store seen lazily (dask): what a scanpy user slices, plots or turns into a DataFrame
    assert type(lazy.X).__module__.startswith("dask")
    np.testing.assert_array_equal(lazy[:, "G5"].X.compute().ravel(), X[:, 5])
    np.testing.assert_array_equal(lazy[10:20].to_df().to_numpy(), X[10:20])
    with pytest.raises(InputError, match="not in the result"):
        read_gene(path, "nope")


@needs_zarr
def test_failure_midway_leaves_no_output(tmp_path):
    obs, var, X = _frames(1000, 5)
    path = tmp_path / "result.zarr"
    with pytest.raises(KeyboardInterrupt):
        with ResultWriter(path, obs, var, cell_chunk=300) as w:
            w.write(slice(0, 300), X[:300])
            raise KeyboardInterrupt  # a cancel / Ctrl-C in the middle of a run
    assert not path.exists() and not (tmp_path / "result.zarr.partial").exists()


@needs_zarr
def test_incomplete_result_is_not_published(tmp_path):
    obs, var, X = _frames(1000, 5)
    w = ResultWriter(tmp_path / "r.zarr", obs, var, cell_chunk=500)
    w.write(slice(0, 500), X[:500])
    with pytest.raises(RuntimeError, match="only 2500 of 5000 values"):
        w.close()
    assert not (tmp_path / "r.zarr").exists()


@needs_zarr
def test_existing_output_and_missing_folder_refused(tmp_path):
    obs, var, _ = _frames(10, 2)
    (tmp_path / "there.zarr").mkdir()
    with pytest.raises(InputError, match="already exists"):
        ResultWriter(tmp_path / "there.zarr", obs, var)
    with pytest.raises(InputError, match="does not exist"):
        ResultWriter(tmp_path / "missing" / "r.zarr", obs, var)


def test_cell_chunk_bounds_memory():
    assert choose_cell_chunk(20_000, 512 << 20) * 20_000 * 4 <= 512 << 20
    assert choose_cell_chunk(10) == 262_144


@needs_zarr
def test_disk_full_midway_names_the_problem_and_removes_the_partial_output(tmp_path, monkeypatch):
    import errno

    obs, var, X = _frames(1000, 5)
    path = tmp_path / "r.zarr"
    w = ResultWriter(path, obs, var, cell_chunk=500)
    w.write(slice(0, 500), X[:500])

    class Full:
        def __setitem__(self, key, value):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(w, "X", Full())
    with pytest.raises(InputError, match="No space left on device.*partial output was removed"):
        w.write(slice(500, 1000), X[500:])
    assert not path.exists() and not (tmp_path / "r.zarr.partial").exists()


def test_missing_zarr_support_is_a_clear_error(monkeypatch, tmp_path):
    from napari_spatial_impute.io import results

    monkeypatch.setattr(results, "zarr_support", lambda: "anndata 0.11.0 cannot write zarr 3 stores (needs ≥ 0.12)")
    obs, var, _ = _frames(10, 2)
    with pytest.raises(InputError, match=r"need zarr ≥ 3 and anndata ≥ 0.12.*pip install"):
        ResultWriter(tmp_path / "r.zarr", obs, var)
    assert not list(tmp_path.iterdir())


@needs_zarr
def test_close_merges_provenance_into_the_uns_given_at_creation(tmp_path):
    obs, var, X = _frames(100, 3)
    path = tmp_path / "r.zarr"
    w = ResultWriter(path, obs, var, uns={"spatial_units": "um", "sample": {"source": "xenium"},
                                          "napari_spatial_impute": {"stale": 1}}, cell_chunk=100)
    w.write(slice(0, 100), X)
    w.close(uns={"napari_spatial_impute": {"method": "knn"}})
    back = ad.read_zarr(path)
    assert back.uns["spatial_units"] == "um" and back.uns["sample"]["source"] == "xenium"
    assert back.uns["napari_spatial_impute"] == {"method": "knn"}  # the provenance key replaced, not merged into
