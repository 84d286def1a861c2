"""stImpute training of one pipeline: the masked autoencoder, then alternating GNN / autoencoder rounds."""

from __future__ import annotations

import numpy as np

from ...progress import Progress, ProgressGen, Ticker, relay, wait_for
from ..knn import zscore_columns
from .features import N_NODE_FEATURES, node_features

_EPS = 1e-6
#: masked-input patterns per training round (each pattern's reference bank is embedded once per round)
N_MASK_PATTERNS = 16


def train_steps(model, sp_in: np.ndarray, in_cols: np.ndarray, seed: int,
                gnn_epochs: int | None = None) -> ProgressGen[tuple]:
    """Train AE + GNN of ``model`` (an :class:`~.model.STImputer` after its gene graph and reference are set)
    with spatial inputs ``sp_in`` (cells × len(in_cols), z-scored) → (ae, gnn)."""
    torch, dev = model._torch()
    from .network import GeneAutoencoder, GeneGraphPredictor, sparse_adjacency, stimpute_loss

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_in = len(in_cols)
    ref_z_all = (model.reference_log_ - model.ref_mean_) / model.ref_sd_
    ref_in_z, _, _ = zscore_columns(model.reference_log_[:, in_cols])
    ref_z = torch.from_numpy(np.ascontiguousarray(ref_z_all)).to(dev)
    ref_on = torch.from_numpy((model.reference_log_ > 0).astype(np.float32)).to(dev)
    ref_in = torch.from_numpy(np.ascontiguousarray(ref_in_z)).to(dev)
    sp_t = torch.from_numpy(np.ascontiguousarray(sp_in, dtype=np.float32)).to(dev)
    ae = GeneAutoencoder(n_in, model.latent).to(dev)
    # the autoencoder sees at most as many reference cells as training cells (≥ 4096): a large reference adds
    # time, not a better joint space (the neighbour bank below is always the whole reference)
    n_ae_ref = max(4096, sp_t.shape[0])
    ae_ref = ref_in if ref_in.shape[0] <= n_ae_ref else ref_in[torch.from_numpy(
        np.sort(rng.choice(ref_in.shape[0], n_ae_ref, replace=False)))]
    both = torch.cat([sp_t, ae_ref])
    n_mask = max(1, int(round(model.mask_fraction * n_in))) if model.mask_fraction > 0 else 0

    epochs = model.gnn_epochs if gnn_epochs is None else gnn_epochs
    total = model.ae_epochs + (model.rounds * epochs if model.use_gnn else 0)
    # heartbeats between batches (a Cancel lands within a batch, not an epoch); they only yield: the random
    # draws and the results are those of a run without them
    tick = Ticker(0.1)

    def beat(done: int, what: str):
        if tick.due():
            yield Progress(done, total, what, "train")

    def ae_epoch(done: int, extra_target=None):
        order = torch.randperm(both.shape[0], generator=gen)
        for s in range(0, len(order), 512):
            b = order[s:s + 512].to(dev)
            x = both[b]
            keep = (torch.rand(x.shape, generator=gen) >= model.mask_fraction).float().to(dev)
            _, rec = ae(x * keep)
            loss = torch.nn.functional.mse_loss(rec, x)
            if extra_target is not None:  # the paper's M-step: (AE + GNN)/2 ≈ spatial values
                sp_rows = b < sp_t.shape[0]
                if sp_rows.any():
                    mix = (rec[sp_rows] + extra_target[b[sp_rows]]) / 2
                    loss = loss + torch.nn.functional.mse_loss(mix, x[sp_rows])
            ae_opt.zero_grad()
            loss.backward()
            ae_opt.step()
            yield from beat(done, "autoencoder")

    # the first optimiser of a process imports torch._dynamo (~3 s): on a worker thread, with heartbeats
    ae_opt = yield from wait_for(lambda: torch.optim.Adam(ae.parameters(), lr=1e-2, weight_decay=1e-4),
                                 Progress(0, total, "autoencoder", "train"))
    yield Progress(0, total, "autoencoder", "train")
    ae.train()
    for e in range(model.ae_epochs):
        yield from ae_epoch(e)
        yield Progress(e + 1, total, "autoencoder", "train")
    if not model.use_gnn:
        return ae.eval(), None

    graph = model.graph_
    adj = sparse_adjacency(torch.from_numpy(graph.edge_index), torch.from_numpy(graph.edge_weight),
                           len(graph.genes)).to(dev)
    gnn = GeneGraphPredictor(N_NODE_FEATURES, model.hidden).to(dev)
    opt = torch.optim.Adam(gnn.parameters(), lr=model.lr, weight_decay=1e-4)
    in_cols_t = torch.from_numpy(np.asarray(in_cols, dtype=np.int64)).to(dev)
    n_cells = sp_t.shape[0]
    per_epoch = min(n_cells, model.max_train_cells, model.gnn_cells)
    for r in range(model.rounds):
        ae.eval()
        # the AE is frozen during a round: embed the reference bank once per mask pattern (a fixed set of
        # patterns per round) instead of once per batch
        patterns = mask_patterns(rng, n_in, n_mask, N_MASK_PATTERNS)
        banks: dict[int, object] = {}
        done = model.ae_epochs + r * epochs - 1  # the last epoch done (gnn_epochs=0: none this round)
        for e in range(epochs):
            done = model.ae_epochs + r * epochs + e
            gnn.train()
            cells = torch.from_numpy(rng.permutation(n_cells)[:per_epoch])
            for s in range(0, per_epoch, model.batch_size):
                b = cells[s:s + model.batch_size].to(dev)
                if len(b) < 2:
                    continue
                p = int(rng.integers(len(patterns)))
                masked = torch.from_numpy(patterns[p]).to(dev)
                keep = torch.ones(n_in, device=dev)
                if n_mask:
                    keep[masked] = 0.0
                with torch.no_grad():
                    q = ae.embed(sp_t[b] * keep)
                    if p not in banks:
                        banks[p] = torch.nn.functional.normalize(ae.embed(ref_in * keep), dim=1)
                    idx, w = topk_weights(q, banks[p], model.k, bank_normalised=True)
                what = f"GNN round {r + 1}/{model.rounds}, epoch {e + 1}/{epochs}"
                # one batch costs ~0.3–0.5 s on one CPU thread (Xenium, 248 genes × k neighbours):
                # heartbeats also between its parts
                feats = node_features(ref_z, ref_on, idx, w)
                yield from beat(done, what)
                pred = gnn(feats, adj)[in_cols_t[masked]].T  # batch × masked genes
                loss = stimpute_loss(pred, sp_t[b][:, masked])
                yield from beat(done, what)
                opt.zero_grad()
                loss.backward()
                yield from beat(done, what)
                opt.step()
                yield from beat(done, what)
            yield Progress(done + 1, total,
                           f"GNN round {r + 1}/{model.rounds}, epoch {e + 1}/{epochs}", "train")
        if r == model.rounds - 1 or model.ae_round_epochs <= 0:
            break
        # M-step: AE epochs pulled towards the GNN's prediction of the input genes
        gnn.eval()
        target = torch.zeros_like(both)
        with torch.no_grad():
            bank = ae.embed(ref_in)
            q_all = ae.embed(sp_t)
        step = model._chunk_cells(len(graph.genes))
        for s in range(0, n_cells, step):
            with torch.no_grad():  # closed before each heartbeat: the caller never runs in no-grad mode
                idx, w = topk_weights(q_all[s:s + step], bank, model.k)
                target[s:s + len(idx)] = gnn(node_features(ref_z, ref_on, idx, w), adj)[in_cols_t].T
            yield from beat(done + 1, f"GNN round {r + 1}/{model.rounds}: targets for the autoencoder")
        ae.train()
        for _ in range(model.ae_round_epochs):
            yield from ae_epoch(done + 1, target)
    ae.eval()
    gnn.eval()
    return ae, gnn


def mask_patterns(rng: np.random.Generator, n_in: int, n_mask: int, n_patterns: int) -> list[np.ndarray]:
    """``n_patterns`` seeded sets of ``n_mask`` masked input positions (all positions when nothing is masked)."""
    if not n_mask:
        return [np.arange(n_in)]
    return [np.sort(rng.choice(n_in, n_mask, replace=False)) for _ in range(n_patterns)]


def topk_weights(query, bank, k: int, bank_normalised: bool = False):
    """(indices, normalised non-negative cosine weights) of each query row's ``k`` nearest bank rows (torch)."""
    import torch

    q = torch.nn.functional.normalize(query, dim=1)
    b = bank if bank_normalised else torch.nn.functional.normalize(bank, dim=1)
    sims, idx = torch.topk(q @ b.T, k, dim=1)
    w = sims.clamp_min(0) + _EPS
    return idx, w / w.sum(1, keepdim=True)


def relay_part(gen: ProgressGen, part: int, n_parts: int, label: str) -> ProgressGen:
    """Re-yield a training generator's progress as part ``part`` of ``n_parts`` (in percent), messages
    prefixed with ``label``; returns its return value."""
    offset = 100 * part // n_parts
    return (yield from relay(gen, "", offset, 100, span=100 * (part + 1) // n_parts - offset, prefix=f"{label}: "))
