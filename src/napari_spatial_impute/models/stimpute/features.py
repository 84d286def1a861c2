"""Node features for the gene-graph predictor and gene descriptors for the reliability model.

Node features describe one gene over one spatial cell's ``k`` reference neighbours, in that gene's
reference z-units: similarity-weighted mean (feature 0, the kNN prediction), mean of the nearest tenth,
standard deviation, fraction of neighbours expressing the gene, and the 10/25/50/75/90 % quantiles. They
are built per batch of cells straight from the neighbour indices, so no cells × k × genes tensor of the
whole slide ever exists.
"""

from __future__ import annotations

import numpy as np
import torch

N_NODE_FEATURES = 9
_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def node_features(ref_z: torch.Tensor, ref_on: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(genes, cells, N_NODE_FEATURES) for a batch of cells.

    ``ref_z``: reference (n_ref × genes) z-scored per gene; ``ref_on``: same shape, 1 where expressed;
    ``idx`` / ``w``: (cells, k) neighbour indices (nearest first) and row-normalised weights.
    """
    k = idx.shape[1]
    vals = ref_z.T[:, idx]  # genes × cells × k (one batch only), contiguous along the neighbours
    wmean = (vals * w).sum(-1)
    near = vals[..., : max(1, k // 10)].mean(-1)
    mean = vals.mean(-1)
    std = ((vals * vals).mean(-1) - mean * mean).clamp_min(0).sqrt()
    frac_on = ref_on.T[:, idx].mean(-1)
    srt = vals.sort(dim=-1).values
    pos = torch.tensor([min(k - 1, int(round(q * (k - 1)))) for q in _QUANTILES], device=vals.device)
    quant = srt.index_select(-1, pos)  # genes × cells × 5
    return torch.cat([wmean[..., None], near[..., None], std[..., None], frac_on[..., None], quant], dim=-1)


DESCRIPTOR_NAMES = ("ref_mean", "ref_sd", "ref_frac_expressed", "max_corr_inputs", "top3_corr_inputs",
                    "neighbour_signal", "gnn_knn_agreement", "has_protein")


def gene_descriptors(reference: np.ndarray, input_cols: np.ndarray, gene_cols: np.ndarray,
                     knn_mean_z: np.ndarray, gnn_z: np.ndarray, has_protein: np.ndarray) -> np.ndarray:
    """Per-gene descriptors (rows follow ``gene_cols``) that need no spatial truth of the gene.

    ``reference``: n_ref × all genes (log); ``input_cols``: columns of the input genes; ``knn_mean_z`` /
    ``gnn_z``: spatial cells × genes predictions (z-units) of the described genes.
    """
    ref = reference[:, gene_cols].astype(np.float64)
    inp = reference[:, input_cols].astype(np.float64)

    def _unit(a):
        a = a - a.mean(0)
        n = np.linalg.norm(a, axis=0)
        return np.divide(a, n, out=np.zeros_like(a), where=n > 0)

    corr = np.abs(_unit(ref).T @ _unit(inp))  # genes × inputs
    corr[np.isclose(corr, 1.0)] = 0.0  # a gene is not its own predictor
    top = np.sort(corr, axis=1)[:, ::-1]
    signal = knn_mean_z.std(0)
    a = knn_mean_z - knn_mean_z.mean(0)
    b = gnn_z - gnn_z.mean(0)
    den = np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0)
    agree = np.divide((a * b).sum(0), den, out=np.zeros(a.shape[1]), where=den > 0)
    return np.column_stack([ref.mean(0), ref.std(0), (ref > 0).mean(0), top[:, 0], top[:, :3].mean(1),
                            signal, agree, has_protein.astype(np.float64)]).astype(np.float32)
