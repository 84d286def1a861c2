"""SpaIM's kNN anchor (``anchor="blend"`` / ``"residual"``: a deviation from the published SpaIM, see :mod:`.spaim`).

The anchor of a gene is its kNN imputation (:class:`~.knn.KNNImputer`, cosine neighbours in the z-scored shared
genes): SpaIM's output is blended with it, or the generator predicts the residual over it. Training genes are
measured, so their anchor must not see them: it is the kNN imputation from neighbours found *without* the gene
(``folds`` seeded folds of the shared genes, each imputed from the others). Target genes are anchored on
neighbours found with every shared gene. The anchor of any reference gene is ``W @ reference[:, gene]`` with
``W`` the (cells × k) neighbour weights, so a saved model keeps ``W`` and the reference rows it reads (not the
whole reference) and can still anchor any reference gene.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..progress import Progress, ProgressGen, relay
from .base import ImputeData


@dataclass
class KNNAnchor:
    """Neighbour weights of every spatial cell over a subset of reference rows, and those rows' values."""

    idx: np.ndarray  # (cells, k) positions in ``values``
    weights: np.ndarray  # (cells, k) row-stochastic
    values: Any  # (used reference rows, reference genes): dense array or CSR

    def matrix(self) -> sp.csr_matrix:
        n, k = self.idx.shape
        rows = np.repeat(np.arange(n), k)
        return sp.csr_matrix((self.weights.ravel(), (rows, self.idx.ravel())), shape=(n, self.values.shape[0]))

    def predict(self, columns: np.ndarray) -> np.ndarray:
        """(cells, len(columns)) anchor of the reference genes at positions ``columns``."""
        part = self.values[:, np.asarray(columns, np.int64)]
        part = part.toarray() if sp.issparse(part) else np.asarray(part)
        return np.asarray(self.matrix() @ part, dtype=np.float32)

    def state(self) -> dict[str, Any]:
        v = self.values
        if sp.issparse(v):
            v = {"csr_data": v.data, "csr_indices": v.indices, "csr_indptr": v.indptr,
                 "csr_shape": np.asarray(v.shape, np.int64)}
        return {"idx": self.idx.astype(np.int32), "weights": self.weights.astype(np.float32), "values": v}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> KNNAnchor:
        v = s["values"]
        if isinstance(v, dict):
            v = sp.csr_matrix((v["csr_data"], v["csr_indices"], v["csr_indptr"]),
                              shape=tuple(int(n) for n in v["csr_shape"]))
        return cls(np.asarray(s["idx"], np.int64), np.asarray(s["weights"], np.float32), v)


def _knn(k: int, seed: int, device: str, n_reference: int):
    from .knn import KNNImputer

    return KNNImputer(k=min(k, n_reference), expected_r=False, seed=seed, device=device)


def knn_anchor_steps(data: ImputeData, *, train: bool = True, k: int = 30, folds: int = 5, seed: int = 0,
                     device: str = "cpu") -> ProgressGen[tuple[np.ndarray | None, KNNAnchor]]:
    """(fold-out anchor of the shared genes, genes × cells, or None without ``train``; :class:`KNNAnchor` of
    all cells)."""
    from .expected_r import inner_folds
    from .knn import cosine_topk, neighbour_weight_values

    genes = list(data.shared_genes)
    n = len(genes)
    # each shared gene's training anchor comes from the other genes only (folds; one gene at a time below 4 genes),
    # so SpaIM never learns to trust an anchor that saw the gene; a single shared gene has nothing else to use
    parts = (inner_folds(n, folds, seed) if n >= 4 else [np.array([i]) for i in range(n)] if n > 1
             else [np.arange(n)]) if train else []
    train = np.zeros((n, data.n_cells), np.float32) if parts else None
    for f, held in enumerate(parts):
        keep = np.setdiff1d(np.arange(n), held)
        if len(keep) == 0:  # one shared gene: nothing to leave it out from
            keep = np.arange(n)
        sub = ImputeData(data.spatial[:, keep], data.reference, data.reference_genes, [genes[i] for i in keep],
                         [genes[i] for i in held], data.spatial_obs_names, None, None)
        model = _knn(k, seed, device, data.n_reference)
        pred = yield from relay(model.fit_predict_steps(sub), "fit", f, len(parts) + 1, span=1,
                                prefix="kNN anchor: ")
        train[held] = pred.T
    model = _knn(k, seed, device, data.n_reference)
    yield from relay(model.fit_steps(data.with_targets([])), "fit", len(parts), len(parts) + 1, span=0,
                     prefix="kNN anchor: ")
    idx, sim = yield from relay(cosine_topk(model._embed_spatial(data.spatial), model.reference_embedding_, model.k,
                                            device=device), "fit", len(parts), len(parts) + 1, span=1,
                                prefix="kNN anchor: ")
    weights = neighbour_weight_values(sim, model.weighting)
    used, local = np.unique(idx, return_inverse=True)
    values = data.reference[used]
    anchor = KNNAnchor(local.reshape(idx.shape).astype(np.int64), weights, values)
    yield Progress(len(parts) + 1, len(parts) + 1, "kNN anchor ready", "fit")
    return train, anchor


__all__ = ["KNNAnchor", "knn_anchor_steps"]
