"""Open time and peak memory of the readers (real samples + a synthetic 1M-cell Xenium-like folder), and the
cost of building napari layers (no Qt: layer objects only, not GPU rendering).

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_readers.py [--cells 1000000] [--out benchmarks/readers.md]
Each case runs in a fresh subprocess; peak memory = that process's VmHWM (includes the Python + library
import baseline, reported separately as "baseline").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared/datasets"

CASE_CODE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np
kind, path, arg = sys.argv[1], sys.argv[2], sys.argv[3]
from napari_spatial_impute.io import read_sample
from napari_spatial_impute.layers import sample_to_layers, labels_colormap_for_gene, transcripts_layer
t_import = time.perf_counter() - t0
out = {}
if kind == "baseline":
    pass
elif kind == "read":
    t, c = time.perf_counter(), time.process_time(); s = read_sample(path)
    out["open_s"], out["open_cpu_s"] = time.perf_counter() - t, time.process_time() - c
    out["cells"] = int(s.adata.n_obs); out["genes"] = int(s.adata.n_vars)
    t = time.perf_counter(); layers = sample_to_layers(s); out["layers_s"] = time.perf_counter() - t
    out["n_layers"] = len(layers)
    if arg == "napari":
        import napari.layers as nl
        t = time.perf_counter()
        objs = [getattr(nl, k.capitalize())(d, **kw) for d, kw, k in layers]
        out["napari_layers_s"] = time.perf_counter() - t
elif kind == "colormap":
    n = int(arg); ids = np.arange(1, n + 1)
    t = time.perf_counter(); cm = labels_colormap_for_gene(ids, np.random.default_rng(0).random(n))
    out["dict_s"] = time.perf_counter() - t
    import napari.layers as nl
    mask = (np.arange(2000 * 2000) % (n + 1)).reshape(2000, 2000).astype(np.int32)
    t = time.perf_counter(); lay = nl.Labels(mask, colormap=cm); out["labels_first_s"] = time.perf_counter() - t
    t = time.perf_counter(); lay = nl.Labels(mask, colormap=cm); out["labels_layer_s"] = time.perf_counter() - t
    cm2 = labels_colormap_for_gene(ids, np.random.default_rng(1).random(n))
    t = time.perf_counter(); lay.colormap = cm2; lay.refresh(); out["switch_gene_s"] = time.perf_counter() - t
    from napari_spatial_impute.layers import labels_value_image
    vals = np.random.default_rng(2).random(n)
    t = time.perf_counter(); img = nl.Image(labels_value_image(mask, ids, vals), colormap="magma")
    out["value_image_s"] = time.perf_counter() - t
    t = time.perf_counter(); img.data = labels_value_image(mask, ids, vals[::-1])
    out["value_switch_s"] = time.perf_counter() - t
elif kind == "points":
    import pandas as pd
    import napari.layers as nl
    n = int(arg); rng = np.random.default_rng(0)
    tx = pd.DataFrame({"x": rng.random(n) * 5000, "y": rng.random(n) * 5000,
                       "gene": pd.Categorical(rng.choice([f"g{i}" for i in range(300)], n))})
    d, kw, _ = transcripts_layer(tx, max_points=n)
    t = time.perf_counter(); nl.Points(d, **kw); out["points_layer_s"] = time.perf_counter() - t
elif kind == "shapes":
    import pandas as pd
    import napari.layers as nl
    from napari_spatial_impute.layers import boundaries_layer
    n = int(arg); rng = np.random.default_rng(0); ang = np.linspace(0, 2 * np.pi, 13)[:-1]
    cx, cy = rng.random(n) * 3000, rng.random(n) * 3000
    b = pd.DataFrame({"cell_id": np.repeat(np.arange(n).astype(str), 12),
                      "x": (cx[:, None] + 4 * np.cos(ang)).ravel(), "y": (cy[:, None] + 4 * np.sin(ang)).ravel()})
    d, kw, _ = boundaries_layer(b, max_shapes=n)
    t = time.perf_counter(); nl.Shapes(d, **kw); out["shapes_layer_s"] = time.perf_counter() - t
out["import_s"] = t_import
# VmHWM is this process's own peak (ru_maxrss would carry the parent's RSS over fork + exec on Linux)
try:
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
    out["peak_rss_mb"] = int(hwm) / 1024
except (OSError, IndexError):
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def make_synthetic_xenium(folder: Path, n_cells: int, n_genes: int = 300, per_cell: int = 20, seed: int = 0):
    """cell_feature_matrix.h5 (10x layout) + cells.parquet with n_cells cells, ~per_cell non-zeros each."""
    import h5py
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    nnz = np.full(n_cells, per_cell, dtype=np.int64)
    indptr = np.r_[0, np.cumsum(nnz)]
    indices = np.concatenate([np.sort(rng.choice(n_genes, per_cell, replace=False)) for _ in range(1)] * n_cells)
    data = rng.integers(1, 10, size=indptr[-1], dtype=np.int32)
    with h5py.File(folder / "cell_feature_matrix.h5", "w") as f:
        m = f.create_group("matrix")
        m["data"], m["indices"], m["indptr"] = data, indices.astype(np.int64), indptr
        m["shape"] = np.array([n_genes, n_cells], dtype=np.int32)
        m["barcodes"] = np.array([f"c{i}".encode() for i in range(n_cells)])
        g = m.create_group("features")
        g["name"] = np.array([f"Gene{i}".encode() for i in range(n_genes)])
        g["id"] = g["name"][:]
        g["feature_type"] = np.array([b"Gene Expression"] * n_genes)
    side = np.sqrt(n_cells) * 10.0
    pd.DataFrame({"cell_id": [f"c{i}" for i in range(n_cells)], "x_centroid": rng.random(n_cells) * side,
                  "y_centroid": rng.random(n_cells) * side, "transcript_counts": data.reshape(n_cells, -1).sum(1),
                  "cell_area": rng.random(n_cells) * 100, "nucleus_area": rng.random(n_cells) * 30}
                 ).to_parquet(folder / "cells.parquet")


def run_case(kind: str, path: str = "-", arg: str = "-") -> dict:
    res = subprocess.run([sys.executable, "-c", CASE_CODE, kind, path, arg], capture_output=True, text=True)
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=1_000_000)
    ap.add_argument("--out", default=str(Path(__file__).with_name("readers.md")))
    args = ap.parse_args()
    rows = [("baseline (imports only)", run_case("baseline"))]
    for name in ("xenium_mouse_brain_ctx_hp", "cosmx_nsclc_lung12_mini", "merscope_mouse_brain_mini"):
        if (SHARED / name).exists():
            rows.append((name, run_case("read", str(SHARED / name), "napari")))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        make_synthetic_xenium(Path(tmp) / "syn", args.cells)
        print(f"synthetic folder written in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        rows.append((f"synthetic Xenium {args.cells:,} cells × 300 genes", run_case("read", str(Path(tmp) / "syn"),
                                                                                 "napari")))
    cm_rows = [(n, run_case("colormap", "-", str(n))) for n in (10_000, 100_000, 1_000_000)]
    pt_rows = [(n, run_case("points", "-", str(n))) for n in (200_000, 1_000_000, 5_000_000)]

    lines = ["# Reader benchmarks", "", f"`{' '.join(['OMP_NUM_THREADS=1', '.venv/bin/python', *sys.argv])}` "
             f"(Python {sys.version.split()[0]}, CPU only).", "",
             "## Open a sample (read_sample) and build its layers", "",
             "| sample | cells × genes | open (s) | layer tuples (s) | napari layer objects (s) | peak RSS (MB) |",
             "|---|---|---|---|---|---|"]
    for name, r in rows:
        if "error" in r:
            lines.append(f"| {name} | error: {r['error']} | | | | |")
        elif "open_s" not in r:
            lines.append(f"| {name} | – | – | – | – | {r['peak_rss_mb']:.0f} |")
        else:
            lines.append(f"| {name} | {r['cells']:,} × {r['genes']} | {r['open_s']:.2f} | {r['layers_s']:.2f} | "
                         f"{r.get('napari_layers_s', float('nan')):.2f} | {r['peak_rss_mb']:.0f} |")
    lines += ["", "## Labels coloured per cell (DirectLabelColormap from `labels_colormap_for_gene`)", "",
              "Mask 2000 × 2000 px; first Labels includes napari's numba JIT compile.", "",
              "| labelled cells | build dict (s) | first Labels (s) | next Labels (s) | switch gene: "
              "colormap = dict + refresh (s) | value image: Image(lut[mask]) (s) | value image: switch gene (s) "
              "| peak RSS (MB) |", "|---|---|---|---|---|---|---|---|"]
    nan = float("nan")
    for n, r in cm_rows:
        lines.append(f"| {n:,} | {r.get('dict_s', nan):.2f} | {r.get('labels_first_s', nan):.2f} | "
                     f"{r.get('labels_layer_s', nan):.2f} | {r.get('switch_gene_s', nan):.2f} | "
                     f"{r.get('value_image_s', nan):.2f} | {r.get('value_switch_s', nan):.2f} | "
                     f"{r.get('peak_rss_mb', nan):.0f} |")
    lines += ["", "## Transcript Points layer (napari Points object, coloured by gene; no rendering)", "",
              "| points | napari Points (s) | peak RSS (MB) |", "|---|---|---|"]
    for n, r in pt_rows:
        lines.append(f"| {n:,} | {r.get('points_layer_s', nan):.2f} | {r.get('peak_rss_mb', nan):.0f} |")
    sh_rows = [(n, run_case("shapes", "-", str(n))) for n in (1_000, 5_000, 20_000)]
    lines += ["", "## Cell boundaries Shapes layer (closed paths, 12 vertices each; napari Shapes object)", "",
              "| cells | napari Shapes (s) | peak RSS (MB) |", "|---|---|---|"]
    for n, r in sh_rows:
        lines.append(f"| {n:,} | {r.get('shapes_layer_s', nan):.2f} | {r.get('peak_rss_mb', nan):.0f} |")
    lines += ["", "## What the numbers decided", "",
              "- Readers: the 1 M-cell Xenium-like folder (10x h5 + cells.parquet) opens in seconds and about 1 GB "
              "peak (matrix as CSR float32 + obs); the real samples open in 1–7 s across runs (MERSCOPE mini: "
              "most of it is rasterising 1,000 polygons to count 80 k transcripts).",
              "- `MAX_DIRECT_COLORMAP_LABELS = 50_000`: napari's DirectLabelColormap costs seconds per 100 k labels "
              "on every gene switch (its dict is re-validated and re-typed), 20–30 s at 1 M (three runs); the value "
              "image (`gene_image_layer`, lut[mask]) switches in well under a second at any cell count.",
              "- `MAX_TRANSCRIPT_POINTS = 200_000`: building a napari Points layer grows linearly (≈ 1 s per 200 k "
              "points before any rendering); above it the reader shows a random subsample plus a 10 µm density "
              "image of all transcripts.",
              "- `MAX_BOUNDARY_SHAPES = 5_000`: a Shapes layer of outlines takes seconds at 5 k and grows linearly; "
              "above it the rasterised Labels layer shows the cells.",
              "- Timings come from a 2-core machine shared with other jobs: expect ±50 % between runs; peak RSS is "
              "stable."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
