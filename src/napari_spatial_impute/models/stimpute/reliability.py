"""stImpute reliability: cross-validated cosine of held-out input genes → an MLP on gene descriptors."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...progress import ProgressGen, run_to_end
from .features import DESCRIPTOR_NAMES, gene_descriptors
from .prediction import predict_cells_steps
from .training import relay_part, train_steps

_EPS = 1e-6


def reliability_folds_steps(model, sp_z: np.ndarray, truth_sp: np.ndarray, ref: np.ndarray, inputs: np.ndarray,
                            n_inner: int, n_steps: int) -> ProgressGen[tuple]:
    """Inner folds over the input genes: retrain without each fold, impute it, and fit the reliability MLP on
    (descriptors → cosine with the truth) → (reliability MLP, table of descriptors + ``cv_cosine``).
    Progress is parts ``1 .. n_inner`` of ``n_steps``."""
    genes = model.genes_
    n_shared = len(inputs)
    rng = np.random.default_rng(model.seed + 1)
    folds = np.array_split(rng.permutation(n_shared), n_inner)
    desc_rows, cos_rows, names = [], [], []
    for f, held in enumerate(folds):
        held = np.sort(held)
        keep = np.setdiff1d(inputs, held)
        # inner models train on half the GNN epochs: they only estimate how well each gene imputes
        gen = train_steps(model, sp_z[:, keep], keep, seed=model.seed + 10 + f,
                          gnn_epochs=max(1, model.gnn_epochs // 2))
        ae, gnn = yield from relay_part(gen, 1 + f, n_steps, f"reliability fold {f + 1}/{n_inner}")
        final, knn_z, gnn_z = run_to_end(predict_cells_steps(model, ae, gnn, sp_z[:, keep], keep, held))
        truth = truth_sp[:, held]
        cos = cosine_per_gene(truth, final)
        desc_rows.append(gene_descriptors(ref, keep, held, knn_z, gnn_z, model.graph_.has_protein[held]))
        cos_rows.append(cos)
        names += [genes[i] for i in held]
    X = np.vstack(desc_rows)
    y = np.concatenate(cos_rows).astype(np.float32)
    reliability_model = fit_reliability_mlp(model, X, y)
    cv_table = pd.DataFrame(X, index=names, columns=list(DESCRIPTOR_NAMES)).assign(cv_cosine=y)
    return reliability_model, cv_table


def fit_reliability_mlp(model, X: np.ndarray, y: np.ndarray):
    """Train the reliability MLP (gene descriptors ``X`` → cross-validated cosine ``y``); stores the descriptor
    standardisation on ``model`` (``desc_mean_``, ``desc_sd_``)."""
    from .network import ReliabilityMLP

    torch, _ = model._torch()

    torch.manual_seed(model.seed)
    model.desc_mean_ = X.mean(0)
    model.desc_sd_ = np.maximum(X.std(0), _EPS)
    xt = torch.from_numpy((X - model.desc_mean_) / model.desc_sd_).float()
    yt = torch.from_numpy(y)
    model = ReliabilityMLP(X.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-2)
    for _ in range(300):
        loss = torch.nn.functional.mse_loss(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def score_reliability(model, D: np.ndarray) -> np.ndarray:
    """Reliability in [0, 1] of genes with descriptors ``D`` from the fitted MLP of ``model``."""
    import torch

    with torch.no_grad():
        x = torch.from_numpy(((D - model.desc_mean_) / model.desc_sd_).astype(np.float32))
        # expected cosine similarity of non-negative values: keep the score in [0, 1]
        return np.clip(model.reliability_model_(x).numpy(), 0.0, 1.0).astype(np.float32)


def cosine_per_gene(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching columns of ``a`` and ``b``."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    den = np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0)
    return np.divide((a * b).sum(0), den, out=np.zeros(a.shape[1]), where=den > 0)
