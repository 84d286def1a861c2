"""Visium and Visium HD opened in napari as a person does (``viewer.open`` on the folder), timed under Xvfb.

1. her2st C6 written as a spaceranger folder with its hires PNG (tests/_visium.py) → the H&E dock with a bundle
   (``--bundle``, default the docs screenshot's model) predicts the sample's spots: time, the longest main-thread
   stall (10 ms QTimer heartbeat), the status line (the hires image is 10× coarser than the model: two warnings).
2. A whole Visium HD capture area (benchmarks/bench_visium_hd.py's synthetic folder, 659,344 bins of 8 µm):
   ``viewer.open`` to the first events, and the first full-window draw.

    OMP_NUM_THREADS=1 xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_visium_napari.py

Needs ../shared/datasets/her2st_subset and the bundle (``python scripts/make_screenshots.py --only-histology``
trains it into benchmarks/out/histology_docs_model). Screenshots go to benchmarks/out/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the spaceranger layout of a real her2st section (tests/_visium.py)
HER2ST = ROOT.parent / "shared" / "datasets" / "her2st_subset"


def _drain(app, until, timeout: float = 300.0) -> None:
    t0 = time.perf_counter()
    while not until() and time.perf_counter() - t0 < timeout:
        app.processEvents()
        time.sleep(0.01)


def main() -> None:
    import napari
    from _heartbeat import Heartbeat
    from bench_visium_hd import make_visium_hd
    from qtpy.QtWidgets import QApplication

    from _visium import her2st_as_visium
    from napari_spatial_impute.io import read_st_section

    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", default=str(ROOT / "benchmarks" / "out" / "histology_docs_model"))
    args = ap.parse_args()
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        c6 = read_st_section(HER2ST / "ST-cnts/C6.tsv.gz", HER2ST / "ST-spotfiles/C6_selection.tsv",
                             HER2ST / "ST-imgs/C6_5714_HE_BT_E2.jpg")
        folder = her2st_as_visium(c6, Path(tmp) / "P1_C6", hires=True)
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1500, 950)
        app = QApplication.instance()
        viewer.open(str(folder), plugin="napari-spatial-impute")
        _, w = viewer.window.add_plugin_dock_widget("napari-spatial-impute", "Predict genes from H&E")
        w.model_dir.value = args.bundle
        w.spots_layer.value = "visium cells"
        _drain(app, lambda: len(w.device.choices) > 2 or w._device_worker is None, 10)
        heartbeat = Heartbeat()
        t0 = time.perf_counter()
        w.run()
        _drain(app, lambda: w._worker is None)
        spent = time.perf_counter() - t0
        heartbeat.stop()
        beats = heartbeat.gaps
        _drain(app, lambda: False, 0.3)
        viewer.window._qt_window.grab().save(str(out / "visium_dock.png"))
        print(f"Visium C6 (hires PNG) → H&E dock: {spent:.1f} s, longest stall {1000 * max(beats):.0f} ms; "
              f"status {w.status.value!r}")
        viewer.close()

        make_visium_hd(Path(tmp) / "hd", 6500.0, 8.0, 18085, 60)
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1500, 950)
        t0 = time.perf_counter()
        viewer.open(str(Path(tmp) / "hd"), plugin="napari-spatial-impute")
        for _ in range(5):
            app.processEvents()
        opened = time.perf_counter() - t0
        t0 = time.perf_counter()
        viewer.window._qt_window.grab().save(str(out / "visium_hd_open.png"))
        drawn = time.perf_counter() - t0
        n = len(viewer.layers[-1].data)
        print(f"Visium HD, {n:,} bins: viewer.open → first events {opened:.1f} s, first full draw {drawn:.1f} s")
        viewer.close()


if __name__ == "__main__":
    main()
