"""stImpute vs the kNN baseline on osmFISH + Allen SSp (5-fold CV over the 33 shared genes), with ablations.

Each configuration runs in its own subprocess (one torch thread) so time and peak RSS are its own:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_stimpute.py            # writes benchmarks/stimpute_osmfish.md
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_stimpute.py --seeds 0,1,2 --scale
        # + spread over seeds, + a synthetic 100k cells × 300 genes run

``cpu s`` is the process CPU time (user + sys) — the figure to compare with the "< 2 min on 2 cores" target,
since other jobs share the benchmark machine and inflate wall time; ``wall s`` is reported as measured.
Peak RSS is ``ru_maxrss`` of the subprocess (includes Python + torch, ~0.4 GB after imports).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CONFIGS = {
    "knn_k30": ("knn", {"k": 30}, "kNN baseline (k=30)"),
    "knn_k50": ("knn", {"k": 50}, "kNN baseline (k=50)"),
    "stimpute_esm2": ("stimpute", {"gene_embeddings": "bundled"}, "stImpute, ESM-2 gene graph"),
    "stimpute_expr": ("stimpute", {"gene_embeddings": "none"}, "stImpute, expression gene graph"),
    "stimpute_nognn": ("stimpute", {"use_gnn": False}, "stImpute without GNN (AE neighbours, mean)"),
}
NOTES = """## What differs from the paper's public code (and why)

- **Gene graph** from cosine *similarity* of ESM-2 vectors (centred on their mean first: mean-pooled ESM
  vectors share one large direction, so raw cosines all sit near 1), top-8 neighbours per gene, negative
  similarities dropped, rows normalised; built once at fit. The public code used cosine *distance* minus the
  identity (negative weights) and rebuilt a dense genes × genes matrix on every forward pass. Genes without a
  protein vector take Pearson correlation over reference cells (counts in `STImputer.graph_summary()`).
- **Neighbour space**: cosine neighbours are searched in the autoencoder's decoded (denoised) shared genes.
  In the ReLU code itself they were much worse on this pair (median PCC of the neighbour mean 0.12 vs 0.21,
  5-fold, k=50; z-scored genes 0.21).
- **Masked training**: in every batch a quarter of the input genes is hidden, neighbours are searched without
  them and the loss (eq. 10: cell- and gene-wise cosine + MSE) is taken on them — the situation of a target
  gene. The public code fits the GNN on the same genes that chose the neighbours.
- **Node features**: 9 statistics of the gene over the k neighbours (weighted mean, nearest-10 % mean, sd,
  fraction expressing, 10/25/50/75/90 % quantiles) in per-gene z-units, instead of the k raw values; with only
  5 of them (no quantiles) the median PCC fell to 0.25. The head predicts a correction to the weighted mean.
- **Reliability**: an MLP on 8 gene descriptors that need no spatial truth (reference mean/sd/fraction
  expressed, correlation with input genes in the reference, spread of the neighbour means, GNN–kNN
  agreement, protein vector or not), trained on cross-validated cosine similarities (3 inner folds over the
  input genes, each retraining AE + GNN with half the GNN epochs); the public code trained on in-sample
  cosines and used the slide's prediction vector as input (tied to the number of cells). Scores are clipped
  to [0, 1].
- **Output**: α·GNN + (1−α)·neighbour mean, both in reference log units (α = 0.7 below 10k cells and
  500 genes, else 0.5, as in the paper); no rescaling of the kNN mean to the GNN's maximum.
- **Memory**: neighbour features exist only per chunk of cells (64 MiB budget); training samples at most
  20k cells per epoch.
"""
COLUMNS = ["pcc_median", "pcc_mean", "spearman_median", "ssim_median", "rmse_median", "js_median", "css_cell",
           "css_gene", "mse_gene"]


def _usage() -> dict:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024}


def run_one(name: str, seed: int = 0) -> dict:
    import torch

    torch.set_num_threads(1)
    import napari_spatial_impute as nsi

    method, params, label = CONFIGS[name]
    spatial, reference = nsi.load_osmfish_sample()
    before = _usage()
    t0 = time.perf_counter()
    res = nsi.cross_validate(spatial, reference, method, folds=5, seed=seed, device="cpu", **params)
    wall = time.perf_counter() - t0
    after = _usage()
    out = {"name": name, "label": label, "method": method, "params": params, "seed": seed, "wall_s": wall,
           "cpu_s": after["cpu_s"] - before["cpu_s"], "peak_rss_mb": after["peak_rss_mb"],
           **{c: res.metrics[c] for c in COLUMNS}}
    ann = res.gene_annotations
    if ann is not None and "reliability" in ann:
        from scipy.stats import spearmanr

        per_gene = res.per_gene()
        out["reliability_rho"] = float(spearmanr(ann["reliability"].reindex(per_gene.index), per_gene["cosine"])[0])
        top = ann["reliability"].sort_values(ascending=False).index[: len(per_gene) // 2]
        out["top50_css_gene"] = float(per_gene.loc[top, "cosine"].mean())
    return out


def run_scale(n_cells: int, n_genes: int, n_ref: int = 5000, n_targets: int = 50) -> dict:
    """Synthetic low-rank counts (cell types × genes) at scale: fit + predict time and peak RSS."""
    import anndata as ad
    import torch

    torch.set_num_threads(1)
    import napari_spatial_impute as nsi

    rng = np.random.default_rng(0)
    programs = rng.gamma(0.6, 2.0, size=(20, n_genes))
    genes = [f"G{i}" for i in range(n_genes)]

    def cells(n):
        types = rng.integers(0, 20, n)
        return rng.poisson(programs[types] * rng.uniform(0.5, 1.5, (n, 1))).astype(np.float32)

    ref = ad.AnnData(cells(n_ref))
    ref.var_names = genes
    sp = ad.AnnData(cells(n_cells)[:, : n_genes - n_targets])
    sp.var_names = genes[: n_genes - n_targets]
    sp.obsm["spatial"] = rng.uniform(0, 1000, (n_cells, 2))
    before = _usage()
    t0 = time.perf_counter()
    out = nsi.impute(sp, ref, "stimpute", genes[n_genes - n_targets:], device="cpu", reliability=False)
    wall = time.perf_counter() - t0
    after = _usage()
    return {"name": f"scale_{n_cells}x{n_genes}", "wall_s": wall, "cpu_s": after["cpu_s"] - before["cpu_s"],
            "peak_rss_mb": after["peak_rss_mb"], "shape": list(out.shape)}


def _sub(args: list[str]) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_table(rows: list[dict], scale: dict | None, path: Path, seeds: dict | None = None) -> None:
    lines = ["# stImpute on osmFISH + Allen SSp (5-fold CV over 33 shared genes)", "",
             "Reproduce: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_stimpute.py` (this table: "
             "`--seeds 0,1,2 --scale`). Data: the bundled pair (3405 osmFISH cells, 1000 Allen SMART-seq cells). "
             "Metrics as in `metrics.py` (median/mean over genes; css = cosine similarity, mse on max-scaled "
             "genes). Seed 0, CPU, **1 torch thread** per configuration (the machine is shared, so `cpu s` — the "
             "process CPU time — is the figure for the < 2 min target; `wall s` includes waiting for the CPU).",
             "", f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
                 f"Python {platform.python_version()}.", "",
             "| configuration | " + " | ".join(COLUMNS) + " | reliability ρ | top-50% css_gene | cpu s | wall s "
             "| peak RSS MB |", "|---" * (len(COLUMNS) + 6) + "|"]
    for r in rows:
        rel = f"{r['reliability_rho']:.2f}" if "reliability_rho" in r else "–"
        top = f"{r['top50_css_gene']:.3f}" if "top50_css_gene" in r else "–"
        lines.append(f"| {r['label']} | " + " | ".join(f"{r[c]:.3f}" for c in COLUMNS)
                     + f" | {rel} | {top} | {r['cpu_s']:.1f} | {r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} |")
    lines += ["", "reliability ρ: Spearman correlation between the reliability score of each held-out gene and its "
                  "true per-gene cosine similarity; top-50% css_gene: mean per-gene cosine of the half of the genes "
                  "with the highest reliability."]
    if seeds:
        lines += ["", "## Seed spread", "", "5-fold CV repeated with model seeds " + ", ".join(map(str, seeds["seeds"]))
                  + " (the seed sets both the model initialisation and the 5 gene folds): mean ± sd over seeds.", "",
                  "| configuration | pcc_median | pcc_mean | css_gene | reliability ρ |", "|---|---|---|---|---|"]
        for label, runs in seeds["runs"].items():
            def ms(key, runs=runs):
                vals = [r[key] for r in runs if key in r]
                return f"{np.mean(vals):.3f} ± {np.std(vals):.3f}" if vals else "–"
            lines.append(f"| {label} | {ms('pcc_median')} | {ms('pcc_mean')} | {ms('css_gene')} | "
                         f"{ms('reliability_rho')} |")
    if scale:
        lines += ["", "## Scale (synthetic)", "",
                  f"`{scale['name']}`: fit + predict of {scale['shape'][1]} target genes for {scale['shape'][0]} "
                  f"cells (reference 5000 cells; reliability off): cpu {scale['cpu_s']:.0f} s, wall "
                  f"{scale['wall_s']:.0f} s, peak RSS {scale['peak_rss_mb']:.0f} MB (1 thread)."]
    lines += ["", NOTES]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--one", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    p.add_argument("--scale-one", nargs=2, type=int, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--seeds", default="0", help="comma-separated seeds for the spread table (e.g. 0,1,2)")
    p.add_argument("--scale", action="store_true", help="also run a synthetic 100k cells × 300 genes imputation")
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ", ".join(CONFIGS))
    p.add_argument("--out", default=str(HERE / "stimpute_osmfish.md"))
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.seed)))
        return 0
    if args.scale_one:
        print(json.dumps(run_scale(*args.scale_one)))
        return 0
    rows = []
    for name in args.configs.split(","):
        row = _sub(["--one", name])
        print(f"{row['label']}: median PCC {row['pcc_median']:.3f}, cpu {row['cpu_s']:.1f} s, "
              f"wall {row['wall_s']:.1f} s, peak {row['peak_rss_mb']:.0f} MB", file=sys.stderr)
        rows.append(row)
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    spread = None
    if len(seeds) > 1:
        spread = {"seeds": seeds, "runs": {}}
        for row in rows:
            runs = [row] + [_sub(["--one", row["name"], "--seed", str(sd)]) for sd in seeds if sd != 0]
            spread["runs"][row["label"]] = runs
            print(f"{row['label']}: seeds {seeds}: median PCC " + ", ".join(f"{r['pcc_median']:.3f}" for r in runs),
                  file=sys.stderr)
    scale = _sub(["--scale-one", "100000", "300"]) if args.scale else None
    write_table(rows, scale, Path(args.out), spread)
    print(Path(args.out).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
