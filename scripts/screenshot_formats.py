"""Screenshots of each format opened through the plugin's reader: docs/images/format_<name>.png.

Run:  xvfb-run -a .venv/bin/python scripts/screenshot_formats.py [--only cosmx]
Needs ../shared/datasets (skips samples that are absent).
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
OUT = ROOT / "docs" / "images"

#: name → (folder, gene to colour the cells / labels by, (y0, x0, y1, x1) µm view or None)
SAMPLES = {
    "xenium": ("xenium_mouse_brain_ctx_hp", "Gfap", None),
    "cosmx": ("cosmx_nsclc_lung12_mini", "KRT19", None),
    "merscope": ("merscope_mouse_brain_mini", "Slc17a7", (4900, 6700, 5050, 6850)),
    "st": ("her2st_subset", "ERBB2", None),
}


def shoot(name: str, folder: Path, gene: str, box) -> Path | None:
    import napari
    import numpy as np

    from napari_spatial_impute.layers import gene_values, show_gene_on_labels, show_gene_on_points

    viewer = napari.Viewer(show=False)
    try:
        layers = viewer.open(str(folder), plugin="napari-spatial-impute")
        if not layers:
            print(f"{name}: the reader added no layers")
            return None
        cells = next(layer for layer in viewer.layers if "adata" in layer.metadata)
        adata = cells.metadata["adata"]
        if gene in map(str, adata.var_names):
            show_gene_on_points(cells, gene)
            values = gene_values(adata, gene)
            for layer in viewer.layers:
                if layer.__class__.__name__ == "Labels":
                    show_gene_on_labels(layer, adata.obs_names, np.log1p(values))
        cells.visible = not any(layer.__class__.__name__ == "Labels" for layer in viewer.layers)
        for layer in viewer.layers:
            if hasattr(layer, "units"):  # napari >= 0.6: the scale bar then reads µm
                layer.units = ("um",) * layer.ndim
        try:
            viewer.canvas.overlays.scale_bar.visible = True
        except AttributeError:  # napari < 0.9
            viewer.scale_bar.visible = True
        viewer.window.resize(1400, 1000)
        OUT.mkdir(parents=True, exist_ok=True)
        out = OUT / f"format_{name}.png"
        viewer.screenshot(canvas_only=False, flash=False)  # the first grab initialises the hidden GL canvas
        viewer.reset_view()
        if box is not None:
            y0, x0, y1, x1 = box
            viewer.camera.center = ((y0 + y1) / 2, (x0 + x1) / 2)
            viewer.camera.zoom = min(700 / (y1 - y0), 1000 / (x1 - x0))
        viewer.screenshot(str(out), canvas_only=False, flash=False)
        print(f"{name}: {out} ({', '.join(layer.name for layer in viewer.layers)})")
        return out
    finally:
        viewer.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=sorted(SAMPLES))
    args = ap.parse_args()
    for name, (folder, gene, box) in SAMPLES.items():
        if args.only and name != args.only:
            continue
        path = SHARED / folder
        if not path.exists():
            print(f"{name}: {path} absent, skipped")
            continue
        shoot(name, path, gene, box)


if __name__ == "__main__":
    main()
