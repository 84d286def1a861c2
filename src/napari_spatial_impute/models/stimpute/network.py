"""stImpute's networks: the shared-gene autoencoder, the gene-graph GraphSAGE predictor."""

from __future__ import annotations

import torch
from torch import nn


class GeneAutoencoder(nn.Module):
    """Shared genes (z-scored within each dataset) → ReLU latent → reconstruction."""

    def __init__(self, n_genes: int, latent: int = 100):
        super().__init__()
        self.encoder = nn.Linear(n_genes, latent)
        self.decoder = nn.Linear(latent, n_genes)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The joint space where neighbours are searched: the decoded (denoised) shared genes.

        On osmFISH + Allen SSp, cosine neighbours in the ReLU code were clearly worse than in the decoded
        output (5-fold median PCC of the neighbour mean 0.12–0.17 vs 0.21), see benchmarks/stimpute_osmfish.md.
        """
        return self.decoder(self.encode(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return z, self.decoder(z)


class WeightedSAGEConv(nn.Module):
    """GraphSAGE layer whose mean over graph neighbours is weighted by the edge weights (plain torch).

    ``out_i = lin_l(Σ_j w_ij · x_j) + lin_r(x_i)``: the operator of torch-geometric's ``SAGEConv`` with sum
    aggregation over a weighted adjacency, with the same parameter names and shapes (``lin_l`` with bias,
    ``lin_r`` without), so bundles saved by earlier versions load unchanged. The gene graph's weights are
    row-normalised, so the sum is a weighted mean; with all weights equal to 1/deg it is exactly SAGE mean
    aggregation. Node features are laid out gene-major, (genes, cells, features): one static graph over genes
    serves a whole batch of cells, and aggregation is one sparse (genes × genes) @ (genes × cells·features)
    product (no per-edge message tensor, no loop over cells).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.lin_l = nn.Linear(in_channels, out_channels, bias=True)
        self.lin_r = nn.Linear(in_channels, out_channels, bias=False)
        # torch-geometric initialised these layers twice (in Linear and again in SAGEConv.reset_parameters),
        # with the same bounds as nn.Linear; drawing twice keeps a seed's weights, and so its results, unchanged.
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin_l.reset_parameters()
        self.lin_r.reset_parameters()

    def forward(self, x: torch.Tensor, adj: torch.Tensor, root: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: (genes, cells, features); ``adj``: sparse (out genes × genes of ``x``), row = aggregating gene;
        ``root``: the rows of ``x`` that are the out genes (None: all of them, ``adj`` square)."""
        agg = torch.sparse.mm(adj, x.reshape(x.shape[0], -1)).reshape(adj.shape[0], *x.shape[1:])
        return self.lin_l(agg) + self.lin_r(x if root is None else x.index_select(0, root))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, aggr='weighted sum'"


def sparse_adjacency(edge_index: torch.Tensor, edge_weight: torch.Tensor, n_genes: int) -> torch.Tensor:
    """COO (genes × genes) weight matrix with rows = aggregating gene (``edge_index[1]``)."""
    return torch.sparse_coo_tensor(torch.stack([edge_index[1], edge_index[0]]), edge_weight,
                                   (n_genes, n_genes), check_invariants=False).coalesce()


class GeneGraphPredictor(nn.Module):
    """Per (gene, cell) node: the gene's values over the cell's k reference neighbours → the cell's value.

    Two weighted-mean GraphSAGE layers over the gene graph, then an MLP head. The output is a correction
    added to the neighbours' weighted mean (feature 0), so an untrained head predicts the kNN mean.
    Weights are shared by all genes, which is what lets the model predict genes it never saw in training.
    """

    def __init__(self, n_features: int, hidden: int = 64, layers: int = 2):
        super().__init__()
        dims = [n_features] + [hidden] * layers
        self.convs = nn.ModuleList([WeightedSAGEConv(a, b) for a, b in zip(dims[:-1], dims[1:])])
        self.norms = nn.ModuleList([nn.LayerNorm(b) for b in dims[1:]])
        self.head = nn.Sequential(nn.Linear(hidden + n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor, adj, roots=None, x_out: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: (genes, cells, features) → (genes, cells). ``adj``: one square sparse adjacency for every layer,
        or one per layer, each from the genes of its input to the genes it computes (``roots[l]``: the rows of
        the layer's input that those genes are; ``x_out``: the rows of ``x`` of the last layer's genes), so a
        caller can run the layers only on the genes its outputs need (:class:`~.prediction.GraphRows`)."""
        adjs = adj if isinstance(adj, (list, tuple)) else [adj] * len(self.convs)
        roots = roots if roots is not None else [None] * len(self.convs)
        h = x
        for conv, norm, a, r in zip(self.convs, self.norms, adjs, roots):
            h = torch.relu(norm(conv(h, a, r)))
        x_last = x if x_out is None else x.index_select(0, x_out)
        return x_last[..., 0] + self.head(torch.cat([h, x_last], dim=-1)).squeeze(-1)


def stimpute_loss(pred: torch.Tensor, target: torch.Tensor, w_cos: float = 1.0, w_mse: float = 1.0) -> torch.Tensor:
    """stImpute's eq. 10: (1 − cell-wise cosine) + (1 − gene-wise cosine) of centred values, plus MSE."""
    def _cos(a, b, dim):
        a = a - a.mean(dim=dim, keepdim=True)
        b = b - b.mean(dim=dim, keepdim=True)
        return nn.functional.cosine_similarity(a, b, dim=dim, eps=1e-6).mean()

    cell = _cos(pred, target, 1) if pred.shape[1] > 1 else pred.new_tensor(1.0)
    gene = _cos(pred, target, 0) if pred.shape[0] > 1 else pred.new_tensor(1.0)
    return w_cos * ((1 - cell) + (1 - gene)) + w_mse * nn.functional.mse_loss(pred, target)
