"""Gene-embedding sources (table / ESM-2 from FASTA / none) and the gene graph built from them."""

import argparse
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_dataset
from napari_spatial_impute.embeddings import GeneEmbeddings, load_gene_embeddings, read_embedding_table
from napari_spatial_impute.embeddings.esm2 import read_fasta
from napari_spatial_impute.errors import InputError
from napari_spatial_impute.models.stimpute import build_gene_graph

AMINO = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
TINY_DIM = 32


@pytest.fixture
def tiny_esm(tmp_path):
    """A randomly initialised 2-layer ESM-2 saved the way load_model_and_alphabet_local reads it."""
    import torch
    from esm.data import Alphabet
    from esm.model.esm2 import ESM2

    torch.manual_seed(0)
    model = ESM2(num_layers=2, embed_dim=TINY_DIM, attention_heads=4, alphabet=Alphabet.from_architecture("ESM-1b"),
                 token_dropout=True)
    state = model.state_dict()
    regression = {k: v for k, v in state.items() if k.startswith("contact_head.regression")}
    body = {k: v for k, v in state.items() if k not in regression}
    cfg = argparse.Namespace(encoder_layers=2, encoder_embed_dim=TINY_DIM, encoder_attention_heads=4,
                             token_dropout=True)
    path = tmp_path / "esm2_t2_tiny_random.pt"
    torch.save({"cfg": {"model": cfg}, "model": body}, path)
    torch.save({"model": regression}, tmp_path / "esm2_t2_tiny_random-contact-regression.pt")
    return path


def _fasta(tmp_path, genes, seed=0):
    rng = np.random.default_rng(seed)
    lines = []
    for i, g in enumerate(genes):
        header = f">sp|P{i:05d}|X_MOUSE Protein OS=Mus musculus GN={g} PE=1" if i % 2 else f">{g}"
        lines += [header, "".join(rng.choice(AMINO, int(rng.integers(30, 120))))]
    path = tmp_path / "proteins.fasta"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bundled_table_matches_shared_full_table():
    emb = load_gene_embeddings("bundled")
    assert len(emb) == 33 and emb.dim == 2560
    full = np.load(shared_dataset("stimpute_esm2_gene_embeddings") / "osmFISH_emb.npz")
    pos = {str(g): i for i, g in enumerate(full["genes"])}
    ref = full["emb"][[pos[g] for g in emb.genes]]
    np.testing.assert_allclose(emb.vectors, ref, atol=5e-3)  # float16 copy


def test_esm2_from_fasta_with_tiny_random_model(tmp_path, tiny_esm, osmfish):
    spatial, reference = osmfish
    genes = list(spatial.var_names)[:12]
    fasta = _fasta(tmp_path, genes)
    assert list(read_fasta(fasta)) == genes  # GN= and bare headers both give the symbol
    cache = tmp_path / "cache"
    emb = load_gene_embeddings(str(fasta), checkpoint=tiny_esm, device="cpu", cache_dir=cache, batch_tokens=256)
    assert emb.vectors.shape == (12, TINY_DIM) and np.isfinite(emb.vectors).all()
    assert emb.info["embedded"] == 12 and emb.info["cached"] == 0
    again = load_gene_embeddings(str(fasta), checkpoint=tiny_esm, device="cpu", cache_dir=cache, batch_tokens=4096)
    assert again.info["cached"] == 12 and again.info["embedded"] == 0
    np.testing.assert_allclose(again.vectors, emb.vectors)
    # batching (padding) does not change the mean-pooled vector
    fresh = load_gene_embeddings(str(fasta), checkpoint=tiny_esm, device="cpu", cache_dir=tmp_path / "c2",
                                 batch_tokens=100_000)
    np.testing.assert_allclose(fresh.vectors, emb.vectors, atol=1e-4)
    # a cache root that cannot be written (here a file): a warning, the same vectors, nothing cached
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("")
    with pytest.warns(RuntimeWarning, match="Could not write the ESM-2 cache") as record:
        uncached = load_gene_embeddings(str(fasta), checkpoint=tiny_esm, device="cpu", cache_dir=blocked)
    assert sum("ESM-2 cache" in str(r.message) for r in record) == 1  # once, not once per sequence
    np.testing.assert_allclose(uncached.vectors, emb.vectors, atol=1e-4)
    assert blocked.is_file()
    # a valid graph over all 33 genes: 12 by protein similarity, 21 by expression
    all_genes = list(spatial.var_names)
    ref = reference[:, all_genes].X
    ref = np.log1p(np.asarray(ref.todense() if hasattr(ref, "todense") else ref, dtype=np.float32))
    graph = build_gene_graph(all_genes, ref, emb, top_k=5)
    assert graph.n_protein == 12 and graph.n_expression == 21
    assert sorted(graph.missing) == sorted(all_genes[12:])
    src, dst = graph.edge_index
    assert graph.edge_index.shape[0] == 2 and src.max() < 33 and (src != dst).all()
    assert (graph.edge_weight > 0).all()
    row_sums = np.bincount(dst, weights=graph.edge_weight, minlength=33)
    np.testing.assert_allclose(row_sums[np.bincount(dst, minlength=33) > 0], 1.0, rtol=1e-5)
    assert np.bincount(dst, minlength=33).max() <= 5


def test_tiny_model_without_regression_file_and_in_stimpute(tmp_path, tiny_esm, osmfish):
    import napari_spatial_impute as nsi
    from napari_spatial_impute.models.stimpute import STImputer

    (tmp_path / "esm2_t2_tiny_random-contact-regression.pt").unlink()
    spatial, reference = osmfish
    fasta = _fasta(tmp_path, ["Gad2", "Slc32a1", "Vip", "Sst_not_measured"], seed=1)
    data, _ = nsi.prepare(spatial, reference, ["Gad2"])
    model = STImputer(gene_embeddings=str(fasta), esm_checkpoint=str(tiny_esm), device="cpu", ae_epochs=2,
                      gnn_epochs=1, rounds=1, max_train_cells=512, reliability=False).fit(data)
    summary = model.graph_summary()
    assert summary["genes_protein_similarity"] == 3 and summary["genes_expression_similarity"] == 30
    assert np.isfinite(model.predict(data)).all()


def test_table_formats_roundtrip(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    vec = rng.normal(size=(4, 6)).astype(np.float32)
    genes = ["Gad2", "Vip", "Sst", "Pvalb"]
    df = pd.DataFrame(vec, index=genes, columns=[f"d{i}" for i in range(6)])
    df.index.name = "gene"
    df.reset_index().to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    np.savez(tmp_path / "per_gene.npz", **{g: v for g, v in zip(genes, vec)})
    for name in ("t.csv", "t.parquet", "per_gene.npz"):
        emb = read_embedding_table(tmp_path / name)
        assert emb.genes == genes
        np.testing.assert_allclose(emb.vectors, vec, rtol=1e-6)
    got, found, missing = emb.lookup(["vip", "Nope"])
    assert found.tolist() == [True, False] and missing == ["Nope"]
    np.testing.assert_allclose(got[0], vec[1])
    assert load_gene_embeddings("none") is None and load_gene_embeddings(None) is None


def test_different_dimensions_are_rejected(tmp_path):
    with pytest.raises(InputError, match="different dimensions"):
        GeneEmbeddings.from_mapping({"Gad2": [1.0, 2.0, 3.0], "Vip": [1.0, 2.0]})
    np.savez(tmp_path / "ragged.npz", Gad2=np.ones(8), Vip=np.ones(6), Sst=np.ones(8))
    with pytest.raises(InputError, match="Vip"):
        read_embedding_table(tmp_path / "ragged.npz")
    (tmp_path / "ragged.csv").write_text("gene,d0,d1,d2\nGad2,1,2,3\nVip,1,2\nSst,4,5,6\n")
    with pytest.raises(InputError, match="different dimensions"):
        read_embedding_table(tmp_path / "ragged.csv")


def test_duplicate_symbols_are_rejected(tmp_path):
    (tmp_path / "dup.csv").write_text("gene,d0,d1\nGad2,1,2\nVip,3,4\nGad2,5,6\n")
    with pytest.raises(InputError, match="Duplicate gene symbols"):
        read_embedding_table(tmp_path / "dup.csv")
    (tmp_path / "dup.fa").write_text(">Gad2\nMKV\n>sp|P1|X GN=Gad2\nMKL\n")
    with pytest.raises(InputError, match="Duplicate gene symbol"):
        read_fasta(tmp_path / "dup.fa")


def test_unreadable_or_missing_checkpoint(tmp_path):
    fasta = tmp_path / "p.fa"
    fasta.write_text(">Gad2\nMKVLAAGIVALLLAAGCS\n")
    truncated = tmp_path / "esm2_t6_8M_UR50D.pt"
    truncated.write_bytes(b"PK\x03\x04 truncated download")
    with pytest.raises(InputError, match="Could not read ESM-2 checkpoint"):
        load_gene_embeddings(str(fasta), checkpoint=truncated, device="cpu", cache_dir=tmp_path / "c")
    with pytest.raises(InputError, match="does not exist"):
        load_gene_embeddings(str(fasta), checkpoint=tmp_path / "esm2_missing.pt", cache_dir=tmp_path / "c")
    with pytest.raises(InputError, match="no ESM-2 checkpoint"):
        load_gene_embeddings(str(fasta))


@pytest.mark.parametrize("layout", ["no pretrained", "esm3 pretrained"])
def test_evolutionaryscale_esm_is_named_with_the_extra(tmp_path, monkeypatch, layout):
    """Another package's top-level ``esm`` (EvolutionaryScale's ESM3 / ESM C) shadowing fair-esm: one message
    naming the collision and the [esm] extra, not an AttributeError; nothing is cached."""
    import sys
    import types

    fake = types.ModuleType("esm")
    fake.__file__ = "/site-packages/esm/__init__.py"
    if layout == "esm3 pretrained":  # EvolutionaryScale's esm.pretrained: ESM3 loaders, no ESM-2 ones
        fake.__path__ = []
        fake.pretrained = types.ModuleType("esm.pretrained")
        fake.pretrained.ESM3_sm_open_v0 = lambda *a, **k: None
        monkeypatch.setitem(sys.modules, "esm.pretrained", fake.pretrained)
    else:
        monkeypatch.delitem(sys.modules, "esm.pretrained", raising=False)
    monkeypatch.setitem(sys.modules, "esm", fake)
    fasta = tmp_path / "p.fa"
    fasta.write_text(">Gad2\nMKVLAAGIVALLLAAGCS\n")
    checkpoint = tmp_path / "esm2_t6_8M_UR50D.pt"
    checkpoint.write_bytes(b"not read: the package check comes first")
    with pytest.raises(InputError) as err:
        load_gene_embeddings(str(fasta), checkpoint=checkpoint, device="cpu", cache_dir=tmp_path / "c")
    text = str(err.value)
    assert "is not fair-esm" in text and "EvolutionaryScale" in text and "/site-packages/esm" in text
    assert "napari-spatial-impute[esm]" in text and "pip uninstall esm" in text
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file()]  # no embedding cached


def test_case_duplicates_keep_exact_match_and_warn(tmp_path):
    (tmp_path / "case.csv").write_text("gene,d0,d1\nGm10051,1,2\nVip,3,4\nGM10051,5,6\n")
    with pytest.warns(UserWarning, match="repeat another ignoring case"):
        emb = read_embedding_table(tmp_path / "case.csv")
    vec, found, _ = emb.lookup(["GM10051", "Gm10051", "vip", "gm10051"])
    assert found.all()
    assert vec[0].tolist() == [5, 6] and vec[1].tolist() == [1, 2] and vec[2].tolist() == [3, 4]
    assert vec[3].tolist() == [1, 2]  # no exact match: the first spelling ignoring case


STIMPUTE_TABLES = Path(__file__).resolve().parents[2] / "shared/datasets/stimpute_esm2_gene_embeddings"


@pytest.mark.skipif(not (STIMPUTE_TABLES / "osmFISH_emb.npz").exists(),
                    reason="stImpute's original tables live in ../shared/datasets (absent on user clones)")
def test_stimpute_original_osmfish_table_loads():
    with pytest.warns(UserWarning, match="ignoring case"):
        emb = read_embedding_table(STIMPUTE_TABLES / "osmFISH_emb.npz")
    assert len(emb) == 275 and emb.dim == 2560
    vec, found, _ = emb.lookup(["Gad2", "Vip", "Gfap"])
    assert found.all() and np.isfinite(vec).all()


def test_graph_warns_when_few_genes_have_a_protein():
    from napari_spatial_impute.models.stimpute.gene_graph import build_gene_graph

    emb = GeneEmbeddings.from_mapping({"g0": [1.0, 0.0], "g1": [0.0, 1.0]})
    ref = np.random.default_rng(0).random((50, 6)).astype(np.float32)
    with pytest.warns(UserWarning, match="protein vector"):
        build_gene_graph([f"g{i}" for i in range(6)], ref, emb, 2)
