"""Width benchmark (issue 11): kNN imputation of 2,000 → 20,000 target genes for 1 M cells, written out of core.

Spatial cells are resampled real Xenium cells (``scale_data.make_scale_pair``: 248-gene panel, 98 genes hidden);
the reference (real Xenium cells, Poisson-resampled up to ``--reference-cells``) keeps its 248 real genes and is
padded with synthetic sparse genes (3 % of cells detected, Poisson counts) up to the target width — "synthetic
for width" as the house rules allow. Each configuration runs in a fresh subprocess; the result goes to a zarr
store under ``--workdir`` (removed afterwards unless ``--keep``). Reports wall and CPU seconds, peak RSS, the
size on disk, and the median PCC of the 98 real hidden genes (a check that width does not break accuracy).

    python benchmarks/bench_wide.py --cells 1000000 --genes 2000 20000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _pad_reference(reference, n_genes: int, n_cells: int, seed: int = 0):
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(reference.X, dtype=np.float32)
    if n_cells > X.shape[0]:
        picks = rng.choice(X.shape[0], n_cells, replace=True)
        X = X[picks].tocsr()
        X.data = rng.poisson(X.data).astype(np.float32)
        X.eliminate_zeros()
    n_extra = max(0, n_genes - reference.n_vars)
    nnz = int(0.03 * n_cells * n_extra)
    extra = sp.csr_matrix((rng.poisson(1.5, nnz).astype(np.float32) + 1,
                           (rng.integers(0, n_cells, nnz), rng.integers(0, n_extra, nnz))), shape=(n_cells, n_extra))
    extra.sum_duplicates()
    names = list(map(str, reference.var_names)) + [f"Synth{i:05d}" for i in range(n_extra)]
    return ad.AnnData(sp.hstack([X, extra], format="csr"), obs=pd.DataFrame(index=[f"ref_{i}" for i in range(n_cells)]),
                      var=pd.DataFrame(index=names))


def worker(n_cells: int, n_genes: int, n_reference: int, workdir: str, keep: bool) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    sys.path.insert(0, str(HERE))
    from scale_data import make_scale_pair, truth_log_normalised

    import napari_spatial_impute as nsi
    from napari_spatial_impute.io.results import read_gene
    from napari_spatial_impute.metrics import pearson_per_gene

    spatial, reference, holdout, truth, totals = make_scale_pair(n_cells, 98)
    reference = _pad_reference(reference, n_genes + spatial.n_vars, n_reference)
    out = Path(workdir) / f"wide_{n_cells}_{n_genes}.zarr"
    shutil.rmtree(out, ignore_errors=True)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    result = nsi.impute(spatial, reference, "knn", seed=0, device="cpu", all_genes=True, out=out)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    pred = np.stack([read_gene(out, g) for g in holdout], axis=1)
    pcc = pearson_per_gene(truth_log_normalised(truth, totals), pred)
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    return {"n_cells": n_cells, "n_target_genes": int(result.n_vars), "n_reference": n_reference,
            "reference_genes": int(reference.n_vars), "reference_nnz": int(reference.X.nnz), "seconds": wall,
            "cpu_seconds": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime),
            "peak_rss_gb": r1.ru_maxrss / 1024 ** 2, "disk_gb": disk / 2 ** 30,
            "pcc_median_real_hidden": float(np.median(pcc))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", nargs="+", type=int, default=[1_000_000])
    ap.add_argument("--genes", nargs="+", type=int, default=[2000, 20000])
    ap.add_argument("--reference-cells", type=int, default=50_000)
    ap.add_argument("--workdir", default="/tmp/nsi_bench_wide")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out", default=str(HERE / "out" / "wide.json"))
    ap.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.reference_cells, args.workdir, args.keep)))
        return 0
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.cells:
        for g in args.genes:
            cmd = [sys.executable, __file__, "--worker", str(n), str(g), "--reference-cells",
                   str(args.reference_cells), "--workdir", args.workdir] + (["--keep"] if args.keep else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr[-3000:], file=sys.stderr)
                return proc.returncode
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    print("| cells | target genes | reference | wall s | CPU s | peak RSS GB | on disk GB | median PCC (98 real) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n_cells']:,} | {r['n_target_genes']:,} | {r['n_reference']:,} × {r['reference_genes']:,} | "
              f"{r['seconds']:.0f} | {r['cpu_seconds']:.0f} | {r['peak_rss_gb']:.2f} | {r['disk_gb']:.2f} | "
              f"{r['pcc_median_real_hidden']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
