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
request, library-size normalisation before log1p, deterministic with a seed. ``content_dropout`` restores the
public code's augmentation (each content input zeroed with that probability during training, the rest scaled
by ``1 / (1 - p)``); it is off by default because it did not help on the tuning pairs
(``benchmarks/spaim_generalisation.md``).

**Deviation from the published SpaIM: the kNN anchor** (``anchor``, default ``"blend"``). With K coarse
reference clusters the content cannot carry the per-cell detail a kNN imputation gets from fine neighbours,
so the published model falls below kNN off the pair it was tuned on (Xenium: median r 0.48 vs 0.56). Here
the kNN imputation of the gene (:class:`~.knn.KNNImputer`, k = 30, for the same spatial cells, see
:mod:`.spaim_anchor`) enters the prediction:

* ``"blend"`` (default): prediction = ``w`` · SpaIM + (1 − ``w``) · kNN; the networks are the published ones;
* ``"residual"``: the networks learn the residual of each training gene over its kNN imputation from the
  *other* shared genes (5 seeded folds; the last decoder layer starts at zero, so an untrained network
  predicts kNN); prediction = kNN + ``w`` · residual;
* ``"none"``: the published model alone.

``anchor_weight`` = ``w``; ``None`` (default) chooses it in [0, 1] (steps of 0.1) by inner cross-validation
over the measured genes (the held-out genes leave the inputs and the library size; one network, a third of the
epochs, at most ``cv_cells`` cells: see :mod:`.spaim_training`). ``w = 0`` is exactly the kNN imputation, so
the weight can only give up SpaIM where it does not predict held-out genes. The same inner CV gives
``var["expected_r"]`` (:mod:`.expected_r`). Defaults were chosen on the ``osmfish`` and ``xenium`` pairs only;
``xenium18k`` and ``osmfish_self`` are the report pairs (``benchmarks/spaim_generalisation.md``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import InputError
from ..progress import Progress, ProgressGen, relay
from .base import ImputeData, Imputer
from .spaim_anchor import KNNAnchor, knn_anchor_steps
from .spaim_network import build_network, deterministic, estimate_memory
from .spaim_training import FALLBACK_WEIGHT, combine, inner_cv_fit_steps, train_member_steps

#: how the kNN imputation enters (see the module docstring)
ANCHORS = ("none", "blend", "residual")


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
    content_dropout : probability of zeroing each content input during training (the public code's
        augmentation; 0 = off).
    anchor : ``"blend"``, ``"residual"`` or ``"none"``: how the kNN imputation enters (module docstring).
    anchor_weight : weight ``w`` of SpaIM against kNN in [0, 1]; ``None`` = chosen by inner CV.
    expected_r : estimate each target gene's expected Pearson r (``var["expected_r"]``) from the inner CV.
    cv_cells : spatial cells (a seeded subsample) the inner CV trains its smaller networks on.
    """

    method = "spaim"
    cell_independent_predict = False  # one network output per spatial cell: trained per slide
    param_names = ("cluster_key", "resolution", "hidden", "style_dim", "epochs", "batch_size", "lr",
                   "weight_decay", "scale_weight", "mixup", "n_models", "ema", "content_dropout", "anchor",
                   "anchor_weight", "expected_r", "cv_cells", "seed", "device")

    def __init__(self, cluster_key: str | None = None, resolution: float = 1.0,
                 hidden: tuple[int, int] = (512, 256), style_dim: int = 64, epochs: int = 60,
                 batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 1e-4, scale_weight: float = 1.0,
                 mixup: bool = False, n_models: int = 3, ema: float = 0.9, content_dropout: float = 0.0,
                 anchor: str = "blend", anchor_weight: float | None = None, expected_r: bool = True,
                 cv_cells: int = 3000, *, seed: int = 0, device: str = "auto"):
        super().__init__(seed=seed, device=device)
        self.content_dropout = float(content_dropout)
        if not 0.0 <= self.content_dropout < 1.0:
            raise InputError(f"content_dropout must be in [0, 1) (got {self.content_dropout}).",
                             "use e.g. content_dropout=0.1, or 0 to turn it off.")
        if anchor not in ANCHORS:
            raise InputError(f"Unknown anchor {anchor!r}.", f"use one of {', '.join(ANCHORS)}.")
        self.anchor = anchor
        self.anchor_weight = None if anchor_weight is None else float(anchor_weight)
        if self.anchor_weight is not None and not 0.0 <= self.anchor_weight <= 1.0:
            raise InputError(f"anchor_weight must be in [0, 1] (got {self.anchor_weight}).",
                             "use e.g. anchor_weight=0.5, or leave it unset (chosen by inner CV).")
        self.anchor_weight_: float | None = None
        self.expected_r = bool(expected_r)
        self.cv_cells = int(cv_cells)
        self.expected_r_: np.ndarray | None = None
        self.anchor_: KNNAnchor | None = None
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
        from ..device import torch_device

        return torch_device(self.device)

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
        self.expected_r_ = None
        anchor_train, self.anchor_ = None, None
        if self.anchor != "none":
            anchor_train, self.anchor_ = yield from relay(knn_anchor_steps(
                data, train=self.anchor == "residual", seed=self.seed, device=str(dev)), "fit", 0, 100, span=0)
        self.anchor_weight_ = None if self.anchor == "none" else (
            FALLBACK_WEIGHT if self.anchor_weight is None else self.anchor_weight)
        members = []
        for member in range(self.n_models):
            members.append((yield from train_member_steps(self, data, member, dev, anchor_train)))
        self.members_ = members
        self.reference_genes_ = list(data.reference_genes)
        self.shared_genes_ = list(data.shared_genes)
        self.target_genes_ = list(data.target_genes)
        self.n_cells_ = n_cells
        self.cell_ids_ = list(data.spatial_obs_names) if data.spatial_obs_names is not None else []
        self.constants_ = {k: v for k, v in data.constants.items() if isinstance(v, (int, float, str))}
        self.fitted_ = True
        choose = self.anchor != "none" and self.anchor_weight is None
        if len(data.shared_genes) >= 4 and (choose or (self.expected_r and data.target_genes)):
            yield from inner_cv_fit_steps(self, data)

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
        out = np.empty((self.n_cells_, len(genes)), dtype=np.float32)
        rows = np.array([pos[g] for g in genes], dtype=np.int64)
        for start, stop, (net, base) in self._raw_batches(rows):
            out[:, start:stop] = combine(net, base, self.anchor, self.anchor_weight_ or 0.0)
            yield Progress(stop, len(genes), f"genes {stop}/{len(genes)}", "predict")
        return out

    def _raw_batches(self, rows: np.ndarray, batch: int | None = None):
        """:meth:`_raw` of ``rows`` in batches of ``batch`` (default ``batch_size``) genes, yielding
        ``(start, stop, raw)``. Out of device memory: smaller batches, then the CPU with a warning
        (:func:`~napari_spatial_impute.device.chunks_with_fallback`)."""
        from ..device import chunks_with_fallback

        return chunks_with_fallback(len(rows), batch or self.batch_size, str(self._torch_device()),
                                    lambda start, stop, dev: self._raw(rows[start:stop], dev),
                                    what="SpaIM's prediction")

    def _raw(self, rows: np.ndarray, dev) -> tuple[np.ndarray, np.ndarray | None]:
        """(mean network output, kNN imputation or None) of the reference genes at positions ``rows``."""
        import torch

        with torch.no_grad(), deterministic():
            acc = None
            for member in self.members_:
                net = member["net"].to(dev).eval()
                pred, _ = net.generate(torch.from_numpy(member["content"][rows]).to(dev))
                acc = pred if acc is None else acc + pred
            net_out = (acc / len(self.members_)).T.cpu().numpy()
        return net_out, None if self.anchor_ is None else self.anchor_.predict(rows)

    def raw_predict(self, genes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`_raw` of some reference genes (the parts the inner CV weighs against each other): one batch,
        with the same out-of-memory fallback as :meth:`predict` (smaller batches, then the CPU)."""
        pos = {g: i for i, g in enumerate(self.reference_genes_)}
        rows = np.array([pos[g] for g in genes], dtype=np.int64)
        if not len(rows):
            return self._raw(rows, self._torch_device())
        parts = [raw for _, _, raw in self._raw_batches(rows, len(rows))]
        net = np.concatenate([p[0] for p in parts], axis=1)
        return net, None if self.anchor_ is None else np.concatenate([p[1] for p in parts], axis=1)

    # --- bundle ----------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        members = [{"weights": {k: v.detach().cpu().numpy() for k, v in m["net"].state_dict().items()},
                    "content": m["content"], "cluster_names": list(m["cluster_names"]),
                    "cluster_sizes": np.asarray(m["cluster_sizes"], np.int64), "cluster_source": m["cluster_source"],
                    "history": m["history"]} for m in self.members_]
        return {"members": members, "reference_genes": list(self.reference_genes_), "n_cells": int(self.n_cells_),
                "cell_ids": list(self.cell_ids_), "constants": dict(self.constants_),
                **({} if self.anchor_ is None else {"anchor": self.anchor_.state(),
                                                     "anchor_weight": float(self.anchor_weight_)}),
                **({} if self.expected_r_ is None else {"expected_r": self.expected_r_})}

    def _load_state(self, state: dict[str, Any]) -> None:
        import torch

        self.reference_genes_ = list(state["reference_genes"])
        self.n_cells_ = int(state["n_cells"])
        self.cell_ids_ = list(state["cell_ids"])
        self.constants_ = dict(state["constants"])
        # bundles written before the kNN anchor existed have none: they predict as the plain network
        self.anchor_ = KNNAnchor.from_state(state["anchor"]) if "anchor" in state else None
        if self.anchor_ is None:
            self.anchor = "none"
        self.anchor_weight_ = float(state["anchor_weight"]) if "anchor" in state else None
        self.expected_r_ = None if state.get("expected_r") is None else np.asarray(state["expected_r"], np.float32)
        self.members_ = []
        for m in state["members"]:
            content = np.asarray(m["content"], dtype=np.float32)
            net = build_network(self.n_cells_, content.shape[1], self.hidden, self.style_dim)
            net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in m["weights"].items()})
            self.members_.append({"net": net.eval(), "content": content,
                                  "cluster_names": list(m["cluster_names"]),
                                  "cluster_sizes": np.asarray(m["cluster_sizes"]),
                                  "cluster_source": str(m["cluster_source"]), "history": np.asarray(m["history"])})

    def info(self) -> dict:
        """How the kNN imputation was weighed (goes to ``uns`` as ``model_info``)."""
        out: dict[str, Any] = {"anchor": self.anchor, "anchor_weight": self.anchor_weight_}
        if getattr(self, "cv_weight_scores_", None):
            out["inner_cv_median_r"] = {str(w): round(v, 4) for w, v in self.cv_weight_scores_.items()}
        return out

    def gene_annotations(self):
        """Per target gene: its largest reference cluster mean (low = little signal to transfer)."""
        import pandas as pd

        if not self.fitted_:
            return None
        pos = {g: i for i, g in enumerate(self.reference_genes_)}
        rows = [pos[g] for g in self.target_genes_]
        df = pd.DataFrame({"spaim_reference_max_cluster_mean": self.content_[rows].max(axis=1)},
                          index=pd.Index(self.target_genes_))
        if self.expected_r_ is not None and len(self.expected_r_) == len(self.target_genes_):
            df["expected_r"] = self.expected_r_
            df["reliability"] = self.expected_r_
        return df


__all__ = ["SpaIMImputer", "estimate_memory"]
