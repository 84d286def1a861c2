"""References as scverse users keep them (CELLxGENE, 10x, scanpy layouts), built from the bundled real Xenium cells."""

from __future__ import annotations

import json

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


def _cellranger_outputs(reference, root):
    """The reference as Cell Ranger writes it: filtered_feature_bc_matrix.h5 (v3) and the
    filtered_feature_bc_matrix/ folder (matrix.mtx.gz genes × cells, features.tsv.gz, barcodes.tsv.gz)."""
    import gzip

    import scipy.io

    from _visium import write_10x_h5

    counts = pd.DataFrame(reference.X.toarray(), index=reference.obs_names, columns=reference.var_names)
    h5 = root / "filtered_feature_bc_matrix.h5"
    write_10x_h5(h5, counts, reference.var["gene_ids"])
    folder = root / "filtered_feature_bc_matrix"
    folder.mkdir()
    with gzip.open(folder / "matrix.mtx.gz", "wb") as f:
        scipy.io.mmwrite(f, sp.csr_matrix(reference.X.T.astype(np.int64)))
    pd.DataFrame({"id": reference.var["gene_ids"], "name": reference.var_names, "type": "Gene Expression"}).to_csv(
        folder / "features.tsv.gz", sep="\t", header=False, index=False)
    pd.Series(reference.obs_names).to_csv(folder / "barcodes.tsv.gz", sep="\t", header=False, index=False)
    return h5, folder


def test_cell_ranger_outputs_read_as_the_reference_they_hold(xenium, tmp_path, capsys):
    """The bundled real reference (8,000 cells) written as Cell Ranger's .h5 and matrix folder (and as an AnnData
    zarr store): read_reference gives its counts and genes whichever is given (the mtx folder also from a file in
    it), and the CLI's 3-fold kNN cross-validation gives the same metrics as with the .h5ad."""
    import importlib.util

    from napari_spatial_impute.cli import main
    from napari_spatial_impute.datasets import sample_path
    from napari_spatial_impute.io.anndata_io import read_reference

    spatial, reference = xenium
    h5, folder = _cellranger_outputs(reference, tmp_path)
    sources = [h5, folder, folder / "matrix.mtx.gz"]
    if importlib.util.find_spec("zarr") is not None:  # the core install has no zarr (the [dask] extra brings it)
        reference.write_zarr(tmp_path / "reference.zarr")
        sources.append(tmp_path / "reference.zarr")
    for source in sources:
        got = read_reference(source)
        assert list(got.var_names) == list(reference.var_names) and list(got.obs_names) == list(reference.obs_names)
        assert (sp.csr_matrix(got.X) != reference.X).nnz == 0, source
        assert list(got.var["gene_ids"]) == list(reference.var["gene_ids"]), source
    metrics = {}
    spatial_file = str(sample_path("spatial.h5ad", "data/xenium_mouse_brain"))
    for name, source in (("h5ad", sample_path("reference.h5ad", "data/xenium_mouse_brain")), ("h5", h5),
                         ("mtx", folder)):
        out = tmp_path / f"{name}.json"
        assert main(["impute", spatial_file, str(source), "--method", "knn", "--cv", "3", "--metrics", str(out),
                     "--quiet"]) == 0
        metrics[name] = json.loads(out.read_text())
    assert metrics["h5"]["pcc_median"] == pytest.approx(metrics["h5ad"]["pcc_median"], abs=1e-9)
    assert metrics["mtx"]["pcc_median"] == pytest.approx(metrics["h5ad"]["pcc_median"], abs=1e-9)
    assert metrics["h5ad"]["pcc_median"] > 0.2


def test_a_damaged_10x_reference_names_the_file_and_the_fix(tmp_path, monkeypatch):
    import importlib.util

    from napari_spatial_impute.io.anndata_io import read_reference

    (tmp_path / "ref.zarr").mkdir()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "zarr" else real(name, *a))
    with pytest.raises(InputError, match=r"ref\.zarr .*needs the zarr package.*Fix: pip install 'napari-spatial"):
        read_reference(tmp_path / "ref.zarr")
    monkeypatch.undo()

    bad = tmp_path / "filtered_feature_bc_matrix.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match=r"10x HDF5 file .*filtered_feature_bc_matrix\.h5.*Fix: give Cell Ranger's"):
        read_reference(bad)
    folder = tmp_path / "filtered_feature_bc_matrix"
    folder.mkdir()
    (folder / "matrix.mtx.gz").write_bytes(b"cut")
    with pytest.raises(InputError, match=r"10x matrix folder .*Fix: give Cell Ranger's"):
        read_reference(folder / "matrix.mtx.gz")
