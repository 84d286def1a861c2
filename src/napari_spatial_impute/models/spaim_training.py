"""SpaIM's training of one network (losses, augmentations, weight averaging) and its inner cross-validation
(anchor weight and expected r); the method is described in :mod:`.spaim`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..clustering import cluster_means, reference_clusters_steps
from ..progress import Progress, ProgressGen, Ticker, wait_for
from .base import ImputeData
from .spaim_network import adamw, build_network, check_memory, deterministic, estimate_memory, gram


def losses(model, net, content, target):
    import torch
    from torch.nn.functional import cosine_similarity, mse_loss

    real, (rc1, rc2, rs1, rs2) = net.autoencode(target)
    fake, (fc1, fc2, fs1, fs2) = net.generate(content)
    content_loss = mse_loss(rc1, fc1) + mse_loss(rc2, fc2)
    style_loss = mse_loss(gram(fs1), gram(rs1).detach()) + mse_loss(gram(fs2), gram(rs2).detach())
    cos = lambda a, b: 1 - cosine_similarity(a, b, dim=1).mean()  # noqa: E731
    cosine_loss = cos(real, fake) + cos(real, target) + cos(fake, target)
    loss = content_loss + style_loss + cosine_loss
    if model.scale_weight > 0:
        loss = loss + model.scale_weight * (mse_loss(fake, target) + mse_loss(real, target))
    return loss, torch.stack([content_loss, style_loss, cosine_loss]).detach()

def train_member_steps(model, data: ImputeData, member: int, dev,
                   anchor: np.ndarray | None = None) -> ProgressGen[dict[str, Any]]:
    """Cluster the reference and train one network; returns the member's state."""
    import copy

    import torch

    seed = model.seed + 1000 * member
    total_epochs = model.epochs * model.n_models
    offset = member * model.epochs
    clustering = Progress(offset, total_epochs, f"model {member + 1}/{model.n_models}: clustering the reference",
                          "fit")
    yield clustering
    key = model.cluster_key or None
    # Leiden (and the first import of scanpy) runs on a worker thread; heartbeats meanwhile (Cancel)
    clusters = yield from reference_clusters_steps(data.reference_dense(), data.reference_obs, key,
                                                   resolution=model.resolution, seed=seed, progress=clustering)
    k = clusters.n_clusters
    n_cells, n_train = data.spatial.shape
    if member == 0:
        check_memory(estimate_memory(n_cells, n_train + len(data.target_genes), k, model.hidden,
                                     model.style_dim, model.batch_size, model.n_models), str(dev),
                     f"SpaIM on {n_cells} cells")
    content_all = cluster_means(data.reference_dense(), clusters.labels, k).T.copy()  # reference genes × K
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        net = build_network(n_cells, k, model.hidden, model.style_dim, zero_output=anchor is not None).to(dev)
    ema = copy.deepcopy(net) if model.ema > 0 else net
    gen = torch.Generator().manual_seed(seed)
    content = torch.from_numpy(content_all[data.shared_idx]).to(dev)
    target = np.ascontiguousarray(data.spatial.T)  # genes × cells
    if anchor is not None:  # the residual over the (fold-out) kNN imputation of each training gene
        target = target - anchor
    target = torch.from_numpy(target).to(dev)
    # the first optimiser of a process imports torch.optim (~1 s): on a worker thread, heartbeats meanwhile
    opt = yield from wait_for(lambda: adamw(net.parameters(), model.lr, model.weight_decay, dev),
                              Progress(offset, total_epochs, f"model {member + 1}/{model.n_models}: training", "fit"))
    history = np.zeros((model.epochs, 4), dtype=np.float32)
    tick = Ticker()
    for epoch in range(model.epochs):
        # the deterministic-algorithms switch is process-wide: on only around the computation, never across a
        # yield (an abandoned generator would leave it on)
        net.train()
        order = torch.randperm(n_train, generator=gen)
        total = torch.zeros(4)
        for start in range(0, n_train, model.batch_size):
            with deterministic():
                idx = order[start:start + model.batch_size].to(dev)
                c, t = content[idx], target[idx]
                if model.mixup and len(idx) > 1:
                    lam = torch.rand(len(idx), 1, generator=gen).to(dev)
                    partner = torch.randperm(len(idx), generator=gen).to(dev)
                    c = torch.cat([c, lam * c + (1 - lam) * c[partner]])
                    t = torch.cat([t, lam * t + (1 - lam) * t[partner]])
                if model.content_dropout > 0:  # the public code's augmentation: zero random content inputs
                    keep = torch.rand(c.shape, generator=gen).to(dev) >= model.content_dropout
                    c = c * keep / (1.0 - model.content_dropout)
                loss, parts = losses(model, net, c, t)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if model.ema > 0:
                    with torch.no_grad():
                        for pe, pn in zip(ema.parameters(), net.parameters()):
                            pe.lerp_(pn, 1.0 - model.ema)
                total += torch.cat([loss.detach().reshape(1), parts]).cpu() * len(idx)
            if tick.due():  # a heartbeat between batches: Cancel answered within a second
                yield Progress(offset + epoch, total_epochs, f"model {member + 1}/{model.n_models}: "
                               "training", "fit")
        history[epoch] = (total / n_train).numpy()
        yield Progress(offset + epoch + 1, total_epochs, f"model {member + 1}/{model.n_models}, epoch "
                       f"{epoch + 1}/{model.epochs}, loss {history[epoch, 0]:.4f}", "fit")
    return {"net": ema.eval(), "content": content_all, "cluster_names": list(clusters.names),
            "cluster_sizes": clusters.sizes(), "cluster_source": clusters.source, "history": history}


#: anchor weights tried by the inner CV (0 = the kNN imputation, 1 = SpaIM alone / the full residual)
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))
#: the inner CV trains one network for this fraction of the epochs
CV_EPOCH_DIVISOR = 3
#: anchor weight when no inner CV can run (fewer than 4 measured genes) and none is given
FALLBACK_WEIGHT = 0.5


def combine(net: np.ndarray, base: np.ndarray | None, anchor: str, weight: float) -> np.ndarray:
    """The prediction from the networks' output ``net`` and the kNN imputation ``base`` (cells × genes)."""
    if base is None or anchor == "none":
        return np.maximum(net, 0)
    if anchor == "residual":
        return np.maximum(base + weight * net, 0)
    return np.maximum(weight * net + (1.0 - weight) * base, 0)


def inner_cv_fit_steps(model, data: ImputeData) -> ProgressGen[None]:
    """Inner CV over the measured genes with a smaller SpaIM (one network, a third of the epochs, at most
    ``cv_cells`` cells: the output width is the number of cells, so a cell subsample is a smaller problem of the
    same kind). Sets ``model.anchor_weight_`` (when ``anchor_weight`` is None: the weight of :data:`WEIGHT_GRID`
    with the best median r of the held-out genes; ties go to the smaller weight, i.e. towards kNN) and
    ``model.expected_r_`` (see :mod:`.expected_r`), and ``model.inner_cv_`` (per measured gene)."""
    from ..progress import relay
    from .expected_r import (
        InnerCV,
        expected_r_for,
        gene_descriptors,
        inner_cv_steps,
        pearson_per_gene,
        target_expected_r,
    )

    params = {**model.get_params(), "expected_r": False, "n_models": 1, "anchor_weight": 1.0,
              "epochs": max(1, model.epochs // CV_EPOCH_DIVISOR)}
    fold_models = []

    def factory():
        fold_models.append(type(model)(**params))
        return fold_models[-1]

    cv = yield from relay(inner_cv_steps(factory, data, max_cells=model.cv_cells, seed=model.seed), "fit", 0, 1,
                          span=1, prefix="inner CV: ")
    parts = [m.raw_predict(m.target_genes_) for m in fold_models]
    net = np.hstack([p[0] for p in parts])
    base = None if parts[0][1] is None else np.hstack([p[1] for p in parts])
    if model.anchor != "none" and model.anchor_weight is None:
        scores = [float(np.median(pearson_per_gene(cv.truth, combine(net, base, model.anchor, w))))
                  for w in WEIGHT_GRID]
        model.anchor_weight_ = float(WEIGHT_GRID[int(np.argmax(scores))])
        model.cv_weight_scores_ = dict(zip(WEIGHT_GRID, scores))
    pred = combine(net, base, model.anchor, model.anchor_weight_ if model.anchor != "none" else 1.0)
    desc, at = np.zeros_like(cv.descriptors), 0
    for m in fold_models:  # descriptors of the prediction as combined (its spread is one of them)
        sl = slice(at, at + len(m.target_genes_))
        desc[sl] = gene_descriptors(data, m.target_genes_, m.shared_genes_, pred[:, sl])
        at = sl.stop
    cv = InnerCV(cv.genes, cv.rows, cv.truth, pred, desc, cv.seconds)
    model.inner_cv_ = cv.table()
    if model.expected_r and data.target_genes:
        full = yield from relay(model.predict_steps(data), "fit", 1, 1, span=0)
        model.expected_r_ = target_expected_r(expected_r_for(cv), data, full[cv.rows]).astype(np.float32)

