"""Scaling benchmark: time, CPU time and peak RSS of imputing held-out genes for 10k → 1.3M cells.

Each configuration runs in a fresh subprocess (clean peak RSS). Writes ``benchmarks/out/scale.json`` and
prints a markdown table with the fitted growth exponent (slope of log time vs log cells).

    python benchmarks/bench_scale.py --methods knn stimpute --cells 10000 100000 1000000 1300000
    python benchmarks/bench_scale.py --methods knn --cells 100000 --holdout 25 50 100 200   # gene scaling
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

HERE = Path(__file__).resolve().parent


def worker(method: str, n_cells: int, n_holdout: int, params: dict) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    sys.path.insert(0, str(HERE))
    from scale_data import make_scale_pair, truth_log_normalised

    import napari_spatial_impute as nsi
    from napari_spatial_impute.metrics import pearson_per_gene

    t0 = time.perf_counter()
    spatial, reference, holdout, truth, totals = make_scale_pair(n_cells, n_holdout)
    t_data = time.perf_counter() - t0
    c0 = time.process_time()
    t1 = time.perf_counter()
    out = nsi.impute(spatial, reference, method, holdout, seed=0, device="cpu", **params)
    wall = time.perf_counter() - t1
    cpu = time.process_time() - c0
    pcc = pearson_per_gene(truth_log_normalised(truth, totals), np.asarray(out.X))
    return {"method": method, "n_cells": n_cells, "n_genes_imputed": len(holdout), "n_reference": reference.n_obs,
            "n_input_genes": spatial.n_vars, "seconds": wall, "cpu_seconds": cpu, "data_seconds": t_data,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2,
            "pcc_median": float(np.median(pcc)), "threads": torch.get_num_threads(), "params": params}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="+", default=["knn"])
    ap.add_argument("--cells", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--holdout", nargs="+", type=int, default=[50])
    ap.add_argument("--param", action="append", default=[], help="METHOD:KEY=VALUE")
    ap.add_argument("--out", default=str(HERE / "out" / "scale.json"))
    ap.add_argument("--worker", nargs=3, metavar=("METHOD", "CELLS", "HOLDOUT"), help=argparse.SUPPRESS)
    ap.add_argument("--params-json", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        m, n, h = args.worker
        print(json.dumps(worker(m, int(n), int(h), json.loads(args.params_json))))
        return 0
    params: dict[str, dict] = {}
    for item in args.param:
        meth, kv = item.split(":", 1)
        k, v = kv.split("=", 1)
        params.setdefault(meth, {})[k] = json.loads(v)
    rows = []
    for method in args.methods:
        for n_holdout in args.holdout:
            for n in args.cells:
                cmd = [sys.executable, __file__, "--worker", method, str(n), str(n_holdout),
                       "--params-json", json.dumps(params.get(method, {}))]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    rows.append({"method": method, "n_cells": n, "n_genes_imputed": n_holdout, "error":
                                 proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"})
                    continue
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(f"{method:9s} {n:>9,d} cells {n_holdout:>4d} genes  {row['seconds']:8.1f} s  "
                      f"cpu {row['cpu_seconds']:8.1f} s  RSS {row['peak_rss_gb']:5.2f} GB  "
                      f"PCC {row['pcc_median']:.3f}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))
    print(table(rows))
    return 0


def growth_exponent(rows: list[dict], key: str = "n_cells") -> float | None:
    import numpy as np

    ok = [r for r in rows if "seconds" in r and r["seconds"] > 0]
    if len({r[key] for r in ok}) < 2:
        return None
    x = np.log([r[key] for r in ok])
    y = np.log([r["seconds"] for r in ok])
    return float(np.polyfit(x, y, 1)[0])


def table(rows: list[dict]) -> str:
    lines = ["| method | cells | genes imputed | wall s | CPU s | peak RSS GB | median PCC (held-out) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['n_cells']:,} | {r['n_genes_imputed']} | failed: {r['error'][:60]} "
                         "| | | |")
            continue
        lines.append(f"| {r['method']} | {r['n_cells']:,} | {r['n_genes_imputed']} | {r['seconds']:.1f} | "
                     f"{r['cpu_seconds']:.1f} | {r['peak_rss_gb']:.2f} | {r['pcc_median']:.3f} |")
    for method in sorted({r["method"] for r in rows}):
        for key in ("n_cells", "n_genes_imputed"):
            sub = [r for r in rows if r["method"] == method]
            fixed = "n_genes_imputed" if key == "n_cells" else "n_cells"
            groups: dict = {}
            for r in sub:
                groups.setdefault(r.get(fixed), []).append(r)
            for val, grp in groups.items():
                b = growth_exponent(grp, key)
                if b is not None:
                    lines.append(f"\n{method}: time ∝ {key.replace('n_', '')}^{b:.2f} (at {fixed} = {val})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
