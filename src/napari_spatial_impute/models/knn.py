"""kNN imputation in a joint space of the shared genes (the SpaGE / kNN family).

Each dataset's shared genes are z-scored *within* that dataset (removing platform scale), optionally
projected on a joint PCA, and every spatial cell takes the (similarity-weighted) mean of its ``k``
nearest reference cells (cosine) for the target genes. Neighbours are found in chunks of cells on the
chosen device and averaged through a sparse weight matrix, so no cells × k × genes tensor is built.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from ..progress import Progress, ProgressGen, relay, run_to_end
from .base import ImputeData, Imputer


def zscore_columns(X: np.ndarray, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column z-scores and the (mean, std) used."""
    mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
    std = X.std(axis=0, dtype=np.float64).astype(np.float32)
    std = np.where(std < eps, 1.0, std).astype(np.float32)
    return (X - mean) / std, mean, std


def cosine_topk(query: np.ndarray, bank: np.ndarray, k: int, *, device: str = "cpu",
                max_bytes: int = 256 << 20) -> ProgressGen[tuple[np.ndarray, np.ndarray]]:
    """Top-``k`` cosine neighbours of every ``query`` row in ``bank``, in chunks of queries.

    Yields progress; returns (indices (n, k) int64, similarities (n, k) float32). Out of memory on the device:
    smaller chunks, then the CPU (:func:`~napari_spatial_impute.device.chunks_with_fallback`).
    """
    import torch

    from ..device import chunks_with_fallback

    banks: dict = {}

    def step(start: int, stop: int, dev: str):
        if dev not in banks:
            banks.clear()  # at most one copy of the bank: the device's, or the CPU's after a fallback
            banks[dev] = torch.nn.functional.normalize(
                torch.from_numpy(np.ascontiguousarray(bank, np.float32)).to(dev), dim=1)
        q = torch.from_numpy(np.ascontiguousarray(query[start:stop], np.float32)).to(dev)
        vals, inds = torch.topk(torch.nn.functional.normalize(q, dim=1) @ banks[dev].T, k, dim=1)
        return inds.cpu().numpy(), vals.cpu().numpy()

    n = query.shape[0]
    chunk = int(max(1, min(n, max_bytes // max(1, 4 * bank.shape[0]))))
    idx_out = np.empty((n, k), dtype=np.int64)
    sim_out = np.empty((n, k), dtype=np.float32)
    for start, stop, (inds, vals) in chunks_with_fallback(n, chunk, str(device), step, what="the neighbour search"):
        idx_out[start:stop], sim_out[start:stop] = inds, vals
        yield Progress(stop, n, f"neighbours {stop}/{n} cells", "knn")
    return idx_out, sim_out


def neighbour_weight_values(sim: np.ndarray, weighting: str = "similarity") -> np.ndarray:
    """(n, k) row-stochastic weights of each row's neighbours, in the order of ``sim``."""
    n, k = sim.shape
    if weighting == "uniform":
        return np.full((n, k), 1.0 / k, dtype=np.float32)
    w = np.clip(sim, 0.0, None) + 1e-6
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def neighbour_weights(idx: np.ndarray, sim: np.ndarray, n_bank: int, weighting: str = "similarity") -> sp.csr_matrix:
    """Sparse (n, n_bank) row-stochastic matrix averaging each row's neighbours."""
    n, k = idx.shape
    w = neighbour_weight_values(sim, weighting)
    rows = np.repeat(np.arange(n), k)
    return sp.csr_matrix((w.ravel(), (rows, idx.ravel())), shape=(n, n_bank))


class KNNImputer(Imputer):
    """Cosine kNN in a joint z-scored (optionally PCA) space of the shared genes.

    Parameters
    ----------
    k : neighbours per spatial cell (default 30).
    n_components : joint PCA dimensions; ``None`` = PCA only when more than 50 shared genes.
    weighting : ``"similarity"`` (clipped cosine) or ``"uniform"``.
    expected_r : estimate each target gene's expected Pearson r (``var["expected_r"]``) from inner
        cross-validation over the measured genes (on at most ``cv_cells`` cells; see :mod:`.expected_r`).
    """

    method = "knn"
    param_names = ("k", "n_components", "weighting", "chunk_size", "expected_r", "cv_cells", "seed", "device")

    def __init__(self, k: int = 30, n_components: int | None = None, weighting: str = "similarity",
                 chunk_size: int = 50_000, expected_r: bool = True, cv_cells: int = 3000, *, seed: int = 0,
                 device: str = "auto"):
        super().__init__(seed=seed, device=device)
        self.expected_r = bool(expected_r)
        self.cv_cells = int(cv_cells)
        self.expected_r_: np.ndarray | None = None
        self.chunk_size = int(chunk_size)
        self.k = int(k)
        self.n_components = n_components
        if weighting not in ("similarity", "uniform"):
            raise InputError(f"Unknown weighting {weighting!r}.", "use 'similarity' or 'uniform'.")
        self.weighting = weighting

    def _embed_spatial(self, X: np.ndarray) -> np.ndarray:
        """Spatial cells → joint space, with the spatial z-score constants stored at fit time (so chunks of
        cells, e.g. on a Dask cluster, are embedded exactly as the whole slide)."""
        Z = (np.asarray(X, dtype=np.float32) - self.spatial_mean_) / self.spatial_std_
        if self.components_ is not None:
            Z = Z @ self.components_
        return Z

    def fit_steps(self, data: ImputeData) -> ProgressGen[None]:
        if self.k < 1:
            raise InputError(f"k must be at least 1 (got {self.k}).", "use k ≥ 1.")
        if self.k > data.n_reference:
            raise InputError(f"k = {self.k} neighbours asked for but the reference has only "
                             f"{data.n_reference} cells.", f"use k ≤ {data.n_reference}.")
        if len(data.shared_genes) < 2:
            raise InputError(f"Only {len(data.shared_genes)} shared gene(s): too few to find neighbours.",
                             "use a reference measuring more of the spatial panel.")
        yield Progress(0, 2, "z-scoring shared genes", "fit")
        ref_z, _, _ = zscore_columns(data.reference_shared)
        sp_z, self.spatial_mean_, self.spatial_std_ = zscore_columns(data.spatial)
        n_comp = self.n_components
        if n_comp is None and ref_z.shape[1] > 50:
            n_comp = 50
        self.components_ = None
        if n_comp:
            rng = np.random.default_rng(self.seed)
            joint = np.vstack([ref_z[rng.permutation(len(ref_z))[:20000]], sp_z[rng.permutation(len(sp_z))[:20000]]])
            _, _, vt = np.linalg.svd(joint - joint.mean(0), full_matrices=False)
            self.components_ = vt[: int(n_comp)].T.astype(np.float32)
            ref_z = ref_z @ self.components_
        self.reference_embedding_ = ref_z.astype(np.float32)
        self.reference_values_ = data.reference.astype(np.float32)  # CSR for wide references: stays sparse
        self.reference_genes_ = list(data.reference_genes)
        self.shared_genes_ = list(data.shared_genes)
        self.target_genes_ = list(data.target_genes)
        self.fitted_ = True
        self.expected_r_ = None
        if self.expected_r and len(data.shared_genes) >= 4 and data.target_genes:
            yield from self._fit_expected_r(data)
        yield Progress(2, 2, "fitted", "fit")

    def _fit_expected_r(self, data: ImputeData) -> ProgressGen[None]:
        from .expected_r import expected_r_for, inner_cv_steps, target_expected_r

        params = {**self.get_params(), "expected_r": False}
        cv = yield from relay(inner_cv_steps(lambda: KNNImputer(**params), data, max_cells=self.cv_cells,
                                             seed=self.seed), "fit", 1, 2, span=1)
        sample = yield from relay(self.predict_steps(data.subset_cells(cv.rows)), "fit", 2, 2, span=0)
        self.expected_r_ = target_expected_r(expected_r_for(cv), data, sample).astype(np.float32)
        self.inner_cv_ = cv.table()

    def gene_annotations(self):
        """``expected_r`` (and the same values as ``reliability``, which the viewer sorts by) per target gene."""
        import pandas as pd

        if self.expected_r_ is None or len(self.expected_r_) != len(self.target_genes_):
            return None
        return pd.DataFrame({"expected_r": self.expected_r_, "reliability": self.expected_r_},
                            index=pd.Index(self.target_genes_))

    def predict_steps(self, data: ImputeData | None = None) -> ProgressGen[np.ndarray]:
        from ..device import resolve_device

        pos = self._check_predict_input(data, self.reference_genes_, "ask for genes the reference measures.")

        targets = self.reference_values_[:, [pos[g] for g in data.target_genes]]
        n = data.n_cells
        out = np.empty((n, len(data.target_genes)), dtype=np.float32)
        chunk = int(self.chunk_size)
        n_chunks = (n + chunk - 1) // chunk
        device = resolve_device(self.device)
        for i, start in enumerate(range(0, n, chunk)):  # bounded memory: one chunk of cells at a time
            stop = min(n, start + chunk)
            idx, sim = yield from relay(cosine_topk(self._embed_spatial(data.spatial[start:stop]),
                                                    self.reference_embedding_, self.k, device=device),
                                        "predict", 100 * i, 100 * n_chunks, span=100)
            W = neighbour_weights(idx, sim, self.reference_embedding_.shape[0], self.weighting)
            block = W @ targets
            out[start:stop] = block.toarray() if sp.issparse(block) else block
            yield Progress(i + 1, n_chunks, f"imputed {stop}/{n} cells", "predict")
        return out

    def predict_into_steps(self, data: ImputeData, write, cell_chunk: int,
                           gene_block: int = 1024) -> ProgressGen[None]:
        """Out-of-core prediction for wide target sets: neighbours once per cell chunk, then gene blocks of a
        dense slice of the reference (never the whole cells × genes result, never the whole reference dense)."""
        from ..device import resolve_device

        pos = self._check_predict_input(data, self.reference_genes_, "ask for genes the reference measures.")
        cols = np.array([pos[g] for g in data.target_genes], dtype=np.int64)
        values = self.reference_values_
        values = values.tocsc() if sp.issparse(values) else values
        n, g = data.n_cells, len(cols)
        chunk = max(1, int(cell_chunk) * max(1, g // gene_block))  # the same memory: cells × one gene block
        device = resolve_device(self.device)
        starts = list(range(0, n, chunk))
        for i, start in enumerate(starts):
            rows = slice(start, min(n, start + chunk))
            idx, sim = run_to_end(cosine_topk(self._embed_spatial(data.spatial[rows]), self.reference_embedding_,
                                              self.k, device=device))
            W = neighbour_weights(idx, sim, self.reference_embedding_.shape[0], self.weighting)
            for b in range(0, g, gene_block):
                part = values[:, cols[b:b + gene_block]]
                part = part.toarray() if sp.issparse(part) else part
                write(rows, slice(b, min(g, b + gene_block)), np.asarray(W @ part, dtype=np.float32))
            yield Progress(i + 1, len(starts), f"imputed {rows.stop:,}/{n:,} cells", "predict")

    def _state(self) -> dict[str, Any]:
        values = self.reference_values_
        if sp.issparse(values):  # wide references are saved as their CSR parts
            values = {"csr_data": values.data, "csr_indices": values.indices, "csr_indptr": values.indptr,
                      "csr_shape": np.asarray(values.shape, np.int64)}
        return {"reference_embedding": self.reference_embedding_, "reference_values": values,
                "spatial_mean": self.spatial_mean_, "spatial_std": self.spatial_std_,
                "reference_genes": list(self.reference_genes_),
                "components": self.components_ if self.components_ is not None else np.zeros((0, 0), np.float32),
                **({} if self.expected_r_ is None else {"expected_r": self.expected_r_})}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.reference_embedding_ = state["reference_embedding"]
        self.spatial_mean_ = state["spatial_mean"]
        self.spatial_std_ = state["spatial_std"]
        values = state["reference_values"]
        if isinstance(values, dict):
            values = sp.csr_matrix((values["csr_data"], values["csr_indices"], values["csr_indptr"]),
                                   shape=tuple(int(n) for n in values["csr_shape"]))
        self.reference_values_ = values
        self.reference_genes_ = list(state["reference_genes"])
        comp = state["components"]
        self.components_ = comp if comp.size else None
        self.expected_r_ = state.get("expected_r")
