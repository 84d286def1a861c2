"""stImpute prediction: neighbours in the autoencoder space, node features, GNN, α-mix — per block of cells."""

from __future__ import annotations

import numpy as np

from ...progress import Progress, ProgressGen, relay
from ..knn import cosine_topk, zscore_columns
from .features import node_features

_EPS = 1e-6
_BLOCK_CELLS = 65_536  # spatial cells embedded and neighbour-searched at once in prediction


def predict_cells_steps(model, ae, gnn, sp_in: np.ndarray, in_cols: np.ndarray,
                        out_cols: np.ndarray) -> ProgressGen[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(final in reference log units, kNN mean z, GNN z) of genes ``out_cols`` for all cells of ``sp_in``
    (z-scored inputs ``in_cols``), block by block of cells."""
    torch, dev = model._torch()
    from .network import sparse_adjacency

    ref_in_z, _, _ = zscore_columns(model.reference_log_[:, in_cols])
    with torch.no_grad():
        bank = ae.embed(torch.from_numpy(np.ascontiguousarray(ref_in_z)).to(dev)).cpu().numpy()
    out_cols = np.asarray(out_cols, dtype=np.int64)
    n = sp_in.shape[0]
    mu, sd = model.ref_mean_[out_cols], model.ref_sd_[out_cols]
    knn_z = np.empty((n, len(out_cols)), np.float32)
    gnn_z = np.empty((n, len(out_cols)), np.float32)
    if gnn is not None:
        ref_z = torch.from_numpy((model.reference_log_ - model.ref_mean_) / model.ref_sd_).to(dev)
        ref_on = torch.from_numpy((model.reference_log_ > 0).astype(np.float32)).to(dev)
        adj = sparse_adjacency(torch.from_numpy(model.graph_.edge_index), torch.from_numpy(model.graph_.edge_weight),
                               len(model.genes_)).to(dev)
    ref_out = model.reference_log_[:, out_cols]
    chunk = model._chunk_cells(len(model.genes_))
    block = max(chunk, (_BLOCK_CELLS // chunk) * chunk)  # cells embedded + searched at once
    n_chunks = (n + chunk - 1) // chunk
    yield Progress(0, n_chunks, f"imputing 0/{n} cells", "predict")
    for c, s in enumerate(range(0, n, chunk)):
        if s % block == 0:
            with torch.no_grad():
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
            with torch.no_grad():
                feats = node_features(ref_z, ref_on, torch.from_numpy(idx).to(dev), torch.from_numpy(w).to(dev))
                gnn_z[s:s + len(idx)] = gnn(feats, adj)[torch.from_numpy(out_cols).to(dev)].T.cpu().numpy()
        yield Progress(c + 1, n_chunks, f"imputing {min(n, s + chunk)}/{n} cells", "predict")
    alpha = model.alpha_ if gnn is not None else 0.0
    o_mu = getattr(model, "out_mean_", model.ref_mean_)[out_cols]
    o_sd = getattr(model, "out_sd_", model.ref_sd_)[out_cols]
    final = o_mu + o_sd * (alpha * gnn_z + (1 - alpha) * knn_z)
    return final.astype(np.float32), knn_z, gnn_z


def similarity_weights(sim: np.ndarray) -> np.ndarray:
    """Neighbour weights from cosine similarities: clipped at 0, normalised per row."""
    w = np.clip(sim, 0.0, None) + _EPS
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)
