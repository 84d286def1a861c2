"""Generic .h5ad reader, platform detection and the optional SpatialData path."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from napari_spatial_impute.datasets import sample_path
from napari_spatial_impute.errors import InputError
from napari_spatial_impute.io import detect_platform, read_anndata, read_sample
from napari_spatial_impute.layers import sample_to_layers


def test_h5ad_with_spatial_and_visium_style_image(tmp_path):
    import anndata as ad

    src = ad.read_h5ad(str(sample_path("spatial.h5ad")))
    s = read_anndata(str(sample_path("spatial.h5ad")))
    assert s.adata.shape == src.shape == (3405, 33)
    np.testing.assert_allclose(s.adata.obsm["spatial"], src.obsm["spatial"])
    # scanpy layout: hires image at 0.5 of full resolution → pixel i spans full-res [2i, 2i + 2)
    img = np.zeros((50, 60, 3), np.uint8)
    src.uns["spatial"] = {"lib": {"images": {"hires": img}, "scalefactors": {"tissue_hires_scalef": 0.5}}}
    src.write_h5ad(tmp_path / "v.h5ad")
    s2 = read_sample(tmp_path / "v.h5ad")
    assert s2.images[0].rgb and s2.images[0].pixel_size_um == pytest.approx(2.0)
    np.testing.assert_allclose(s2.images[0].affine[:2, 2], [1.0, 1.0])  # centre of pixel 0 = full-res 1.0
    layers = sample_to_layers(s2)
    assert [t for _, _, t in layers] == ["image", "points"]
    assert layers[0][1]["scale"] == (2.0, 2.0)


def test_h5ad_without_coordinates_is_refused(tmp_path):
    import anndata as ad

    a = ad.read_h5ad(str(sample_path("spatial.h5ad")))
    del a.obsm["spatial"]
    a.write_h5ad(tmp_path / "nocoords.h5ad")
    with pytest.raises(InputError, match=r"obsm\['spatial'\]"):
        read_anndata(tmp_path / "nocoords.h5ad")


def test_detect_platform_unknown_and_missing(tmp_path):
    assert detect_platform(tmp_path) is None
    assert detect_platform(tmp_path / "nope") is None
    with pytest.raises(InputError, match="not a recognised spatial dataset"):
        read_sample(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("spatialdata") is None,
                    reason="optional [spatialdata] extra not installed")
def test_spatialdata_round_trip(tmp_path):  # pragma: no cover - runs only with the extra
    from napari_spatial_impute.io.spatialdata_io import read_spatialdata, write_spatialdata

    s = read_anndata(str(sample_path("spatial.h5ad")))
    write_spatialdata(s, tmp_path / "s.zarr")
    back = read_spatialdata(tmp_path / "s.zarr")
    np.testing.assert_allclose(back.adata.obsm["spatial"], s.adata.obsm["spatial"])


@pytest.mark.skipif(importlib.util.find_spec("spatialdata") is None,
                    reason="optional [spatialdata] extra not installed (the CI's wheel job installs it)")
def test_spatialdata_store_of_the_real_library_round_trips_table_image_and_shapes(tmp_path):
    """With the real spatialdata package (CI: the wheel job's step 5): the bundled Xenium cells and an RGB image
    placed in µm go out and come back equal (counts, coordinates, pixels, affine); a store whose table has no
    obsm['spatial'] and rows in another order than its shapes gets each cell's own circle centre (instance_key)."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp
    import spatialdata as sd

    from napari_spatial_impute.io.spatial_sample import SampleImage, SampleLabels, SpatialSample
    from napari_spatial_impute.io.spatialdata_io import read_spatialdata, write_spatialdata

    cells = ad.read_h5ad(str(sample_path("spatial.h5ad", "data/xenium_mouse_brain")))
    rgb = np.arange(40 * 30 * 3, dtype=np.uint8).reshape(40, 30, 3)
    affine = np.array([[0.2125, 0.0, 1200.5], [0.0, 0.2125, 800.25], [0.0, 0.0, 1.0]])
    sample = SpatialSample(adata=cells, platform="xenium", images=[SampleImage("H&E", rgb, affine, rgb=True)])
    back = read_spatialdata(write_spatialdata(sample, tmp_path / "x.zarr"))
    assert list(back.adata.obs_names) == list(cells.obs_names) and list(back.adata.var_names) == list(cells.var_names)
    np.testing.assert_allclose(back.adata.obsm["spatial"], cells.obsm["spatial"])
    assert (sp.csr_matrix(back.adata.X) != sp.csr_matrix(cells.X)).nnz == 0
    (img,) = back.images
    assert img.rgb and img.name == "H&E"
    np.testing.assert_array_equal(img.data, rgb)
    np.testing.assert_allclose(img.affine, affine, atol=1e-9)  # pixel centres where they were
    with pytest.raises(InputError, match="already exists"):
        write_spatialdata(sample, tmp_path / "x.zarr")

    # a label mask named like the cells' shapes ("cells"): stored under a free name, read back as it was
    mask = np.zeros((20, 16), np.int32)
    mask[2:6, 3:9], mask[10:18, 1:4] = 1, 2
    labels = SampleLabels("cells", mask, np.array([[2.0, 0, 1201.0], [0, 2.0, 801.0], [0, 0, 1]]),
                          label_to_obs={1: cells.obs_names[5], 2: cells.obs_names[0]})
    sample.labels.append(labels)
    back = read_spatialdata(write_spatialdata(sample, tmp_path / "xl.zarr"))
    (lab,) = back.labels
    assert lab.name == "cells" and lab.label_to_obs == labels.label_to_obs
    np.testing.assert_array_equal(lab.data, mask)
    np.testing.assert_allclose(lab.affine, labels.affine, atol=1e-9)

    # transcripts and cell outlines go out as points and polygons and come back as they were
    xy = np.asarray(cells.obsm["spatial"])[:30]
    rng = np.random.default_rng(0)
    pick = rng.integers(0, 30, 200)
    sample.transcripts = pd.DataFrame({"x": (xy[pick, 0] + rng.normal(0, 2, 200)).astype(np.float32),
                                       "y": (xy[pick, 1] + rng.normal(0, 2, 200)).astype(np.float32),
                                       "gene": pd.Categorical(rng.choice(cells.var_names[:7], 200))})
    ring = np.array([[-3, -2], [3, -2], [3, 2], [-3, 2], [-3, -2]], dtype=float)
    sample.boundaries = pd.DataFrame({"cell_id": np.repeat(cells.obs_names[:30], 5),
                                      "x": (xy[:, None, 0] + ring[:, 0]).ravel(),
                                      "y": (xy[:, None, 1] + ring[:, 1]).ravel()})
    back = read_spatialdata(write_spatialdata(sample, tmp_path / "xt.zarr"))
    pd.testing.assert_frame_equal(back.transcripts[["x", "y"]], sample.transcripts[["x", "y"]])
    assert list(back.transcripts["gene"].astype(str)) == list(sample.transcripts["gene"].astype(str))
    got = back.boundaries.set_index("cell_id").loc[cells.obs_names[:30]]
    np.testing.assert_allclose(got[["x", "y"]].to_numpy(), sample.boundaries[["x", "y"]].to_numpy(), atol=1e-9)
    assert back.labels[0].label_to_obs == labels.label_to_obs  # a mask names cells: no rasterised one added
    assert len(back.labels) == 1

    store = sd.read_zarr(tmp_path / "x.zarr")
    table = store.tables["table"]
    order = np.random.default_rng(0).permutation(table.n_obs)
    shuffled = table[order].copy()
    del shuffled.obsm["spatial"]
    sd.SpatialData(shapes={"cells": store.shapes["cells"]}, tables={"table": shuffled}).write(tmp_path / "s.zarr")
    again = read_spatialdata(tmp_path / "s.zarr")
    np.testing.assert_allclose(again.adata.obsm["spatial"], cells.obsm["spatial"][order])


@pytest.mark.skipif(importlib.util.find_spec("spatialdata") is None,
                    reason="optional [spatialdata] extra not installed (the CI's wheel job installs it)")
def test_spatialdata_store_as_spatialdata_io_writes_it_is_read_lazily(tmp_path):
    """A store laid out as spatialdata-io writes an instrument (a multiscale 2-channel morphology image placed by a
    scale, multiscale cell labels that the table annotates by integer cell ids): every image level comes back
    lazy (dask, nothing read), with its channel names and the pixel centres where SpatialData puts them; the
    labels map each id to its table row."""
    import anndata as ad
    import dask.array as da
    import pandas as pd
    import spatialdata as sd
    from spatialdata.models import Image2DModel, Labels2DModel, TableModel
    from spatialdata.transformations import Scale

    from napari_spatial_impute.io.spatialdata_io import read_spatialdata

    um = Scale([0.2125, 0.2125], axes=("x", "y"))
    img = Image2DModel.parse(np.arange(2 * 64 * 48, dtype=np.uint16).reshape(2, 64, 48), dims=("c", "y", "x"),
                             c_coords=["DAPI", "ATP1A1"], scale_factors=[2, 2], transformations={"global": um})
    mask = np.zeros((64, 48), np.int32)
    mask[4:12, 4:12], mask[30:40, 20:28] = 7, 9
    lab = Labels2DModel.parse(mask, dims=("y", "x"), scale_factors=[2], transformations={"global": um})
    obs = pd.DataFrame({"region": "cell_labels", "cell_id": [9, 7]}, index=["cell-b", "cell-a"])
    obs["region"] = obs["region"].astype("category")
    table = ad.AnnData(np.ones((2, 3), np.float32), obs=obs,
                       obsm={"spatial": np.array([[5.1, 7.4], [1.7, 1.7]])})
    table = TableModel.parse(table, region="cell_labels", region_key="region", instance_key="cell_id")
    sd.SpatialData(images={"morphology_focus": img}, labels={"cell_labels": lab},
                   tables={"table": table}).write(tmp_path / "io.zarr")

    s = read_spatialdata(tmp_path / "io.zarr")
    (im,) = s.images
    assert im.name == "morphology_focus" and im.channel_axis == 0 and im.channel_names == ["DAPI", "ATP1A1"]
    assert isinstance(im.data, list) and [a.shape for a in im.data] == [(2, 64, 48), (2, 32, 24), (2, 16, 12)]
    assert all(isinstance(a, da.Array) for a in im.data)  # lazy: a real morphology image is GBs
    np.testing.assert_allclose(im.affine, [[0.2125, 0, 0.10625], [0, 0.2125, 0.10625], [0, 0, 1]])
    (lb,) = s.labels
    assert lb.label_to_obs == {9: "cell-b", 7: "cell-a"}
    np.testing.assert_array_equal(lb.data, mask)  # the finest level: under the size cap
    np.testing.assert_allclose(s.adata.obsm["spatial"], table.obsm["spatial"])
    kinds = {kind: (data, kw) for data, kw, kind in sample_to_layers(s)}
    data, kw = kinds["image"]
    assert kw["multiscale"] and kw["channel_axis"] == 0 and kw["name"] == ["DAPI", "ATP1A1"] and data is im.data
    assert set(kinds["labels"][1]["features"]["cell_id"]) == {"cell-a", "cell-b"}


@pytest.mark.skipif(importlib.util.find_spec("spatialdata") is None,
                    reason="optional [spatialdata] extra not installed (the CI's wheel job installs it)")
@pytest.mark.parametrize("region", ["cell_circles", "cell_labels"])
def test_spatialdata_io_xenium_layout_images_in_pixels_cells_in_micrometres(tmp_path, region):
    """spatialdata-io's Xenium layout: the morphology image and cell labels in ``global`` = image pixels, the cells'
    shapes in µm scaled into it (1 / 0.2125), the table's obsm['spatial'] in µm, its rows annotating the circles
    (by cell id) or the labels (by label id; rows named 0, 1, …). The images land on the cells: in µm, pixel
    centres at (i + ½) · 0.2125 — not 4.7× off, as placing them by ``global`` alone did."""
    import anndata as ad
    import geopandas as gpd
    import pandas as pd
    import spatialdata as sd
    from shapely.geometry import Point, box
    from spatialdata.models import Image2DModel, Labels2DModel, PointsModel, ShapesModel, TableModel
    from spatialdata.transformations import Identity, Scale

    from napari_spatial_impute.io.spatialdata_io import read_spatialdata

    px = 0.2125
    cells = ad.read_h5ad(str(sample_path("spatial.h5ad", "data/xenium_mouse_brain")))[:60]
    xy = np.asarray(cells.obsm["spatial"])
    xy = xy - xy.min(axis=0) + 20.0  # µm, inside a small image
    ids = [f"cell{i:03d}" for i in range(len(xy))]
    to_px = {"global": Scale([1 / px, 1 / px], axes=("x", "y"))}
    circles = ShapesModel.parse(gpd.GeoDataFrame({"radius": np.full(len(xy), 4.0)},
                                                 geometry=[Point(x, y) for x, y in xy], index=ids),
                                transformations=to_px)
    bounds = ShapesModel.parse(gpd.GeoDataFrame(geometry=[box(x - 3, y - 2, x + 3, y + 2) for x, y in xy],
                                                index=ids), transformations=to_px)
    h, w = (int(np.ceil((xy[:, 1].max() + 20) / px)), int(np.ceil((xy[:, 0].max() + 20) / px)))
    img = Image2DModel.parse(np.zeros((2, h, w), np.uint16), dims=("c", "y", "x"), c_coords=["DAPI", "bound"],
                             scale_factors=[2], transformations={"global": Identity()})
    mask = np.zeros((h, w), np.int32)
    mask[10:20, 10:20] = 3
    lab = Labels2DModel.parse(mask, dims=("y", "x"), transformations={"global": Identity()})
    obs = pd.DataFrame({"cell_id": ids, "cell_labels": np.arange(1, len(ids) + 1), "region": region},
                       index=[str(i) for i in range(len(ids))])
    obs["region"] = obs["region"].astype("category")
    table = ad.AnnData(np.asarray(cells.X.todense() if hasattr(cells.X, "todense") else cells.X), obs=obs,
                       obsm={"spatial": xy})
    table = TableModel.parse(table, region=region, region_key="region",
                             instance_key="cell_id" if region == "cell_circles" else "cell_labels")
    # transcripts as spatialdata-io writes them: µm, scaled into ``global``; a control probe and a low-qv molecule
    genes = np.array(["Gad1", "Cldn5", "NegControlProbe_00042", "Gad1", "Slc17a7"])
    tx = pd.DataFrame({"x": xy[:5, 0] + 0.5, "y": xy[:5, 1] - 0.25, "z": 3.0, "feature_name": genes,
                       "qv": [40.0, 30.0, 40.0, 12.0, 25.0], "cell_id": ids[:5]})
    points = PointsModel.parse(tx, coordinates={"x": "x", "y": "y", "z": "z"}, feature_key="feature_name",
                               transformations=to_px)
    sd.SpatialData(images={"morphology_focus": img}, labels={"cell_labels": lab},
                   shapes={"cell_circles": circles, "cell_boundaries": bounds}, points={"transcripts": points},
                   tables={"table": table}).write(tmp_path / "xenium.zarr")

    s = read_spatialdata(tmp_path / "xenium.zarr")
    np.testing.assert_allclose(s.adata.obsm["spatial"], xy)
    expected = [[px, 0, px / 2], [0, px, px / 2], [0, 0, 1]]
    np.testing.assert_allclose(s.images[0].affine, expected, atol=1e-6)
    np.testing.assert_allclose(s.labels[0].affine, expected, atol=1e-6)
    assert "through the shapes" in s.notes[0]
    if region == "cell_labels":
        assert s.labels[0].label_to_obs[3] == "2"  # label id 3 → the table's row "2"
    # the transcripts in µm beside the cells, without the control probe and the qv-12 molecule
    keep = [0, 1, 4]
    assert list(s.transcripts["gene"].astype(str)) == list(genes[keep])
    np.testing.assert_allclose(s.transcripts[["x", "y"]].to_numpy(), tx[["x", "y"]].to_numpy()[keep], atol=1e-3)
    # the polygons are the cells' outlines in µm, named by the table's rows (cell_id → row), one ring each
    b = s.boundaries
    assert b["cell_id"].nunique() == len(ids) and set(b["cell_id"]) == set(s.adata.obs_names)
    lo, hi = b.groupby("cell_id")[["x", "y"]].min(), b.groupby("cell_id")[["x", "y"]].max()
    rows = s.adata.obs_names
    np.testing.assert_allclose(lo.loc[rows].to_numpy(), xy - [3, 2], atol=1e-6)
    np.testing.assert_allclose(hi.loc[rows].to_numpy(), xy + [3, 2], atol=1e-6)
    if region == "cell_circles":  # no mask names the cells: the outlines are rasterised into one that does
        assert set(s.labels[-1].label_to_obs.values()) == set(rows)
    kinds = [kind for _, _, kind in sample_to_layers(s)]
    assert "shapes" in kinds and kinds.count("points") == 2  # outlines; transcripts and cells
    from napari_spatial_impute.io.detect import read_cells

    cells = read_cells(tmp_path / "xenium.zarr")  # what `impute STORE.zarr REFERENCE` reads: the table alone
    np.testing.assert_allclose(cells.obsm["spatial"], xy)
    assert cells.n_obs == len(xy)


@pytest.mark.skipif(importlib.util.find_spec("spatialdata") is None,
                    reason="optional [spatialdata] extra not installed (the CI's wheel job installs it)")
def test_imputed_genes_go_back_into_the_users_spatialdata(tmp_path):
    """The recipe of docs/formats/anndata.md: the cells of a SpatialData store imputed, and the result (which
    keeps the table's obs and its SpatialData annotation) added as a table of its own with ``TableModel.parse``;
    read back, it annotates the same cells."""
    import spatialdata as sd
    from spatialdata.models import TableModel

    import napari_spatial_impute as nsi
    from napari_spatial_impute.io.detect import read_cells
    from napari_spatial_impute.io.spatialdata_io import read_spatialdata, write_spatialdata

    spatial, reference = nsi.load_xenium_sample()
    write_spatialdata(read_anndata(str(sample_path("spatial.h5ad", "data/xenium_mouse_brain"))), tmp_path / "s.zarr")
    cells = read_cells(tmp_path / "s.zarr")
    result = nsi.impute(cells, reference, method="knn", genes=["Acta2", "Arc", "Angpt1"])
    sdata = sd.read_zarr(tmp_path / "s.zarr")
    sdata.tables["imputed"] = TableModel.parse(result)
    sdata.write(tmp_path / "with_imputed.zarr")
    back = read_spatialdata(tmp_path / "with_imputed.zarr", table="imputed")
    assert list(back.adata.var_names) == ["Acta2", "Arc", "Angpt1"] and back.adata.n_obs == spatial.n_obs
    np.testing.assert_allclose(back.adata.obsm["spatial"], spatial.obsm["spatial"])
    np.testing.assert_allclose(np.asarray(back.adata.X), np.asarray(result.X), rtol=1e-6)


def test_spatialdata_missing_extra_gives_install_hint(tmp_path):
    if importlib.util.find_spec("spatialdata") is not None:
        pytest.skip("spatialdata is installed")
    from napari_spatial_impute.io.spatialdata_io import read_spatialdata

    with pytest.raises(InputError, match=r"napari-spatial-impute\[spatialdata\]"):
        read_spatialdata(tmp_path / "x.zarr")


def _fake_shapes(ids, xy):
    """A GeoDataFrame stand-in: ``.index`` (instance ids) and ``.geometry.centroid.x/.y``."""
    from types import SimpleNamespace

    import pandas as pd

    xy = np.asarray(xy, dtype=float)
    cen = SimpleNamespace(x=pd.Series(xy[:, 0], index=ids), y=pd.Series(xy[:, 1], index=ids))
    return SimpleNamespace(index=pd.Index(ids), geometry=SimpleNamespace(centroid=cen))


def _fake_spatialdata(monkeypatch, table, shapes):
    """Install a minimal ``spatialdata`` module whose read_zarr returns ``table`` and ``shapes`` (no images)."""
    import sys
    from types import ModuleType, SimpleNamespace

    sd = ModuleType("spatialdata")
    sd.read_zarr = lambda path: SimpleNamespace(tables={"table": table}, shapes=shapes, images={}, labels={},
                                                       points={})
    tr = ModuleType("spatialdata.transformations")

    class Identity:  # every element placed in "global" as it is
        def to_affine_matrix(self, input_axes, output_axes):
            return np.eye(3)

    tr.get_transformation = lambda element, to_coordinate_system=None, get_all=False: \
        {"global": Identity()} if get_all else Identity()
    sd.transformations = tr
    monkeypatch.setitem(sys.modules, "spatialdata", sd)
    monkeypatch.setitem(sys.modules, "spatialdata.transformations", tr)


def _sd_table(instance_ids, regions=None, region="cells"):
    import anndata as ad
    import pandas as pd

    n = len(instance_ids)
    obs = pd.DataFrame({"region": regions if regions is not None else [region] * n, "cell_id": instance_ids},
                       index=[f"row{i}" for i in range(n)])
    a = ad.AnnData(X=np.ones((n, 2), np.float32), obs=obs)
    a.uns["spatialdata_attrs"] = {"region": sorted(set(obs["region"])) if regions is not None else region,
                                  "region_key": "region", "instance_key": "cell_id"}
    return a


@pytest.mark.parametrize("ids", [[13, 10, 12, 11], [13, 10, 12]], ids=["reordered", "reordered-subset"])
def test_spatialdata_centroids_follow_instance_key_not_row_order(monkeypatch, tmp_path, ids):
    """Each table row gets its own cell's centroid (matched by instance_key), whatever the row order."""
    from napari_spatial_impute.io.spatialdata_io import read_spatialdata

    shapes = {"cells": _fake_shapes([10, 11, 12, 13], [[0, 0], [1, 1], [2, 2], [3, 3]])}
    _fake_spatialdata(monkeypatch, _sd_table(ids), shapes)
    s = read_spatialdata(tmp_path / "s.zarr", boundaries=False)  # the stand-in shapes are centroids only
    np.testing.assert_allclose(s.adata.obsm["spatial"], [[i - 10, i - 10] for i in ids])


def test_spatialdata_unknown_instance_ids_are_refused(monkeypatch, tmp_path):
    from napari_spatial_impute.io.spatialdata_io import read_spatialdata

    _fake_spatialdata(monkeypatch, _sd_table([10, 99]), {"cells": _fake_shapes([10, 11], [[0, 0], [1, 1]])})
    with pytest.raises(InputError, match=r"cell_id \(e.g. '99'\) that is not a shape of 'cells'.*Fix:"):
        read_spatialdata(tmp_path / "s.zarr", boundaries=False)


def test_align_centroids_per_region_and_errors():
    import pandas as pd

    from napari_spatial_impute.io.spatialdata_io import align_centroids

    cents = {"a": pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0]}, index=["c0", "c1"]),
             "b": pd.DataFrame({"x": [5.0, 6.0], "y": [7.0, 8.0]}, index=["c0", "c1"])}
    obs = pd.DataFrame({"r": ["b", "a", "b"], "i": ["c1", "c1", "c0"]})
    xy = align_centroids(obs, cents, region_key="r", instance_key="i")
    np.testing.assert_allclose(xy, [[6, 8], [1, 1], [5, 7]])  # the same id in two regions stays apart
    with pytest.raises(InputError, match="no instance_key column"):
        align_centroids(obs, cents, region_key="r", instance_key=None)
    with pytest.raises(InputError, match=r"region\(s\) \['z'\] that are not shapes"):
        align_centroids(obs.assign(r=["a", "a", "z"]), cents, region_key="r", instance_key="i")
    with pytest.raises(InputError, match="several regions"):
        align_centroids(obs, cents, region_key=None, instance_key="i")


def test_spatialdata_element_names_are_valid_and_unique():
    """SpatialData accepts letters, digits, ``_ . -`` in element names: the H&E that every section reader names
    "H&E" is written as "H_E" (its name kept in the table, restored on reading: the real-library test)."""
    from napari_spatial_impute.io.spatialdata_io import element_name

    taken: set[str] = set()
    assert [element_name(n, taken) for n in ("H&E", "H&E", "DAPI z 3", "morphology_focus", "ü")] == \
        ["H_E", "H_E_2", "DAPI_z_3", "morphology_focus", "_"]
