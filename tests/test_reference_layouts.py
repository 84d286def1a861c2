"""References as scverse users keep them (CELLxGENE, 10x, scanpy layouts), built from the bundled real Xenium cells."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from napari_spatial_impute.errors import InputError
from napari_spatial_impute.io.reference import check_values, find_counts, ingest, unique_names


@pytest.fixture(scope="module")
def xenium():
    from napari_spatial_impute.datasets import load_xenium_sample

    return load_xenium_sample()


def _log_cp10k(X):
    X = sp.csr_matrix(X, dtype=np.float32)
    totals = np.asarray(X.sum(axis=1)).ravel()
    out = sp.diags(1e4 / np.maximum(totals, 1)) @ X
    out.data = np.log1p(out.data)
    return out.tocsr()


def cellxgene_layout(reference):
    """Ensembl ids (versioned) in var_names, symbols in var['feature_name'], log X, counts in .raw."""
    counts = reference.copy()
    ids = [f"{g}.2" for g in reference.var["gene_ids"]]
    counts.var = pd.DataFrame({"feature_name": list(reference.var_names)}, index=ids)
    counts.obs_names = reference.obs_names
    out = counts.copy()
    out.raw = counts
    out.X = _log_cp10k(counts.X)
    out.uns["log1p"] = {"base": None}
    return out


def tenx_layout(reference):
    """10x read with var_names='gene_ids': Ensembl ids as names, symbols in var['gene_symbols']."""
    out = reference.copy()
    out.var = pd.DataFrame({"gene_symbols": list(reference.var_names)}, index=list(reference.var["gene_ids"]))
    return out


def scanpy_layout(reference):
    out = reference.copy()
    out.layers["counts"] = out.X.copy()
    out.X = _log_cp10k(out.X)
    out.uns["log1p"] = {"base": None}
    return out


def test_values_are_classified(xenium):
    _, reference = xenium
    assert check_values(reference.X).kind == "counts"
    assert check_values(_log_cp10k(reference.X)).kind == "log1p"
    dense = reference.X.toarray()
    assert check_values((dense - dense.mean(0)) / (dense.std(0) + 1)).kind == "scaled"
    linear = reference.X.multiply(1 / 37.3).tocsr()  # volume-normalised style: non-integer, linear, large range
    linear.data *= 50
    assert check_values(linear).kind == "linear"


@pytest.mark.parametrize("layout, matrix, identifier", [
    (cellxgene_layout, ".raw.X", "var['feature_name']"),
    (tenx_layout, "X", "var['gene_symbols']"),
    (scanpy_layout, "layers['counts']", "var_names"),
])
def test_layouts_give_the_plain_counts(xenium, layout, matrix, identifier):
    spatial, reference = xenium
    ref = layout(reference)
    out, report = ingest(ref, spatial.var_names)
    assert report.matrix == matrix and report.identifier == identifier
    assert report.n_matched == spatial.n_vars
    assert list(out.var_names) == list(reference.var_names)
    assert sp.issparse(out.X)  # sparse stays sparse
    assert (out.X != reference.X).nnz == 0  # exactly the counts
    if identifier != "var_names":
        assert "var_names_original" in out.var  # the other identifier is kept


def test_counts_only_in_raw(xenium):
    spatial, reference = xenium
    ref = reference.copy()
    ref.raw = reference
    ref.X = _log_cp10k(reference.X)
    out, report = ingest(ref, spatial.var_names)
    assert report.matrix == ".raw.X" and (out.X != reference.X).nnz == 0
    assert any("X holds log1p" in n for n in report.notes)


def test_log_only_reference_stops_with_the_fix(xenium):
    spatial, reference = xenium
    ref = reference.copy()
    ref.X = _log_cp10k(reference.X)
    with pytest.raises(InputError, match=r"no raw counts.*log-normalised") as err:
        ingest(ref, spatial.var_names)
    assert "layers['counts']" in str(err.value) and "--reference-values log1p" in str(err.value)
    out, report = ingest(ref, spatial.var_names, values="log1p")  # declared: expm1 once, never re-logged
    assert report.values == "log1p (declared)"
    totals = np.asarray(out.X.sum(axis=1)).reshape(-1)
    assert np.allclose(totals[totals > 0], 1e4, rtol=1e-3)


def test_other_species_and_unmatched_symbols(xenium):
    spatial, reference = xenium
    ref = reference.copy()
    ref.var_names = [f"HS_{g}_X" for g in reference.var_names]
    ref.var = pd.DataFrame({"feature_name": [f"ENSG{i:011d}" for i in range(ref.n_vars)]}, index=ref.var_names)
    with pytest.raises(InputError, match="share no gene, compared in var_names or var columns feature_name"):
        ingest(ref, spatial.var_names)


def test_duplicate_symbols_are_made_unique_and_reported(xenium):
    spatial, reference = xenium
    ref = tenx_layout(reference)
    symbols = ref.var["gene_symbols"].tolist()
    symbols[5] = symbols[4]
    ref.var["gene_symbols"] = symbols
    out, report = ingest(ref, spatial.var_names)
    assert out.var_names.is_unique and f"{symbols[4]}-1" in out.var_names
    assert any("repeated gene names" in n for n in report.notes)
    assert unique_names(["A", "a", "A"])[0] == ["A", "a-1", "A-2"]


def test_declared_counts_and_unknown_declaration(xenium):
    _, reference = xenium
    X, _, label, kind, _ = find_counts(reference, values="counts")
    assert label == "X" and kind == "counts (declared)"
    with pytest.raises(InputError, match="Unknown value declaration"):
        find_counts(reference, values="tpm")


def test_all_zero_reference_is_refused(xenium):
    spatial, reference = xenium
    ref = reference.copy()
    ref.X = sp.csr_matrix(ref.shape, dtype=np.float32)
    with pytest.raises(InputError, match="every sampled value is zero"):
        ingest(ref, spatial.var_names)


def test_dense_reference_not_densified_further():
    X = np.random.default_rng(0).poisson(1.0, (50, 10)).astype(np.float32)
    a = ad.AnnData(X, var=pd.DataFrame(index=[f"g{i}" for i in range(10)]))
    out, report = ingest(a, ["G1", "g2"])
    assert report.n_matched == 2 and out.X is a.X
