"""SpaIM's kNN anchor at training time: each shared gene's anchor is computed without that gene."""

from __future__ import annotations

import dataclasses

import numpy as np


def test_training_anchor_of_a_gene_never_sees_that_gene(osmfish):
    """With 3 shared genes (fewer than the folds), changing one gene's spatial values leaves that gene's
    training anchor as it was: it was computed from the other genes only."""
    import napari_spatial_impute as nsi
    from napari_spatial_impute.models.spaim_anchor import knn_anchor_steps
    from napari_spatial_impute.progress import run_to_end

    spatial, reference = osmfish
    panel = spatial[:, ["Gad2", "Vip", "Plp1"]].copy()
    data, _ = nsi.prepare(panel, reference, ["Slc32a1"], hold_out=False)
    assert len(data.shared_genes) == 3
    base, _ = run_to_end(knn_anchor_steps(data, k=10, device="cpu"))
    moved = np.array(data.spatial, copy=True)
    moved[:, 0] = np.random.default_rng(0).permutation(moved[:, 0])
    other, _ = run_to_end(knn_anchor_steps(dataclasses.replace(data, spatial=moved), k=10, device="cpu"))
    np.testing.assert_array_equal(other[0], base[0])  # gene 0's anchor: from genes 1 and 2 only
    assert not np.array_equal(other[1], base[1])  # gene 1's anchor reads gene 0
