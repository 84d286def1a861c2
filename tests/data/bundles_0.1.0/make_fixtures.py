"""Make the 0.1.0-format bundle fixtures (run ONCE with napari-spatial-impute 0.1.0, commit d9440cf).

This script imports the 0.1.0 layout (``napari_spatial_impute.histology``), which later releases moved; it is
kept as the record of how the fixtures were made, not to be re-run. Each fixture folder holds the bundle
(``bundle/``) and ``expected.npz`` (the inputs given to the model and its prediction at save time).

    OMP_NUM_THREADS=1 python tests/data/bundles_0.1.0/make_fixtures.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
HER2ST = HERE.parents[3] / "shared" / "datasets" / "her2st_subset"


def tiny_problem(seed: int = 0):
    from napari_spatial_impute.models import ImputeData

    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(10)]
    reference = np.log1p(rng.poisson(3.0, size=(60, 10)).astype(np.float32))
    spatial = np.log1p(rng.poisson(3.0, size=(25, 6)).astype(np.float32))
    obs = pd.DataFrame({"cell_type": np.repeat(["a", "b", "c"], 20)}, index=[f"r{i}" for i in range(60)])
    coords = rng.uniform(0, 100, size=(25, 2))
    return ImputeData(spatial, reference, genes, genes[:6], genes[6:], [f"s{i}" for i in range(25)], coords, obs)


def save_imputer(name: str, model) -> None:
    data = tiny_problem()
    model.fit(data)
    pred = model.predict(data)
    out = HERE / name
    model.save(out / "bundle", overwrite=True)
    np.savez_compressed(out / "expected.npz", spatial=data.spatial, reference=data.reference,
                        coords=data.spatial_coords, prediction=pred)


def save_stco(name: str, **params) -> None:
    from napari_spatial_impute.histology import read_st_section, train

    from napari_spatial_impute.progress import run_to_end

    c2 = read_st_section(HER2ST / "ST-cnts/C2.tsv.gz", HER2ST / "ST-spotfiles/C2_selection.tsv",
                         HER2ST / "ST-imgs/C2_5714_HE_BT_C2.jpg")
    c2 = c2[:40].copy()
    model = train([c2], genes=["ERBB2", "ACTB", "GAPDH", "MGP"], seed=0, device="cpu", epochs=1, patch_px=32,
                  n_views=1, tta=1, embed_dim=16, batch_size=16, top_k=5, **params)
    patches, _ = model.section_inputs(c2)
    patches = patches[:6]
    pred = run_to_end(model.predict_patches_steps(patches))
    out = HERE / name
    model.save(out / "bundle", overwrite=True)
    np.savez_compressed(out / "expected.npz", patches=patches, prediction=pred)


def main() -> int:
    from napari_spatial_impute.models.knn import KNNImputer
    from napari_spatial_impute.models.spaim import SpaIMImputer
    from napari_spatial_impute.models.stimpute import STImputer

    save_imputer("knn", KNNImputer(k=5, device="cpu"))
    save_imputer("stimpute", STImputer(k=5, gene_embeddings="none", rounds=1, ae_epochs=2, gnn_epochs=1,
                                       ae_round_epochs=1, hidden=8, latent=8, reliability=False, device="cpu"))
    save_imputer("spaim", SpaIMImputer(cluster_key="cell_type", hidden=(16, 8), style_dim=4, epochs=2,
                                       n_models=1, device="cpu"))
    save_stco("stco_lite0")  # frozen stock EfficientNet-Lite0: weights not in the bundle (SHA-1 only)
    import torch
    from napari_spatial_impute.histology.encoders import CompactResNet

    ts = HERE / "tiny_backbone.torchscript.pt"
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(CompactResNet(4, 1).eval()), str(ts))
    save_stco("stco_torchscript", backbone="torchscript", backbone_path=str(ts))
    ts.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
