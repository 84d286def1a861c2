"""Side-by-side quality / time / memory of every imputation method on the osmFISH + Allen SSp pair.

Same seeded 5 folds of the 33 shared genes for every method (``napari_spatial_impute.cross_validate``);
each method runs in a fresh subprocess so peak RSS is its own.

    python benchmarks/bench_osmfish.py [--methods knn stimpute spaim] [--out benchmarks/out/osmfish.json]
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

KEYS = ["pcc_median", "pcc_mean", "spearman_median", "ssim_median", "rmse_median", "js_median", "css_cell",
        "css_gene", "mse_gene"]


def worker(method: str) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    import napari_spatial_impute as nsi

    spatial, reference = nsi.load_osmfish_sample()
    c0, t0 = time.process_time(), time.perf_counter()
    res = nsi.cross_validate(spatial, reference, method, folds=5, seed=0, device="cpu")
    m = {k: res.metrics[k] for k in KEYS}
    m.update(method=method, seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0,
             peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2,
             threads=torch.get_num_threads())
    return m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="+", default=["knn", "stimpute", "spaim"])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "osmfish.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return 0
    rows = []
    for method in args.methods:
        proc = subprocess.run([sys.executable, __file__, "--worker", method], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{method} failed:\n{proc.stderr[-1500:]}", file=sys.stderr)
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{method}: median PCC {r['pcc_median']:.3f} ({r['seconds']:.1f} s)", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))
    print("| method | median PCC | mean PCC | median Spearman | median SSIM | median RMSE | median JS | "
          "CSS cell | CSS gene | MSE gene | wall s | CPU s | peak RSS GB |")
    print("|---|" + "---|" * 12)
    for r in rows:
        print(f"| {r['method']} | " + " | ".join(f"{r[k]:.3f}" for k in KEYS)
              + f" | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['peak_rss_gb']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
