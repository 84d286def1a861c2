"""The stImpute gene graph: nodes are genes, edges join genes with similar proteins (or expression).

Similarity of a gene pair is the cosine similarity of their ESM-2 protein embeddings when both genes have
one (embeddings centred on their mean first: mean-pooled ESM vectors share a large common direction, so raw
cosines all sit near 1); otherwise it is the Pearson correlation of the two genes over reference cells
(the paper's rule for genes without a protein). Each gene keeps its ``top_k`` most similar genes with a
positive similarity; weights are the similarities, row-normalised, so aggregating along the edges is a
weighted mean. The graph is built once (chunked over rows, never a dense genes × genes matrix of the whole
transcriptome at once) and stored as ``edge_index`` / ``edge_weight`` in torch-geometric's layout
(``edge_index[0]`` = neighbour/source, ``edge_index[1]`` = the gene that aggregates).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ...embeddings import GeneEmbeddings


@dataclass
class GeneGraph:
    genes: list[str]
    edge_index: np.ndarray  # (2, E) int64
    edge_weight: np.ndarray  # (E,) float32, sums to 1 over each target gene's incoming edges
    has_protein: np.ndarray  # (n_genes,) bool: gene had a protein embedding
    missing: list[str] = field(default_factory=list)  # genes without a protein embedding
    embedding_source: str = ""

    @property
    def n_protein(self) -> int:
        return int(self.has_protein.sum())

    @property
    def n_expression(self) -> int:
        return int((~self.has_protein).sum())

    def summary(self) -> dict:
        return {"n_genes": len(self.genes), "n_edges": int(self.edge_index.shape[1]),
                "genes_protein_similarity": self.n_protein, "genes_expression_similarity": self.n_expression,
                "genes_without_embedding": list(self.missing), "embedding_source": self.embedding_source}


def _unit_rows(x: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """Rows scaled to unit norm (zero rows stay zero); ``inplace`` reuses ``x`` (same values, no copy)."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    if inplace:
        x[~(n > 0).ravel()] = 0.0  # as the copying path: zero (also NaN) rows become 0
        return np.divide(x, n, out=x, where=n > 0)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def build_gene_graph(genes: list[str], reference: np.ndarray, embeddings: GeneEmbeddings | None = None,
                     top_k: int = 10, *, center: bool = True, chunk: int = 1024) -> GeneGraph:
    """Build the sparse gene graph over ``genes`` (columns of ``reference``, log-normalised cells × genes).

    Holds one centred copy of ``reference`` besides it (the caller bounds its width: see
    :meth:`~.model.STImputer.width_problem`)."""
    n_genes = len(genes)
    ref = np.asarray(reference, dtype=np.float32)
    expr = ref - ref.mean(axis=0, keepdims=True)
    expr = _unit_rows(expr.T, inplace=True)  # genes × cells, unit norm → dot = Pearson
    if embeddings is not None:
        prot, has, missing = embeddings.lookup(genes)
        if center and has.sum() > 1:
            prot[has] -= prot[has].mean(axis=0, keepdims=True)
        prot = _unit_rows(prot)
        source = embeddings.source
        if has.sum() < 0.5 * n_genes:
            warnings.warn(f"Only {int(has.sum())} of the gene graph's {n_genes} genes have a protein vector in "
                          f"{source or 'the gene embeddings'}; the others are joined by expression similarity "
                          "(give a table covering the panel and targets, e.g. embed their proteins with ESM-2).",
                          stacklevel=2)
    else:
        prot, has, missing, source = None, np.zeros(n_genes, dtype=bool), list(genes), "none"
    k = int(max(0, min(top_k, n_genes - 1)))
    src, dst, wts = [], [], []
    for start in range(0, n_genes, chunk):
        stop = min(n_genes, start + chunk)
        sim = expr[start:stop] @ expr.T
        if prot is not None:
            both = has[start:stop, None] & has[None, :]
            sim = np.where(both, prot[start:stop] @ prot.T, sim)
        rows = np.arange(start, stop)
        sim[rows - start, rows] = -np.inf  # no self loops (SAGEConv adds the root separately)
        if k == 0:
            continue
        nbr = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        val = np.take_along_axis(sim, nbr, axis=1)
        val = np.where(np.isfinite(val), np.clip(val, 0.0, None), 0.0)
        total = val.sum(axis=1, keepdims=True)
        w = np.divide(val, total, out=np.zeros_like(val), where=total > 0)
        keep = w > 0
        src.append(nbr[keep])
        dst.append(np.broadcast_to(rows[:, None], nbr.shape)[keep])
        wts.append(w[keep])
    if src:
        edge_index = np.vstack([np.concatenate(src), np.concatenate(dst)]).astype(np.int64)
        edge_weight = np.concatenate(wts).astype(np.float32)
    else:
        edge_index, edge_weight = np.zeros((2, 0), np.int64), np.zeros(0, np.float32)
    return GeneGraph(list(genes), edge_index, edge_weight, has, missing, source)
