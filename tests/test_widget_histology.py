"""The "Predict genes from H&E" widget through the real manifest, on her2st C6 with a small bundle."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_dataset

PLUGIN = "napari-spatial-impute"
GENES = ["ERBB2", "ACTB", "MGP", "KRT19", "CD74", "COL1A1"]


@pytest.fixture(scope="module")
def her2st():
    from napari_spatial_impute import train_histology as train
    from napari_spatial_impute.io import read_st_section
    from napari_spatial_impute.models.stco.patches import load_rgb

    root = shared_dataset("her2st_subset")
    c2 = read_st_section(root / "ST-cnts/C2.tsv.gz", root / "ST-spotfiles/C2_selection.tsv",
                         root / "ST-imgs/C2_5714_HE_BT_C2.jpg")
    c3 = read_st_section(root / "ST-cnts/C3.tsv.gz", root / "ST-spotfiles/C3_selection.tsv",
                         root / "ST-imgs/C3_5714_HE_BT_D1.jpg")
    c6 = read_st_section(root / "ST-cnts/C6.tsv.gz", root / "ST-spotfiles/C6_selection.tsv",
                         root / "ST-imgs/C6_5714_HE_BT_E2.jpg")
    # two sections: each is held out in turn at training time, which gives the per-gene expected r
    model = train([c2, c3], genes=GENES, seed=0, device="cpu", patch_px=64, n_views=1, epochs=5, tta=1)
    image, factor = load_rgb(c6.uns["histology"]["image"], 4)
    return model, c6, image, factor


@pytest.fixture
def widget(make_napari_viewer, her2st, tmp_path):
    model, c6, image, factor = her2st
    model.save(tmp_path / "bundle")
    viewer = make_napari_viewer()
    # the H&E at 1/4 resolution, scaled so the world is full-resolution pixels
    viewer.add_image(image, name="C6 H&E", rgb=True, scale=(factor, factor))
    _, w = viewer.window.add_plugin_dock_widget(PLUGIN, "Predict genes from H&E")
    w.model_dir.value = tmp_path / "bundle"
    w.pixel_size.value = c6.uns["histology"]["pixel_size_um"] * factor
    return viewer, w


def _run(w, qtbot):
    w.run()
    qtbot.waitUntil(lambda: w._worker is None, timeout=60_000)


def test_whole_slide_heatmap_overlays_the_image(widget, qtbot):
    viewer, w = widget
    assert w.image_layer.value == "C6 H&E"
    w.tile_um.value = 200.0
    _run(w, qtbot)
    layer = w.output_layer
    assert layer is not None and layer in viewer.layers, w.status.value
    pred = w.result  # the prediction AnnData: one row per kept tile
    grid_shape = tuple(pred.uns["napari_spatial_impute"]["grid_shape"])
    assert layer.data.shape == grid_shape and np.isfinite(layer.data).sum() == pred.n_obs
    img = viewer.layers["C6 H&E"]
    # element (i, j) of the heat map is drawn at the world position of its tile centre on the H&E layer
    r, c = pred.obs["tile_row"].to_numpy(), pred.obs["tile_col"].to_numpy()
    world = np.asarray(layer.translate) + np.column_stack([r, c]) * np.asarray(layer.scale)
    expected = pred.obsm["spatial_px"][:, ::-1] * np.asarray(img.scale) + np.asarray(img.translate)
    np.testing.assert_allclose(world, expected, rtol=1e-9, atol=1e-6)
    # and the tiles lie inside the image
    assert (world >= 0).all() and (world <= np.asarray(img.data.shape[:2]) * np.asarray(img.scale)).all()
    viewer.add_points(np.zeros((1, 2)), name="unrelated")  # layer events must not wipe the gene list
    assert len(w.gene_select.choices) == w.result.n_vars
    before = np.array(layer.data)
    other = [g for g in w.gene_select.choices if g != w.gene_select.value][0]
    w.gene_select.value = other
    assert layer.name.endswith(other) and not np.allclose(np.nan_to_num(before), np.nan_to_num(layer.data))
    # the canvas names the gene and the unit; the heat map's colorbar shows the values
    r = dict(zip(w.model.genes, w.model.expected_r))  # with the bundle's expected r for that gene
    assert viewer.text_overlay.visible
    assert viewer.text_overlay.text.startswith(f"{other}  (expected r {r[other]:.2f})\n")
    assert "predicted from H&E" in viewer.text_overlay.text and layer.colorbar.visible
    # the colorbar stacks under the title (as the imputation side's), never over it in a narrow canvas
    from napari_spatial_impute.layers.paint import LEGEND_POSITION

    assert str(layer.colorbar.position) == str(viewer.text_overlay.position) == LEGEND_POSITION


def test_points_per_spot_with_gene_features(widget, her2st, qtbot):
    viewer, w = widget
    _, c6, _, _ = her2st
    spots_yx = c6.obsm["spatial_px"][:, ::-1]
    viewer.add_points(spots_yx, name="C6 spots", size=100)
    w.spots_layer.value = "C6 spots"
    _run(w, qtbot)
    layer = w.output_layer
    assert layer is not None and layer.name.startswith("H&E →"), w.status.value
    world = layer.data * np.asarray(layer.scale) + np.asarray(layer.translate)
    np.testing.assert_allclose(world, spots_yx, rtol=1e-9, atol=1e-6)
    # in the H&E layer's world, whose units are pixels here (not the spots' µm)
    assert tuple(map(str, layer.units)) == tuple(map(str, viewer.layers[w.image_layer.value].units)) == ("pixel",) * 2
    assert [c for c in layer.features.columns if c != "cell_id"] == GENES
    assert layer.face_colorbar.visible  # the markers' values have a colorbar, as the heat map's do
    # the layer builder alone: no units claimed unless the image's are given (the widget passes its layer's)
    from napari_spatial_impute.layers.histology import spots_layer

    assert "units" not in spots_layer(w.result, GENES[0])[1]
    assert spots_layer(w.result, GENES[0], image_units=("um", "um"))[1]["units"] == ("um", "um")
    w.gene_select.value = "ERBB2"
    hi, lo = int(np.argmax(layer.features["ERBB2"])), int(np.argmin(layer.features["ERBB2"]))
    assert layer.face_color[hi, :3].sum() > layer.face_color[lo, :3].sum()
    # the gene list: most reliable first, each with the bundle's expected r (its training validation)
    model = w.model
    r = dict(zip(model.genes, model.expected_r))
    labels = [w.gene_select.native.itemText(i) for i in range(w.gene_select.native.count())]
    assert list(w.gene_select.choices) == sorted(GENES, key=lambda g: -r[g])
    assert labels[0] == f"{w.gene_select.choices[0]}  [expected r {max(r.values()):.2f}]"
    assert w.result.var["expected_r"].to_numpy() == pytest.approx([r[g] for g in GENES])


def test_missing_bundle_is_reported(widget, tmp_path):
    viewer, w = widget
    w.model_dir.value = tmp_path / "nothing-here"
    w.run()
    assert w._worker is None and "not a model bundle" in w.status.value and len(viewer.layers) == 1


def test_pixel_size_auto_comes_from_a_layer_in_micrometres(widget, her2st, qtbot, recwarn):
    """An H&E layer shown in µm (as the instrument readers show theirs): "auto" reads its pixel size from the
    layer's scale, so patches are cut at the model's physical size without a guess."""
    viewer, w = widget
    _, c6, image, factor = her2st
    um_per_px = c6.uns["histology"]["pixel_size_um"] * factor
    viewer.add_image(image, name="C6 H&E (µm)", rgb=True, scale=(um_per_px, um_per_px), units=("um", "um"))
    w.image_layer.value = "C6 H&E (µm)"
    w.pixel_size.value = 0.0
    assert w.pixel_size.native.text() == "auto"
    w.tile_um.value = 200.0
    _run(w, qtbot)
    assert w.output_layer is not None, w.status.value
    assert w.result.uns["napari_spatial_impute"]["pixel_size_um"] == pytest.approx(um_per_px)
    assert f"at {um_per_px:.3g} µm/px" in w.status.value
    # the layer is 4× coarser than the training scans: the dock says so in its status (a notification fades)
    assert "warning" in w.status.value and "magnification" in w.status.tooltip
    # drawn in the H&E layer's world units (napari renders no units when layers disagree)
    assert tuple(map(str, w.output_layer.units)) == ("micrometer", "micrometer")
    assert not [r for r in recwarn if "No pixel size given" in str(r.message)]


def test_layer_pixel_size_reads_units_scale_and_affine():
    from napari.layers import Image

    from napari_spatial_impute.layers.histology import layer_pixel_size_um

    rgb = np.zeros((8, 8, 3), np.uint8)
    assert layer_pixel_size_um(Image(rgb, rgb=True, scale=(0.5, 0.5))) is None  # pixels: unknown size
    assert layer_pixel_size_um(Image(rgb, rgb=True, scale=(0.5, 0.5), units=("um", "um"))) == pytest.approx(0.5)
    assert layer_pixel_size_um(Image(rgb, rgb=True, scale=(5e-4, 5e-4), units=("mm", "mm"))) == pytest.approx(0.5)
    assert layer_pixel_size_um(Image(rgb, rgb=True, scale=(0.5, 0.7), units=("um", "um"))) is None  # not square
    turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]) * [[0.25], [0.25], [1.0]]
    assert layer_pixel_size_um(Image(rgb, rgb=True, affine=turn, units=("um", "um"))) == pytest.approx(0.25)


def test_rotated_h_and_e_layer_spots_and_heatmap_follow_its_affine(widget, her2st, qtbot):
    """An H&E layer placed by an affine (a Xenium H&E with its alignment: rotated and scaled into µm): the spots
    are read in its pixels and the results are drawn where those pixels are in the world."""
    from napari_spatial_impute.coords import apply_affine_xy, layer_affine_xy

    viewer, w = widget
    _, c6, image, factor = her2st
    turn = np.array([[0.0, -1.0, 5000.0], [1.0, 0.0, 200.0], [0.0, 0.0, 1.0]])  # (y, x): a quarter turn
    turn[:2, :2] *= 0.8
    viewer.add_image(image, name="C6 H&E (aligned)", rgb=True, affine=turn)
    img = viewer.layers["C6 H&E (aligned)"]
    to_world = layer_affine_xy(img)
    spots_px = c6.obsm["spatial_px"] / factor  # in the shown (1/4) image's pixels
    spots_world = apply_affine_xy(to_world, spots_px)
    viewer.add_points(spots_world[:, ::-1], name="C6 spots (world)", size=50)
    w.image_layer.value = "C6 H&E (aligned)"
    w.pixel_size.value = c6.uns["histology"]["pixel_size_um"] * factor
    w.spots_layer.value = "C6 spots (world)"
    _run(w, qtbot)
    layer = w.output_layer
    assert layer is not None and layer.name.startswith("H&E →"), w.status.value
    np.testing.assert_allclose(w.result.obsm["spatial_px"], spots_px, atol=1e-6)  # read in the layer's pixels
    drawn = apply_affine_xy(layer_affine_xy(layer), layer.data[:, ::-1])
    np.testing.assert_allclose(drawn, spots_world, atol=1e-6)
    # tiles: each heat-map element is drawn at its tile centre on the rotated image
    w.spots_layer.value = "(whole slide: tile the tissue)"
    w.tile_um.value = 400.0
    _run(w, qtbot)
    heat, pred = w.output_layer, w.result
    cells_xy = np.column_stack([pred.obs["tile_col"], pred.obs["tile_row"]]).astype(float)
    np.testing.assert_allclose(apply_affine_xy(layer_affine_xy(heat), cells_xy),
                               apply_affine_xy(to_world, pred.obsm["spatial_px"]), atol=1e-6)


def test_train_in_the_dock_writes_a_new_folder_and_reuses_the_model(widget, her2st, qtbot, tmp_path, monkeypatch):
    """"Train on sections": an existing folder is refused before any work (and left as it was), the bundle is
    written to a new one, and a second Predict with the same sections and settings reuses the trained model."""
    import napari_spatial_impute.api.histology as api
    from napari_spatial_impute.models.stco import STco

    viewer, w = widget
    root = shared_dataset("her2st_subset")
    w.mode.value = "Train on sections"
    assert not w.train_params.native.isHidden() and not w.save_dir.native.isHidden() and w.model_dir.native.isHidden()
    for s, img in (("C2", "C2_5714_HE_BT_C2.jpg"), ("C3", "C3_5714_HE_BT_D1.jpg")):
        w.counts_file.value = root / f"ST-cnts/{s}.tsv.gz"
        w.spots_file.value = root / f"ST-spotfiles/{s}_selection.tsv"
        w.image_file.value = root / "ST-imgs" / img
        w.add_section_button.clicked.emit()
    assert w.sections_label.value == "C2, C3"
    w.add_section_button.clicked.emit()  # C3 again: it would validate on itself
    assert w.sections_label.value == "C2, C3" and "is a training section already" in w.status.value
    w.epochs.value = 2
    w.train_params.value = "n_genes=20, patch_px=64, n_views=1, tta=1"
    w.tile_um.value = 400.0
    keep = tmp_path / "my project"
    keep.mkdir()
    (keep / "thesis.txt").write_text("years of work")
    w.save_dir.value = keep
    w.run()
    assert w._worker is None and "already exists" in w.status.value and "new folder" in w.status.value
    assert [p.name for p in keep.iterdir()] == ["thesis.txt"] and (keep / "thesis.txt").read_text() == "years of work"

    fits = []
    real = api.train_histology_steps
    monkeypatch.setattr(api, "train_histology_steps", lambda *a, **k: fits.append(k) or real(*a, **k))
    w.save_dir.value = keep / "bundle"
    _run(w, qtbot)
    assert w.output_layer is not None, w.status.value
    model = w.model
    assert isinstance(model, STco) and len(model.genes) == 20 and model.cfg["epochs"] == 2 and len(fits) == 1
    assert fits[0]["patch_px"] == 64 and fits[0]["seed"] == 0
    assert STco.load(keep / "bundle").genes == model.genes and (keep / "thesis.txt").is_file()
    first = w.output_layer
    _run(w, qtbot)  # same sections and settings: no second training, no second save
    assert w.model is model and len(fits) == 1 and w.output_layer is not None, w.status.value
    # the earlier result stays in the layer list, hidden with its colorbar: one result and one colorbar shown
    assert first in viewer.layers and not first.visible and not first.colorbar.visible
    assert w.output_layer.visible and w.output_layer.colorbar.visible
    assert "reuses" in w.status.tooltip
    w.train_params.value = "n_genes=20, patch_px=64, n_views=1, tta=1, seed=1"  # a setting changed: trained anew
    w.save_dir.value = keep / "bundle"  # now taken: refused
    w.run()
    assert w._worker is None and "already exists" in w.status.value and len(fits) == 1
    w.save_dir.line_edit.value = ""
    _run(w, qtbot)
    assert w.model is not model and len(fits) == 2 and fits[1]["seed"] == 1, w.status.value
    w.train_params.value = "n_genes=20, bogus=1"
    w.run()
    assert w._worker is None and "'bogus' is not a parameter of stco" in w.status.value


def test_train_in_the_dock_on_a_visium_outs_folder(widget, her2st, qtbot, tmp_path, monkeypatch):
    """"Section files: 10x Visium outs/ folder": the spaceranger folder (here C6 re-written as one,
    tests/_visium.py) is added beside a legacy-ST section and read in the worker as the same spots and pixel size;
    a folder that is not there is refused at Add section, and the list is left as it was."""
    import napari_spatial_impute.api.histology as api
    from _visium import her2st_as_visium

    model, c6, _, _ = her2st
    viewer, w = widget
    root = shared_dataset("her2st_subset")
    w.mode.value = "Train on sections"
    assert w.visium_path.native.isHidden() and not w.counts_file.native.isHidden()
    w.counts_file.value = root / "ST-cnts/C2.tsv.gz"
    w.spots_file.value = root / "ST-spotfiles/C2_selection.tsv"
    w.image_file.value = root / "ST-imgs/C2_5714_HE_BT_C2.jpg"
    w.add_section_button.clicked.emit()
    w.section_format.value = "10x Visium outs/ folder"
    assert not w.visium_path.native.isHidden() and w.counts_file.native.isHidden() and w.spots_file.native.isHidden()
    assert w.image_file.label == "Full-res H&E (optional)"
    w.visium_path.value = tmp_path / "nowhere"
    w.add_section_button.clicked.emit()
    assert "outs/ folder" in w.status.value and len(w.sections) == 1
    w.visium_path.value = her2st_as_visium(c6, tmp_path / "P1_C6")
    w.image_file.value = root / "ST-imgs/C6_5714_HE_BT_E2.jpg"
    w.add_section_button.clicked.emit()
    assert w.sections_label.value == "C2, P1_C6"

    seen = []

    def fake_training(sections, **kwargs):  # the sections as the worker read them; the fixture's model back
        seen.append(sections)
        return model
        yield  # a generator, as train_histology_steps is

    monkeypatch.setattr(api, "train_histology_steps", fake_training)
    w.tile_um.value = 400.0
    _run(w, qtbot)
    assert w.output_layer is not None, w.status.value
    (c2, vis), = seen
    assert c2.uns["histology"]["platform"] != "visium" and vis.uns["histology"]["platform"] == "visium"
    assert list(vis.obs_names) == list(c6.obs_names)
    np.testing.assert_allclose(vis.obsm["spatial_px"], c6.obsm["spatial_px"])
    assert vis.uns["histology"]["pixel_size_um"] == pytest.approx(c6.uns["histology"]["pixel_size_um"])


def test_train_in_the_dock_on_an_open_sample(widget, her2st, qtbot, monkeypatch):
    """"An open sample": the spots layer of a section opened in napari (her2st C2 through the plugin's reader
    path) is a training section as it is — its AnnData, not a copy read again; adding it twice is refused; other
    cells layers (no H&E) are not offered."""
    import napari_spatial_impute.api.histology as api
    from napari_spatial_impute.io import read_st_section
    from napari_spatial_impute.io.sections import section_to_sample
    from napari_spatial_impute.layers import sample_to_layers

    model, *_ = her2st
    viewer, w = widget
    root = shared_dataset("her2st_subset")
    c2 = section_to_sample(read_st_section(root / "ST-cnts/C2.tsv.gz", root / "ST-spotfiles/C2_selection.tsv",
                                           root / "ST-imgs/C2_5714_HE_BT_C2.jpg"), "st")
    for data, kwargs, kind in sample_to_layers(c2):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    viewer.add_points(np.zeros((3, 2)), name="other cells", metadata={"adata": c2.adata[:3, :2].copy()})
    del viewer.layers["other cells"].metadata["adata"].uns["histology"]
    w.mode.value = "Train on sections"
    w.section_format.value = "An open sample (its spots layer)"
    assert not w.open_spots.native.isHidden() and w.image_file.native.isHidden() and w.visium_path.native.isHidden()
    assert list(w.open_spots.choices) == ["st cells"]
    w.add_section_button.clicked.emit()
    w.add_section_button.clicked.emit()
    assert w.sections_label.value == "st cells" and "already" in w.status.value
    w.clear_sections_button.clicked.emit()  # a wrong pick is taken back
    assert w.sections == [] and w.sections_label.value == "none"
    w.add_section_button.clicked.emit()
    assert w.sections_label.value == "st cells"

    seen = []

    def fake_training(sections, **kwargs):
        seen.append(sections)
        return model
        yield

    monkeypatch.setattr(api, "train_histology_steps", fake_training)
    w.tile_um.value = 400.0
    _run(w, qtbot)
    assert w.output_layer is not None, w.status.value
    assert len(seen) == 1 and seen[0][0] is viewer.layers["st cells"].metadata["adata"]
    _run(w, qtbot)  # same section and settings: the model trained in the dock is reused
    assert len(seen) == 1
    # another sample's layer (the same counts, another AnnData) in its place: trained anew, never taken for the first
    for data, kwargs, kind in sample_to_layers(section_to_sample(c2.adata.copy(), "st")):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    w.clear_sections_button.clicked.emit()
    w.open_spots.value = "st cells [1]"
    w.add_section_button.clicked.emit()
    _run(w, qtbot)
    assert len(seen) == 2 and seen[1][0] is viewer.layers["st cells [1]"].metadata["adata"]


def test_closing_the_h_and_e_layer_while_predicting_draws_nothing(widget, qtbot):
    """The heat map was drawn with the closed layer's placement (1.45× off the tissue under another image) and
    the status said it worked; now nothing is drawn and the status says why."""
    viewer, w = widget
    w.tile_um.value = 400.0
    w.run()
    viewer.layers.remove("C6 H&E")
    qtbot.waitUntil(lambda: w._worker is None, timeout=60_000)
    assert w.output_layer is None and "closed while predicting: nothing drawn" in w.status.value
    assert [ly.name for ly in viewer.layers] == []


def test_spots_in_micrometres_over_an_image_in_pixels_are_refused(widget, her2st):
    """The spots of a sample opened with the plugin (µm) over an H&E opened by napari (pixels) landed 0.69×
    off their tissue with only a hover warning; the run is refused with the fix."""
    viewer, w = widget
    _, c6, _, _ = her2st
    xy = c6.obsm["spatial"]  # µm
    viewer.add_points(xy[:, ::-1], name="st cells", units=("um", "um"))
    w.spots_layer.value = "st cells"
    w.run()
    assert w._worker is None and "not placed in one world" in w.status.value
