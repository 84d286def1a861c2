"""The API takes its inputs as scverse users hold them (the bundled real Xenium cells and reference): numpy
scalars from loops, backed files and paths, one gene name as a string, any identifier of a gene, obsm / obsp of
every kind kept, and a clear refusal of what cannot be used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import napari_spatial_impute as nsi
from napari_spatial_impute.errors import InputError


@pytest.fixture(scope="module")
def xenium():
    spatial, reference = nsi.load_xenium_sample()
    return spatial[:1500].copy(), reference


def test_numpy_scalars_and_one_gene_as_a_string(xenium):
    spatial, reference = xenium
    plain = nsi.impute(spatial, reference, genes=["Acta2"], seed=3, k=10, device="cpu")
    out = nsi.impute(spatial, reference, genes="Acta2", seed=np.int64(3), k=np.int64(10),
                     expected_r=np.bool_(True), device="cpu")
    assert list(out.var_names) == ["Acta2"]
    np.testing.assert_array_equal(out.X, plain.X)
    assert out.uns["napari_spatial_impute"]["params"]["k"] == 10


def test_backed_files_and_paths_give_the_in_memory_result(xenium, tmp_path):
    import anndata as ad

    spatial, reference = xenium
    spatial.write_h5ad(tmp_path / "s.h5ad")
    reference.write_h5ad(tmp_path / "r.h5ad")
    plain = nsi.impute(spatial, reference, genes=["Acta2", "Cldn5"], device="cpu")
    backed = nsi.impute(ad.read_h5ad(tmp_path / "s.h5ad", backed="r"), ad.read_h5ad(tmp_path / "r.h5ad", backed="r"),
                        genes=["Acta2", "Cldn5"], device="cpu")
    paths = nsi.impute(str(tmp_path / "s.h5ad"), tmp_path / "r.h5ad", genes=["Acta2", "Cldn5"], device="cpu")
    np.testing.assert_allclose(backed.X, plain.X)
    np.testing.assert_allclose(paths.X, plain.X)
    with pytest.raises(InputError, match=r"spatial input is a DataFrame, not an AnnData.*Fix: pass an AnnData"):
        nsi.impute(spatial.to_df(), reference)


def test_obsm_and_obsp_come_back_as_the_user_keeps_them(xenium, tmp_path):
    spatial, reference = xenium
    s = spatial.copy()
    s.obsm["X_sparse"] = sp.random(s.n_obs, 10, density=0.1, format="csr", random_state=0)
    s.obsm["meta"] = pd.DataFrame({"u": np.arange(s.n_obs, dtype=float), "v": "p"}, index=s.obs_names)
    s.obsp["spatial_connectivities"] = sp.identity(s.n_obs, format="csr")
    out = nsi.impute(s, reference, genes=["Acta2"], device="cpu")
    assert sp.issparse(out.obsm["X_sparse"]) and (out.obsm["X_sparse"] != s.obsm["X_sparse"]).nnz == 0
    pd.testing.assert_frame_equal(out.obsm["meta"], s.obsm["meta"])
    assert (out.obsp["spatial_connectivities"] != s.obsp["spatial_connectivities"]).nnz == 0
    out.obsm["meta"].loc[s.obs_names[0], "u"] = -1.0  # a copy: the user's data is not edited through the result
    assert s.obsm["meta"]["u"].iloc[0] == 0.0
    out.write_h5ad(tmp_path / "o.h5ad")  # storable as it came


def test_a_panel_named_by_ensembl_id_with_symbols_in_a_column(xenium):
    """A CELLxGENE-style panel (Ensembl ids as var_names, symbols in feature_name): matched through the ids
    against a reference that has them, through the symbols against one that has only symbols; a gene may be
    named by either identifier."""
    spatial, reference = xenium
    s = spatial.copy()
    s.var["feature_name"] = s.var_names.astype(str)
    s.var_names = s.var["gene_ids"].astype(str).to_numpy()
    ensembl = reference.var.loc["Acta2", "gene_ids"]
    plain = nsi.impute(spatial, reference, genes=["Acta2"], device="cpu")
    by_id = nsi.impute(s, reference, genes=["Acta2"], device="cpu")
    assert list(by_id.var_names) == [ensembl]  # named as the user's panel names genes
    np.testing.assert_allclose(by_id.X, plain.X)
    symbols_only = reference.copy()
    del symbols_only.var["gene_ids"]
    by_symbol = nsi.impute(s, symbols_only, genes=["Acta2"], device="cpu")
    assert list(by_symbol.var_names) == ["Acta2"]
    np.testing.assert_allclose(by_symbol.X, plain.X)
    assert "feature_name" in by_symbol.uns["napari_spatial_impute"]["gene_match"]
    asked_by_id = nsi.impute(spatial, reference, genes=[ensembl], device="cpu")
    assert list(asked_by_id.var_names) == ["Acta2"]


def test_nan_anywhere_in_the_counts_is_named():
    """The value checks sample the matrix; a single NaN in a row they did not sample is still refused up front
    (it had surfaced as "SVD did not converge")."""
    s, reference = nsi.load_xenium_sample()  # 7,621 × 248 dense: more values than the checks sample
    X = np.asarray(s.X.todense() if sp.issparse(s.X) else s.X, dtype=np.float32)
    X[1234, 5] = np.nan
    s.X = X
    with pytest.raises(InputError, match=r"spatial data holds NaN or infinite values in X \(first in cell 1234\)"):
        nsi.impute(s, reference, genes=["Acta2"], device="cpu")
    s.X = sp.csr_matrix(X)
    with pytest.raises(InputError, match=r"NaN or infinite values in X \(first in cell 1234\)"):
        nsi.impute(s, reference, genes=["Acta2"], device="cpu")


def test_cells_without_counts_are_flagged(xenium):
    spatial, reference = xenium
    s = spatial.copy()
    X = sp.csr_matrix(s.X).tolil()
    X[:7] = 0
    s.X = X.tocsr()
    with pytest.warns(UserWarning, match=r"7 of the 1500 spatial cells have no counts .* nothing is known of them"):
        out = nsi.impute(s, reference, genes=["Acta2"], device="cpu")
    assert np.ptp(out.X[:7]) == 0  # indeed the same values: nothing tells them apart


def test_identical_reference_cells_still_cluster():
    """40 reference cells with identical (all-zero) profiles made the Gaussian kernel's width 0: NaN weights,
    Leiden put every cell in a cluster of its own and SpaIM refused the reference."""
    from napari_spatial_impute.clustering import leiden_labels
    from napari_spatial_impute.preprocessing import normalize_log1p

    _, reference = nsi.load_osmfish_sample()
    X = np.asarray(reference.X, dtype=np.float32).copy()
    X[:40] = 0
    norm, _ = normalize_log1p(X)
    labels, how = leiden_labels(np.asarray(norm))
    assert "leiden" in how and 3 <= len(np.unique(labels)) < 100
    assert len(np.unique(labels[:40])) == 1  # the identical cells together


def test_log_data_declared_as_counts_is_used_as_declared_with_a_warning(xenium):
    spatial, reference = xenium
    logged = reference.copy()
    X = sp.csr_matrix(logged.X, dtype=np.float32)
    X = sp.diags(1e4 / np.maximum(np.asarray(X.sum(axis=1)).ravel(), 1)) @ X
    X.data = np.log1p(X.data)
    logged.X = X.tocsr()
    with pytest.warns(UserWarning, match=r"reference's X is declared counts but looks log-normalised"):
        nsi.impute(spatial, logged, genes=["Acta2"], reference_values="counts", device="cpu")
