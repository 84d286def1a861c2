"""stImpute prediction: neighbours in the autoencoder space, node features, GNN, α-mix — per block of cells.

Out of device memory, every step that runs on the device (embedding the reference and each block of cells,
the neighbour search, the gene-graph predictor) is retried in smaller chunks, then on the CPU with a warning
(:class:`~napari_spatial_impute.device.StickyChunks`); a fallback holds for the rest of the prediction.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ...device import StickyChunks
from ...progress import Progress, ProgressGen, relay
from ..knn import cosine_topk, neighbour_weight_values, zscore_columns
from .features import GeneMajorReference

_BLOCK_CELLS = 65_536  # spatial cells embedded and neighbour-searched at once in prediction


def predict_cells_steps(model, ae, gnn, sp_in: np.ndarray, in_cols: np.ndarray,
                        out_cols: np.ndarray) -> ProgressGen[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(final on the output scale — each gene's predicted spatial mean / sd by default, the reference's with
    ``output_scale="reference"`` —, kNN mean z, GNN z) of genes ``out_cols`` for all cells of ``sp_in``
    (z-scored inputs ``in_cols``), block by block of cells; progress is counted in cells."""
    _, dev = model._torch()
    out_cols = np.asarray(out_cols, dtype=np.int64)
    place = _Placement(model, ae, gnn, out_cols)
    run = StickyChunks(str(dev))
    ref_in_z, _, _ = zscore_columns(model.reference_log_[:, in_cols])
    n_ref = ref_in_z.shape[0]
    bank = np.concatenate([b for _, _, b in run("embed", n_ref, n_ref, partial(place.embed, ref_in_z),
                                                "embedding the reference")])
    n = sp_in.shape[0]
    mu, sd = model.ref_mean_[out_cols], model.ref_sd_[out_cols]
    knn_z = np.empty((n, len(out_cols)), np.float32)
    gnn_z = np.empty((n, len(out_cols)), np.float32)
    ref_out = model.reference_log_[:, out_cols]
    chunk = model._chunk_cells(len(model.genes_))
    block = max(chunk, (_BLOCK_CELLS // chunk) * chunk)  # cells embedded + searched at once
    yield Progress(0, n, f"imputing 0/{n} cells", "predict")
    for b0 in range(0, n, block):
        b1 = min(n, b0 + block)
        query = np.concatenate([q for _, _, q in run("embed", b1 - b0, b1 - b0, partial(place.embed, sp_in[b0:b1]),
                                                     "embedding the spatial cells")])
        yield Progress(b0, n, f"neighbours of {b1}/{n} cells", "predict")
        idx_blk, sim_blk = yield from relay(cosine_topk(query, bank, model.k, device=run.device), "predict", b0, n,
                                            span=0)
        step = partial(_cells_step, place, idx_blk, similarity_weights(sim_blk), ref_out, mu, sd)
        for s, e, (knn, g) in run("gnn", b1 - b0, chunk, step, "the gene-graph predictor"):
            knn_z[b0 + s:b0 + e], gnn_z[b0 + s:b0 + e] = knn, g
            yield Progress(b0 + e, n, f"imputing {b0 + e}/{n} cells", "predict")
    alpha = model.alpha_ if gnn is not None else 0.0
    o_mu = getattr(model, "out_mean_", model.ref_mean_)[out_cols]
    o_sd = getattr(model, "out_sd_", model.ref_sd_)[out_cols]
    final = o_mu + o_sd * (alpha * gnn_z + (1 - alpha) * knn_z)
    return final.astype(np.float32), knn_z, gnn_z


def _cells_step(place: _Placement, idx_blk: np.ndarray, w_blk: np.ndarray, ref_out: np.ndarray, mu: np.ndarray,
                sd: np.ndarray, start: int, stop: int, device: str) -> tuple[np.ndarray, np.ndarray]:
    """(kNN mean z, GNN z) of the block's cells ``[start, stop)`` (the GNN on ``device``; without one, kNN twice)."""
    idx, w = idx_blk[start:stop], w_blk[start:stop]
    knn = (np.einsum("ck,ckg->cg", w, ref_out[idx]) - mu) / sd
    return knn, (knn if place.gnn is None else place.gnn_z(idx, w, device))


class _Placement:
    """What prediction runs on a device, made there on first use: the autoencoder and, with a GNN, the predictor,
    its row graph (:class:`GraphRows`) and the gene-major reference. On the model's device these are the model's
    own modules; on another (the CPU after a fallback) copies made through host memory. Only one device's
    copies are kept (a fallback frees the accelerator's)."""

    def __init__(self, model, ae, gnn, out_cols: np.ndarray):
        self.model, self.ae, self.gnn, self.out_cols = model, ae, gnn, out_cols
        self._device: str | None = None
        self._parts: dict = {}

    def _get(self, device: str, what: str):
        if device != self._device:
            self._parts.clear()
            self._device = device
        if what not in self._parts:
            self._parts[what] = self._build(device, what)
        return self._parts[what]

    def _build(self, device: str, what: str):
        import torch

        if what == "ae":
            return _module_on(self.ae, device)
        m = self.model
        gnn = _module_on(self.gnn, device)
        rows = GraphRows(m.graph_.edge_index, m.graph_.edge_weight, len(m.genes_), self.out_cols, device,
                         n_layers=len(gnn.convs))
        ref_z = torch.from_numpy((m.reference_log_ - m.ref_mean_) / m.ref_sd_).to(device)
        ref_on = torch.from_numpy((m.reference_log_ > 0).astype(np.float32)).to(device)
        # node features only of the genes the GNN's layers need for the targets (often fewer than all)
        return gnn, rows, GeneMajorReference(ref_z, ref_on, rows.genes[0])

    def embed(self, x: np.ndarray, start: int, stop: int, device: str) -> np.ndarray:
        """The autoencoder's embedding (the neighbour-search space) of rows ``[start, stop)`` of ``x``."""
        import torch

        ae = self._get(device, "ae")
        with torch.inference_mode():
            q = torch.from_numpy(np.ascontiguousarray(x[start:stop], dtype=np.float32)).to(device)
            return ae.embed(q).cpu().numpy()

    def gnn_z(self, idx: np.ndarray, w: np.ndarray, device: str) -> np.ndarray:
        """(cells, output genes) of the gene-graph predictor for cells with neighbours ``idx`` / weights ``w``."""
        import torch

        gnn, rows, ref = self._get(device, "gnn")
        with torch.inference_mode():
            feats = ref.features(torch.from_numpy(idx).to(device), torch.from_numpy(w).to(device))
            return rows.forward(gnn, feats).T.cpu().numpy()


def _module_on(module, device: str):
    """``module`` itself when its weights are on ``device``; else a copy there, made through host memory (a
    full accelerator is never asked for a second copy)."""
    import io

    import torch

    want, param = torch.device(device), next(module.parameters(), None)
    if param is None or (param.device.type == want.type and want.index in (None, param.device.index)):
        return module
    buf = io.BytesIO()
    torch.save(module, buf)
    buf.seek(0)
    return torch.load(buf, map_location=want, weights_only=False).eval()


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
