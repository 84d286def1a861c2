import numpy as np
import pytest

from napari_spatial_impute.errors import InputError
from napari_spatial_impute.preprocessing import match_genes, normalize_log1p, resolve_genes


def test_normalize_to_median_total_then_log1p():
    X = np.array([[1, 1, 2], [4, 4, 8], [0, 0, 0]], dtype=float)  # totals 4, 16, 0 → median of positive = 10
    out, target = normalize_log1p(X)
    assert target == 10.0
    np.testing.assert_allclose(np.expm1(out[:2]).sum(1), [10, 10], rtol=1e-5)
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6)  # same composition → same profile
    assert np.all(out[2] == 0)


def test_match_genes_case_insensitive_with_report():
    m = match_genes(["Gad2", "VIP", "Foo"], ["gad2", "Vip", "Bar", "Baz"])
    assert m.shared_spatial == ["Gad2", "VIP"]
    assert m.shared_reference == ["gad2", "Vip"]
    assert m.spatial_only == ["Foo"] and m.reference_only == ["Bar", "Baz"]
    assert len(m.case_mismatches) == 2
    assert "2 shared genes" in m.report()


def test_duplicate_symbols_ignoring_case_is_an_error():
    with pytest.raises(InputError, match="repeat"):
        match_genes(["Gad2", "GAD2"], ["Gad2"])


def test_resolve_genes_reports_missing():
    assert resolve_genes(["gad2", " vip "], ["Gad2", "Vip"]) == ["Gad2", "Vip"]
    with pytest.raises(InputError, match="not in the reference"):
        resolve_genes(["Nope"], ["Gad2"])


def test_normalize_log1p_sparse_and_columns_match_dense():
    import numpy as np
    import scipy.sparse as sp

    from napari_spatial_impute.preprocessing import normalize_log1p

    X = np.random.default_rng(0).poisson(2.0, (40, 12)).astype(np.float32)
    X[5] = 0  # an empty cell stays zero
    S = sp.csr_matrix(X)  # float32 already: nothing forces a copy before the normalisation
    X0, S0 = X.copy(), S.copy()
    dense, total = normalize_log1p(X)
    sparse, total_sp = normalize_log1p(S)
    np.testing.assert_allclose(sparse, dense, rtol=1e-6)
    assert total == total_sp
    # library sizes over all genes, only the asked-for columns returned (sparse: never densified whole)
    cols = [3, 7]
    np.testing.assert_allclose(normalize_log1p(S, total, columns=cols)[0], dense[:, cols], rtol=1e-6)
    np.testing.assert_allclose(normalize_log1p(X, total, columns=cols)[0], dense[:, cols], rtol=1e-6)
    np.testing.assert_allclose(normalize_log1p(S, total, dense=False)[0].toarray(), dense, rtol=1e-6)
    assert not dense[5].any()
    # the inputs are not modified (dense and sparse)
    np.testing.assert_array_equal(X, X0)
    assert S.dtype == S0.dtype and (S != S0).nnz == 0
    np.testing.assert_array_equal(S.indptr, S0.indptr)
    np.testing.assert_array_equal(S.indices, S0.indices)
    np.testing.assert_array_equal(S.data, S0.data)
