"""SpaIM settings on real pairs, each run in a fresh process (one torch / BLAS thread): the tuning harness of
``benchmarks/spaim_generalisation.md``.

Tuning pairs (defaults are chosen on these only): ``osmfish`` (5-fold honest CV over the 33 shared genes) and
``xenium`` (the bundled sample's 98 hidden genes against their truth). Report pairs (``xenium18k``,
``osmfish_self``) are run with ``benchmarks/bench_accuracy.py`` on the chosen defaults, never from here while
choosing. Each setting is a label and a JSON dict of SpaIM parameters; rows (median / mean per-gene PCC, CPU s,
expected-r Spearman when present) append to ``--out`` and a finished (pair, label, seed) is skipped on rerun.

    OMP_NUM_THREADS=1 python benchmarks/bench_spaim.py --pairs xenium osmfish --seeds 0 1 2 \\
        --setting default '{}' --setting res3 '{"resolution": 3.0}'
    OMP_NUM_THREADS=1 python benchmarks/bench_spaim.py --table     # mean ± sd per (pair, label) of --out
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "spaim_tuning.jsonl"


def run_one(pair: str, method: str, params: dict, seed: int) -> dict:
    """One run of ``method`` with ``params`` on ``pair`` in this process."""
    import numpy as np
    import torch
    from scipy.stats import spearmanr

    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    from pairs import load_pair, truth_log

    import napari_spatial_impute as nsi
    from napari_spatial_impute.metrics import summarize

    spatial, reference, truth_ad = load_pair(pair, seed)
    c0, extra = time.process_time(), {}
    if truth_ad is None:
        res = nsi.cross_validate(spatial, reference, method, folds=5, seed=seed, device="cpu", **params)
        genes, ann, m = res.genes, res.gene_annotations, res.metrics
    else:
        genes = list(truth_ad.var_names)
        out = nsi.impute(spatial, reference, method, genes, seed=seed, device="cpu", **params)
        ann = out.var
        info = out.uns["napari_spatial_impute"].get("model_info")
        extra = {"anchor_weight": json.loads(info).get("anchor_weight")} if info and method == "spaim" else {}
        m = summarize(truth_log(spatial, truth_ad, genes), np.asarray(out.X), genes)
    row = {"pcc_median": m["pcc_median"], "pcc_mean": m["pcc_mean"], "cpu_s": time.process_time() - c0, **extra}
    pcc = np.array([m["per_gene"][g]["pcc"] for g in genes])
    if ann is not None and "expected_r" in ann:
        exp = ann["expected_r"].reindex(genes).to_numpy(dtype=float)
        row.update(expected_r_spearman=float(spearmanr(exp, pcc)[0]), expected_r_mae=float(np.abs(exp - pcc).mean()))
    return row


def table(rows: list[dict]) -> str:
    import numpy as np

    out = ["| pair | setting | seeds | median PCC | mean PCC | expected_r ρ | CPU s |", "|---|---|---|---|---|---|---|"]
    keys = dict.fromkeys((r["pair"], r["label"]) for r in rows)
    for pair, label in sorted(keys, key=lambda k: k[0]):
        rs = sorted((r for r in rows if r["pair"] == pair and r["label"] == label), key=lambda r: r["seed"])

        def f(c, rs=rs):
            v = np.array([r[c] for r in rs if c in r], float)
            return "–" if not len(v) else f"{v.mean():.3f} ± {v.std():.3f}"
        out.append(f"| {pair} | {label} | {','.join(str(r['seed']) for r in rs)} | {f('pcc_median')} | "
                   f"{f('pcc_mean')} | {f('expected_r_spearman')} | {f('cpu_s')} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", nargs="+", default=["xenium", "osmfish"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--setting", nargs=2, action="append", default=[], metavar=("LABEL", "JSON"),
                    help="a label and SpaIM parameters as JSON; label 'knn' runs the kNN baseline")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--table", action="store_true", help="print the mean ± sd table of --out and stop")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        pair, method, params, seed = json.loads(args.child)
        print(json.dumps(run_one(pair, method, params, seed)))
        return 0
    out = Path(args.out)
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for label, params_json in args.setting:
        params = json.loads(params_json)
        method = "knn" if label == "knn" else "spaim"
        for pair in args.pairs:
            for seed in args.seeds:
                if any(r["pair"] == pair and r["label"] == label and r["seed"] == seed for r in rows):
                    continue
                proc = subprocess.run([sys.executable, __file__, "--child",
                                       json.dumps([pair, method, params, seed])], capture_output=True, text=True,
                                      env=env)
                if proc.returncode != 0:
                    print(f"{pair} {label} {seed} failed:\n{proc.stderr[-1500:]}", file=sys.stderr, flush=True)
                    continue
                row = {"pair": pair, "label": label, "params": params, "seed": seed,
                       **json.loads(proc.stdout.strip().splitlines()[-1])}
                rows.append(row)
                out.parent.mkdir(parents=True, exist_ok=True)
                with out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(f"{pair} {label} seed {seed}: median PCC {row['pcc_median']:.3f} CPU {row['cpu_s']:.0f} s",
                      flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
