"""Screenshots for docs/: the widgets on real data. Run: ``make docs`` (xvfb-run … scripts/make_screenshots.py).

Writes docs/images/impute_widget_<method>.png (osmFISH sample) and histology_widget_heatmap.png (her2st C6,
needs ../shared/datasets); the format screenshots come from scripts/screenshot_formats.py.
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


def impute_widget(method: str, genes: str, gene: str) -> Path:
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=False, title="napari-spatial-impute")
    app = QApplication.instance()
    _, w = viewer.window.add_plugin_dock_widget("napari-spatial-impute", "Impute genes")
    viewer.open_sample("napari-spatial-impute", "osmfish_allenssp")
    w.method.value = method
    w.genes.value = genes
    w.run()
    _wait(w, app)
    if w.output_layer is None:
        raise SystemExit(f"imputation failed: {w.status.value}")
    viewer.layers["osmFISH cells"].visible = False
    w.gene_select.value = gene
    viewer.window.resize(1500, 950)
    viewer.reset_view()
    viewer.screenshot(canvas_only=False)
    IMAGES.mkdir(parents=True, exist_ok=True)
    out = IMAGES / f"impute_widget_{method}.png"
    viewer.screenshot(str(out), canvas_only=False)
    viewer.close()
    return out


HER2ST = ROOT.parent / "shared" / "datasets" / "her2st_subset"
TRAIN = {"C2": "C2_5714_HE_BT_C2.jpg", "C3": "C3_5714_HE_BT_D1.jpg", "C4": "C4_5714_HE_BT_D2.jpg",
         "C5": "C5_5714_HE_BT_E1.jpg"}


def histology_widget(gene: str = "ERBB2", epochs: int = 10, n_views: int = 2) -> Path:
    """Train a small STco on her2st C2–C5 (or reuse benchmarks/out/histology_docs_model), predict C6 whole-slide."""
    import napari
    import numpy as np
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    from napari_spatial_impute import train_histology as train
    from napari_spatial_impute.io import read_st_section

    model_dir = ROOT / "benchmarks" / "out" / "histology_docs_model"
    if not (model_dir / "config.json").is_file():
        secs = [read_st_section(HER2ST / f"ST-cnts/{s}.tsv.gz", HER2ST / f"ST-spotfiles/{s}_selection.tsv",
                                HER2ST / "ST-imgs" / img) for s, img in TRAIN.items()]
        train(secs, seed=0, device="cpu", epochs=epochs, n_views=n_views).save(model_dir, overwrite=True)
    Image.MAX_IMAGE_PIXELS = None
    image = np.asarray(Image.open(HER2ST / "ST-imgs" / "C6_5714_HE_BT_E2.jpg").convert("RGB"))
    viewer = napari.Viewer(show=False, title="napari-spatial-impute")
    app = QApplication.instance()
    viewer.add_image(image, name="C6 H&E", rgb=True)
    _, w = viewer.window.add_plugin_dock_widget("napari-spatial-impute", "Predict genes from H&E")
    w.model_dir.value = str(model_dir)
    w.image_layer.value = "C6 H&E"
    w.run()
    _wait(w, app)
    if w.output_layer is None:
        raise SystemExit(f"histology prediction failed: {w.status.value}")
    if gene in w.gene_select.choices:
        w.gene_select.value = gene
    viewer.window.resize(1500, 950)
    viewer.reset_view()
    viewer.screenshot(canvas_only=False)
    out = IMAGES / "histology_widget_heatmap.png"
    viewer.screenshot(str(out), canvas_only=False)
    viewer.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="+", default=["knn", "stimpute"])
    ap.add_argument("--no-histology", action="store_true")
    args = ap.parse_args(argv)
    for method in args.methods:
        print(impute_widget(method, "Gad2, Vip, Plp1, Mfge8, Aldoc, Sox10", "Plp1"))
    if not args.no_histology and HER2ST.exists():
        print(histology_widget())
    return 0


if __name__ == "__main__":
    sys.exit(main())
