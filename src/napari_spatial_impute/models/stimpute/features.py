"""Node features for the gene-graph predictor.

Node features describe one gene over one spatial cell's ``k`` reference neighbours, in that gene's
reference z-units: similarity-weighted mean (feature 0, the kNN prediction), mean of the nearest tenth,
standard deviation, fraction of neighbours expressing the gene, and the 10/25/50/75/90 % quantiles. They
are built per batch of cells straight from the neighbour indices, so no cells × k × genes tensor of the
whole slide ever exists.
"""

from __future__ import annotations

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
