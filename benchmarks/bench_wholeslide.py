"""Whole-slide H&E prediction time: her2st C6 (9288 × 9907 px JPEG), tissue tiles, no spots.

A small STco model is trained on her2st C2–C5 with few epochs / views (the point is timing, not accuracy) and
cached as a bundle in ``benchmarks/out/wholeslide_model`` (reused on later runs; ``--retrain`` to rebuild).
The prediction runs in a fresh subprocess (clean peak RSS) and is timed end to end: image decode + tissue
mask + tile grid + patch cutting + Lite0 features + heads + retrieval. Bundle loading is timed apart.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_wholeslide.py [--tta 1 4] [--threads 1]

Prints a markdown table and writes ``benchmarks/out/wholeslide.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "her2st_subset"
TRAIN = {"C2": "C2_5714_HE_BT_C2.jpg", "C3": "C3_5714_HE_BT_D1.jpg", "C4": "C4_5714_HE_BT_D2.jpg",
         "C5": "C5_5714_HE_BT_E1.jpg"}
TEST_IMAGE = DATA / "ST-imgs" / "C6_5714_HE_BT_E2.jpg"
MODEL_DIR = ROOT / "benchmarks" / "out" / "wholeslide_model"


def train_model(epochs: int, n_views: int, seed: int = 0) -> float:
    """Train the small STco model on C2–C5 and save it to MODEL_DIR; returns the training seconds."""
    from napari_spatial_impute import train_histology as train
    from napari_spatial_impute.io import read_st_section

    secs = [read_st_section(DATA / f"ST-cnts/{s}.tsv.gz", DATA / f"ST-spotfiles/{s}_selection.tsv",
                            DATA / "ST-imgs" / img) for s, img in TRAIN.items()]
    t0 = time.perf_counter()
    model = train(secs, seed=seed, device="cpu", epochs=epochs, n_views=n_views)
    seconds = time.perf_counter() - t0
    model.save(MODEL_DIR, overwrite=True)
    return seconds


def worker(tta: int | None, tile_um: float, threads: int) -> dict:
    """Load the bundle, predict the whole C6 slide; time, CPU time, peak RSS, stage times."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from napari_spatial_impute import load_model
    from napari_spatial_impute.models.stco.patches import image_size

    t0 = time.perf_counter()
    model = load_model(MODEL_DIR, device="cpu")
    t_load = time.perf_counter() - t0
    rss_after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    stages: dict[str, float] = {}
    t1 = time.perf_counter()
    c1 = time.process_time()

    def on_progress(p) -> None:
        if p.message == "image decoded" and "decode" not in stages:
            stages["decode"] = time.perf_counter() - t1
        elif p.message.startswith("tile batch 1/") and "first_batch" not in stages:
            stages["first_batch"] = time.perf_counter() - t1

    res = model.predict_image(TEST_IMAGE, pixel_size_um=model.train_pixel_size_um, callback=on_progress,
                              tile_um=tile_um, tta=tta)
    wall = time.perf_counter() - t1
    cpu = time.process_time() - c1
    width, height = image_size(TEST_IMAGE)
    grid = res["grid"]
    return {"image": TEST_IMAGE.name, "width": width, "height": height, "tile_um": tile_um,
            "tile_px": float(grid.step), "grid_shape": list(grid.shape), "n_tiles": int(len(res["values"])),
            "n_genes": len(res["genes"]), "tta": tta if tta is not None else int(model.cfg["tta"]),
            "model_tta": int(model.cfg["tta"]), "seconds": wall, "cpu_seconds": cpu, "load_seconds": t_load,
            "stage_seconds": stages, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2,
            "rss_after_load_gb": rss_after_load, "threads": torch.get_num_threads(),
            "finite": bool(np.isfinite(res["values"]).all())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tta", nargs="+", type=int, default=[0],
                    help="test-time rotations per tile; 0 = the default of predict_image")
    ap.add_argument("--tile-um", type=float, default=100.0)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--n-views", type=int, default=1)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "wholeslide.json"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        tta = args.tta[0] or None
        print(json.dumps(worker(tta, args.tile_um, args.threads)))
        return 0
    if not TEST_IMAGE.is_file():
        raise SystemExit(f"{TEST_IMAGE} not found: the benchmark needs ../shared/datasets/her2st_subset")
    train_s = None
    if args.retrain or not (MODEL_DIR / "config.json").is_file():
        import torch

        torch.set_num_threads(args.threads)
        train_s = train_model(args.epochs, args.n_views)
        print(f"trained the small model in {train_s:.0f} s → {MODEL_DIR}", flush=True)
    rows = []
    for tta in args.tta:
        cmd = [sys.executable, __file__, "--worker", "--tta", str(tta), "--tile-um", str(args.tile_um),
               "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        row = json.loads(proc.stdout.strip().splitlines()[-1]) | {"train_seconds": train_s}
        rows.append(row)
        print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))
    print("\n| image | tile µm (px) | tissue tiles | TTA | wall s | CPU s | peak RSS GB | decode s | load s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['image']} ({r['width']}×{r['height']}) | {r['tile_um']:.0f} ({r['tile_px']:.0f}) "
              f"| {r['n_tiles']:,} | {r['tta']} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['peak_rss_gb']:.2f} "
              f"| {r['stage_seconds'].get('decode', float('nan')):.1f} | {r['load_seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
