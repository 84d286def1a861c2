"""Run every benchmark and print their tables (the figures in benchmarks/README.md come from here).

    python benchmarks/run_all.py            # everything (≈ 1 h on 2 CPU cores; the 1.3 M-cell runs dominate)
    python benchmarks/run_all.py --quick    # quality tables + scaling up to 100k cells (≈ 10 min)

Needs ../shared/datasets (real data); the Tangram peer needs the optional extra:
``pip install 'napari-spatial-impute[benchmark]'``. napari timings need a display (``xvfb-run -a``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(args: list[str], *, display: bool = False) -> int:
    cmd = [sys.executable, *args]
    if display and not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *cmd]
    print(f"\n$ {' '.join(cmd)}", flush=True)
    return subprocess.run(cmd, cwd=HERE.parent).returncode


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cells = ["10000", "100000"] if args.quick else ["10000", "100000", "1000000", "1300000"]
    steps = [
        ["benchmarks/bench_osmfish.py"],
        ["benchmarks/bench_peers.py"],
        ["benchmarks/bench_stimpute.py"],
        ["benchmarks/bench_spaim.py"],
        ["benchmarks/bench_histology.py"],
        ["benchmarks/bench_wholeslide.py", "--tta", "0", "1"],
        ["benchmarks/bench_scale.py", "--methods", "knn", "stimpute", "--cells", *cells],
        ["benchmarks/bench_scale.py", "--methods", "knn", "--cells", "100000", "--holdout", "25", "50", "100",
         "200", "--out", str(HERE / "out" / "scale_genes.json")],
        ["benchmarks/bench_readers.py"],
    ]
    failed = []
    for step in steps:
        if not (HERE.parent / step[0]).exists():
            continue
        if run(step) != 0:
            failed.append(step[0])
    if run(["benchmarks/bench_napari_scale.py"], display=True) != 0:
        failed.append("bench_napari_scale.py")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
