"""The "Impute genes" widget through the real manifest, on the bundled samples (Points, no segmentation)."""

import time

import numpy as np
import pandas as pd
import pytest

PLUGIN = "napari-spatial-impute"


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_CONFIG", str(tmp_path / "config"))


def _wait_idle(widget, qtbot, timeout=120_000):
    qtbot.waitUntil(lambda: widget._worker is None, timeout=timeout)


def _genes_ready(w, qtbot):
    qtbot.waitUntil(lambda: w.picker.list.count() > 0, timeout=30_000)


@pytest.fixture
def viewer_with_sample(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "osmfish_allenssp")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Impute genes")
    _genes_ready(widget, qtbot)
    return viewer, widget


def test_sample_opens_as_points_with_adata(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = viewer.open_sample(PLUGIN, "osmfish_allenssp")[0]
    assert layer.data.shape == (3405, 2)
    assert layer.metadata["adata"].n_vars == 33 and layer.metadata["reference"].n_obs == 1000
    np.testing.assert_allclose(layer.data[0], [24590.79527, 18171.23094])  # (y, x) of the first cell


def test_osmfish_prefills_held_out_genes_and_recolours(viewer_with_sample, qtbot):
    viewer, w = viewer_with_sample
    assert w.spatial_layer.value == "osmFISH cells"
    # the sample's paired reference: an empty field with a placeholder, not the current folder
    assert w.reference_file.line_edit.value == ""
    assert w.reference_file.line_edit.native.placeholderText() == "(paired reference of the sample)"
    assert w.out_file.line_edit.value == ""
    # the reference measures nothing the panel lacks: held-out genes are pre-selected, and the widget says so
    assert w.picker.missing == [] and "held out" in w.picker.note.value
    assert sorted(w.picker.chosen()) == sorted(["Gad2", "Vip", "Plp1", "Mfge8", "Aldoc", "Sox10"])
    w.picker.select(["Gad2", "Vip", "Plp1"])
    # the dock offers the default method; the run here is kNN to keep CI short (the widget passes the method's
    # name on: "auto" itself runs through the API in test_crossval_auto / test_cancel_xenium / test_determinism)
    assert w.method.value == "auto"
    w.method.value = "knn"
    w.run()
    _wait_idle(w, qtbot)
    layer = w.output_layer
    assert layer.name == "osmFISH cells", w.status.value
    assert [ly.name for ly in viewer.layers] == ["osmFISH cells"]
    assert {"Gad2", "Vip", "Plp1"} <= set(layer.features.columns)
    w.colour.show("imputed:Plp1")
    qtbot.waitUntil(lambda: layer.metadata.get("colour_by") == "imputed:Plp1")  # short GUI turns, in order
    hi, lo = int(np.argmax(layer.features["Plp1"])), int(np.argmin(layer.features["Plp1"]))
    assert layer.face_color[hi, :3].sum() > layer.face_color[lo, :3].sum()
    # the Points are the per-cell rendering here: their colorbar on the canvas, under the title (gene, unit)
    qtbot.waitUntil(lambda: layer.face_colorbar.visible)
    assert layer.face_contrast_limits == pytest.approx(w.view.clim) and layer.face_colormap.name == "magma"
    assert viewer.text_overlay.text.rstrip() == "Plp1\nlog1p normalised expression (imputed)"
    assert str(layer.face_colorbar.position) == str(viewer.text_overlay.position) == "top_left"
    before = layer.face_color.copy()
    w.colour.show("imputed:Vip")
    qtbot.waitUntil(lambda: not np.allclose(before, layer.face_color))  # recoloured without recomputing
    # the bar follows the gene (its own GUI turn, queued after the colours')
    qtbot.waitUntil(lambda: layer.face_contrast_limits == pytest.approx(w.view.clim))
    # measured vs imputed side by side for a gene that has both
    assert "Plp1" in w.colour.grid_gene.choices
    w.colour.grid_gene.value = "Plp1"
    w.colour.grid_on.value = True
    shown = [ly for ly in viewer.layers if ly.visible]
    assert viewer.grid.enabled and [ly.name for ly in shown] == ["Plp1 measured · log1p normalised counts",
                                                                 "Plp1 imputed · log1p normalised expression"]
    for ly in shown:  # each panel: its title (gene, kind, unit) and its colorbar on the canvas
        assert ly.name_overlay.visible and ly.face_colorbar.visible
        assert ly.face_contrast_limits == shown[0].face_contrast_limits  # one scale for both
    assert not viewer.text_overlay.visible
    w.colour.grid_on.value = False
    assert not viewer.grid.enabled and viewer.layers["osmFISH cells"].visible and len(viewer.layers) == 1


def test_osmfish_empty_choice_imputes_the_held_out_genes(viewer_with_sample, qtbot):
    """No gene chosen on the osmFISH sample (its reference adds no gene): the held-out genes are predicted and
    compared with their measurement, instead of stopping with "every reference gene is already measured"."""
    viewer, w = viewer_with_sample
    held_out = ["Gad2", "Vip", "Plp1", "Mfge8", "Aldoc", "Sox10"]
    w.picker.list.clearSelection()
    assert w.picker.chosen() == [] and "held-out genes" in w.picker.note.value
    assert "6 genes" in w.estimate.value or "× 6" in w.estimate.value or "6 genes" in w.estimate.tooltip
    w.method.value = "knn"
    w.run()
    _wait_idle(w, qtbot)
    assert w.result is not None, w.status.value
    assert sorted(w.result.var_names) == sorted(held_out)
    assert sorted(g for g in w.colour.grid_gene.choices if g) == sorted(held_out)  # measured too: comparable
    # the held-out values are predictions from the other genes: correlated with, not equal to, the measurement
    c_m, c_i = w.view.colouring("measured:Plp1"), w.view.colouring("imputed:Plp1")
    r = np.corrcoef(c_m.values, c_i.values)[0, 1]
    assert 0.2 < r < 0.999


def test_xenium_sample_imputes_truly_absent_genes_with_truth(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "xenium_mouse_brain")
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Impute genes")
    _genes_ready(w, qtbot)
    assert len(w.picker.missing) == 98 and w.picker.mode_key() == "top"  # empty choice = the absent genes
    w.picker.mode.value = "all genes the panel lacks"
    w.method.value = "knn"
    w.run()
    _wait_idle(w, qtbot)
    assert w.result is not None and w.result.n_vars == 98, w.status.value
    # every imputed gene has its held-out measurement (truth) for the grid
    assert len([g for g in w.colour.grid_gene.choices if g]) == 98
    truth = viewer.layers["Xenium cells"].metadata["truth"]
    import napari_spatial_impute.io.reference as reference
    from napari_spatial_impute.layers.colour_by import colouring

    found, real = [], reference.find_counts
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reference, "find_counts", lambda *a, **k: found.append(a[0]) or real(*a, **k))
        picks = [w.view.colouring("measured:" + g) for g in truth.var_names[:3]]
    assert all(np.isfinite(c.values).all() for c in picks)
    assert sum(a is truth for a in found) <= 1  # the truth's counts found once, not per gene picked
    again = colouring("measured:" + truth.var_names[2], w.view.adata, w.view.result, w.view.library(), truth)
    np.testing.assert_array_equal(picks[2].values, again.values)  # the kept counts give the same values


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
    w.picker.select(["Gad2"])
    w.run()
    qtbot.waitUntil(lambda: w.progress_bar.value > 0, timeout=10_000)
    w.cancel()
    _wait_idle(w, qtbot)
    assert len(viewer.layers) == 1 and w.view is None
    assert "cancelled" in w.status.value
    monkeypatch.setattr(api, "impute_steps", real)
    w.method.value = "knn"  # the re-run after a cancel: any method shows it (kNN keeps CI short)
    w.run()
    _wait_idle(w, qtbot)
    assert w.view is not None


def test_bad_input_shows_message_and_adds_nothing(viewer_with_sample, qtbot):
    viewer, w = viewer_with_sample
    adata = viewer.layers["osmFISH cells"].metadata["adata"]
    before = adata.X.copy()
    w.picker.set_genes([], w.picker.measured)  # a user's own panel: no held-out genes suggested
    w.picker.list.clearSelection()
    w.picker.mode.value = "chosen genes"
    w.run()  # nothing chosen, nothing to hold out, and the reference lacks nothing: the API's clear message
    _wait_idle(w, qtbot)
    assert "already measured" in w.status.value
    assert len(viewer.layers) == 1 and w.view is None
    np.testing.assert_array_equal(adata.X, before)


def test_chosen_genes_with_none_chosen_is_refused_before_any_work(viewer_with_sample, qtbot):
    """"chosen genes" with an empty selection: the estimate says so and Impute names the fix (it imputed the
    2,000 most variable genes while the estimate counted 0, so a run too large for memory was never refused)."""
    viewer, w = viewer_with_sample
    w.picker.set_genes(["Gad2", "Vip", "Plp1"], w.picker.measured)
    w.picker.list.clearSelection()
    w.picker.mode.value = "chosen genes"
    assert w.picker.n_targets() == 0
    w._ref_info = {"missing": ["Gad2", "Vip", "Plp1"], "shared": list(w.picker.measured), "n_obs": 100}
    w._update_estimate()
    assert "no gene chosen" in w.estimate.value
    w.run()
    assert w._worker is None and "no gene is chosen" in w.status.value and len(viewer.layers) == 1


def test_a_superseded_reference_read_changes_nothing(viewer_with_sample):
    """The genes of a reference read in the background arrive after another reference was chosen: dropped, so
    the picker never lists one reference's genes while the field names another."""
    viewer, w = viewer_with_sample
    layer = viewer.layers["osmFISH cells"]
    before, info = list(w.picker.missing), w._ref_info
    w._ref_worker = newer = object()  # the read of the reference chosen since
    w._on_reference_info({"missing": ["NotAGene1"], "shared": [], "n_obs": 5}, layer, worker=object())
    w._on_reference_error(RuntimeError("old file vanished"), worker=object())
    assert w.picker.missing == before and w._ref_info is info and "vanished" not in w.status.value
    w._on_reference_info({"missing": ["NotAGene1"], "shared": [], "n_obs": 5}, layer, worker=newer)
    assert w.picker.missing == ["NotAGene1"]


def test_result_of_another_sample_recolours_nothing(viewer_with_sample):
    from napari_spatial_impute.errors import InputError
    from napari_spatial_impute.layers.results import SampleResult

    viewer, w = viewer_with_sample
    adata = viewer.layers["osmFISH cells"].metadata["adata"]
    other = adata[:50].copy()
    other.obs_names = [f"cell_{i}" for i in range(50)]
    with pytest.raises(InputError, match="do not match"):
        SampleResult(other, adata.obs_names, adata.obsm["spatial"])
    moved = adata[:50].copy()
    moved.obsm["spatial"] = moved.obsm["spatial"] + 500.0
    with pytest.raises(InputError, match="another slide"):
        SampleResult(moved, adata.obs_names, adata.obsm["spatial"])


def test_ten_thousand_categories_do_not_freeze(viewer_with_sample, qtbot):
    viewer, w = viewer_with_sample
    layer = viewer.layers["osmFISH cells"]
    adata = layer.metadata["adata"]
    adata.obs["clone"] = pd.Categorical([f"c{i % 10_000}" for i in range(adata.n_obs)],
                                        categories=[f"c{i}" for i in range(10_000)])
    from napari_spatial_impute.layers.sample_view import SampleView

    w.colour.set_view(SampleView(viewer, layer))
    t0 = time.perf_counter()
    w.colour.show("obs:clone")
    assert time.perf_counter() - t0 < 5.0
    assert w.colour.legend.items.count() == 31  # 30 most frequent + "… and N more"
    assert len({tuple(c) for c in np.round(layer.face_color, 3)}) > 3000


def test_cancel_while_saving_leaves_no_file(viewer_with_sample, qtbot, tmp_path, monkeypatch):
    viewer, w = viewer_with_sample
    w.picker.select(["Gad2", "Vip"])
    w.method.value = "knn"  # a result to save
    w.run()
    _wait_idle(w, qtbot)
    from napari_spatial_impute.layers import results

    real = results.SampleResult.blocks

    def slow_blocks(self, rows=65_536):
        for item in real(self, rows=200):
            time.sleep(0.05)
            yield item

    monkeypatch.setattr(results.SampleResult, "blocks", slow_blocks)
    for name in ("big.zarr", "big.h5ad"):
        out = tmp_path / name
        w.save_results(out)
        qtbot.waitUntil(lambda: w.progress_bar.value > 5, timeout=10_000)
        w.cancel()
        _wait_idle(w, qtbot)
        assert not out.exists() and not (tmp_path / (name + ".partial")).exists(), name


def test_choices_remembered(make_napari_viewer, tmp_path, qtbot):
    from napari_spatial_impute._widgets import settings
    from napari_spatial_impute.datasets import XENIUM_DIR, sample_path

    ref = str(sample_path("reference.h5ad", XENIUM_DIR))
    settings.save(reference=ref, method="knn", colormap="viridis", device="cpu")
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Impute genes")
    assert str(w.reference_file.value) == ref and w.method.value == "knn" and w.device.value == "cpu"
    assert w.colour.colormap.value == "viridis"


def test_evaluate_on_my_panel(viewer_with_sample, qtbot, monkeypatch):
    from napari_spatial_impute import api

    real, seen = api.cross_validate_steps, {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "cross_validate_steps", spy)
    viewer, w = viewer_with_sample
    w.seed.value = 3
    w.device.value = "cpu"
    ev = w.open_evaluate()
    assert ev.spatial_layer.value == "osmFISH cells"
    assert ev.seed.value == 3 and ev.device.value == "cpu"  # the Impute widget's seed and device
    ev.folds.value = 3
    ev.run()
    _wait_idle(ev, qtbot)
    assert "knn" in ev.results, ev.status.value
    assert seen["seed"] == 3 and seen["device"] == "cpu"  # passed through to the cross-validation
    assert ev.table.native.rowCount() == 33 and "median per-gene PCC" in ev.status.value
    assert ev.figure.axes


def test_reference_values_choice_reaches_the_run(make_napari_viewer, qtbot, tmp_path):
    """A log-only reference: "auto" stops with the hint naming the widget's control; "log1p" then runs."""
    import napari_spatial_impute as nsi
    from test_reference_layouts import _log_cp10k

    _, reference = nsi.load_xenium_sample()
    logged = reference.copy()
    logged.X = _log_cp10k(reference.X)
    path = tmp_path / "log_only.h5ad"
    logged.write_h5ad(path)
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "xenium_mouse_brain")
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Impute genes")
    _genes_ready(w, qtbot)
    assert w.reference_values.value == "auto" and w.reference_values.choices == ("auto", "counts", "log1p")
    w.reference_file.value = path
    qtbot.waitUntil(lambda: "reading" not in w.estimate.value and w._ref_info is not None, timeout=30_000)
    w.method.value = "knn"
    w.picker.mode.value = "all genes the panel lacks"
    w.run()
    _wait_idle(w, qtbot)
    assert w.result is None and "no raw counts" in w.status.value
    assert "'Reference values: log1p' in the Impute widget" in w.status.value
    w.reference_values.value = "log1p"
    qtbot.waitUntil(lambda: "reading" not in w.estimate.value, timeout=30_000)
    w.run()
    _wait_idle(w, qtbot)
    assert w.result is not None and w.result.n_vars == 98, w.status.value
    assert "log1p (declared)" in w.result.uns["napari_spatial_impute"]["gene_match"]


def test_closing_the_dock_while_its_workers_run(make_napari_viewer, qtbot):
    """Closing the dock while the reference is read (and the warm-up runs): the late results are dropped, no
    error reaches the event loop (pytest-qt fails the test on one)."""
    from napari.qt.threading import WorkerBase
    from qtpy.QtCore import QThreadPool

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "xenium_mouse_brain")
    dock, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Impute genes")
    viewer.window.remove_dock_widget(dock)  # the reference read (and the dock's warm-up) may still be running
    w.native.deleteLater()
    qtbot.wait(50)
    pool = QThreadPool.globalInstance()
    qtbot.waitUntil(lambda: pool.activeThreadCount() == 0 and not WorkerBase._worker_set, timeout=60_000)
    qtbot.wait(300)  # their queued returns and the dock's queued display steps are delivered now


def test_a_cell_ranger_h5_reference_in_the_dock(make_napari_viewer, qtbot, tmp_path):
    """The Xenium sample's own reference written as Cell Ranger's filtered_feature_bc_matrix.h5: the dock lists its
    genes as for the .h5ad and imputes the same 98 genes the panel lacks."""
    import napari_spatial_impute as nsi
    from test_reference_layouts import _cellranger_outputs

    _, reference = nsi.load_xenium_sample()
    h5, _ = _cellranger_outputs(reference, tmp_path)
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "xenium_mouse_brain")
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Impute genes")
    _genes_ready(w, qtbot)
    paired = w._ref_info["missing"]
    w.reference_file.value = h5
    qtbot.waitUntil(lambda: "reading" not in w.estimate.value and w._ref_info is not None, timeout=30_000)
    assert w._ref_info["missing"] == paired and w._ref_info["n_obs"] == reference.n_obs
    w.method.value = "knn"
    w.picker.mode.value = "all genes the panel lacks"
    w.run()
    _wait_idle(w, qtbot)
    assert w.result is not None and w.result.n_vars == 98, w.status.value


def test_docks_scroll_instead_of_growing_the_window(make_napari_viewer, qtbot):
    """Impute alone needs ~1,070 px; with Colour by and Evaluate the window grew to 1,800 px, past the screen,
    with the plot and table out of sight. The docks scroll now, and are never clipped sideways."""
    from qtpy.QtWidgets import QScrollArea

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 800)
    viewer.open_sample(PLUGIN, "xenium_mouse_brain")
    docks = [viewer.window.add_plugin_dock_widget(PLUGIN, name)[1]
             for name in ("Impute genes", "Colour cells by", "Evaluate on my panel")]
    _genes_ready(docks[0], qtbot)
    qtbot.wait(200)
    assert viewer.window._qt_window.height() <= 1000
    for w in docks:
        assert isinstance(w.native, QScrollArea) and w.native.widget() is w.inner
        assert w.native.width() >= min(w.inner.minimumSizeHint().width(), w.inner.maximumWidth())


def test_an_unreadable_reference_is_said_not_raised(viewer_with_sample, qtbot, tmp_path):
    """A text file named .h5ad: the status says it could not be read (it raised in the event loop, the
    Estimate stuck at "reading the reference's genes…")."""
    viewer, w = viewer_with_sample
    bogus = tmp_path / "notes.h5ad"
    bogus.write_text("not an AnnData")
    w.reference_file.value = str(bogus)
    qtbot.waitUntil(lambda: "could not be read" in str(w.estimate.value), timeout=30_000)
    assert "Could not read the reference file notes.h5ad" in str(w.status.value)
    assert w.picker.list.count() == 0


def test_save_dialog_replace_yes_replaces_the_file(viewer_with_sample, qtbot, tmp_path, monkeypatch):
    """Qt's save dialog asks "replace?" for an existing file; after a yes the dock refused ("already exists")."""
    import anndata as ad
    from qtpy.QtWidgets import QFileDialog

    viewer, w = viewer_with_sample
    w.picker.select(["Gad2", "Vip"])
    w.method.value = "knn"
    w.run()
    _wait_idle(w, qtbot)
    out = tmp_path / "result.h5ad"
    out.write_text("an older file")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(out), "")))
    w._ask_save()
    _wait_idle(w, qtbot)
    assert list(ad.read_h5ad(out).var_names) == ["Gad2", "Vip"], w.status.value


def test_the_colour_dock_lists_genes_imputed_in_the_impute_dock(viewer_with_sample, qtbot):
    """Opened before imputing, "Colour cells by" listed 0 imputed genes until its cells were picked again."""
    viewer, w = viewer_with_sample
    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Colour cells by")
    qtbot.waitUntil(lambda: dock.colour.view is not None, timeout=30_000)
    assert not any(k.startswith("imputed:") for k in dock.colour._keys)
    w.picker.select(["Gad2", "Vip"])
    w.method.value = "knn"
    w.run()
    _wait_idle(w, qtbot)
    qtbot.waitUntil(lambda: {"imputed:Gad2", "imputed:Vip"} <= set(dock.colour._keys), timeout=10_000)


def test_a_reference_sharing_no_gene_is_said_before_impute(viewer_with_sample, qtbot, tmp_path):
    import anndata as ad

    viewer, w = viewer_with_sample
    other = ad.AnnData(np.random.default_rng(0).poisson(2.0, (50, 3)).astype(np.float32),
                       var=pd.DataFrame(index=["NOPE1", "NOPE2", "NOPE3"]))
    other.write_h5ad(tmp_path / "other.h5ad")
    w.reference_file.value = str(tmp_path / "other.h5ad")
    qtbot.waitUntil(lambda: "shares no gene" in str(w.estimate.value), timeout=30_000)


def test_closing_the_cells_layer_during_a_run_adds_no_bare_layer(viewer_with_sample, qtbot):
    viewer, w = viewer_with_sample
    w.picker.select(["Gad2"])
    w.method.value = "knn"
    w.run()
    viewer.layers.remove("osmFISH cells")
    _wait_idle(w, qtbot)
    assert len(viewer.layers) == 0 and "closed while the job ran" in w.status.value
