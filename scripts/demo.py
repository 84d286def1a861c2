"""`make demo`: the main job on the bundled osmFISH sample.

Every shared gene is hidden in turn (5-fold CV over genes) and imputed from the Allen SSp reference;
measured and imputed expression are shown side by side in napari. With a display the viewer opens with
the plugin docked; headless (no DISPLAY, or HEADLESS=1) the same pipeline writes ``--out``:
``screenshot.png`` (full window), ``imputed.h5ad`` and ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _settle_dock(dock, timeout: float = 60.0) -> None:
    """Let the dock read the reference's genes (a background worker) before the screenshot is taken."""
    import time

    from qtpy.QtWidgets import QApplication

    app, t0 = QApplication.instance(), time.time()
    while (dock.picker.list.count() == 0 or "reading" in str(dock.estimate.value)) and time.time() - t0 < timeout:
        app.processEvents()
        time.sleep(0.05)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="demo-output")
    ap.add_argument("--method", default="knn", help="knn | stimpute | spaim")
    ap.add_argument("--gene", default="Gad2", help="gene shown first")
    ap.add_argument("--headless", action="store_true", default=os.environ.get("HEADLESS") == "1")
    args = ap.parse_args(argv)
    headless = args.headless or (sys.platform.startswith("linux") and not os.environ.get("DISPLAY"))

    import napari_spatial_impute as nsi
    from napari_spatial_impute.api import to_anndata
    from napari_spatial_impute.layers import cells_points_layer
    from napari_spatial_impute.progress import tqdm_callback

    spatial, reference = nsi.load_osmfish_sample()
    cb, close = tqdm_callback(f"demo {args.method}")
    result = nsi.cross_validate(spatial, reference, args.method, folds=5, seed=0, callback=cb)
    close()
    m = result.metrics
    print(f"{args.method}: median PCC {m['pcc_median']:.3f} over {m['n_genes']} held-out genes "
          f"({m['seconds']:.1f} s)")
    imputed = to_anndata(result.prediction, spatial, result.genes, var=result.gene_annotations,
                         uns={"method": args.method, "cv": {k: v for k, v in m.items() if k != "per_gene"}})
    measured = to_anndata(result.truth, spatial, result.genes, uns={"method": "measured"})

    import napari

    from napari_spatial_impute._sample_data import OSMFISH_HELD_OUT

    viewer = napari.Viewer(title="napari-spatial-impute demo", show=not headless)
    _, dock = viewer.window.add_plugin_dock_widget("napari-spatial-impute", "Impute genes")
    # the sample's cells in its own unit (image pixels: no µm claimed), with the reference and the genes the
    # dock pre-selects to predict held out, as File ▸ Open Sample gives them
    data, kw, _ = cells_points_layer(spatial, "osmFISH cells",
                                     metadata={"reference": reference, "suggested_genes": OSMFISH_HELD_OUT})
    viewer.add_points(data, **kw, visible=False)
    gene = args.gene if args.gene in result.genes else result.genes[0]
    data, kw, _ = cells_points_layer(measured, f"measured {gene} (log-normalised)", features="genes", gene=gene,
                                    cmap="viridis")
    viewer.add_points(data, **kw)
    data, kw, _ = cells_points_layer(imputed, f"imputed {gene} ({args.method}, held out)", features="genes",
                                    gene=gene, cmap="viridis")
    viewer.add_points(data, **kw)
    grid = viewer.canvas.grid if hasattr(viewer, "canvas") else viewer.grid
    grid.enabled = True
    grid.shape = (1, 2)
    viewer.reset_view()
    pcc = m["per_gene"][gene]["pcc"]
    text = viewer.canvas.overlays.text if hasattr(viewer, "canvas") else viewer.text_overlay
    text.visible = True
    text.font_size = 9
    text.text = f"{gene}: measured (left) vs imputed from the other 32 genes (right), PCC {pcc:.2f}"

    if headless:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        viewer.window.resize(1500, 900)
        _settle_dock(dock)
        viewer.screenshot(canvas_only=False)  # first grab initialises the hidden window's GL canvas
        viewer.screenshot(str(out / "screenshot.png"), canvas_only=False)
        imputed.write_h5ad(out / "imputed.h5ad", compression="gzip")
        (out / "metrics.json").write_text(json.dumps(m, indent=2))
        viewer.close()
        print(f"wrote {out}/screenshot.png, imputed.h5ad, metrics.json")
        return 0
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
