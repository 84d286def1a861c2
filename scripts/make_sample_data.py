"""Convert ../shared/datasets/osmfish_allenssp_tissue into the package's bundled sample (.h5ad, gzip).

Run once from the repository root: ``python scripts/make_sample_data.py [SOURCE_DIR]``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/datasets/osmfish_allenssp_tissue"
OUT = ROOT / "src/napari_spatial_impute/data/osmfish_allenssp"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    counts = pd.read_csv(SRC / "Spatial_count.txt", sep="\t")
    xy = pd.read_csv(SRC / "Locations.txt", sep="\t")[["X", "Y"]].to_numpy(np.float64)
    ref = pd.read_csv(SRC / "scRNA_count.txt", sep="\t", index_col=0).T
    spatial = ad.AnnData(counts.to_numpy(np.float32),
                         obs=pd.DataFrame(index=[f"osmfish_{i:04d}" for i in range(len(counts))]),
                         var=pd.DataFrame(index=list(counts.columns)))
    spatial.obsm["spatial"] = xy
    spatial.uns["spatial_unit"] = "px"
    spatial.uns["source"] = {"dataset": "osmFISH mouse SSp cortex (Codeluppi et al. 2018)",
                             "files": "sunericd/TISSUE@ffc35998 tests/data/Spatial_count.txt, Locations.txt"}
    reference = ad.AnnData(ref.to_numpy(np.float32), obs=pd.DataFrame(index=list(ref.index)),
                           var=pd.DataFrame(index=list(ref.columns)))
    reference.uns["source"] = {"dataset": "Allen Brain Map mouse cortex SMART-seq (1000 cells)",
                               "files": "sunericd/TISSUE@ffc35998 tests/data/scRNA_count.txt"}
    spatial.write_h5ad(OUT / "spatial.h5ad", compression="gzip")
    reference.write_h5ad(OUT / "reference.h5ad", compression="gzip")
    shutil.copy(SRC / "PROVENANCE.md", OUT / "PROVENANCE.md")
    print(spatial, reference, sep="\n")


if __name__ == "__main__":
    main()
