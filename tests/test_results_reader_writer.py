"""Saved results through the npe2 reader (values shown as saved, never re-normalised as counts) and the npe2
writers (cells → .csv / .h5ad / .zarr, segmentation → .tif / .npy + per-cell table with the imputed genes), on a
real kNN result of the bundled Xenium mouse-brain cells. No Qt needed (napari's ViewerModel)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_spatial_impute.errors import InputError

GENES = ["Gfap", "Sst"]


@pytest.fixture(scope="module")
def real_result():
    """The first 300 bundled Xenium cells (150-gene panel), Gfap and Sst imputed by kNN from the paired reference."""
    from napari_spatial_impute.api import impute
    from napari_spatial_impute.datasets import load_xenium_sample

    spatial, reference = load_xenium_sample()
    spatial = spatial[:300].copy()
    return spatial, impute(spatial, reference, "knn", GENES, seed=0, device="cpu")


def _save(result, path):
    from napari_spatial_impute.layers.results import SampleResult, save_result_steps
    from napari_spatial_impute.progress import run_to_end

    return run_to_end(save_result_steps(SampleResult(result, result.obs_names), path, provenance={"sample": "x"}))


def _partials(folder):
    return [p.name for p in folder.iterdir() if ".partial" in p.name]


@pytest.mark.parametrize("suffix", [".h5ad", ".zarr"])
def test_saved_result_reopens_with_its_imputed_values(real_result, tmp_path, suffix):
    from napari_spatial_impute._reader import get_reader
    from napari_spatial_impute.io.results import zarr_support
    from napari_spatial_impute.layers.colour_by import choices, colouring

    if suffix == ".zarr" and zarr_support() is not None:
        pytest.skip(zarr_support())
    _, result = real_result
    path = _save(result, tmp_path / f"result{suffix}")
    reader = get_reader(str(path))
    assert reader is not None
    (data, kwargs, kind), = reader(str(path))
    meta = kwargs["metadata"]
    assert kind == "points" and meta["adata"].n_vars == 0 and meta["result"].info["method"] == "knn"
    # the coordinates are the cells' own ((y, x) in µm)
    np.testing.assert_allclose(data, np.asarray(result.obsm["spatial"])[:, ::-1], rtol=1e-6)
    keys = choices(meta["adata"], meta["result"])
    assert {"imputed:Gfap", "imputed:Sst"} <= set(keys) and not any(k.startswith("measured:") for k in keys)
    # every gene a feature column (in memory); a .zarr result's values stay on disk: only the shown gene
    in_features = GENES if suffix == ".h5ad" else [kwargs["face_color"]]
    assert set(in_features) <= set(kwargs["features"].columns)
    for gene in GENES:
        saved = np.asarray(result[:, gene].X).ravel()
        if gene in in_features:
            np.testing.assert_allclose(kwargs["features"][gene].to_numpy(), saved, rtol=1e-6)
        shown = colouring(f"imputed:{gene}", meta["adata"], meta["result"])
        np.testing.assert_allclose(shown.values, saved, rtol=1e-6)  # as saved: not log1p-normalised again
    assert kwargs["face_color"] in GENES  # the points are coloured by an imputed gene at once


def test_instrument_h5ad_still_reads_as_a_sample(real_result, tmp_path):
    from napari_spatial_impute._reader import read_layers

    spatial, _ = real_result
    spatial.write_h5ad(tmp_path / "cells.h5ad")
    layers = read_layers(str(tmp_path / "cells.h5ad"))
    assert layers[-1][1]["metadata"]["adata"].n_vars == spatial.n_vars
    assert "result" not in layers[-1][1]["metadata"]


def test_write_points_csv_h5ad_and_result(real_result, tmp_path):
    import anndata as ad

    from napari_spatial_impute._writer import write_points
    from napari_spatial_impute.layers import cells_points_layer
    from napari_spatial_impute.layers.results import SampleResult

    spatial, result = real_result
    data, kwargs, _ = cells_points_layer(spatial, "cells")
    attrs = {"features": kwargs["features"], "metadata": dict(kwargs["metadata"])}
    # .csv: x, y (µm) and every feature
    out = write_points(str(tmp_path / "cells.csv"), data, attrs)
    table = pd.read_csv(out[0])
    np.testing.assert_allclose(table[["x", "y"]].to_numpy(), np.asarray(spatial.obsm["spatial"])[:, :2], rtol=1e-6)
    assert list(table["cell_id"].astype(str)) == list(spatial.obs_names)
    # .h5ad without a result: the layer's cells (measured counts)
    out = write_points(str(tmp_path / "cells.h5ad"), data, attrs)
    back = ad.read_h5ad(out[0])

    def dense(X):
        return np.asarray(X.todense() if hasattr(X, "todense") else X)

    assert back.shape == spatial.shape and np.array_equal(dense(back.X), dense(spatial.X))
    # .h5ad with the attached result: every imputed gene, reliability, provenance
    attrs["metadata"]["result"] = SampleResult(result, spatial.obs_names)
    attrs["metadata"]["sample"] = "xenium 300"
    out = write_points(str(tmp_path / "imputed.h5ad"), data, attrs)
    saved = ad.read_h5ad(out[0])
    assert list(saved.var_names) == GENES and saved.uns["napari_spatial_impute"]["sample"] == "xenium 300"
    np.testing.assert_allclose(saved.X, result.X, rtol=1e-6)
    assert _partials(tmp_path) == []


def test_write_points_failure_leaves_no_file(real_result, tmp_path, monkeypatch):
    import anndata as ad

    from napari_spatial_impute._writer import write_points
    from napari_spatial_impute.layers import cells_points_layer

    spatial, _ = real_result
    data, kwargs, _ = cells_points_layer(spatial, "cells")

    def broken(self, path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ad.AnnData, "write_h5ad", broken)
    with pytest.raises(InputError, match=r"Could not write the .*cells\.h5ad: No space left on device; nothing was"):
        write_points(str(tmp_path / "cells.h5ad"), data, {"features": kwargs["features"],
                                                          "metadata": kwargs["metadata"]})
    assert list(tmp_path.iterdir()) == []


def _labelled(spatial):
    """A 1 µm/px mask with one 6×6 px square per cell (real cell ids), as the reader would give it."""
    from napari_spatial_impute.io.spatial_sample import SampleLabels, SpatialSample
    from napari_spatial_impute.layers import sample_to_layers

    n, side = spatial.n_obs, 20
    mask = np.zeros((8 * (n // side + 1), 8 * side), np.int32)
    for i in range(n):
        r, c = divmod(i, side)
        mask[r * 8 + 1:r * 8 + 7, c * 8 + 1:c * 8 + 7] = i + 1
    labels = SampleLabels("cells", mask, np.eye(3), {i + 1: spatial.obs_names[i] for i in range(n)})
    return mask, sample_to_layers(SpatialSample(spatial, labels=[labels], platform="xenium", path="t"))


@pytest.mark.parametrize("suffix", [".tif", ".npy"])
def test_labels_carry_imputed_genes_and_write_labels(real_result, tmp_path, suffix):
    from napari.components import ViewerModel

    from napari_spatial_impute._writer import write_labels
    from napari_spatial_impute.layers.results import SampleResult
    from napari_spatial_impute.layers.sample_view import SampleView

    spatial, result = real_result
    mask, layers = _labelled(spatial)
    viewer = ViewerModel()
    for data, kwargs, kind in layers:
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    labels = viewer.layers["cells"]
    cells = viewer.layers["xenium cells"]
    sample_result = SampleResult(result, spatial.obs_names)
    SampleView(viewer, cells).attach(sample_result)
    feats = labels.features
    assert {"index", "cell_id", *GENES} <= set(feats.columns)  # the segmentation's table has the imputed genes
    # a second view of the same cells (the Colour dock re-attaching) reuses the columns instead of rebuilding them
    sample_result.features = lambda: pytest.fail("the result's columns were rebuilt")
    before = cells.features
    assert SampleView(viewer, cells).attach(sample_result) == list(sample_result.genes)
    assert cells.features is before
    out = write_labels(str(tmp_path / f"seg{suffix}"), labels.data, {"features": feats})
    assert [p.split("/")[-1] for p in out] == [f"seg{suffix}", "seg.cells.csv"] and _partials(tmp_path) == []
    if suffix == ".npy":
        back = np.load(out[0])
    else:
        import tifffile

        back = tifffile.imread(out[0])
    np.testing.assert_array_equal(back, mask)
    table = pd.read_csv(out[1])
    by_cell = pd.Series(np.asarray(result[:, "Gfap"].X).ravel(), index=result.obs_names.astype(str))
    assert len(table) == spatial.n_obs
    np.testing.assert_allclose(table["Gfap"].to_numpy(), by_cell[table["cell_id"].astype(str)].to_numpy(),
                               rtol=1e-6)
    # each label's row: its id is the mask value under that cell
    row = table.iloc[37]
    assert row["cell_id"] == spatial.obs_names[int(row["index"]) - 1]


def test_write_labels_failure_leaves_no_file(tmp_path, monkeypatch):
    import tifffile

    from napari_spatial_impute._writer import write_labels

    def broken(path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"II*\0half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", broken)
    with pytest.raises(InputError, match=r"Could not write the .*seg\.tif: No space left on device; nothing was"):
        write_labels(str(tmp_path / "seg.tif"), np.ones((4, 4), np.int32),
                     {"features": pd.DataFrame({"index": [1], "cell_id": ["a"]})})
    assert list(tmp_path.iterdir()) == []
