"""Open time and peak memory of a Visium HD run folder at a whole capture area's scale (synthetic: no real Visium
HD data is available here), read through ``read_sample`` as a user opens it, and its napari layers.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_visium_hd.py [--side-um 6500] [--bin-um 8]
      [--genes 18085] [--per-bin 60] [--out benchmarks/visium_hd.md]
The folder is spaceranger's layout (``outs/binned_outputs/square_008um/``: 10x HDF5 v3 counts,
``spatial/tissue_positions.parquet``, ``scalefactors_json.json``); every bin of a square capture area of
``--side-um`` is on tissue and holds ``--per-bin`` genes (HD 8 µm bins hold tens to a few hundred). The case runs
in a fresh subprocess (:func:`bench_readers.run_case`): peak memory is that process's VmHWM.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench_readers import run_case


def make_visium_hd(root: Path, side_um: float, bin_um: float, n_genes: int, per_bin: int, seed: int = 0) -> int:
    """Write ``root/outs/binned_outputs/square_{bin}um`` for a square capture area; returns the number of bins."""
    import h5py
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    folder = root / "outs" / "binned_outputs" / f"square_{int(bin_um):03d}um"
    (folder / "spatial").mkdir(parents=True)
    n_side = int(side_um // bin_um)
    rows, cols = np.divmod(np.arange(n_side * n_side), n_side)
    n = rows.size
    barcodes = np.char.add(np.char.add(np.char.add(f"s_{int(bin_um):03d}um_", np.char.zfill(rows.astype(str), 5)),
                                       np.char.add("_", np.char.zfill(cols.astype(str), 5))), "-1")
    # genes × bins CSC (10x layout): per_bin genes per bin, drawn from a skewed gene distribution
    p = 1.0 / np.arange(1, n_genes + 1) ** 0.8
    p /= p.sum()
    indices = np.sort(rng.choice(n_genes, size=(n, per_bin), p=p), axis=1).ravel().astype(np.int64)
    data = rng.integers(1, 4, size=indices.size, dtype=np.int32)
    indptr = np.arange(0, indices.size + 1, per_bin, dtype=np.int64)
    with h5py.File(folder / "filtered_feature_bc_matrix.h5", "w") as f:
        g = f.create_group("matrix")
        g["barcodes"] = barcodes.astype("S")
        g["data"], g["indices"], g["indptr"] = data, indices, indptr
        g["shape"] = np.array([n_genes, n], dtype=np.int32)
        feat = g.create_group("features")
        feat["id"] = np.array([f"ENSG{i:011d}" for i in range(n_genes)], dtype="S")
        feat["name"] = np.array([f"Gene{i}" for i in range(n_genes)], dtype="S")
        feat["feature_type"] = np.array(["Gene Expression"] * n_genes, dtype="S")
        feat["genome"] = np.array(["GRCh38"] * n_genes, dtype="S")
        feat["_all_tag_keys"] = np.array(["genome"], dtype="S")
    px = 0.2738  # µm per full-resolution pixel (a 10x HD H&E scan)
    pd.DataFrame({"barcode": barcodes, "in_tissue": 1, "array_row": rows, "array_col": cols,
                  "pxl_row_in_fullres": (rows + 0.5) * bin_um / px, "pxl_col_in_fullres": (cols + 0.5) * bin_um / px}
                 ).to_parquet(folder / "spatial" / "tissue_positions.parquet")
    (folder / "spatial" / "scalefactors_json.json").write_text(json.dumps(
        {"spot_diameter_fullres": bin_um / px, "bin_size_um": bin_um, "microns_per_pixel": px,
         "tissue_hires_scalef": 0.1, "tissue_lowres_scalef": 0.03}))
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side-um", type=float, default=6500.0)
    ap.add_argument("--bin-um", type=float, default=8.0)
    ap.add_argument("--genes", type=int, default=18085)
    ap.add_argument("--per-bin", type=int, default=60)
    ap.add_argument("--out", default=str(Path(__file__).with_name("visium_hd.md")))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        n = make_visium_hd(Path(tmp) / "run", args.side_um, args.bin_um, args.genes, args.per_bin)
        made = time.perf_counter() - t
        print(f"{n:,} bins written in {made:.1f} s", file=sys.stderr)
        base = run_case("baseline")
        r = run_case("read", str(Path(tmp) / "run"), "napari")
    if "error" in r:
        raise SystemExit(f"reading failed: {r['error']}")
    lines = ["# Visium HD: opening a whole capture area", "",
             f"`{' '.join(['OMP_NUM_THREADS=1', '.venv/bin/python', *sys.argv])}` (Python {sys.version.split()[0]}, "
             "CPU only). Synthetic counts in spaceranger's layout (no real Visium HD run is available here): "
             f"{args.side_um:g} µm square, {args.bin_um:g} µm bins, every bin on tissue, {args.per_bin} genes per "
             f"bin of {args.genes:,}; the folder above `outs/` is opened, as a user drops it on napari.", "",
             "| bins × genes | stored non-zeros | open: read_sample, wall (s) | open, CPU (s) | layer tuples (s) "
             "| napari layer objects (s) | peak RSS (MB) | baseline RSS (MB) |", "|---|---|---|---|---|---|---|---|",
             f"| {r['cells']:,} × {r['genes']:,} | {n * args.per_bin:,} | {r['open_s']:.2f} | {r['open_cpu_s']:.2f} | "
             f"{r['layers_s']:.2f} | "
             f"{r['napari_layers_s']:.2f} | {r['peak_rss_mb']:.0f} | {base['peak_rss_mb']:.0f} |"]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
