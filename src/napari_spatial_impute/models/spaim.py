"""SpaIM: spatial-transcriptomics imputation by style transfer (re-implemented).

One training sample is one gene. Its *content* is its mean log-normalised expression in each of the K
reference clusters (cell types from ``reference.obs[cluster_key]`` or a seeded Leiden clustering); its
*target* is its log-normalised expression over all N cells of the spatial dataset. Two paths share one
decoder:

* the **ST autoencoder** encodes the target with a content encoder and a style encoder (two
  Linear–LayerNorm–ReLU blocks each, widths ``hidden`` = 512 / 256) and decodes with the recursive
  two-level fusion ``dec1(dec2(c2 · s2) + c1 · s1)``;
* the **ST generator** encodes the scRNA-seq content (K → 256 → 512) and a learned style code (one for
  the dataset) and decodes through the same decoder.

Losses (as the SpaIM paper): MSE between the two paths' content codes at both levels, Gram-matrix style
loss between the generated and the real style codes, and cosine terms (real reconstruction vs target,
generated vs real). Added here, because the public code has no scale anchor: ``scale_weight`` × MSE of
both outputs to the target on the normalised log scale, and a cosine between the generated output and
the target (the path used at prediction time). For the small-sample regime (tens of shared genes) the
prediction uses a moving average of the weights (``ema``) and averages ``n_models`` independently seeded
networks (each with its own seeded clustering); batches can be augmented with mixtures of two genes
(``mixup``, off by default). Genes are trained and predicted in mini-batches, so memory is bounded by
the model, not by the number of genes.

**The model is tied to one spatial dataset**: the output width is the number of spatial cells N, so a
fitted model predicts genes for exactly those cells (it can be saved, re-loaded and asked for any other
reference gene without the training data; the content of every reference gene is stored in the bundle).
Its parameter count grows as ~3 · 512 · N per network: see :func:`estimate_memory`
(the network and its size live in :mod:`.spaim_network`).

Fixes over the public code: every requested gene is predicted (all batches), gene order follows the
request, library-size normalisation before log1p, deterministic with a seed.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..clustering import cluster_means, reference_clusters_steps
from ..errors import InputError
from ..progress import Progress, ProgressGen, Ticker
from .base import ImputeData, Imputer
from .spaim_network import adamw, build_network, check_memory, deterministic, estimate_memory, gram


class SpaIMImputer(Imputer):
    """SpaIM style-transfer imputer, trained per spatial dataset (output width = number of spatial cells).

    Parameters
    ----------
    cluster_key : column of ``reference.obs`` holding cell types; ``None`` = seeded Leiden clusters.
    resolution : Leiden resolution when clustering the reference.
    hidden : widths of the two encoder levels (512, 256).
    style_dim : length of the learned style code.
    epochs, batch_size, lr, weight_decay : training of each network (AdamW, genes per batch).
    scale_weight : weight of the added MSE-to-target term on the log scale (0 = public SpaIM losses only).
    mixup : train also on random convex mixtures of two training genes (content and target mixed alike).
        Off by default: it helped a single network on osmFISH but not the 3-network average.
    n_models : networks averaged at prediction; member ``i`` uses seed ``seed + 1000 i`` for its weights,
        its batches and (without ``cluster_key``) its Leiden clustering.
    ema : decay of an exponential moving average of the weights used for prediction (0 = last weights).
    """

    method = "spaim"
    cell_independent_predict = False  # one network output per spatial cell: trained per slide
    param_names = ("cluster_key", "resolution", "hidden", "style_dim", "epochs", "batch_size", "lr",
                   "weight_decay", "scale_weight", "mixup", "n_models", "ema", "seed", "device")

    def __init__(self, cluster_key: str | None = None, resolution: float = 1.0,
                 hidden: tuple[int, int] = (512, 256), style_dim: int = 64, epochs: int = 60,
                 batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 1e-4, scale_weight: float = 1.0,
                 mixup: bool = False, n_models: int = 3, ema: float = 0.9, *, seed: int = 0,
                 device: str = "auto"):
        super().__init__(seed=seed, device=device)
        self.cluster_key = cluster_key or None
        self.resolution = float(resolution)
        hidden = tuple(int(h) for h in hidden)
        if len(hidden) != 2 or min(hidden) < 1:
            raise InputError(f"hidden must be two positive widths (got {hidden}).", "e.g. hidden=(512, 256).")
        self.hidden = hidden
        self.style_dim = int(style_dim)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.n_models = int(n_models)
        if min(self.epochs, self.batch_size, self.n_models) < 1:
            raise InputError(f"epochs, batch_size and n_models must be ≥ 1 (got {self.epochs}, "
                             f"{self.batch_size}, {self.n_models}).", "use e.g. epochs=60, batch_size=64, n_models=3.")
        self.ema = float(ema)
        if not 0.0 <= self.ema < 1.0:
            raise InputError(f"ema must be in [0, 1) (got {self.ema}).", "use e.g. ema=0.9, or 0 to turn it off.")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.scale_weight = float(scale_weight)
        self.mixup = bool(mixup)
        self.members_: list[dict[str, Any]] = []

    # --- helpers ---------------------------------------------------------------------------------------
    def _torch_device(self):
        import torch

        from ..device import resolve_device

        return torch.device(resolve_device(self.device))

    def _losses(self, net, content, target):
        import torch
        from torch.nn.functional import cosine_similarity, mse_loss

        real, (rc1, rc2, rs1, rs2) = net.autoencode(target)
        fake, (fc1, fc2, fs1, fs2) = net.generate(content)
        content_loss = mse_loss(rc1, fc1) + mse_loss(rc2, fc2)
        style_loss = mse_loss(gram(fs1), gram(rs1).detach()) + mse_loss(gram(fs2), gram(rs2).detach())
        cos = lambda a, b: 1 - cosine_similarity(a, b, dim=1).mean()  # noqa: E731
        cosine_loss = cos(real, fake) + cos(real, target) + cos(fake, target)
        loss = content_loss + style_loss + cosine_loss
        if self.scale_weight > 0:
            loss = loss + self.scale_weight * (mse_loss(fake, target) + mse_loss(real, target))
        return loss, torch.stack([content_loss, style_loss, cosine_loss]).detach()

    def _train_member(self, data: ImputeData, member: int, dev) -> ProgressGen[dict[str, Any]]:
        """Cluster the reference and train one network; returns the member's state."""
        import copy

        import torch

        seed = self.seed + 1000 * member
        total_epochs = self.epochs * self.n_models
        offset = member * self.epochs
        clustering = Progress(offset, total_epochs, f"model {member + 1}/{self.n_models}: clustering the reference",
                              "fit")
        yield clustering
        key = self.cluster_key or None
        # Leiden (and the first import of scanpy) runs on a worker thread; heartbeats meanwhile (Cancel)
        clusters = yield from reference_clusters_steps(data.reference_dense(), data.reference_obs, key,
                                                       resolution=self.resolution, seed=seed, progress=clustering)
        k = clusters.n_clusters
        n_cells, n_train = data.spatial.shape
        if member == 0:
            check_memory(estimate_memory(n_cells, n_train + len(data.target_genes), k, self.hidden,
                                         self.style_dim, self.batch_size, self.n_models), str(dev),
                         f"SpaIM on {n_cells} cells")
        content_all = cluster_means(data.reference_dense(), clusters.labels, k).T.copy()  # reference genes × K
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)
            net = build_network(n_cells, k, self.hidden, self.style_dim).to(dev)
        ema = copy.deepcopy(net) if self.ema > 0 else net
        gen = torch.Generator().manual_seed(seed)
        content = torch.from_numpy(content_all[data.shared_idx]).to(dev)
        target = torch.from_numpy(np.ascontiguousarray(data.spatial.T)).to(dev)  # genes × cells
        opt = adamw(net.parameters(), self.lr, self.weight_decay, dev)
        history = np.zeros((self.epochs, 4), dtype=np.float32)
        tick = Ticker()
        for epoch in range(self.epochs):
            with deterministic():
                net.train()
                order = torch.randperm(n_train, generator=gen)
                total = torch.zeros(4)
                for start in range(0, n_train, self.batch_size):
                    idx = order[start:start + self.batch_size].to(dev)
                    c, t = content[idx], target[idx]
                    if self.mixup and len(idx) > 1:
                        lam = torch.rand(len(idx), 1, generator=gen).to(dev)
                        partner = torch.randperm(len(idx), generator=gen).to(dev)
                        c = torch.cat([c, lam * c + (1 - lam) * c[partner]])
                        t = torch.cat([t, lam * t + (1 - lam) * t[partner]])
                    loss, parts = self._losses(net, c, t)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if self.ema > 0:
                        with torch.no_grad():
                            for pe, pn in zip(ema.parameters(), net.parameters()):
                                pe.lerp_(pn, 1.0 - self.ema)
                    total += torch.cat([loss.detach().reshape(1), parts]).cpu() * len(idx)
                    if tick.due():  # a heartbeat between batches: Cancel answered within a second
                        yield Progress(offset + epoch, total_epochs, f"model {member + 1}/{self.n_models}: "
                                       "training", "fit")
                history[epoch] = (total / n_train).numpy()
            yield Progress(offset + epoch + 1, total_epochs, f"model {member + 1}/{self.n_models}, epoch "
                           f"{epoch + 1}/{self.epochs}, loss {history[epoch, 0]:.4f}", "fit")
        return {"net": ema.eval(), "content": content_all, "cluster_names": list(clusters.names),
                "cluster_sizes": clusters.sizes(), "cluster_source": clusters.source, "history": history}

    # --- fit / predict -------------------------------------------------------------------------------
    def fit_steps(self, data: ImputeData) -> ProgressGen[None]:
        """Train ``n_models`` networks; yields one :class:`Progress` per epoch (cancel = stop resuming)."""
        dev = self._torch_device()
        if dev.type == "cuda":  # cuBLAS needs this for deterministic matmuls (read when its handle is made)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        n_cells, n_train = data.spatial.shape
        if n_train < 2:
            raise InputError(f"Only {n_train} shared gene(s) to train on; SpaIM learns from shared genes.",
                             "use a reference sharing more genes with the spatial panel.")
        if n_cells < 2:
            raise InputError("The spatial data has fewer than 2 cells.", "impute a dataset with several cells.")
        self.fitted_ = False
        members = []
        for member in range(self.n_models):
            members.append((yield from self._train_member(data, member, dev)))
        self.members_ = members
        self.reference_genes_ = list(data.reference_genes)
        self.shared_genes_ = list(data.shared_genes)
        self.target_genes_ = list(data.target_genes)
        self.n_cells_ = n_cells
        self.cell_ids_ = list(data.spatial_obs_names) if data.spatial_obs_names is not None else []
        self.constants_ = {k: v for k, v in data.constants.items() if isinstance(v, (int, float, str))}
        self.fitted_ = True

    @property
    def content_(self) -> np.ndarray:
        """Content (reference genes × K cluster means) of the first network."""
        return self.members_[0]["content"]

    @property
    def cluster_names_(self) -> list[str]:
        return self.members_[0]["cluster_names"]

    @property
    def n_clusters_(self) -> int:
        return len(self.cluster_names_)

    @property
    def cluster_source_(self) -> str:
        return self.members_[0]["cluster_source"]

    def predict_steps(self, data: ImputeData | None = None) -> ProgressGen[np.ndarray]:
        """Predict ``data.target_genes`` (or, without data, the genes named at fit) for the fitted cells."""
        import torch

        self._check_fitted()
        genes = self.target_genes_ if data is None else list(data.target_genes)
        if data is not None and data.n_cells != self.n_cells_:
            raise InputError(f"This SpaIM model was trained on {self.n_cells_} spatial cells but the data has "
                             f"{data.n_cells}; SpaIM is trained per spatial dataset.",
                             "fit a new model on this dataset.")
        if data is not None and data.spatial_obs_names is not None and self.cell_ids_ \
                and list(data.spatial_obs_names) != self.cell_ids_:
            raise InputError("The spatial cells differ from those this SpaIM model was trained on.",
                             "fit a new model on this dataset (SpaIM is trained per spatial dataset).")
        pos = {g: i for i, g in enumerate(self.reference_genes_)}
        missing = [g for g in genes if g not in pos]
        if missing:
            raise InputError(f"{len(missing)} requested gene(s) are not in the model's reference: {missing[:5]}.",
                             "ask for genes the reference measures.")
        dev = self._torch_device()
        out = np.empty((self.n_cells_, len(genes)), dtype=np.float32)
        rows = np.array([pos[g] for g in genes], dtype=np.int64)
        n_batches = max(1, -(-len(genes) // self.batch_size))
        nets = [m["net"].to(dev).eval() for m in self.members_]
        for b, start in enumerate(range(0, len(genes), self.batch_size)):
            stop = min(len(genes), start + self.batch_size)
            with torch.no_grad(), deterministic():
                acc = None
                for net, member in zip(nets, self.members_):
                    pred, _ = net.generate(torch.from_numpy(member["content"][rows[start:stop]]).to(dev))
                    acc = pred if acc is None else acc + pred
                out[:, start:stop] = (acc / len(nets)).clamp_min(0).T.cpu().numpy()
            yield Progress(b + 1, n_batches, f"genes {stop}/{len(genes)}", "predict")
        return out

    # --- bundle ----------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        members = [{"weights": {k: v.detach().cpu().numpy() for k, v in m["net"].state_dict().items()},
                    "content": m["content"], "cluster_names": list(m["cluster_names"]),
                    "cluster_sizes": np.asarray(m["cluster_sizes"], np.int64), "cluster_source": m["cluster_source"],
                    "history": m["history"]} for m in self.members_]
        return {"members": members, "reference_genes": list(self.reference_genes_), "n_cells": int(self.n_cells_),
                "cell_ids": list(self.cell_ids_), "constants": dict(self.constants_)}

    def _load_state(self, state: dict[str, Any]) -> None:
        import torch

        self.reference_genes_ = list(state["reference_genes"])
        self.n_cells_ = int(state["n_cells"])
        self.cell_ids_ = list(state["cell_ids"])
        self.constants_ = dict(state["constants"])
        self.members_ = []
        for m in state["members"]:
            content = np.asarray(m["content"], dtype=np.float32)
            net = build_network(self.n_cells_, content.shape[1], self.hidden, self.style_dim)
            net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in m["weights"].items()})
            self.members_.append({"net": net.eval(), "content": content,
                                  "cluster_names": list(m["cluster_names"]),
                                  "cluster_sizes": np.asarray(m["cluster_sizes"]),
                                  "cluster_source": str(m["cluster_source"]), "history": np.asarray(m["history"])})

    def gene_annotations(self):
        """Per target gene: its largest reference cluster mean (low = little signal to transfer)."""
        import pandas as pd

        if not self.fitted_:
            return None
        pos = {g: i for i, g in enumerate(self.reference_genes_)}
        rows = [pos[g] for g in self.target_genes_]
        return pd.DataFrame({"spaim_reference_max_cluster_mean": self.content_[rows].max(axis=1)},
                            index=pd.Index(self.target_genes_))


__all__ = ["SpaIMImputer", "estimate_memory"]
