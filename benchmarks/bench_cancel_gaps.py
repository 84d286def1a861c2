"""How long a Cancel can wait: the longest time between two progress events of a whole imputation run, per
method and per stage, with default parameters on the bundled real Xenium sample (7,621 cells, the 98 genes the
panel lacks), one thread. The first kNN run pays the one-time imports (reported apart; the Impute dock's warm-up
pays them before a run).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_cancel_gaps.py [--methods knn stimpute spaim auto]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main(argv=None) -> int:
    import torch

    from _badinput import longest_gaps
    from napari_spatial_impute import api
    from napari_spatial_impute.datasets import load_xenium_sample
    from napari_spatial_impute.progress import run_to_end

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["knn", "stimpute", "spaim", "auto"])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    spatial, reference = load_xenium_sample()
    t = time.perf_counter()
    run_to_end(api.impute_steps(spatial, reference, "knn", None, device="cpu", seed=0))
    print(f"first kNN run, one-time imports included: {time.perf_counter() - t:.1f} s", flush=True)
    print("\n| method | run s | longest gap s | stage of the longest gap | load (1 min) |\n|---|---|---|---|---|")
    for method in args.methods:
        t = time.perf_counter()
        gaps = longest_gaps(api.impute_steps(spatial, reference, method, None, device="cpu", seed=0))
        stage = max(gaps, key=gaps.get)
        print(f"| {method} | {time.perf_counter() - t:.1f} | {gaps[stage]:.2f} | {stage} | {os.getloadavg()[0]:.1f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
