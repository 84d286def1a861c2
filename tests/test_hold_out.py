"""A measured gene held out (predicted, not copied) leaks nothing into the inputs: neither as a feature nor
through the library sizes its counts are part of."""

from __future__ import annotations

import numpy as np

import napari_spatial_impute as nsi


def test_held_out_gene_counts_do_not_reach_the_inputs(osmfish):
    """The osmFISH cells with Gad2 held out: scaling Gad2's counts tenfold leaves every input value as it was,
    and the inputs equal those of the same cells without Gad2 measured at all (cross-validation's rule)."""
    spatial, reference = osmfish
    data, _ = nsi.prepare(spatial, reference, ["Gad2"])
    louder = spatial.copy()
    col = list(louder.var_names).index("Gad2")
    louder.X = np.array(louder.X, dtype=np.float32)
    louder.X[:, col] *= 10
    loud, _ = nsi.prepare(louder, reference, ["Gad2"])
    np.testing.assert_array_equal(loud.spatial, data.spatial)
    without = spatial[:, [g for g in spatial.var_names if g != "Gad2"]].copy()
    plain, _ = nsi.prepare(without, reference, ["Gad2"])
    assert plain.shared_genes == data.shared_genes
    np.testing.assert_allclose(plain.spatial, data.spatial, rtol=1e-6, atol=1e-6)
    assert plain.constants["spatial_target_sum"] == data.constants["spatial_target_sum"]


def test_a_result_shares_no_memory_with_the_input(osmfish):
    """The imputed AnnData keeps the cells' coordinates and uns as copies: editing it leaves the user's data
    as it was."""
    spatial, reference = osmfish
    spatial = spatial.copy()
    spatial.uns["spatial_meta"] = {"units": "um", "offset": np.zeros(2)}
    before = np.array(spatial.obsm["spatial"])
    out = nsi.impute(spatial, reference, "knn", ["Gad2"], k=10)
    np.testing.assert_array_equal(out.obsm["spatial"], before)
    out.obsm["spatial"][0, 0] = -1.0
    out.uns["spatial_meta"]["offset"][0] = 5.0
    out.uns["spatial_meta"]["units"] = "px"
    np.testing.assert_array_equal(spatial.obsm["spatial"], before)
    assert spatial.uns["spatial_meta"]["units"] == "um" and spatial.uns["spatial_meta"]["offset"][0] == 0.0


def test_measured_side_uses_the_inputs_library(osmfish):
    """The measured side of a held-out gene (colouring, measured-vs-imputed grid) is normalised by the library
    sizes the imputation's inputs had: without the held-out genes."""
    from napari_spatial_impute.layers.colour_by import LibrarySizes

    spatial, reference = osmfish
    data, _ = nsi.prepare(spatial, reference, ["Gad2", "Vip"])
    lib = LibrarySizes(spatial, exclude=["Gad2", "Vip"])
    assert lib.target == data.constants["spatial_target_sum"]
    col = data.shared_genes.index("Plp1")
    np.testing.assert_allclose(lib.normalise(lib.counts("Plp1")), data.spatial[:, col], rtol=1e-5, atol=1e-6)
    assert LibrarySizes(spatial).target != lib.target  # with them in, another scale
