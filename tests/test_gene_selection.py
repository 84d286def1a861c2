"""How the genes to impute are chosen does not depend on declaring what the reference holds."""

from __future__ import annotations

import numpy as np


def test_declared_counts_choose_the_same_genes_as_found_counts():
    """A reference whose counts are declared (``reference_values="counts"``) gets the same most-variable genes,
    chosen the same way (seurat_v3 on integers), as when the counts are found (the bundled Xenium pair: 98
    reference genes the panel lacks)."""
    import napari_spatial_impute as nsi
    from napari_spatial_impute.datasets import load_xenium_sample

    panel, reference = load_xenium_sample()[:2]
    found = nsi.prepare(panel, reference, n_top_genes=20)
    declared = nsi.prepare(panel, reference, n_top_genes=20, reference_values="counts")
    assert declared[0].target_genes == found[0].target_genes and len(found[0].target_genes) == 20
    how = [n for n in found[1].notes if n.startswith("targets:")]
    assert how == [n for n in declared[1].notes if n.startswith("targets:")] and "seurat_v3" in how[0], how
    assert np.array_equal(declared[0].spatial, found[0].spatial)
