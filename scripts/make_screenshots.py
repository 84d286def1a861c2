"""Screenshots for docs/: the widgets on real data. Run: ``make docs`` (xvfb-run … scripts/make_screenshots.py).

Writes docs/images/impute_widget_<method>.png (bundled real Xenium sample, its 98 absent genes),
impute_segmentation_merscope.png (MERSCOPE mouse brain opened by the reader: DAPI, segmentation coloured per
cell by a gene imputed from the Xenium mouse-brain reference, colorbar, µm scale bar),
impute_grid_measured_vs_imputed.png (the same MERSCOPE crop: a held-out gene measured | imputed on the segmentation) and
histology_widget_heatmap.png (her2st C6); the segmentation and histology sections need ../shared/datasets.
The format screenshots come from scripts/screenshot_formats.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"


def _wait(widget, app, timeout=600):
    t0 = time.time()
    while widget._worker is not None and time.time() - t0 < timeout:
        app.processEvents()
        time.sleep(0.05)


MERSCOPE = ROOT.parent / "shared" / "datasets" / "merscope_mouse_brain_mini"


def _settle(app, seconds: float = 0.5) -> None:
    t0 = time.time()
    while time.time() - t0 < seconds:
        app.processEvents()
        time.sleep(0.02)


def _viewer(widget: str, load):
    """Hidden viewer, ``load(viewer)`` to add the data, then the plugin's ``widget`` docked: (viewer, app, widget)."""
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=False, title="napari-spatial-impute")
    app = QApplication.instance()
    load(viewer)
    _, w = viewer.window.add_plugin_dock_widget("napari-spatial-impute", widget)
    return viewer, app, w


def _impute(w, app, method: str) -> None:
    """Run the impute widget with ``method`` to the end; exit if it failed."""
    w.method.value = method
    w.run()
    _wait(w, app)
    if w.view is None:
        raise SystemExit(f"imputation failed: {w.status.value}")
    _settle(app)


def _sample_imputed(method: str):
    """Bundled Xenium sample with all the genes its panel lacks imputed by ``method``: (viewer, app, widget)."""
    viewer, app, w = _viewer("Impute genes",
                             lambda v: v.open_sample("napari-spatial-impute", "xenium_mouse_brain"))
    while w.picker.list.count() == 0:
        app.processEvents()
    w.picker.mode.value = "all genes the panel lacks"
    _impute(w, app, method)
    return viewer, app, w


def segmentation_screenshot(gene: str = "Gfap") -> Path:
    """MERSCOPE mouse-brain crop through the reader, genes imputed from the Xenium reference, painted per cell."""
    from napari_spatial_impute.datasets import XENIUM_DIR, sample_path

    viewer, app, w = _viewer("Impute genes", lambda v: v.open(str(MERSCOPE), plugin="napari-spatial-impute"))
    w.reference_file.value = str(sample_path("reference.h5ad", XENIUM_DIR))
    while w.picker.list.count() == 0:
        app.processEvents()
    w.picker.select([gene, "Slc17a7", "Gad1", "Mbp", "Olig1"])
    _impute(w, app, "knn")
    w.colour.show(f"imputed:{gene}")
    for ly in viewer.layers:
        if type(ly).__name__ == "Points" or "polyT" in ly.name or "transcript" in ly.name:
            ly.visible = False
        if type(ly).__name__ == "Labels":
            ly.contour = 1  # outlines over the painted values
    _settle(app)
    return _shot(viewer, "impute_segmentation_merscope.png")


def grid_screenshot(gene: str | None = None) -> Path:
    """MERSCOPE mouse-brain crop through the reader: every other gene of those the panel shares with the Xenium
    reference is held out and imputed from the rest; the best-predicted one measured | imputed on the segmentation, each
    panel over the DAPI image with its title (kind, unit) and colour bar."""
    import numpy as np

    from napari_spatial_impute.datasets import XENIUM_DIR, sample_path

    viewer, app, w = _viewer("Impute genes", lambda v: v.open(str(MERSCOPE), plugin="napari-spatial-impute"))
    w.reference_file.value = str(sample_path("reference.h5ad", XENIUM_DIR))
    while w.picker.list.count() == 0:
        app.processEvents()
    held_out = sorted(w.picker.measured)[::2]  # every other shared gene: held out of the input and predicted
    w.picker.select(held_out)
    _impute(w, app, "knn")
    if gene is None:  # the gene whose imputation agrees best with its held-out measurement
        r = {g: np.corrcoef(w.view.colouring(f"measured:{g}").values, w.view.colouring(f"imputed:{g}").values)[0, 1]
             for g in w.view.paired()}
        gene = max(r, key=r.get)
        print(f"grid gene {gene}: Pearson r {r[gene]:.3f} (median over {len(r)} held-out genes "
              f"{np.median(list(r.values())):.3f})")
    for ly in viewer.layers:
        if "polyT" in ly.name or "transcript" in ly.name:
            ly.visible = False
    w.colour.show(f"imputed:{gene}")
    _settle(app)
    w.colour.grid_gene.value = gene
    w.colour.grid_on.value = True
    viewer.canvas.grid.spacing = 0.03
    qt = viewer.window._qt_viewer  # room for the two panels: the layer list and controls are folded away
    qt.dockLayerList.hide()
    qt.dockLayerControls.hide()
    _settle(app)
    viewer.window.resize(1500, 950)
    _settle(app)
    viewer.reset_view()
    viewer.camera.zoom *= 1.6  # the crop fills each panel
    return _shot(viewer, "impute_grid_measured_vs_imputed.png", reset=False)


def _shot(viewer, name: str, reset: bool = True) -> Path:
    viewer.window.resize(1500, 950)
    if reset:
        viewer.reset_view()
    viewer.screenshot(canvas_only=False)
    IMAGES.mkdir(parents=True, exist_ok=True)
    out = IMAGES / name
    viewer.screenshot(str(out), canvas_only=False)
    viewer.close()
    return out


def impute_widget(method: str, gene: str) -> Path:
    """Bundled real Xenium sample: impute the 98 genes its panel lacks with ``method``, colour the cells by
    ``gene`` (imputed; its measurement is in the sample's truth)."""
    viewer, app, w = _sample_imputed(method)
    w.colour.show(f"imputed:{gene}")
    _settle(app)
    return _shot(viewer, f"impute_widget_{method}.png")


HER2ST = ROOT.parent / "shared" / "datasets" / "her2st_subset"
TRAIN = {"C2": "C2_5714_HE_BT_C2.jpg", "C3": "C3_5714_HE_BT_D1.jpg", "C4": "C4_5714_HE_BT_D2.jpg",
         "C5": "C5_5714_HE_BT_E1.jpg"}


def histology_widget(gene: str = "ERBB2", epochs: int = 10, n_views: int = 2) -> Path:
    """Train a small STco on her2st C2–C5 (or reuse benchmarks/out/histology_docs_model), predict C6 whole-slide."""
    import numpy as np
    from PIL import Image

    from napari_spatial_impute import train_histology as train
    from napari_spatial_impute.io import read_st_section

    model_dir = ROOT / "benchmarks" / "out" / "histology_docs_model"
    if not (model_dir / "config.json").is_file():
        secs = [read_st_section(HER2ST / f"ST-cnts/{s}.tsv.gz", HER2ST / f"ST-spotfiles/{s}_selection.tsv",
                                HER2ST / "ST-imgs" / img) for s, img in TRAIN.items()]
        train(secs, seed=0, device="cpu", epochs=epochs, n_views=n_views).save(model_dir, overwrite=True)
    Image.MAX_IMAGE_PIXELS = None
    image = np.asarray(Image.open(HER2ST / "ST-imgs" / "C6_5714_HE_BT_E2.jpg").convert("RGB"))
    viewer, app, w = _viewer("Predict genes from H&E", lambda v: v.add_image(image, name="C6 H&E", rgb=True))
    w.model_dir.value = str(model_dir)
    w.image_layer.value = "C6 H&E"
    w.run()
    _wait(w, app)
    if w.output_layer is None:
        raise SystemExit(f"histology prediction failed: {w.status.value}")
    if gene in w.gene_select.choices:
        w.gene_select.value = gene
    return _shot(viewer, "histology_widget_heatmap.png")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="+", default=["knn", "stimpute"])
    ap.add_argument("--no-histology", action="store_true")
    ap.add_argument("--only-segmentation", action="store_true", help="only the segmentation and grid screenshots")
    ap.add_argument("--only-widgets", action="store_true", help="only the impute_widget_<method> screenshots")
    ap.add_argument("--only-histology", action="store_true", help="only histology_widget_heatmap.png")
    args = ap.parse_args(argv)
    if args.only_histology:
        print(histology_widget())
        return 0
    if args.only_widgets:
        for method in args.methods:
            print(impute_widget(method, {"knn": "Rorb"}.get(method, "Satb2")))
        return 0
    import os
    import tempfile

    os.environ.setdefault("NAPARI_SPATIAL_IMPUTE_CONFIG", tempfile.mkdtemp(prefix="nsi_screens_"))  # a new user
    if MERSCOPE.exists():
        print(segmentation_screenshot())
        print(grid_screenshot())
    if args.only_segmentation:
        return 0
    for method in args.methods:
        print(impute_widget(method, {"knn": "Rorb"}.get(method, "Satb2")))
    if not args.no_histology and HER2ST.exists():
        print(histology_widget())
    return 0


if __name__ == "__main__":
    sys.exit(main())
