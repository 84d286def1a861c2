"""The viewer side of the main job through the real manifest: a sample with segmentation opened, imputed, its
labels coloured per cell, genes switched, coloured by an obs column, saved and re-opened."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import shared_dataset

PLUGIN = "napari-spatial-impute"


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_CONFIG", str(tmp_path / "config"))


def _settled(widget, qtbot):
    """Wait until the widget's queued display steps (one per event-loop turn) have all run."""
    qtbot.waitUntil(lambda: not widget._turns._busy, timeout=10_000)


def _wait(widget, qtbot, timeout=120_000):
    qtbot.waitUntil(lambda: widget._worker is None, timeout=timeout)


def _synthetic_sample():
    """Bundled real Xenium cells (first 400) on a synthetic label mask: one 6×6 px square per cell, 1 µm/px."""
    from napari_spatial_impute.datasets import load_xenium_sample
    from napari_spatial_impute.io.spatial_sample import SampleLabels, SpatialSample

    spatial, reference = load_xenium_sample()
    spatial = spatial[:400].copy()
    side = 20
    mask = np.zeros((side * 8, side * 8), np.int32)
    xy = np.zeros((400, 2))
    for i in range(400):
        r, c = divmod(i, side)
        mask[r * 8 + 1:r * 8 + 7, c * 8 + 1:c * 8 + 7] = i + 1
        xy[i] = (c * 8 + 3.5, r * 8 + 3.5)  # centre in µm (pixel centres at integer µm)
    spatial.obsm["spatial"] = xy
    spatial.obs["cluster"] = pd.Categorical([f"type {i % 7}" for i in range(400)])
    labels = SampleLabels("cells", mask, np.eye(3), {i + 1: spatial.obs_names[i] for i in range(400)})
    return SpatialSample(spatial, labels=[labels], platform="xenium", path="synthetic"), reference


def _value_under(layer, viewer, yx_world):
    return layer.get_value(np.asarray(yx_world), world=True)


def test_segmentation_coloured_per_cell_switch_obs_save_reopen(make_napari_viewer, qtbot, tmp_path):
    from napari_spatial_impute.layers import sample_to_layers

    sample, reference = _synthetic_sample()
    viewer = make_napari_viewer()
    for data, kwargs, kind in sample_to_layers(sample):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    ref_path = tmp_path / "reference.h5ad"
    reference.write_h5ad(ref_path)
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Impute genes")
    assert w.spatial_layer.value == "xenium cells"
    # the value image of the segmentation is made (hidden, no memory) when the sample is chosen, not in the run
    _settled(w, qtbot)
    spare = next(ly for ly in viewer.layers if ly.metadata.get("painted_from") == "cells")
    assert not spare.visible and spare.colorbar.visible and spare.data.strides == (0, 0)
    names = [ly.name for ly in viewer.layers]
    assert names.index(spare.name) == names.index("cells") + 1  # just above its Labels layer
    assert w.device.choices[0] == "auto" and "cpu" in w.device.choices
    w.reference_file.value = str(ref_path)
    qtbot.waitUntil(lambda: w.picker.list.count() > 0, timeout=30_000)
    assert len(w.picker.missing) == 98  # the genes the panel truly lacks
    assert "cells" in w.estimate.value and "genes" in w.estimate.value  # the run estimate is shown
    w.picker.select(["Gfap", "Sst", "Pvalb"])
    w.method.value = "knn"
    w.run()
    _wait(w, qtbot)
    _settled(w, qtbot)  # the segmentation is painted in later event-loop turns (short GUI-thread steps)
    assert w.view is not None, w.status.value
    layer = viewer.layers["xenium cells"]
    assert {"Gfap", "Sst", "Pvalb"} <= set(layer.features.columns)  # imputed genes are features of the cells
    painted = w.view.painted["cells"]
    assert painted is spare and painted.visible and painted.colorbar.visible and painted.name != "cells: colour by"
    assert viewer.scale_bar.visible and all(str(u) == "micrometer" for ly in viewer.layers for u in ly.units)
    xy = sample.adata.obsm["spatial"]
    for gene in ("Gfap", "Sst"):
        w.colour.show(f"imputed:{gene}")
        _settled(w, qtbot)
        imputed = w.result[:, gene].X.ravel()
        for i in (0, 37, 399):
            got = _value_under(painted, viewer, (xy[i, 1], xy[i, 0]))
            assert got == pytest.approx(float(imputed[i]), rel=1e-6), (gene, i)
        assert gene in viewer.text_overlay.text and "imputed" in viewer.text_overlay.text
    # colour by a categorical obs column: distinct colours per category, legend lists them
    w.colour.show("obs:cluster")
    _settled(w, qtbot)
    painted = w.view.painted["cells"]
    assert painted.rgb
    c0 = _value_under(painted, viewer, (xy[0, 1], xy[0, 0]))
    c1 = _value_under(painted, viewer, (xy[1, 1], xy[1, 0]))
    c7 = _value_under(painted, viewer, (xy[7, 1], xy[7, 0]))
    assert tuple(c0) == tuple(c7) and tuple(c0) != tuple(c1)
    assert w.colour.legend.items.count() == 7
    # measured gene, then save and re-open through the reader
    w.colour.show("measured:Slc17a7")
    out = tmp_path / "result.h5ad"
    w.save_results(out)
    _wait(w, qtbot)
    assert out.is_file() and not (tmp_path / "result.h5ad.partial").exists()
    reopened = viewer.open(str(out), plugin=PLUGIN)
    adata = reopened[-1].metadata["adata"]
    assert sorted(adata.var_names) == ["Gfap", "Pvalb", "Sst"]
    np.testing.assert_allclose(adata[:, "Sst"].X.ravel(), w.result[:, "Sst"].X.ravel(), rtol=1e-6)
    assert adata.uns["napari_spatial_impute"]["method"] == "knn"
    assert adata.uns["napari_spatial_impute"]["sample"] == "synthetic"


def test_instrument_folder_through_reader(make_napari_viewer, qtbot, tmp_path):
    """MERSCOPE mouse-brain crop (DAPI + cell polygons) imputed from the Xenium mouse-brain reference."""
    folder = shared_dataset("merscope_mouse_brain_mini")
    from napari_spatial_impute.datasets import XENIUM_DIR, sample_path

    viewer = make_napari_viewer()
    viewer.open(str(folder), plugin=PLUGIN)
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Impute genes")
    w.reference_file.value = str(sample_path("reference.h5ad", XENIUM_DIR))
    qtbot.waitUntil(lambda: w.picker.list.count() > 0, timeout=30_000)
    w.picker.select(["Gfap", "Slc17a7"])
    w.method.value = "knn"
    w.run()
    _wait(w, qtbot)
    _settled(w, qtbot)
    assert w.view is not None and w.view.masks, w.status.value
    painted = next(iter(w.view.painted.values()))
    labels = next(ly for ly in viewer.layers if type(ly).__name__ == "Labels")
    ids = labels.metadata["label_ids"]
    obs = labels.metadata["label_obs"]
    # the value under each of a few labelled cells is that cell's imputed value
    values = pd.Series(w.result[:, "Gfap"].X.ravel(), index=w.result.obs_names.astype(str))
    w.colour.show("imputed:Gfap")
    _settled(w, qtbot)
    data = np.asarray(labels.data)
    for lid, cell in list(zip(ids, obs))[:20:4]:
        rr, cc = np.nonzero(data == lid)
        k = len(rr) // 2
        world = labels.data_to_world((rr[k], cc[k]))
        assert painted.get_value(world, world=True) == pytest.approx(values[cell], rel=1e-5)
