"""Layers built from real samples: types, µm world alignment through napari's own transforms, gene colouring,
and the npe2 reader through napari (viewer.open(..., plugin="napari-spatial-impute"))."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_spatial_impute._reader import get_reader
from napari_spatial_impute.layers import (
    add_imputed_to_points,
    labels_colormap_for_gene,
    sample_to_layers,
    show_gene_on_labels,
    show_gene_on_points,
)

SHARED = Path(__file__).resolve().parents[2] / "shared/datasets"
COSMX = SHARED / "cosmx_nsclc_lung12_mini"
MERSCOPE = SHARED / "merscope_mouse_brain_mini"
XENIUM = SHARED / "xenium_mouse_brain_ctx_hp"
needs_cosmx = pytest.mark.skipif(not COSMX.exists(), reason=f"shared dataset absent: {COSMX.name}")
needs_merscope = pytest.mark.skipif(not MERSCOPE.exists(), reason=f"shared dataset absent: {MERSCOPE.name}")


def test_labels_colormap_for_gene_maps_values_through_the_colormap():
    import matplotlib

    cmap = labels_colormap_for_gene([5, 7, 9], [0.0, 1.0, np.nan], "viridis", clim=(0.0, 1.0))
    assert cmap[None][3] == 0 and cmap[0][3] == 0  # unlisted labels and background transparent
    np.testing.assert_allclose(cmap[5], matplotlib.colormaps["viridis"](0.0))
    np.testing.assert_allclose(cmap[7], matplotlib.colormaps["viridis"](1.0))
    assert cmap[9] == (0.5, 0.5, 0.5, 0.6)  # NaN (no value for that cell) → grey


def test_direct_label_colormap_in_napari():
    from napari.layers import Labels
    from napari.utils import DirectLabelColormap

    ids = np.arange(1, 10_001)
    cmap = labels_colormap_for_gene(ids, np.linspace(0, 1, ids.size), "magma", clim=(0, 1))
    layer = Labels(np.arange(12, dtype=np.int32).reshape(3, 4), colormap=cmap)
    assert isinstance(layer.colormap, DirectLabelColormap)
    np.testing.assert_allclose(layer.colormap.map(np.array([3]))[0], cmap[3], atol=1e-6)


def test_value_image_for_many_cells_matches_per_label_values():
    from napari_spatial_impute.coords import pixel_grid_affine
    from napari_spatial_impute.io.spatial_sample import SampleLabels
    from napari_spatial_impute.layers import gene_image_layer, labels_value_image

    mask = np.array([[0, 1, 1], [2, 2, 7]], dtype=np.int32)
    img = labels_value_image(mask, [1, 2], [0.5, 3.0])
    np.testing.assert_array_equal(np.isnan(img), [[True, False, False], [False, False, True]])
    assert img[0, 1] == 0.5 and img[1, 0] == 3.0
    import anndata as ad

    a = ad.AnnData(np.array([[1.0], [4.0]], np.float32), obs=pd.DataFrame(index=["a", "b"]),
                   var=pd.DataFrame(index=["G"]))
    lab = SampleLabels("cells", mask, pixel_grid_affine(0.5), {1: "b", 2: "a", 7: "zz"})
    data, kw, kind = gene_image_layer(lab, a, "G")
    assert kind == "image" and kw["scale"] == (0.5, 0.5)
    assert data[0, 1] == 4.0 and data[1, 0] == 1.0 and np.isnan(data[1, 2])


@pytest.mark.parametrize("folder", [pytest.param(COSMX, marks=needs_cosmx, id="cosmx"),
                                    pytest.param(MERSCOPE, marks=needs_merscope, id="merscope")])
def test_every_cell_sits_in_its_label_through_napari_world_coordinates(folder):
    from napari.layers import Labels, Points

    layers = sample_to_layers(__import__("napari_spatial_impute.io", fromlist=["read_sample"]).read_sample(folder))
    kinds = [t for _, _, t in layers]
    assert kinds[-1] == "points" and "labels" in kinds and "image" in kinds
    import napari.layers

    built = [getattr(napari.layers, t.capitalize())(d, **k) for d, k, t in layers]  # every tuple is valid
    assert len(built) == len(layers)
    data, kw, _ = layers[-1]
    cells = Points(data, **kw)
    adata = cells.metadata["adata"]
    assert "spatial" in adata.obsm and list(cells.features["cell_id"]) == list(map(str, adata.obs_names))
    inside, total = 0, 0
    for d, k, t in layers:
        if t != "labels":
            continue
        lab = Labels(d, **k)
        ids = dict(zip(lab.metadata["label_obs"], lab.metadata["label_ids"]))
        sel = np.flatnonzero(cells.features["cell_id"].isin(list(ids)))
        for i in sel:
            world = cells.data_to_world(cells.data[i])
            r, c = np.round(lab.world_to_data(world)).astype(int)
            inside += int(lab.data[r, c] == ids[cells.features["cell_id"].iloc[i]])
            total += 1
    assert total >= 120 and inside / total >= 0.95


@needs_cosmx
def test_gene_switch_on_points_and_labels():
    from napari.layers import Labels, Points

    from napari_spatial_impute.io import read_sample

    s = read_sample(COSMX)
    layers = sample_to_layers(s, gene="KRT19")
    pts = Points(layers[-1][0], **layers[-1][1])
    assert pts.metadata["gene"] == "KRT19" and "KRT19" in pts.features
    expr = np.asarray(s.adata[:, "KRT19"].X.toarray()).ravel()
    top = str(s.adata.obs_names[int(np.argmax(expr))])  # 3_247: in the second FOV's labels, not the first's
    lab_t = next(t for t in layers if t[2] == "labels" and top in set(t[1]["metadata"]["label_obs"]))
    lab = Labels(lab_t[0], **lab_t[1])
    # imputed genes come back as features and as label colours
    import anndata as ad

    pred = ad.AnnData(np.column_stack([expr * 2, -expr]).astype(np.float32),
                      obs=pd.DataFrame(index=s.adata.obs_names), var=pd.DataFrame(index=["KRT19_pred", "NEG"]))
    new = add_imputed_to_points(pts, pred)
    assert new == ["KRT19_pred", "NEG"]
    np.testing.assert_allclose(pts.features["KRT19_pred"].to_numpy(), expr * 2)
    show_gene_on_points(pts, "KRT19_pred")
    assert pts.metadata["gene"] == "KRT19_pred"
    i_top = int(np.argmax(expr))
    assert pts.face_color[i_top][0] > pts.face_color[int(np.argmin(expr))][0]  # magma: high = bright
    show_gene_on_labels(lab, pred.obs_names, pred[:, "KRT19_pred"].X.ravel())
    label_of = dict(zip(lab.metadata["label_obs"], lab.metadata["label_ids"]))
    top_rgba = lab.colormap.map(np.array([int(label_of[top])]))[0]
    # the top cell holds the layer's largest value, at or above the upper (99th percentile) contrast limit: it
    # takes the colormap's bright end, opaque
    import matplotlib

    np.testing.assert_allclose(top_rgba, matplotlib.colormaps["magma"](1.0), atol=1e-6)
    # and is brighter than this layer's lowest-expressing cell
    in_layer = [i for i, c in enumerate(map(str, s.adata.obs_names)) if c in label_of]
    i_low = in_layer[int(np.argmin(expr[in_layer]))]
    assert expr[i_low] < expr.max()
    low_rgba = lab.colormap.map(np.array([int(label_of[str(s.adata.obs_names[i_low])])]))[0]
    assert top_rgba[:3].sum() > low_rgba[:3].sum() + 1.0


def test_get_reader_returns_none_cheaply_for_unsupported(tmp_path):
    assert get_reader(str(tmp_path)) is None
    assert get_reader(str(tmp_path / "missing.h5ad")) is None
    assert get_reader(["a", "b"]) is None
    (tmp_path / "x.txt").write_text("hi")
    assert get_reader(str(tmp_path / "x.txt")) is None


@needs_cosmx
def test_viewer_open_through_the_manifest(tmp_path, monkeypatch):
    from napari.components import ViewerModel
    from npe2 import PluginManager

    PluginManager.instance().discover()  # napari.Viewer does this at start-up; ViewerModel does not
    v = ViewerModel()
    layers = v.open(str(COSMX), plugin="napari-spatial-impute")
    names = [layer.name for layer in layers]
    assert names == ["composite F002", "composite F003", "cells F002", "cells F003", "transcripts", "cosmx cells"]
    assert v.layers["cosmx cells"].metadata["adata"].n_obs == 120
    # bad input: the reader shows an error notification and adds nothing; the viewer does not crash
    import shutil

    import napari_spatial_impute._reader as rd

    shown = []
    monkeypatch.setattr(rd, "_notify", shown.append)
    bad = tmp_path / "bad"
    shutil.copytree(COSMX, bad)
    (bad / "Lung12_tx_file.csv").write_text("fov,cell_ID,x_global_px\n2,0,1.0\n")
    assert rd.read_layers(str(bad)) == []
    assert shown and "Lung12_tx_file.csv" in shown[0] and "unknown CosMx export version" in shown[0]


@pytest.mark.skipif(not XENIUM.exists(), reason="shared dataset absent")
def test_xenium_h5_through_reader_is_one_cells_layer():
    layers = get_reader(str(XENIUM / "cell_feature_matrix.h5"))(str(XENIUM / "cell_feature_matrix.h5"))
    assert len(layers) == 1
    data, kw, kind = layers[0]
    assert kind == "points" and data.shape == (36602, 2)
    np.testing.assert_allclose(data[0], [2540.963146972656, 1898.8149169921874])  # napari (y, x), µm
    assert "transcript_counts" in kw["features"] and kw["metadata"]["adata"].n_vars == 248


def test_coordinate_helpers_golden_values():
    from napari_spatial_impute.coords import apply_affine_xy, cosmx_global_px_to_um, pixel_grid_affine

    a = pixel_grid_affine(0.2125)  # Xenium morphology pixel 0 covers [0, 0.2125) µm: centre 0.10625
    np.testing.assert_allclose(apply_affine_xy(a, [[0, 0], [10, 4]]), [[0.10625, 0.10625], [2.23125, 0.95625]])
    np.testing.assert_allclose(cosmx_global_px_to_um([[5324.26944444444, -157187.503333333]], 0.12028),
                               [[640.40313, 18906.51290]], atol=1e-4)


def test_reader_function_never_raises(monkeypatch, tmp_path):
    import napari_spatial_impute._reader as rd

    shown = []
    monkeypatch.setattr(rd, "_notify", shown.append)
    assert rd.read_layers(str(tmp_path / "gone")) == []
    assert "not a recognised spatial dataset" in shown[0]


def test_cells_layer_claims_micrometres_only_for_a_sample_in_micrometres():
    """An .h5ad whose coordinates are pixels (``uns['spatial_unit']`` absent or "px") is drawn without units, so
    nothing downstream (a scale bar, the H&E dock's pixel size) reads its pixels as µm."""
    import anndata as ad

    from napari_spatial_impute.io.spatial_sample import SpatialSample
    from napari_spatial_impute.layers.instrument import sample_to_layers

    a = ad.AnnData(np.ones((3, 2), np.float32))
    a.obsm["spatial"] = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    px = sample_to_layers(SpatialSample(adata=a, platform="h5ad", unit="px"))
    um = sample_to_layers(SpatialSample(adata=a, platform="h5ad", unit="um"))
    assert "units" not in px[-1][1] and um[-1][1]["units"] == ("um", "um")


def test_cells_and_results_layers_take_their_unit_from_the_anndata(tmp_path):
    """The layer of an AnnData (an imputation result, the demo's, a saved one reopened) takes its unit from
    ``uns["spatial_unit"]``: the bundled osmFISH sample is in image pixels, so its result claims no µm (the demo's
    scale bar read "10 mm" over a section 25 k pixels wide); a result of µm cells is in µm."""
    import napari_spatial_impute as nsi
    from napari_spatial_impute.layers import cells_points_layer
    from napari_spatial_impute.layers.results import saved_result_layers

    spatial, reference = nsi.load_osmfish_sample()
    out = nsi.impute(spatial, reference, genes=["Gad2"], device="cpu")
    assert out.uns["spatial_unit"] == "px"
    assert "units" not in cells_points_layer(out, features="genes")[1]
    out.write_h5ad(tmp_path / "r.h5ad")
    (_, kwargs, _), = saved_result_layers(tmp_path / "r.h5ad")
    assert "units" not in kwargs
    xen, xref = nsi.load_xenium_sample()
    assert cells_points_layer(nsi.impute(xen, xref, genes=["Acta2"], device="cpu"), features="genes")[1]["units"] \
        == ("um", "um")


def test_held_out_gene_is_normalised_by_the_panel_library():
    """A held-out gene measured beside the panel (the grid's 'measured' half) is put on the imputed scale with the
    panel's library sizes, as the imputation's inputs and its scoring are, not with the held-out genes' own sums;
    in the panel's cell order."""
    import anndata as ad

    from napari_spatial_impute.layers.colour_by import colouring

    rng = np.random.default_rng(0)
    panel = ad.AnnData(rng.poisson(5, (6, 4)).astype(np.float32))
    panel.obs_names = [f"c{i}" for i in range(6)]
    truth = ad.AnnData(rng.poisson(3, (6, 2)).astype(np.float32) + 1)
    truth.obs_names = list(panel.obs_names[::-1])  # another order
    truth.var_names = ["H1", "H2"]
    total = panel.X.sum(1)
    counts = truth.X[::-1, 0]  # H1 in the panel's order
    expected = np.log1p(counts * np.median(total) / total)
    got = colouring("measured:H1", panel, truth=truth).values
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_measured_colouring_reads_the_counts_where_imputation_does():
    """Cells whose X holds log1p values and whose counts sit in layers['counts'] (the scanpy layout): a measured
    gene is coloured from the counts, normalised once, the same values as when X holds the counts."""
    import anndata as ad

    from napari_spatial_impute.layers.colour_by import colouring

    rng = np.random.default_rng(1)
    counts = rng.poisson(4, (300, 12)).astype(np.float32)
    plain = ad.AnnData(counts.copy())
    plain.var_names = [f"g{i}" for i in range(12)]
    scanpy_like = plain.copy()
    scanpy_like.layers["counts"] = counts.copy()
    scanpy_like.X = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4).astype(np.float32)
    want = colouring("measured:g3", plain).values
    np.testing.assert_allclose(colouring("measured:g3", scanpy_like).values, want, rtol=1e-6)


def test_obs_columns_are_titled_with_their_unit():
    """The canvas title under a numeric obs column names its unit (the cell_area colorbar had none)."""
    import pandas as pd

    from napari_spatial_impute.layers.colour_by import obs_colouring

    for name, unit in (("cell_area", "µm²"), ("area_um2", "µm²"), ("transcript_counts", "counts"),
                       ("blank_counts", "counts"), ("n_genes_by_counts", "genes"), ("score", "obs column")):
        c = obs_colouring(f"obs:{name}", pd.Series([1.0, 2.0, 3.0]))
        assert c.unit == unit and c.title == f"{name}\n{unit}", name
