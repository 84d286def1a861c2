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
