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
    user_he = viewer.add_image(np.zeros((8, 8, 3), np.uint8), rgb=True, name="user H&E (pixels)")
    w.run()
    _wait(w, qtbot)
    _settled(w, qtbot)  # the segmentation is painted in later event-loop turns (short GUI-thread steps)
    assert w.view is not None, w.status.value
    layer = viewer.layers["xenium cells"]
    assert {"Gfap", "Sst", "Pvalb"} <= set(layer.features.columns)  # imputed genes are features of the cells
    painted = w.view.painted["cells"]
    assert painted is spare and painted.visible and painted.colorbar.visible and painted.name != "cells: colour by"
    assert not layer.visible  # the dots no longer cover the painted segmentation (ticked on, they show coloured)
    assert viewer.scale_bar.visible
    assert all(str(u) == "micrometer" for ly in viewer.layers if ly is not user_he for u in ly.units)
    assert tuple(map(str, user_he.units)) == ("pixel", "pixel")  # a user's layer keeps its units
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
    # on the canvas too: the title, then one line per category in its colour (napari's colorbar is continuous)
    from napari_spatial_impute.layers.paint import category_colors
    from napari_spatial_impute.layers.sample_view import LEGEND_KEY

    rows = [ov for key, ov in viewer.canvas.overlays.items() if key.startswith(LEGEND_KEY) and ov.visible]
    assert viewer.text_overlay.text.rstrip() == "cluster\ncategory" and len(rows) == 7
    colors = category_colors(7)
    swatch = {}
    for ov in rows:
        code = int(ov.text.split("type ")[1][0])
        assert ov.text == f"■ type {code} ({(np.arange(400) % 7 == code).sum()})"
        np.testing.assert_allclose(np.asarray(ov.color)[:3], colors[code][:3], atol=1e-6)
        swatch[code] = np.asarray(ov.color)[:3]
    painted_c0 = np.asarray(c0, np.float64)[:3]
    painted_c0 = painted_c0 / 255 if painted_c0.max() > 1 else painted_c0
    np.testing.assert_allclose(painted_c0, swatch[0], atol=0.02)  # cell 0 (type 0) painted in its legend colour
    # measured gene, then save and re-open through the reader
    w.colour.show("measured:Slc17a7")
    out = tmp_path / "result.h5ad"
    w.save_results(out)
    _wait(w, qtbot)
    assert out.is_file() and not (tmp_path / "result.h5ad.partial").exists()
    reopened = viewer.open(str(out), plugin=PLUGIN)
    result = reopened[-1].metadata["result"]  # the genes are imputed values, not counts to normalise again
    assert sorted(result.genes) == ["Gfap", "Pvalb", "Sst"] and reopened[-1].metadata["adata"].n_vars == 0
    np.testing.assert_allclose(result.values("Sst"), w.result[:, "Sst"].X.ravel(), rtol=1e-6)
    assert result.info["method"] == "knn" and result.info["sample"] == "synthetic"


def _painted_at_cells(labels, painted, cells, n=6):
    """(cell id, painted value) at the middle pixel of ``n`` labelled cells of ``labels``."""
    data = np.asarray(labels.data)
    out = []
    for lid, cell in list(zip(labels.metadata["label_ids"], labels.metadata["label_obs"]))[:: max(1, len(cells) // n)]:
        rr, cc = np.nonzero(data == lid)
        if len(rr) == 0:
            continue
        k = len(rr) // 2
        out.append((str(cell), painted.get_value(labels.data_to_world((rr[k], cc[k])), world=True)))
    return out


def test_instrument_folder_through_reader(make_napari_viewer, qtbot, tmp_path):
    """The whole day on a real MERSCOPE mouse-brain crop (DAPI + cell polygons) opened through the npe2 reader:
    impute two genes (kNN, Xenium mouse-brain reference), the segmentation coloured per cell by the chosen gene,
    switch gene, colour by an obs column, save, re-open the saved file: values unchanged."""
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
    labels = next(ly for ly in viewer.layers if type(ly).__name__ == "Labels")
    cells = viewer.layers[w.spatial_layer.value]
    painted = w.view.painted[labels.name]
    assert painted.visible and painted.colorbar.visible
    for gene in ("Gfap", "Slc17a7"):  # the first gene shown, then a switch: each cell's own imputed value
        w.colour.show(f"imputed:{gene}")
        _settled(w, qtbot)
        values = pd.Series(w.result[:, gene].X.ravel(), index=w.result.obs_names.astype(str))
        seen = _painted_at_cells(labels, painted, values)
        assert len(seen) >= 5 and len({round(float(v), 6) for _, v in seen}) > 1  # per cell, not one colour
        for cell, got in seen:
            assert got == pytest.approx(values[cell], rel=1e-5), (gene, cell)
        assert painted.name == f"{labels.name}: {gene}" and gene in viewer.text_overlay.text
        np.testing.assert_allclose(cells.features[gene].to_numpy(), values[cells.features["cell_id"]].to_numpy(),
                                   rtol=1e-6)
    # an obs column of the reader's cells (transcripts per cell): the painted value is the cell's own
    w.colour.show("obs:n_transcripts")
    _settled(w, qtbot)
    obs = cells.metadata["adata"].obs["n_transcripts"]
    obs.index = obs.index.astype(str)
    for cell, got in _painted_at_cells(labels, w.view.painted[labels.name], obs):
        assert got == pytest.approx(float(obs[cell]), rel=1e-6), cell
    assert "n_transcripts" in w.colour.legend.title.text()
    # save, then re-open through the reader: the imputed values come back as saved, not re-normalised
    out = tmp_path / "merscope_result.h5ad"
    w.save_results(out)
    _wait(w, qtbot)
    assert out.is_file(), w.status.value
    reopened = viewer.open(str(out), plugin=PLUGIN)[-1]
    result = reopened.metadata["result"]
    for gene in ("Gfap", "Slc17a7"):
        np.testing.assert_allclose(result.values(gene), w.result[:, gene].X.ravel(), rtol=1e-6)
        np.testing.assert_allclose(reopened.features[gene].to_numpy(), w.result[:, gene].X.ravel(), rtol=1e-6)
    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Colour cells by")
    dock.cells.value = reopened.name
    qtbot.waitUntil(lambda: dock.colour.view is not None and dock.colour.view.cells.name == reopened.name,
                    timeout=20_000)
    assert "measured:Gfap" not in dock.colour._keys and "imputed:Gfap" in dock.colour._keys
    c = dock.colour.view.colouring("imputed:Gfap")
    np.testing.assert_allclose(c.values, w.result[:, "Gfap"].X.ravel(), rtol=1e-6)


def test_load_result_onto_the_open_sample(make_napari_viewer, qtbot, tmp_path):
    """"Load result…": a saved result of these cells colours the segmentation per cell; a result of other cells is
    refused with a message in the widget and nothing is recoloured."""
    from napari_spatial_impute.api import impute
    from napari_spatial_impute.layers import sample_to_layers
    from napari_spatial_impute.layers.results import SampleResult, save_result_steps
    from napari_spatial_impute.progress import run_to_end

    sample, reference = _synthetic_sample()
    result = impute(sample.adata, reference, "knn", ["Gfap", "Sst"], seed=0, device="cpu")
    mine = run_to_end(save_result_steps(SampleResult(result, result.obs_names), tmp_path / "mine.h5ad"))
    other = result.copy()  # the same genes on another slide's cells (other ids)
    other.obs_names = [f"other-{i}" for i in range(other.n_obs)]
    theirs = run_to_end(save_result_steps(SampleResult(other, other.obs_names), tmp_path / "theirs.h5ad"))
    viewer = make_napari_viewer()
    for data, kwargs, kind in sample_to_layers(sample):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Impute genes")
    _settled(w, qtbot)
    spare = next(ly for ly in viewer.layers if ly.metadata.get("painted_from") == "cells")
    before = [ly.name for ly in viewer.layers]
    w.load_result(theirs)
    _wait(w, qtbot)
    _settled(w, qtbot)
    assert "do not match" in w.status.value and "nothing was recoloured" in w.status.value
    assert w.view is None and w.sample_result is None and not spare.visible and spare.data.strides == (0, 0)
    assert [ly.name for ly in viewer.layers] == before and "colour_by" not in viewer.layers["xenium cells"].metadata
    w.load_result(mine)
    _wait(w, qtbot)
    _settled(w, qtbot)
    assert w.status.value.startswith("loaded mine.h5ad: 2 genes, 400 of 400 cells matched"), w.status.value
    painted = w.view.painted["cells"]
    assert painted is spare and painted.visible and w.save_button.enabled
    xy = sample.adata.obsm["spatial"]
    for gene in ("Gfap", "Sst"):
        w.colour.show(f"imputed:{gene}")
        _settled(w, qtbot)
        for i in (0, 37, 399):
            got = _value_under(painted, viewer, (xy[i, 1], xy[i, 0]))
            assert got == pytest.approx(float(result[:, gene].X.ravel()[i]), rel=1e-6), (gene, i)
    # the cells layer closed while a result loads: a message, no error, nothing added
    w.load_result(mine)
    viewer.layers.remove("xenium cells")
    _wait(w, qtbot)
    _settled(w, qtbot)
    assert "closed while the job ran" in w.status.value, w.status.value
    assert "xenium cells" not in [ly.name for ly in viewer.layers]
