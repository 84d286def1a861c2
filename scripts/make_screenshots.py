"""Screenshots for docs/: the widgets on real data. Run: ``make docs`` (xvfb-run … scripts/make_screenshots.py).

Writes docs/images/impute_widget_<method>.png (full window, widget docked, result shown).
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="+", default=["knn", "stimpute"])
    args = ap.parse_args(argv)
    for method in args.methods:
        print(impute_widget(method, "Gad2, Vip, Plp1, Mfge8, Aldoc, Sox10", "Plp1"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
