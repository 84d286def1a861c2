"""Benchmark: gene expression from H&E on her2st (train C2–C5, predict C6).

Per-gene Pearson over the C6 spots, mean over the whole panel (500 most expressed genes on the training
sections) and over the 50 most expressed, for
  * train-mean: every spot gets the training mean (Pearson 0 by construction; the floor),
  * colour/texture kNN and ridge: hand-made patch features (RGB / HED colour moments, grey-level histogram,
    gradient energy) → cosine kNN (k=50) or ridge regression,
  * Lite0 kNN: frozen ImageNet EfficientNet-Lite0 pooled features → cosine kNN (k=50), no training,
  * STco (this package, default parameters, seeds 0–2).

Run:  OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_histology.py [--threads 2] [--seeds 0 1 2]
Writes a markdown table to stdout and benchmarks/histology_her2st.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "her2st_subset"
IMAGES = {"C2": "C2_5714_HE_BT_C2.jpg", "C3": "C3_5714_HE_BT_D1.jpg", "C4": "C4_5714_HE_BT_D2.jpg",
          "C5": "C5_5714_HE_BT_E1.jpg", "C6": "C6_5714_HE_BT_E2.jpg"}


def colour_texture_features(patches: np.ndarray) -> np.ndarray:
    """Hand-made features per patch: RGB and HED mean/std, 16-bin grey histogram, gradient energy stats."""
    from skimage.color import rgb2hed

    feats = []
    for p in patches:
        x = p.astype(np.float32) / 255.0
        hed = rgb2hed(x)
        grey = x.mean(axis=2)
        gy, gx = np.gradient(grey)
        mag = np.hypot(gx, gy)
        hist = np.histogram(grey, bins=16, range=(0, 1))[0] / grey.size
        feats.append(np.concatenate([x.mean((0, 1)), x.std((0, 1)), hed.mean((0, 1)), hed.std((0, 1)), hist,
                                     [mag.mean(), mag.std(), np.percentile(mag, 90), (mag > 0.1).mean()]]))
    return np.asarray(feats, np.float32)


def knn_predict(train_f, test_f, train_y, k=50):
    mu, sd = train_f.mean(0), train_f.std(0) + 1e-6
    a = (train_f - mu) / sd
    b = (test_f - mu) / sd
    a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-9
    b /= np.linalg.norm(b, axis=1, keepdims=True) + 1e-9
    idx = np.argsort(-(b @ a.T), axis=1)[:, :k]
    return train_y[idx].mean(1)


def ridge_predict(train_f, test_f, train_y, alpha=10.0):
    mu, sd = train_f.mean(0), train_f.std(0) + 1e-6
    a = (train_f - mu) / sd
    b = (test_f - mu) / sd
    ym = train_y.mean(0)
    w = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ (train_y - ym))
    return b @ w + ym


def score(truth, pred, top_idx):
    from napari_spatial_impute.metrics import pearson_per_gene

    r = pearson_per_gene(truth, pred)
    return float(r.mean()), float(r[top_idx].mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="STco seeds (none: baselines only)")
    ap.add_argument("--params", default="{}", help='STco parameters as JSON, e.g. \'{"n_views": 2}\'')
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "histology_her2st.json"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from napari_spatial_impute import evaluate_histology as evaluate
    from napari_spatial_impute import train_histology as train
    from napari_spatial_impute.io import read_st_section
    from napari_spatial_impute.models.stco.expression import section_expression
    from napari_spatial_impute.progress import run_to_end

    secs = {s: read_st_section(DATA / f"ST-cnts/{s}.tsv.gz", DATA / f"ST-spotfiles/{s}_selection.tsv",
                               DATA / "ST-imgs" / img) for s, img in IMAGES.items()}
    train_names, test = ["C2", "C3", "C4", "C5"], "C6"
    rows, results = [], {}
    for seed in args.seeds:
        t0 = time.perf_counter()
        model = train([secs[s] for s in train_names], seed=seed, device="cpu", **json.loads(args.params))
        t_train = time.perf_counter() - t0
        m = evaluate(model, secs[test])
        results[f"stco_seed{seed}"] = {k: v for k, v in m.items() if k != "per_gene"} | {"train_s": t_train}
        label = f" {args.params}" if args.params != "{}" else ""
        rows.append((f"STco (Lite0 frozen + contrastive heads){label}, seed {seed}", m["pcc_mean_all"],
                     m["pcc_mean_top50"], t_train, m["seconds"]))
        print(rows[-1], flush=True)
    if not args.seeds:  # baselines only: same gene panel / normalisation / patches as a trained model
        from napari_spatial_impute import STco

        model = STco(device="cpu")
        model._choose_genes([secs[s] for s in train_names])
        model._make_backbone()
    genes, top = model.genes, [model.genes.index(g) for g in model.top_genes]
    ytr = np.vstack([section_expression(secs[s], genes, model.target_sum) for s in train_names])
    yte = section_expression(secs[test], genes, model.target_sum)
    # baselines on the same patches (150 µm, 112 px) and the same genes
    t0 = time.perf_counter()
    ptr = np.concatenate([model.section_inputs(secs[s])[0] for s in train_names])
    pte = model.section_inputs(secs[test])[0]
    pred = np.tile(ytr.mean(0), (len(yte), 1))  # constant per gene: Pearson 0 by definition
    rows.append(("train-mean", *score(yte, pred, top), 0.0, 0.0))
    t0 = time.perf_counter()
    ftr, fte = colour_texture_features(ptr), colour_texture_features(pte)
    t_feat = time.perf_counter() - t0
    rows.append(("colour/texture features + kNN (k=50)", *score(yte, knn_predict(ftr, fte, ytr), top), t_feat, 0.0))
    rows.append(("colour/texture features + ridge", *score(yte, ridge_predict(ftr, fte, ytr), top), t_feat, 0.0))
    t0 = time.perf_counter()
    ltr = run_to_end(model.backbone_features_steps(ptr, [0], None, "train"))[0]
    lte = run_to_end(model.backbone_features_steps(pte, [0], None, "test"))[0]
    t_lite = time.perf_counter() - t0
    rows.append(("Lite0 ImageNet features + kNN (k=50), no training",
                 *score(yte, knn_predict(ltr, lte, ytr), top), t_lite, 0.0))
    print("\n| method (train C2–C5 → C6) | PCC mean, 500 genes | PCC mean, top-50 | train s | predict s |")
    print("|---|---|---|---|---|")
    for name, a, b, tt, tp in rows:
        print(f"| {name} | {a:.3f} | {b:.3f} | {tt:.0f} | {tp:.1f} |")
    results["table"] = [dict(method=r[0], pcc_mean_all=r[1], pcc_mean_top50=r[2], train_s=r[3], predict_s=r[4])
                        for r in rows]
    results["threads"] = args.threads
    out = Path(args.out)
    if not args.seeds and out.is_file():  # keep the STco rows of an earlier full run
        old = json.loads(out.read_text())
        keep = [r for r in old.get("table", []) if r["method"].startswith("STco")]
        results = {k: v for k, v in old.items() if k.startswith("stco_")} | results
        results["table"] = keep + results["table"]
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
