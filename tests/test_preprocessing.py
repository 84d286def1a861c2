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
