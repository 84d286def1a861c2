"""Build the bundled real Xenium mouse-brain sample: a spatial crop measuring a 150-gene panel, a reference of
other cells of the same slide measuring all 248 genes, and the held-out truth of the 98 genes the panel lacks.

Source: 10x Genomics *Xenium_V1_FF_Mouse_Brain_Coronal_Subset_CTX_HP* (CC BY 4.0), via
``../shared/datasets/xenium_mouse_brain_ctx_hp`` (see its PROVENANCE.md). Run from the repository root:

    python scripts/make_xenium_sample.py [--source ../shared/datasets/xenium_mouse_brain_ctx_hp]
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import scipy.sparse as sp

OUT = Path("src/napari_spatial_impute/data/xenium_mouse_brain")
SEED = 0
N_PANEL = 150
N_REFERENCE = 8000
CROP_UM = (1500.0, 3300.0, 1200.0, 2700.0)  # x0, x1, y0, y1: a cortex + hippocampus window


def main() -> None:
    import pandas as pd
    import scanpy as sc

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source", default="../shared/datasets/xenium_mouse_brain_ctx_hp")
    args = ap.parse_args()
    src = Path(args.source)
    full = sc.read_10x_h5(src / "cell_feature_matrix.h5")
    cells = pd.read_csv(src / "cells.csv.gz")
    assert len(cells) == full.n_obs and (cells["cell_id"].astype(str).to_numpy() == full.obs_names).all()
    full.obsm["spatial"] = cells[["x_centroid", "y_centroid"]].to_numpy(np.float64)
    full.obs["cell_area"] = cells["cell_area"].to_numpy(np.float32)
    full.X = sp.csr_matrix(full.X.astype(np.float32))
    full.obs_names = [f"xenium_{i}" for i in full.obs_names]
    full.var = full.var[["gene_ids"]]
    x, y = full.obsm["spatial"].T
    x0, x1, y0, y1 = CROP_UM
    in_crop = (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
    rng = np.random.default_rng(SEED)
    outside = np.flatnonzero(~in_crop)
    ref_rows = np.sort(rng.choice(outside, N_REFERENCE, replace=False))
    genes = np.asarray(full.var_names)
    panel = np.sort(rng.choice(genes, N_PANEL, replace=False))
    held = np.asarray([g for g in genes if g not in set(panel)])
    crop = full[in_crop]
    spatial = crop[:, panel].copy()
    spatial.uns["spatial_unit"] = "um"
    spatial.uns["sample"] = {"source": "10x Xenium mouse brain CTX+HP (CC BY 4.0)", "crop_um": list(CROP_UM),
                             "panel_seed": SEED, "note": "98 of the 248 genes hidden: see truth.h5ad"}
    truth = crop[:, held].copy()
    reference = full[ref_rows].copy()
    reference.obsm.clear()
    reference.obs = reference.obs[[]]
    OUT.mkdir(parents=True, exist_ok=True)
    for name, a in (("spatial.h5ad", spatial), ("reference.h5ad", reference), ("truth.h5ad", truth)):
        a.write_h5ad(OUT / name, compression="gzip")
        digest = hashlib.sha256((OUT / name).read_bytes()).hexdigest()[:16]
        print(f"{name}: {a.n_obs} cells × {a.n_vars} genes, {(OUT / name).stat().st_size} bytes, sha256 {digest}")


if __name__ == "__main__":
    main()
