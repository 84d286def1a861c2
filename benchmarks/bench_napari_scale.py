"""How long switching the displayed gene takes in napari at 100k / 1M cells (Points vs binned image).

Run under a display (or ``xvfb-run -a``):  ``xvfb-run -a python benchmarks/bench_napari_scale.py``
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd


def fake_imputed(n: int, n_genes: int = 50, seed: int = 0):
    rng = np.random.default_rng(seed)
    xy = rng.random((n, 2)) * [10_000, 8_000]
    X = rng.gamma(1.0, size=(n, n_genes)).astype(np.float32)
    a = ad.AnnData(X, var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]))
    a.obsm["spatial"] = xy
    a.uns["napari_spatial_impute"] = {"method": "bench"}
    return a


def main() -> int:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_spatial_impute.layers import binned_image_layer, cells_points_layer, contrast_limits

    rows = []
    viewer = napari.Viewer(show=False)
    app = QApplication.instance()
    for n in (100_000, 1_000_000):
        a = fake_imputed(n)
        for view in ("points", "binned"):
            viewer.layers.clear()
            t0 = time.perf_counter()
            if view == "points":
                data, kw, _ = cells_points_layer(a, features="genes", gene="G0", cmap="viridis")
                layer = viewer.add_points(data, **kw)
            else:
                data, kw, _ = binned_image_layer(a, "G0")
                layer = viewer.add_image(data, **kw)
                grid = kw["metadata"]["grid"]
            viewer.screenshot(canvas_only=False)
            app.processEvents()
            t_add = time.perf_counter() - t0
            times = []
            for g in ("G1", "G2", "G3"):
                t0 = time.perf_counter()
                values = a[:, g].X.ravel()
                if view == "points":
                    layer.face_color = g
                    layer.face_contrast_limits = contrast_limits(values)
                    layer.refresh_colors()
                else:
                    layer.data = grid.raster(values)
                    layer.contrast_limits = contrast_limits(values)
                viewer.screenshot(canvas_only=True)  # includes a real redraw
                app.processEvents()
                times.append(time.perf_counter() - t0)
            rows.append({"cells": n, "view": view, "add_s": t_add, "switch_gene_s": float(np.median(times))})
            print(rows[-1], flush=True)
    viewer.close()
    out = Path(__file__).resolve().parent / "out" / "napari_scale.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print("| cells | view | add layer (s) | switch gene incl. redraw (s) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['cells']:,} | {r['view']} | {r['add_s']:.2f} | {r['switch_gene_s']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
