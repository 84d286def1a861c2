"""What ``method="auto"`` costs over kNN when the panel says the slower methods don't help.

Each run is a fresh process with one torch/BLAS thread (CPU s = process CPU time). Three runs per pair and seed:

* ``knn``: kNN as the user would run it (its own expected-r inner CV included);
* ``auto (nothing kept)``: ``auto`` with ``screen_margin=1``, so the screen drops stImpute and SpaIM whatever
  they score: the path a panel takes when the slower methods do not help (kNN inner CV + the screen + kNN);

(``auto``'s time when the screen keeps a slower method is in accuracy.md.)

    python benchmarks/bench_auto_overhead.py --pairs osmfish xenium xenium18k --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = {"knn": ("knn", {}), "auto_nothing_kept": ("auto", {"screen_margin": 1.0})}


def worker(pair: str, run: str, seed: int) -> dict:
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    from pairs import load_pair

    import napari_spatial_impute as nsi

    spatial, reference, truth = load_pair(pair)
    method, params = RUNS[run]
    c0, t0 = time.process_time(), time.perf_counter()
    if truth is None:
        nsi.cross_validate(spatial, reference, method, folds=5, seed=seed, device="cpu", **params)
    else:
        nsi.impute(spatial, reference, method, list(truth.var_names), seed=seed, device="cpu", **params)
    return {"pair": pair, "run": run, "seed": seed, "cpu_s": time.process_time() - c0,
            "wall_s": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", nargs="+", default=["osmfish", "xenium", "xenium18k"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", default=str(HERE / "out" / "auto_overhead.jsonl"))
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        pair, run, seed = args.worker
        print(json.dumps(worker(pair, run, int(seed))))
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for pair in args.pairs:
        for seed in args.seeds:
            for run in RUNS:
                proc = subprocess.run([sys.executable, __file__, "--worker", pair, run, str(seed)],
                                      capture_output=True, text=True, check=True)
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append(row)
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{pair} seed {seed} {run}: {row['cpu_s']:.1f} CPU s", flush=True)
    print("\n| pair | kNN CPU s | auto, nothing kept (CPU s) | ratio |\n|---|---|---|---|")
    import numpy as np

    for pair in args.pairs:
        cpu = {r: np.array([x["cpu_s"] for x in rows if x["pair"] == pair and x["run"] == r]) for r in RUNS}
        ratio = cpu["auto_nothing_kept"] / cpu["knn"]
        print(f"| {pair} | {cpu['knn'].mean():.1f} ± {cpu['knn'].std():.1f} | {cpu['auto_nothing_kept'].mean():.1f} ± "
              f"{cpu['auto_nothing_kept'].std():.1f} | {ratio.mean():.1f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
