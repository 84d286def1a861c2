"""stImpute prediction: neighbours in the autoencoder space, node features, GNN, α-mix — per block of cells."""

from __future__ import annotations

import numpy as np

from ...progress import Progress, ProgressGen, relay
from ..knn import cosine_topk, neighbour_weight_values, zscore_columns
from .features import GeneMajorReference

_BLOCK_CELLS = 65_536  # spatial cells embedded and neighbour-searched at once in prediction


def predict_cells_steps(model, ae, gnn, sp_in: np.ndarray, in_cols: np.ndarray,
                        out_cols: np.ndarray) -> ProgressGen[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(final in reference log units, kNN mean z, GNN z) of genes ``out_cols`` for all cells of ``sp_in``
    (z-scored inputs ``in_cols``), block by block of cells."""
    torch, dev = model._torch()

    ref_in_z, _, _ = zscore_columns(model.reference_log_[:, in_cols])
    with torch.inference_mode():
        bank = ae.embed(torch.from_numpy(np.ascontiguousarray(ref_in_z)).to(dev)).cpu().numpy()
    out_cols = np.asarray(out_cols, dtype=np.int64)
    n = sp_in.shape[0]
    mu, sd = model.ref_mean_[out_cols], model.ref_sd_[out_cols]
    knn_z = np.empty((n, len(out_cols)), np.float32)
    gnn_z = np.empty((n, len(out_cols)), np.float32)
    if gnn is not None:
        rows = GraphRows(model.graph_.edge_index, model.graph_.edge_weight, len(model.genes_), out_cols, dev,
                         n_layers=len(gnn.convs))
        ref_z = torch.from_numpy((model.reference_log_ - model.ref_mean_) / model.ref_sd_).to(dev)
        ref_on = torch.from_numpy((model.reference_log_ > 0).astype(np.float32)).to(dev)
        # node features only of the genes the GNN's layers need for the targets (often fewer than all)
        ref = GeneMajorReference(ref_z, ref_on, rows.genes[0])
        del ref_z, ref_on
    ref_out = model.reference_log_[:, out_cols]
    chunk = model._chunk_cells(len(model.genes_))
    block = max(chunk, (_BLOCK_CELLS // chunk) * chunk)  # cells embedded + searched at once
    n_chunks = (n + chunk - 1) // chunk
    yield Progress(0, n_chunks, f"imputing 0/{n} cells", "predict")
    for c, s in enumerate(range(0, n, chunk)):
        if s % block == 0:
            with torch.inference_mode():
                q = torch.from_numpy(np.ascontiguousarray(sp_in[s:s + block], dtype=np.float32)).to(dev)
                query = ae.embed(q).cpu().numpy()
            yield Progress(c, n_chunks, f"neighbours of {min(n, s + block)}/{n} cells", "predict")
            idx_blk, sim_blk = yield from relay(cosine_topk(query, bank, model.k, device=str(dev)), "predict", c,
                                                n_chunks, span=0)
        idx = idx_blk[s % block:s % block + chunk]
        w = similarity_weights(sim_blk[s % block:s % block + chunk])
        knn = np.einsum("ck,ckg->cg", w, ref_out[idx])
        knn_z[s:s + len(idx)] = (knn - mu) / sd
        if gnn is None:
            gnn_z[s:s + len(idx)] = knn_z[s:s + len(idx)]
        else:
            with torch.inference_mode():
                feats = ref.features(torch.from_numpy(idx).to(dev), torch.from_numpy(w).to(dev))
                gnn_z[s:s + len(idx)] = rows.forward(gnn, feats).T.cpu().numpy()
        yield Progress(c + 1, n_chunks, f"imputing {min(n, s + chunk)}/{n} cells", "predict")
    alpha = model.alpha_ if gnn is not None else 0.0
    o_mu = getattr(model, "out_mean_", model.ref_mean_)[out_cols]
    o_sd = getattr(model, "out_sd_", model.ref_sd_)[out_cols]
    final = o_mu + o_sd * (alpha * gnn_z + (1 - alpha) * knn_z)
    return final.astype(np.float32), knn_z, gnn_z


class GraphRows:
    """The gene-graph predictor evaluated only where the output genes need it.

    :class:`~.network.GeneGraphPredictor` computes every layer for every gene, but only the output genes'
    last layer is read; that layer needs the previous one only on those genes and their graph neighbours,
    and so on down to the node features. ``genes[l]`` (sorted graph positions) are the genes layer ``l`` is
    computed on (``genes[0]``: node features; the last: the output genes); each layer aggregates over the
    sub-adjacency between consecutive sets. The values are those of the full forward pass at the output
    genes (every row depends only on its graph neighbours); with 50 targets of a 248-gene panel the last
    layer and the head run on a fifth of the nodes.
    """

    def __init__(self, edge_index: np.ndarray, edge_weight: np.ndarray, n_genes: int, out_cols: np.ndarray,
                 device, n_layers: int = 2):
        import torch

        src, dst = np.asarray(edge_index[0]), np.asarray(edge_index[1])
        out_sorted, self._order = np.unique(np.asarray(out_cols, dtype=np.int64), return_inverse=True)
        sets = [out_sorted]
        for _ in range(n_layers):
            sets.insert(0, np.union1d(sets[0], src[np.isin(dst, sets[0])]))
        self.genes = sets
        self.adj, self.root = [], []
        for lower, upper in zip(sets[:-1], sets[1:]):
            pos_lo = np.full(n_genes, -1, np.int64)
            pos_lo[lower] = np.arange(len(lower))
            pos_up = np.full(n_genes, -1, np.int64)
            pos_up[upper] = np.arange(len(upper))
            keep = pos_up[dst] >= 0  # edges into the upper set (their sources lie in the lower set)
            ind = torch.from_numpy(np.stack([pos_up[dst[keep]], pos_lo[src[keep]]]))
            adj = torch.sparse_coo_tensor(ind, torch.from_numpy(np.asarray(edge_weight)[keep]),
                                          (len(upper), len(lower)), check_invariants=False).coalesce()
            self.adj.append(adj.to(device))
            self.root.append(torch.from_numpy(pos_lo[upper]).to(device))
        out_in_x = np.searchsorted(sets[0], out_sorted)
        self._x_out = torch.from_numpy(out_in_x).to(device)
        self._order = torch.from_numpy(self._order.reshape(-1)).to(device)

    def forward(self, gnn, x):
        """(output genes in ``out_cols`` order, cells) of ``gnn`` from node features ``x`` of ``genes[0]``
        (genes, cells, features) — ``gnn(x_all, adj)[out_cols]`` at a fraction of the cost."""
        return gnn(x, self.adj, self.root, self._x_out).index_select(0, self._order)


def similarity_weights(sim: np.ndarray) -> np.ndarray:
    """Neighbour weights from cosine similarities: clipped at 0, normalised per row (as kNN's)."""
    return neighbour_weight_values(sim)
