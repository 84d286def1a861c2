"""Gene embeddings (gene symbol → vector) from three sources behind one interface.

1. a precomputed table (``.npz`` / ``.parquet`` / ``.csv``), e.g. stImpute's ESM-2 3B gene embeddings
   (a minimal osmFISH subset ships as ``"bundled"``);
2. protein sequences (FASTA, gene symbol in the header) embedded with a local fair-esm ESM-2 checkpoint,
   mean-pooled over residues and cached on disk;
3. none → ``None`` (callers fall back to expression similarity).

>>> from napari_spatial_impute.embeddings import load_gene_embeddings
>>> emb = load_gene_embeddings("bundled")              # GeneEmbeddings(33 genes × 2560)
>>> vectors, found, missing = emb.lookup(["Gad2", "NotAGene"])
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .tables import BUNDLED_ESM2, GeneEmbeddings, read_embedding_table

FASTA_SUFFIXES = (".fa", ".fasta", ".faa", ".fas")
TABLE_SUFFIXES = (".npz", ".parquet", ".pq", ".csv", ".tsv")


def load_gene_embeddings(source=None, *, checkpoint: str | Path | None = None, device: str = "auto",
                         cache_dir: str | Path | None = None, batch_tokens: int = 4096,
                         callback=None) -> GeneEmbeddings | None:
    """Resolve ``source`` into :class:`GeneEmbeddings` (or ``None`` for expression similarity only).

    ``source``: ``None`` / ``"none"`` → ``None``; ``"bundled"`` → the shipped ESM-2 3B osmFISH subset;
    a :class:`GeneEmbeddings` or a ``{gene: vector}`` mapping; a table path (.npz/.parquet/.csv/.tsv);
    a FASTA path (.fa/.fasta/.faa), which needs ``checkpoint`` (a local fair-esm ESM-2 ``.pt`` file).
    """
    if source is None or (isinstance(source, str) and source.strip().lower() in ("", "none", "expression")):
        return None
    if isinstance(source, GeneEmbeddings):
        return source
    if isinstance(source, dict):
        return GeneEmbeddings.from_mapping(source, name="mapping")
    if isinstance(source, str) and source.strip().lower() == "bundled":
        return read_embedding_table(BUNDLED_ESM2)
    path = Path(str(source)).expanduser()
    suffix = path.suffix.lower()
    if suffix in FASTA_SUFFIXES:
        if checkpoint is None:
            raise InputError(f"{path.name} holds protein sequences but no ESM-2 checkpoint was given.",
                             "pass esm_checkpoint=/path/to/esm2_t33_650M_UR50D.pt (a fair-esm .pt file).")
        from ..progress import run_to_end
        from .esm2 import embed_fasta_steps

        return run_to_end(embed_fasta_steps(path, checkpoint, device=device, cache_dir=cache_dir,
                                            batch_tokens=batch_tokens), callback)
    if suffix in TABLE_SUFFIXES:
        return read_embedding_table(path)
    raise InputError(f"Cannot tell what kind of gene-embedding source {source!r} is.",
                     "give a table (.npz/.parquet/.csv/.tsv), a FASTA file (.fa/.fasta) with esm_checkpoint, "
                     "'bundled', or 'none'.")


__all__ = ["BUNDLED_ESM2", "GeneEmbeddings", "load_gene_embeddings", "read_embedding_table"]
