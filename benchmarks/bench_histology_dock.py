"""The H&E dock as a person uses it, timed under Xvfb: train on one her2st section (C5) in the dock, predict C6's
spots, press Predict again (the trained model is reused), change a setting and Cancel while the section is cut.
A 10 ms QTimer heartbeat measures main-thread stalls; a full-window screenshot is written.

    OMP_NUM_THREADS=1 xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_histology_dock.py \\
        [--out benchmarks/out/histology_dock.png]

Needs ../shared/datasets/her2st_subset. A cold run (fresh cache) includes the Lite0 features of C5.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def main() -> None:
    import make_screenshots as ms
    import numpy as np
    import pandas as pd
    from _heartbeat import Heartbeat
    from PIL import Image

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "histology_dock.png"))
    args = ap.parse_args()
    her2st = ms.HER2ST
    Image.MAX_IMAGE_PIXELS = None
    image = np.asarray(Image.open(her2st / "ST-imgs" / "C6_5714_HE_BT_E2.jpg").convert("RGB"))
    sel = pd.read_csv(her2st / "ST-spotfiles/C6_selection.tsv", sep="\t")

    def load(v):
        v.add_image(image, name="C6 H&E", rgb=True)
        v.add_points(sel[["pixel_y", "pixel_x"]].to_numpy(), name="C6 spots", size=60)

    viewer, app, w = ms._viewer("Predict genes from H&E", load)
    viewer.window._qt_window.show()
    w.mode.value = "Train on sections"
    w.counts_file.value = str(her2st / "ST-cnts/C5.tsv.gz")
    w.spots_file.value = str(her2st / "ST-spotfiles/C5_selection.tsv")
    w.image_file.value = str(her2st / "ST-imgs/C5_5714_HE_BT_E1.jpg")
    w.add_section_button.clicked.emit()
    w.train_params.value = "n_genes=300"
    w.image_layer.value, w.spots_layer.value = "C6 H&E", "C6 spots"
    heartbeat = Heartbeat()
    gaps = heartbeat.gaps

    def press() -> float:
        t0 = time.perf_counter()
        w.run()
        ms._wait(w, app, timeout=900)
        return time.perf_counter() - t0

    first = press()
    print(f"train on C5 + predict C6 spots: {first:.1f} s — {w.status.value}")
    model, layer = w.model, w.output_layer
    second = press()
    print(f"Predict again (model reused: {w.model is model}): {second:.1f} s; earlier result hidden: "
          f"{not layer.visible}")
    print(f"main-thread stalls: max {1000 * max(gaps):.0f} ms, p99 {1000 * np.quantile(gaps, 0.99):.0f} ms")
    w.train_params.value = "n_genes=300, seed=1"
    w.run()
    ms._settle(app, 1.0)
    during = w.status.value
    t0 = time.perf_counter()
    w.cancel()
    ms._wait(w, app, timeout=300)
    print(f"Cancel during '{during}': {time.perf_counter() - t0:.2f} s — {w.status.value}")
    viewer.window.resize(1500, 950)
    ms._settle(app, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(args.out, canvas_only=False)
    print(args.out)


if __name__ == "__main__":
    main()
