"""SpaIM on the osmFISH + Allen SSp pair next to kNN (and stImpute when its module exists).

Every run is ``napari_spatial_impute.api.cross_validate`` (the same seeded 5 folds of the 33 shared genes
for every method at a given seed, the same normalisation and metrics), each in a fresh subprocess so its
peak resident memory (``ru_maxrss``) is its own. Seeds 0–2 change both the folds and the model seed; all
methods see the same folds per seed. Includes the ablation of the added MSE scale term
(``scale_weight=0`` = the public SpaIM losses only) and of mixup.

    OMP_NUM_THREADS=1 python benchmarks/bench_spaim.py [--seeds 0 1 2] [--out benchmarks/spaim_osmfish.md]
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

RUNS: list[tuple[str, str, dict]] = [
    ("knn (baseline)", "knn", {"k": 30}),
    ("spaim", "spaim", {}),
    ("spaim, no MSE scale term", "spaim", {"scale_weight": 0.0}),
    ("spaim, with mixup", "spaim", {"mixup": True}),
    ("spaim, one network, no EMA", "spaim", {"n_models": 1, "ema": 0.0}),
    ("stimpute", "stimpute", {}),
]


def run_one(method: str, params: dict, seed: int) -> dict:
    """One 5-fold CV in this process; returns metrics, seconds and peak RSS."""
    import torch

    import napari_spatial_impute as nsi
    from napari_spatial_impute.models import get_method

    torch.set_num_threads(1)
    get_method(method)  # ImportError when the module is absent
    spatial, reference = nsi.load_osmfish_sample()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    res = nsi.cross_validate(spatial, reference, method, folds=5, seed=seed, device="cpu", **params)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    m = res.metrics
    import numpy as np

    err = res.prediction.astype(np.float64) - res.truth
    keep = ["pcc_median", "pcc_mean", "spearman_median", "ssim_median", "rmse_median", "js_median", "css_cell",
            "css_gene", "mse_gene"]
    out = {k: m[k] for k in keep}
    out.update(rmse_log=float(np.sqrt((err ** 2).mean())),
               mean_offset=float(np.median(np.abs(err.mean(axis=0)))), seconds=seconds,
               peak_rss_mib=peak / 1024, base_rss_mib=base_rss / 1024,
               per_gene_pcc={g: v["pcc"] for g, v in m["per_gene"].items()})
    return out


def _child(label: str, method: str, params: dict, seed: int) -> dict | None:
    cmd = [sys.executable, __file__, "--child", json.dumps([method, params, seed])]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        print(f"  {label} seed {seed}: skipped ({tail[0][:160]})", flush=True)
        return None
    return json.loads(lines[-1])


def _fmt_table(rows: list[dict]) -> str:
    head = ("| run | seed | PCC median | PCC mean | Spearman median | SSIM median | RMSE median | JS median "
            "| CSS cell | RMSE log | abs mean offset | seconds | peak RSS MiB |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(f"| {r['label']} | {r['seed']} | {r['pcc_median']:.3f} | {r['pcc_mean']:.3f} | "
                     f"{r['spearman_median']:.3f} | {r['ssim_median']:.3f} | {r['rmse_median']:.3f} | "
                     f"{r['js_median']:.3f} | {r['css_cell']:.3f} | {r['rmse_log']:.3f} | {r['mean_offset']:.3f} | "
                     f"{r['seconds']:.1f} | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def _fmt_means(rows: list[dict]) -> str:
    import numpy as np

    lines = ["| run | seeds | PCC median (mean ± sd over seeds) | PCC mean | SSIM median | RMSE log "
             "| abs mean offset | seconds |", "|---|---|---|---|---|---|---|---|"]
    for label in dict.fromkeys(r["label"] for r in rows):
        sub = [r for r in rows if r["label"] == label]
        med = np.array([r["pcc_median"] for r in sub])
        lines.append(f"| {label} | {len(sub)} | {med.mean():.3f} ± {med.std():.3f} | "
                     f"{np.mean([r['pcc_mean'] for r in sub]):.3f} | {np.mean([r['ssim_median'] for r in sub]):.3f} | "
                     f"{np.mean([r['rmse_log'] for r in sub]):.3f} | {np.mean([r['mean_offset'] for r in sub]):.3f} | "
                     f"{np.mean([r['seconds'] for r in sub]):.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "spaim_osmfish.md"))
    ap.add_argument("--json", default=str(Path(__file__).resolve().parent / "out" / "spaim_osmfish.json"))
    ap.add_argument("--skip", nargs="*", default=[], help="run labels or methods to skip (e.g. stimpute)")
    ap.add_argument("--only", nargs="*", default=[], help="run only these labels")
    ap.add_argument("--from-json", nargs="+", help="only write the markdown from these saved runs")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        method, params, seed = json.loads(args.child)
        print(json.dumps(run_one(method, params, seed)))
        return 0
    rows = []
    if args.from_json:
        order = [label for label, _, _ in RUNS]
        rows = [r for f in args.from_json for r in json.loads(Path(f).read_text())]
        rows.sort(key=lambda r: (r["seed"], order.index(r["label"]) if r["label"] in order else 99))
        args.seeds = []
    for seed in args.seeds:
        for label, method, params in RUNS:
            if label in args.skip or method in args.skip or (args.only and label not in args.only):
                continue
            res = _child(label, method, params, seed)
            if res is None:
                continue
            res.update(label=label, method=method, params=params, seed=seed)
            rows.append(res)
            print(f"  {label:28s} seed {seed}: PCC median {res['pcc_median']:.3f}, mean {res['pcc_mean']:.3f}, "
                  f"{res['seconds']:.1f} s, peak {res['peak_rss_mib']:.0f} MiB", flush=True)
    if not args.from_json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))
    import torch

    text = [
        "# SpaIM on osmFISH + Allen SSp (5-fold CV over the 33 shared genes)",
        "",
        "Generated by `OMP_NUM_THREADS=1 python benchmarks/bench_spaim.py` (CPU, 1 thread, torch "
        f"{torch.__version__}; shared 2-core machine, so seconds are indicative). Each row is one "
        "`napari_spatial_impute.api.cross_validate(..., folds=5, seed=seed)` in a fresh process; the seed sets "
        "both the fold split and the model seed, and every method sees the same folds at a given seed. "
        "Peak RSS is the process's maximum resident memory (includes Python, torch and the data, ~300–400 MiB).",
        "",
        "SpaIM defaults: Leiden resolution 1.0 on the 1000 unlabelled reference cells (K = 16 clusters), "
        "hidden 512/256, style 64, 60 epochs, AdamW lr 1e-3, wd 1e-4, genes per batch 64, mixup off, "
        "MSE scale term weight 1, weight moving average 0.9, 3 networks averaged (each with its own seeded "
        "clustering). Each ablation changes one of these.",
        "",
        "RMSE log = root-mean-square error on the normalised log1p scale (all cells, all genes); "
        "abs mean offset = median over genes of |mean prediction − mean truth| (log1p units): the scale "
        "anchor the added MSE term is for. Pearson/Spearman/SSIM/z-scored RMSE ignore the scale.",
        "",
        "## Mean over seeds",
        "",
        _fmt_means(rows),
        "",
        "## Every run",
        "",
        _fmt_table(rows),
        "",
    ]
    Path(args.out).write_text("\n".join(text))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
