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


def gene_name_layout(reference, column="gene_name"):
    """Ensembl ids (unversioned) in var_names, symbols in var['gene_name'] (or 'symbol'), counts in X."""
    out = reference.copy()
    out.var = pd.DataFrame({column: list(reference.var_names)}, index=list(reference.var["gene_ids"]))
    return out


def symbol_layout(reference):
    return gene_name_layout(reference, "symbol")


def raw_only_layout(reference):
    """Symbols as var_names, log-normalised X, the counts only in .raw (no layers, no uns['log1p'])."""
    out = reference.copy()
    out.raw = reference
    out.X = _log_cp10k(reference.X)
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
    (gene_name_layout, "X", "var['gene_name']"),
    (symbol_layout, "X", "var['symbol']"),
    (raw_only_layout, ".raw.X", "var_names"),
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
    # which identifier matched, per gene; the Ensembl ids under a descriptive name
    assert set(out.var["identifier"]) == {identifier[5:-2] if identifier.startswith("var[") else identifier}
    assert out.var.loc["Acta2", "gene_id"].split(".")[0] == "ENSMUSG00000035783"


def test_cellxgene_layout_names_the_identifier_and_the_other_one(xenium):
    spatial, reference = xenium
    out, report = ingest(cellxgene_layout(reference), spatial.var_names)
    assert report.identifier == "var['feature_name']"
    assert (out.var["identifier"] == "feature_name").all()
    assert out.var.loc["Acta2", "gene_id"] == "ENSMUSG00000035783.2"  # versioned Ensembl id, as in the file
    assert (out.var["var_names_original"] == out.var["gene_id"]).all()  # kept for compatibility
    assert "gene_symbol" not in out.var  # the symbols are the var_names
    # the reverse: Ensembl var_names chosen (an Ensembl panel), the symbols become var['gene_symbol']
    ids = [f"{g}.2" for g in reference.var["gene_ids"]]
    panel = [ids[list(reference.var_names).index(g)] for g in spatial.var_names]
    out, report = ingest(cellxgene_layout(reference), panel)
    assert report.identifier == "var_names" and (out.var["identifier"] == "var_names").all()
    assert out.var.loc["ENSMUSG00000035783.2", "gene_symbol"] == "Acta2"


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
    assert "'Reference values: log1p' in the Impute widget" in str(err.value)  # the widget's control too
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


def test_another_species_says_no_gene_is_shared_and_what_to_check(xenium):
    """Yeast systematic names against the mouse panel: nothing matches even ignoring case."""
    spatial, reference = xenium
    ref = reference.copy()
    yeast = [f"Y{'ABCDEFGHIJKLMNOP'[i % 16]}{'LR'[i % 2]}{i:03d}{'WC'[i % 2]}" for i in range(ref.n_vars)]
    ref.var = pd.DataFrame({"gene_ids": [f"S{i:09d}" for i in range(ref.n_vars)]}, index=yeast)
    with pytest.raises(InputError) as err:
        ingest(ref, spatial.var_names)
    msg = str(err.value)
    assert "share no gene" in msg and "ignoring case" in msg and yeast[0] in msg and spatial.var_names[0] in msg
    assert "species" in msg.split("Fix:")[1] and "identifier" in msg.split("Fix:")[1]
    # human Ensembl ids against a mouse Ensembl panel: the message names both
    human = reference.copy()
    human.var = pd.DataFrame(index=[f"ENSG{i:011d}" for i in range(human.n_vars)])
    with pytest.raises(InputError, match=r"share no gene.*panel names genes by Ensembl ids \(ENSMUSG…\), the "
                                         r"reference by Ensembl ids \(ENSG…\)"):
        ingest(human, list(reference.var["gene_ids"]))


def test_gene_picker_lists_the_genes_of_raw_when_the_counts_are_there(xenium, tmp_path):
    """X holds log values of 200 genes, .raw the counts of all 248: the picker lists raw.var's genes (also
    from a file opened backed, as the widget does)."""
    from napari_spatial_impute._widgets._steps import load_reference_steps
    from napari_spatial_impute.layers.genes import gene_candidates
    from napari_spatial_impute.progress import run_to_end

    spatial, reference = xenium
    absent = [g for g in reference.var_names if g not in set(spatial.var_names)]
    ref = reference.copy()
    ref.raw = reference
    keep = [g for g in ref.var_names if g not in set(absent[:48])]  # an HVG-like subset in X
    ref = ref[:, keep].copy()
    ref.X = _log_cp10k(ref.X)
    ref.uns["log1p"] = {"base": None}
    assert ref.n_vars == 200 and ref.raw.n_vars == 248
    missing, shared, label = gene_candidates(spatial.var_names, ref)
    assert sorted(missing) == sorted(absent) and len(shared) == spatial.n_vars and label == "var_names"
    path = tmp_path / "ref.h5ad"
    ref.write_h5ad(path)
    info = run_to_end(load_reference_steps(path, list(spatial.var_names)))
    assert sorted(info["missing"]) == sorted(absent) and info["n_obs"] == ref.n_obs
    # declared values: X is what is used, so X's genes are listed
    missing, _, _ = gene_candidates(spatial.var_names, ref, values="log1p")
    assert sorted(missing) == sorted(absent[48:])
    # and the run imputes the genes only .raw has
    import napari_spatial_impute as nsi

    out = nsi.impute(spatial, ref, "knn", absent[:3], device="cpu")
    assert list(out.var_names) == absent[:3]


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
