"""External peer on the osmFISH + Allen SSp pair: Tangram (tangram-sc, optional ``[benchmark]`` extra).

Same protocol as ``napari_spatial_impute.api.cross_validate``: the same seeded 5 folds of shared genes,
the same normalisation (median library size + log1p), the same metrics. Tangram maps reference cells onto
spatial cells using the training genes of a fold and projects the held-out genes.

    python benchmarks/bench_peers.py [--epochs 500] [--out benchmarks/out/peers.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def tangram_cv(spatial, reference, folds: int = 5, seed: int = 0, epochs: int = 500) -> dict:
    import anndata as ad
    import pandas as pd
    import tangram as tg
    import torch

    from napari_spatial_impute.api import fold_genes, prepare
    from napari_spatial_impute.metrics import summarize
    from napari_spatial_impute.preprocessing import match_genes

    torch.manual_seed(seed)
    genes = list(match_genes(spatial.var_names, reference.var_names).shared_reference)
    data, _ = prepare(spatial, reference, genes, hold_out=False)
    truth = data.spatial
    pred = np.zeros_like(truth)
    pos = {g: i for i, g in enumerate(genes)}
    t0 = time.perf_counter()
    for part in fold_genes(genes, folds, seed):
        train = [g for g in genes if g not in set(part)]
        ad_sp = ad.AnnData(truth[:, [pos[g] for g in train]].copy(), var=pd.DataFrame(index=train))
        ad_sc = ad.AnnData(data.reference.copy(), var=pd.DataFrame(index=data.reference_genes))
        tg.pp_adatas(ad_sc, ad_sp, genes=train)
        ad_map = tg.map_cells_to_space(ad_sc, ad_sp, mode="cells", device="cpu", num_epochs=epochs,
                                       random_state=seed, verbose=False)
        ad_ge = tg.project_genes(ad_map, ad_sc)
        lower = {g.lower(): g for g in ad_ge.var_names}
        X = ad_ge[:, [lower[g.lower()] for g in part]].X
        pred[:, [pos[g] for g in part]] = np.asarray(X.toarray() if hasattr(X, "toarray") else X)
    metrics = summarize(truth, pred, genes)
    return {"method": "tangram (peer)", "seconds": time.perf_counter() - t0, "folds": folds, "epochs": epochs,
            **metrics}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=500)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "peers.json"))
    args = ap.parse_args(argv)
    try:
        import tangram  # noqa: F401
    except ImportError:
        print("tangram-sc is not installed: pip install 'napari-spatial-impute[benchmark]'", file=sys.stderr)
        return 0
    import napari_spatial_impute as nsi

    spatial, reference = nsi.load_osmfish_sample()
    res = tangram_cv(spatial, reference, epochs=args.epochs)
    res["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(f"tangram: median PCC {res['pcc_median']:.3f}, mean {res['pcc_mean']:.3f}, median SSIM "
          f"{res['ssim_median']:.3f}, {res['seconds']:.1f} s, peak RSS {res['peak_rss_gb']:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
