"""Real Xenium cells through the reader → imputation of genes hidden from the spatial side."""

import numpy as np

import napari_spatial_impute as nsi
from conftest import shared_dataset
from napari_spatial_impute.metrics import pearson_per_gene
from napari_spatial_impute.preprocessing import normalize_log1p

# Measured with this split (seed 0): median PCC 0.70 over 20 hidden genes (knn, k=30).
FLOOR = 0.6


def test_xenium_reader_to_knn_imputation():
    path = shared_dataset("xenium_mouse_brain_ctx_hp")
    adata = nsi.read_xenium(path).adata
    rng = np.random.default_rng(0)
    order = rng.permutation(adata.n_obs)
    reference = adata[order[:8000]].copy()
    cells = adata[order[8000:12000]].copy()
    hidden = sorted(rng.choice(np.asarray(adata.var_names), 20, replace=False).tolist())
    spatial = cells[:, [g for g in cells.var_names if g not in hidden]].copy()
    out = nsi.impute(spatial, reference, "knn", hidden, seed=0, device="cpu")
    assert list(out.var_names) == hidden
    np.testing.assert_array_equal(out.obsm["spatial"], cells.obsm["spatial"])
    truth, _ = normalize_log1p(cells.X)
    cols = [list(cells.var_names).index(g) for g in hidden]
    pcc = pearson_per_gene(truth[:, cols], out.X)
    assert np.median(pcc) > FLOOR
