"""Dask prediction on a LocalCluster with 2 workers gives exactly the single-process result."""

import numpy as np
import pytest

import napari_spatial_impute as nsi

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_dask_matches_single_process(osmfish, client, tmp_path):
    from napari_spatial_impute.distributed import impute_dask

    spatial, reference = osmfish
    genes = ["Gad2", "Vip", "Plp1"]
    single = nsi.impute(spatial, reference, "knn", genes, seed=0, device="cpu")
    out = impute_dask(spatial, reference, "knn", genes, scheduler=client, chunk_size=500, seed=0,
                      out_zarr=str(tmp_path / "pred.zarr"))
    assert out.uns["napari_spatial_impute"]["chunks"] == 7
    assert out.uns["napari_spatial_impute"]["n_workers"] == 2
    assert list(out.obs_names) == list(single.obs_names) and list(out.var_names) == genes
    np.testing.assert_array_equal(out.X, single.X)
    gathered = impute_dask(spatial, reference, "knn", genes, scheduler=client, chunk_size=1000, seed=0)
    np.testing.assert_array_equal(gathered.X, single.X)


def test_dask_bad_address_is_a_clear_error(osmfish, tmp_path):
    from napari_spatial_impute.distributed import impute_dask
    from napari_spatial_impute.errors import InputError

    spatial, reference = osmfish
    with pytest.raises(InputError, match="Dask scheduler"):
        impute_dask(spatial, reference, "knn", ["Gad2"], scheduler="tcp://127.0.0.1:1", connect_timeout="2s")


def test_cli_dask_local(sample_paths, tmp_path):
    import anndata as ad

    from napari_spatial_impute.cli import main

    sp, ref = sample_paths
    out = tmp_path / "o.h5ad"
    rc = main(["impute", str(sp), str(ref), "--method", "knn", "--genes", "Gad2,Vip", "--out", str(out),
               "--dask", "local:2",
               "--chunk-size", "1000", "--quiet"])
    assert rc == 0
    single = nsi.impute(ad.read_h5ad(sp), ad.read_h5ad(ref), "knn", ["Gad2", "Vip"], device="cpu")
    np.testing.assert_array_equal(ad.read_h5ad(out).X, single.X)


def test_dask_refuses_per_slide_model(osmfish):
    from napari_spatial_impute.distributed import impute_dask
    from napari_spatial_impute.errors import InputError

    spatial, reference = osmfish
    with pytest.raises(InputError, match="whole slide"):
        impute_dask(spatial, reference, "spaim", ["Gad2"], scheduler="local:1")
    with pytest.raises(InputError, match="chunk_size 0"):  # the API refuses it too, not only the CLI
        impute_dask(spatial, reference, "knn", ["Gad2"], scheduler="local:1", chunk_size=0)


def test_auto_under_dask_considers_only_methods_that_split_over_cells(osmfish):
    """``--dask`` with the default method (auto) fitted for ~20 s, then refused when auto chose SpaIM (per slide):
    under Dask auto considers only the candidates whose prediction splits over cells, and a per-slide one named
    by the user is refused before any work."""
    from napari_spatial_impute.distributed import _splittable_candidates, impute_dask
    from napari_spatial_impute.errors import InputError

    assert _splittable_candidates(None) == "knn,stimpute"
    assert _splittable_candidates("knn,stimpute") == "knn,stimpute"
    spatial, reference = osmfish
    with pytest.raises(InputError, match=r"auto's candidates \['spaim'\] predict a whole slide"):
        impute_dask(spatial, reference, "auto", ["Gad2"], scheduler="local:1", candidates="knn,spaim")


@pytest.fixture(scope="module")
def xenium():
    return nsi.load_xenium_sample()


def test_dask_takes_the_same_inputs_targets_and_plan_as_impute(xenium, client, tmp_path, monkeypatch):
    """reference_values / n_top_genes reach prepare; out='x.zarr' is written (values equal the single run)."""
    import anndata as ad

    from napari_spatial_impute.api import plan
    from napari_spatial_impute.distributed import impute_dask
    from napari_spatial_impute.errors import InputError
    from test_reference_layouts import _log_cp10k

    spatial, reference = xenium
    logged = reference.copy()
    logged.X = _log_cp10k(reference.X)  # log-only: needs reference_values="log1p"
    single = nsi.impute(spatial, logged, "knn", seed=0, device="cpu", n_top_genes=5, reference_values="log1p")
    path = tmp_path / "r.zarr"
    events = []
    lazy = impute_dask(spatial, logged, "knn", scheduler=client, chunk_size=3000, seed=0, n_top_genes=5,
                       reference_values="log1p", out=str(path), callback=events.append)
    assert any(e.stage == "plan" and "7,621 cells × 5 genes" in e.message for e in events)
    back = ad.read_zarr(path)
    assert list(back.var_names) == list(single.var_names) and lazy.n_vars == 5
    np.testing.assert_allclose(back.X, single.X, rtol=1e-5, atol=1e-6)
    assert back.uns["spatial_units"] == "um" and back.uns["napari_spatial_impute"]["chunks"] == 3
    with pytest.raises(InputError, match="no raw counts"):
        impute_dask(spatial, logged, "knn", scheduler=client, n_top_genes=5)
    monkeypatch.setattr(plan, "available_memory_bytes", lambda: 64 << 20)
    with pytest.raises(InputError, match="--out RESULT.zarr"):  # refused before any cluster work
        impute_dask(spatial, reference, "knn", scheduler="tcp://127.0.0.1:1", connect_timeout="2s", all_genes=True)


def test_cli_dask_zarr_out_is_written(client, tmp_path, capsys):
    import anndata as ad

    from napari_spatial_impute.cli import main
    from napari_spatial_impute.datasets import XENIUM_DIR, sample_path

    sp, ref = (str(sample_path(n, XENIUM_DIR)) for n in ("spatial.h5ad", "reference.h5ad"))
    out = tmp_path / "x.zarr"  # joins the module's cluster by address (no second cluster to start; local:N: above)
    args = ["impute", sp, ref, "--method", "knn", "--n-top-genes", "4", "--out", str(out),
            "--dask", client.scheduler.address, "--chunk-size", "4000", "--quiet", "--device", "cpu"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "written to disk chunk by chunk" in captured.err and f"→ {out}" in captured.out
    back = ad.read_zarr(out)
    single = nsi.impute(ad.read_h5ad(sp), ad.read_h5ad(ref), "knn", n_top_genes=4, device="cpu")
    assert list(back.var_names) == list(single.var_names)
    np.testing.assert_allclose(back.X, single.X, rtol=1e-5, atol=1e-6)  # cell chunks: float32 summation order
    assert main(args) == 2 and "already exists" in capsys.readouterr().err  # refused up front, nothing replaced
