"""Accuracy, time and memory of every imputation method (incl. ``auto``) on real pairs, over seeds.

Pairs (``benchmarks/pairs.py``): ``osmfish`` (tuning pair: SpaIM's and auto's defaults were chosen on it),
``osmfish_self``, ``xenium``, ``xenium18k`` (report pairs). CV pairs use ``cross_validate`` (honest folds: the
held-out genes leave the inputs and the library size; the seed sets the folds and the models); truth pairs
impute the 98 hidden Xenium genes and compare with their measured counts (normalised by the panel's library).
Each (pair, method, seed) runs in a fresh process, one torch/BLAS thread: CPU s = process CPU time, peak RSS
= ru_maxrss. Also per run: Spearman / mean |error| of ``var["expected_r"]`` against the true per-gene r, and
the best single reference descriptor's Spearman (mean, variance, share of expressing cells).

    python benchmarks/bench_accuracy.py --pairs osmfish xenium --methods knn stimpute spaim auto --seeds 0 1 2
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
KEYS = ["pcc_median", "pcc_mean", "spearman_median", "ssim_median", "rmse_median", "js_median", "mse_gene",
        "mse_log", "css_cell"]


def worker(pair: str, method: str, seed: int) -> dict:
    import numpy as np
    import torch
    from scipy.stats import spearmanr

    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    from pairs import load_pair, truth_log

    import napari_spatial_impute as nsi
    from napari_spatial_impute.api import prepare
    from napari_spatial_impute.metrics import summarize

    spatial, reference, truth_ad = load_pair(pair)
    c0, t0 = time.process_time(), time.perf_counter()
    extra = {}
    if truth_ad is None:
        res = nsi.cross_validate(spatial, reference, method, folds=5, seed=seed, device="cpu")
        genes, truth, pred, ann, m = res.genes, res.truth, res.prediction, res.gene_annotations, res.metrics
    else:
        genes = list(truth_ad.var_names)
        out = nsi.impute(spatial, reference, method, genes, seed=seed, device="cpu")
        pred, ann = np.asarray(out.X), out.var
        truth = truth_log(spatial, truth_ad, genes)
        m = summarize(truth, pred, genes)
        info = out.uns["napari_spatial_impute"].get("model_info")
        if info and method == "auto":
            extra["auto_method"] = json.loads(info)["auto_method"]
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    row = {k: m[k] for k in KEYS if k in m}
    row["mse_log"] = float(((truth - pred) ** 2).mean())
    pcc = np.array([m["per_gene"][g]["pcc"] for g in genes])
    if ann is not None and "expected_r" in ann:
        exp = ann["expected_r"].reindex(genes).to_numpy(dtype=float)
        row.update(expected_r_spearman=float(spearmanr(exp, pcc)[0]), expected_r_mae=float(np.abs(exp - pcc).mean()))
    data, _ = prepare(spatial, reference, genes, hold_out=False)
    ref = data.reference_columns(genes)
    row["best_descriptor_spearman"] = float(max(abs(spearmanr(d, pcc)[0]) for d in
                                                (ref.mean(0), ref.var(0), (ref > 0).mean(0))))
    row.update(pair=pair, method=method, seed=seed, cpu_s=cpu, wall_s=wall, n_genes=len(genes),
               peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, **extra)
    return row


def table(rows: list[dict]) -> str:
    import numpy as np

    cols = ["pcc_median", "spearman_median", "ssim_median", "rmse_median", "js_median", "mse_gene", "mse_log",
            "css_cell", "expected_r_spearman", "expected_r_mae", "cpu_s", "peak_rss_gb"]
    out = []
    for pair in dict.fromkeys(r["pair"] for r in rows):
        out += [f"\n### {pair}\n", "| method | seeds | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
        for method in dict.fromkeys(r["method"] for r in rows if r["pair"] == pair):
            rs = [r for r in rows if r["pair"] == pair and r["method"] == method]
            cells = []
            for c in cols:
                v = np.array([r[c] for r in rs if c in r], float)
                cells.append("–" if not len(v) else f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v[0]:.3f}")
            out.append(f"| {method} | {','.join(str(r['seed']) for r in rs)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", nargs="+", default=["osmfish", "osmfish_self", "xenium", "xenium18k"])
    ap.add_argument("--methods", nargs="+", default=["knn", "stimpute", "spaim", "auto"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", default=str(HERE / "out" / "accuracy.jsonl"))
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], int(args.worker[2]))))
        return 0
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    for pair in args.pairs:
        for method in args.methods:
            for seed in args.seeds:
                if any(r["pair"] == pair and r["method"] == method and r["seed"] == seed for r in rows):
                    continue
                proc = subprocess.run([sys.executable, __file__, "--worker", pair, method, str(seed)],
                                      capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    print(f"{pair} {method} {seed} failed:\n{proc.stderr[-1500:]}", file=sys.stderr)
                    continue
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                with out.open("a") as fh:
                    fh.write(json.dumps(rows[-1]) + "\n")
                r = rows[-1]
                print(f"{pair} {method} seed {seed}: median PCC {r['pcc_median']:.3f} CPU {r['cpu_s']:.1f} s",
                      flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
