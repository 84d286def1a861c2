"""The "Impute genes" widget through the real manifest, on the bundled sample."""

import time

import numpy as np
import pytest

PLUGIN = "napari-spatial-impute"


def _wait_idle(widget, qtbot, timeout=60_000):
    qtbot.waitUntil(lambda: widget._worker is None, timeout=timeout)


@pytest.fixture
def viewer_with_sample(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "osmfish_allenssp")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Impute genes")
    return viewer, widget


def test_sample_opens_as_points_with_adata(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open_sample(PLUGIN, "osmfish_allenssp")
    layer = layers[0]
    assert layer.data.shape == (3405, 2)
    assert layer.metadata["adata"].n_vars == 33 and layer.metadata["reference"].n_obs == 1000
    np.testing.assert_allclose(layer.data[0], [24590.79527, 18171.23094])  # (y, x) of the first cell


def test_widget_imputes_and_recolours(viewer_with_sample, qtbot):
    viewer, w = viewer_with_sample
    assert w.spatial_layer.value == "osmFISH cells"
    assert w.device_label.value.startswith("cpu")
    w.genes.value = "Gad2, Vip, Plp1"
    w.run()
    _wait_idle(w, qtbot)
    layer = w.output_layer
    assert layer is not None and layer in viewer.layers and len(viewer.layers) == 2
    assert list(layer.features.columns) == ["cell_id", "Gad2", "Vip", "Plp1"]
    np.testing.assert_allclose(layer.data, viewer.layers["osmFISH cells"].data)
    assert sorted(w.gene_select.choices) == ["Gad2", "Plp1", "Vip"]
    # colours follow the shown gene: the cell with the highest imputed Plp1 is the brightest in magma
    w.gene_select.value = "Plp1"
    hi = int(np.argmax(layer.features["Plp1"]))
    lo = int(np.argmin(layer.features["Plp1"]))
    assert layer.face_color[hi, :3].sum() > layer.face_color[lo, :3].sum()
    colors_plp1 = layer.face_color.copy()
    w.gene_select.value = "Vip"
    assert not np.allclose(colors_plp1, layer.face_color)  # recoloured without recomputing
    assert w.result.n_vars == 3


def test_cancel_mid_run_adds_nothing(viewer_with_sample, qtbot, monkeypatch):
    from napari_spatial_impute import api

    real = api.impute_steps

    def slow_steps(*args, **kwargs):  # the real pipeline, slowed so Cancel lands mid-run
        gen = real(*args, **kwargs)
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            time.sleep(0.2)
            yield event

    monkeypatch.setattr(api, "impute_steps", slow_steps)
    viewer, w = viewer_with_sample
    w.genes.value = "Gad2"
    w.run()
    qtbot.waitUntil(lambda: w.progress_bar.value > 0 or "preparing" in str(w.status.value), timeout=10_000)
    w.cancel()
    _wait_idle(w, qtbot)
    assert len(viewer.layers) == 1 and w.output_layer is None
    assert "cancelled" in w.status.value
    # the viewer and widget stay usable: a second run completes
    monkeypatch.setattr(api, "impute_steps", real)
    w.run()
    _wait_idle(w, qtbot)
    assert w.output_layer is not None and len(viewer.layers) == 2


def test_bad_input_shows_message_and_adds_nothing(viewer_with_sample, qtbot):
    viewer, w = viewer_with_sample
    adata = viewer.layers["osmFISH cells"].metadata["adata"]
    before = adata.X.copy()
    w.genes.value = "NotAGene"
    w.run()
    _wait_idle(w, qtbot)
    assert "not in the reference" in w.status.value
    assert len(viewer.layers) == 1
    np.testing.assert_array_equal(adata.X, before)  # the user's data is untouched


def test_layer_opened_after_docking_is_selected(make_napari_viewer):
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Impute genes")
    viewer.open_sample(PLUGIN, "osmfish_allenssp")
    assert w.spatial_layer.value == "osmFISH cells"


def test_stimpute_reliability_table_and_threshold(viewer_with_sample, qtbot):
    viewer, w = viewer_with_sample
    w.method.value = "stimpute"
    w.genes.value = "Gad2, Vip, Plp1, Mfge8"
    # a short schedule keeps the test fast; the full default schedule is measured in benchmarks/
    w.extra_params.value = "ae_epochs=5, gnn_epochs=1, rounds=1, reliability_folds=2, max_train_cells=1000"
    w.run()
    _wait_idle(w, qtbot, timeout=300_000)
    layer = w.output_layer
    assert layer is not None, w.status.value
    rel = layer.metadata["reliability"]
    assert set(rel) == {"Gad2", "Vip", "Plp1", "Mfge8"}
    assert all(np.isfinite(v) for v in rel.values())
    # gene list sorted by reliability, best first; the table shows the same
    best_first = sorted(rel, key=lambda g: -rel[g])
    assert list(w.gene_select.choices) == best_first
    assert not w.gene_table.native.isHidden() and w.gene_table.native.rowCount() == 4
    # a threshold between the scores hides the less reliable genes
    threshold = float(np.mean([rel[best_first[1]], rel[best_first[2]]]))
    w.min_reliability.value = threshold
    assert set(w.gene_select.choices) == {g for g in rel if rel[g] >= w.min_reliability.value}
    # clicking a row shows that gene
    w._on_table_click(0, 0)
    assert w.gene_select.value == w.gene_table.native.item(0, 0).text()
    assert "reliability" in w.result.var
