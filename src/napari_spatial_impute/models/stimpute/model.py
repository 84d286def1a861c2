"""stImpute (Commun Biol 2024) re-implemented: AE neighbours + gene-graph GraphSAGE + reliability scores.

1. **Joint space.** Shared genes are z-scored within each dataset; an autoencoder (trained on spatial and
   reference cells, with random genes masked at the input) maps both through one latent code; each spatial
   cell takes its ``k`` cosine-nearest reference cells in the decoded (denoised) space — cosine in the ReLU
   code itself was clearly worse (benchmarks/stimpute_osmfish.md).
2. **Gene graph.** Nodes are genes (inputs + targets); edges from ESM-2 protein-embedding cosine similarity,
   expression correlation in the reference for genes without a protein (see :mod:`.gene_graph`); built once.
3. **GraphSAGE.** For every (gene, cell) node the features summarise the gene over the cell's neighbours
   (:mod:`.features`); two weighted-mean SAGEConv layers + an MLP head predict the cell's own value. Training
   uses only the spatial values of *input* genes: in each batch a random part of the inputs is masked, the
   neighbours are searched without them, and the loss (stImpute eq. 10: cell- and gene-wise cosine + MSE)
   is taken on the masked genes — the same situation the model meets for a target gene. The paper's
   alternating rounds follow: GNN epochs, then AE epochs pulled towards the GNN's output.
4. **Output** = α·GNN + (1−α)·neighbour mean (α 0.7 for small data, 0.5 large), in z-units mapped to the
   spatial log scale (``output_scale="spatial"``): each gene's spatial mean / sd is predicted from its
   reference mean / sd by a linear fit over the input genes, so the output sits on the scale of the truth
   (``"reference"``: reference log units, as before 0.3).
5. **Expected r.** Inner folds over the input genes retrain steps 1–4 without them (on at most ``cv_cells``
   cells, half the GNN epochs) and score each held-out gene by its Pearson r; a ridge regression on gene
   descriptors maps that to ``var["expected_r"]`` of the targets (:mod:`..expected_r`), never in-sample.

Memory and time stay bounded: training uses at most ``max_train_cells`` spatial cells (a seeded subsample;
``gnn_cells`` of them per GNN epoch), the autoencoder at most as many reference cells, and prediction embeds,
searches neighbours and builds node features per block of cells, so only the (cells × imputed genes) output
grows with the slide.

Modules: :mod:`.training` (one pipeline's AE + GNN training), :mod:`.prediction` (blockwise imputation),
:mod:`.reliability` (inner folds + MLP), :mod:`.gene_graph`, :mod:`.features`, :mod:`.network`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ...errors import InputError
from ...progress import Progress, ProgressGen
from ..base import DENSE_REFERENCE_BYTES, ImputeData, Imputer
from ..knn import zscore_columns
from .features import N_NODE_FEATURES
from .gene_graph import GeneGraph, build_gene_graph
from .prediction import predict_cells_steps
from .reliability import fit_expected_r_steps
from .training import relay_part, train_steps

_EPS = 1e-6
#: the dense reference (cells × shared + target genes, float32) stImpute may hold: training and prediction keep
#: about four more arrays of that size (centred, z-scored, expressed mask, gene-major copy), so 1 GiB here is
#: ≈ 5 GiB of peak memory. Wider target sets are refused before anything is densified.
MAX_DENSE_REFERENCE_BYTES = DENSE_REFERENCE_BYTES


class STImputer(Imputer):
    """stImpute: autoencoder neighbours → gene-graph GraphSAGE → α-mix with the neighbour mean.

    Parameters
    ----------
    k : reference neighbours per spatial cell (paper: 50; ≤ reference cells).
    gene_embeddings : ``"bundled"`` (shipped ESM-2 3B osmFISH subset), a table path (.npz/.parquet/.csv),
        a FASTA path (needs ``esm_checkpoint``), a :class:`~napari_spatial_impute.embeddings.GeneEmbeddings`,
        or ``"none"`` (expression similarity only). Genes without a vector use expression similarity.
    esm_checkpoint : local fair-esm ESM-2 ``.pt`` file, used when ``gene_embeddings`` is a FASTA file.
    graph_k : neighbours per gene in the gene graph.
    alpha : weight of the GNN in the output; ``None`` = 0.7 (< 10k cells and < 500 genes) else 0.5.
    use_gnn : ``False`` = neighbour mean only (the ablation without the GNN).
    rounds, ae_epochs, gnn_epochs, ae_round_epochs : the paper's alternating schedule.
    mask_fraction : share of input genes masked per training batch (their neighbours are found without them).
    reliability : estimate ``expected_r`` per target gene (``reliability_folds`` inner folds over the input
        genes on at most ``cv_cells`` cells); ``var["reliability"]`` repeats it for viewers that sort by it.
    max_train_cells : spatial cells used for training (autoencoder, GNN): a seeded subsample of larger
        slides, so fitting time stops growing with the slide; every cell is predicted.
    gnn_cells : cells per GNN epoch (a fresh seeded draw from the training cells each epoch).
    output_scale : ``"spatial"`` (default; the truth's scale, see step 4) or ``"reference"``.
    chunk_mb : memory budget of one chunk of cells (neighbour features) in MiB.
    """

    method = "stimpute"
    param_names = ("k", "gene_embeddings", "esm_checkpoint", "graph_k", "alpha", "use_gnn", "rounds", "ae_epochs",
                   "gnn_epochs", "ae_round_epochs", "hidden", "latent", "lr", "batch_size", "mask_fraction",
                   "reliability", "reliability_folds", "max_train_cells", "chunk_mb", "gnn_cells", "cv_cells",
                   "output_scale", "seed", "device")

    def __init__(self, k: int = 50, gene_embeddings: Any = "bundled", esm_checkpoint: str | None = None,
                 graph_k: int = 8, alpha: float | None = None, use_gnn: bool = True, rounds: int = 2,
                 ae_epochs: int = 30, gnn_epochs: int = 4, ae_round_epochs: int = 5, hidden: int = 32,
                 latent: int = 100, lr: float = 3e-3, batch_size: int = 256, mask_fraction: float = 0.25,
                 reliability: bool = True, reliability_folds: int = 3, max_train_cells: int = 8000,
                 chunk_mb: int = 64, gnn_cells: int = 4000, cv_cells: int = 2000, output_scale: str = "spatial",
                 *, seed: int = 0, device: str = "auto"):
        super().__init__(seed=seed, device=device)
        self.k = int(k)
        self.gene_embeddings = gene_embeddings
        self.esm_checkpoint = esm_checkpoint
        self.graph_k = int(graph_k)
        self.alpha = None if alpha is None else float(alpha)
        self.use_gnn = bool(use_gnn)
        self.rounds = int(rounds)
        self.ae_epochs = int(ae_epochs)
        self.gnn_epochs = int(gnn_epochs)
        self.ae_round_epochs = int(ae_round_epochs)
        self.hidden = int(hidden)
        self.latent = int(latent)
        self.lr = float(lr)
        self.batch_size = int(batch_size)
        self.mask_fraction = float(mask_fraction)
        self.reliability = bool(reliability)
        self.reliability_folds = int(reliability_folds)
        self.max_train_cells = int(max_train_cells)
        self.chunk_mb = int(chunk_mb)
        self.gnn_cells = int(gnn_cells)
        self.cv_cells = int(cv_cells)
        if output_scale not in ("spatial", "reference"):
            raise InputError(f"Unknown output_scale {output_scale!r}.", "use 'spatial' or 'reference'.")
        self.output_scale = output_scale
        self.expected_r_: np.ndarray | None = None
        self.graph_: GeneGraph | None = None
        self.reliability_: np.ndarray | None = None

    # ------------------------------------------------------------------ checks / setup
    def _check(self, data: ImputeData) -> None:
        if self.k < 1:
            raise InputError(f"k must be at least 1 (got {self.k}).", "use k ≥ 1 (stImpute's default is 50).")
        if self.k > data.n_reference:
            raise InputError(f"k = {self.k} neighbours asked for but the reference has only "
                             f"{data.n_reference} cells.", f"use k ≤ {data.n_reference}.")
        if len(data.shared_genes) < 3:
            raise InputError(f"Only {len(data.shared_genes)} shared gene(s): stImpute needs at least 3 input "
                             "genes.", "use a reference measuring more of the spatial panel, or method='knn'.")
        if self.max_train_cells < 2:
            raise InputError(f"max_train_cells must be at least 2 (got {self.max_train_cells}).",
                             "e.g. max_train_cells=20000.")
        if self.alpha is not None and not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"alpha must lie in [0, 1] (got {self.alpha}).", "e.g. alpha=0.7.")
        if not 0.0 <= self.mask_fraction < 1.0:
            raise InputError(f"mask_fraction must lie in [0, 1) (got {self.mask_fraction}).", "e.g. 0.25.")

    def _torch(self):
        import torch

        from ...device import resolve_device

        torch.manual_seed(self.seed)
        return torch, torch.device(resolve_device(self.device))

    def resolve_embeddings(self, callback=None):
        """The gene embeddings named by ``gene_embeddings`` (None = expression similarity only)."""
        from ...device import resolve_device
        from ...embeddings import load_gene_embeddings

        return load_gene_embeddings(self.gene_embeddings, checkpoint=self.esm_checkpoint,
                                    device=resolve_device(self.device), callback=callback)

    def _alpha(self, n_cells: int, n_genes: int) -> float:
        if self.alpha is not None:
            return self.alpha
        return 0.7 if n_cells < 10_000 and n_genes < 500 else 0.5

    @staticmethod
    def width_problem(data: ImputeData) -> str | None:
        """Why the reference's shared + target genes are too wide to hold dense here (None: they fit)."""
        genes = len(dict.fromkeys(list(data.shared_genes) + list(data.target_genes)))
        n_bytes = 4 * data.n_reference * genes
        if n_bytes <= MAX_DENSE_REFERENCE_BYTES:
            return None
        fits = max(0, MAX_DENSE_REFERENCE_BYTES // (4 * max(1, data.n_reference)) - len(data.shared_genes))
        return (f"stImpute holds the reference's input and target genes dense: {data.n_reference:,} cells × "
                f"{genes:,} genes = {n_bytes / 2**30:.1f} GB (≈ 5× that at peak), above its "
                f"{MAX_DENSE_REFERENCE_BYTES / 2**30:.0f} GB limit; with this reference it takes at most "
                f"{fits:,} target genes.")

    # ------------------------------------------------------------------ fit
    def fit_steps(self, data: ImputeData) -> ProgressGen[None]:
        problem = self.width_problem(data)
        if problem is not None:  # before anything is densified
            raise InputError(problem, "use --method knn (reads the reference in column blocks; any width), or "
                             "impute fewer genes with stImpute (--n-top-genes N or --genes; API: n_top_genes=N).")
        torch, dev = self._torch()
        self._check(data)
        shared = list(data.shared_genes)
        extra = [g for g in data.target_genes if g not in set(shared)]
        genes = shared + extra
        ref = data.reference_columns(genes).astype(np.float32)
        yield Progress(0, 100, "gene embeddings and gene graph", "graph")
        emb = self.resolve_embeddings() if self.use_gnn else None
        self.graph_ = build_gene_graph(genes, ref, emb, self.graph_k)
        self.genes_ = genes
        self.reference_log_ = ref
        self.ref_mean_ = ref.mean(0)
        self.ref_sd_ = np.maximum(ref.std(0), _EPS).astype(np.float32)
        self.shared_genes_ = shared
        self.target_genes_ = list(data.target_genes)
        self.alpha_ = self._alpha(data.n_cells, len(genes))
        # spatial z-score constants are fitted once and reused by predict, so any subset of cells (a chunk,
        # a Dask task) is embedded exactly as in the whole slide
        sp_z, self.spatial_mean_, self.spatial_std_ = zscore_columns(data.spatial)
        truth_sp = data.spatial
        if data.n_cells > self.max_train_cells:  # train on a seeded subsample; prediction covers every cell
            rows = np.sort(np.random.default_rng(self.seed + 2).choice(data.n_cells, self.max_train_cells,
                                                                       replace=False))
            sp_z, truth_sp = sp_z[rows], truth_sp[rows]
        n_shared = len(shared)
        inputs = np.arange(n_shared)
        self.out_mean_, self.out_sd_ = self._output_scale(n_shared)
        run_cv = self.reliability and n_shared >= 4 and bool(self.target_genes_)
        n_steps = 2 if run_cv else 1
        gen = train_steps(self, sp_z, inputs, seed=self.seed)
        self.ae_, self.gnn_ = yield from relay_part(gen, 0, n_steps, "train")
        self._inputs = inputs
        self.fitted_ = True
        self.expected_r_ = None
        self.reliability_ = None
        if run_cv:
            yield from fit_expected_r_steps(self, data, n_steps)
            self.reliability_ = self.expected_r_
        yield Progress(n_steps, n_steps, "fitted", "fit")

    def _output_scale(self, n_shared: int) -> tuple[np.ndarray, np.ndarray]:
        """Per gene (mean, sd) of the output: reference units, or mapped to the spatial scale by a linear fit
        of the input genes' spatial mean / sd on their reference mean / sd."""
        mean, sd = self.ref_mean_.astype(np.float64), self.ref_sd_.astype(np.float64)
        if self.output_scale == "reference" or n_shared < 3:
            return mean.astype(np.float32), sd.astype(np.float32)
        out = []
        for ref_v, sp_v in ((mean, self.spatial_mean_), (sd, self.spatial_std_)):
            A = np.column_stack([np.ones(n_shared), ref_v[:n_shared]])
            coef, *_ = np.linalg.lstsq(A, np.asarray(sp_v, np.float64), rcond=None)
            out.append(coef[0] + coef[1] * ref_v)
        return (np.maximum(out[0], 0.0).astype(np.float32),
                np.maximum(out[1], 0.05 * sd.mean()).astype(np.float32))

    # ------------------------------------------------------------------ prediction
    def _chunk_cells(self, n_genes: int) -> int:
        per_cell = 4 * self.k * n_genes * 4 + 4 * n_genes * (N_NODE_FEATURES + 3 * self.hidden) * 2
        return int(max(16, min(8192, (self.chunk_mb << 20) // max(1, per_cell))))

    def predict_steps(self, data: ImputeData | None = None) -> ProgressGen[np.ndarray]:
        pos = self._check_predict_input(data, self.genes_,
                                        "fit with these genes as targets (the gene graph is built at fit time).")
        sp_z = (np.asarray(data.spatial, dtype=np.float32) - self.spatial_mean_) / self.spatial_std_
        out_cols = np.array([pos[g] for g in data.target_genes], dtype=np.int64)
        final, _, _ = yield from predict_cells_steps(self, self.ae_, self.gnn_, sp_z,
                                                     np.arange(len(self.shared_genes_)), out_cols)
        return final

    # ------------------------------------------------------------------ reporting
    def gene_annotations(self) -> pd.DataFrame | None:
        if not self.fitted_ or not self.target_genes_:
            return None
        df = pd.DataFrame(index=pd.Index(self.target_genes_))
        if self.expected_r_ is not None:
            df["expected_r"] = self.expected_r_
        if self.reliability_ is not None:
            df["reliability"] = self.reliability_
        graph = self.graph_
        if graph is not None:
            pos = {g: i for i, g in enumerate(graph.genes)}
            df["graph_source"] = ["protein" if graph.has_protein[pos[g]] else "expression" for g in df.index]
        return df

    def graph_summary(self) -> dict:
        """How many genes took protein vs expression similarity, and which lacked an embedding."""
        self._check_fitted()
        return self.graph_.summary()

    def info(self) -> dict:
        """JSON-able facts about the fitted model (for ``uns`` of the output): graph sources, α, reliability CV."""
        self._check_fitted()
        out = {"gene_graph": self.graph_summary(), "alpha": float(self.alpha_), "use_gnn": self.gnn_ is not None}
        table = getattr(self, "inner_cv_", None)
        if table is not None:
            out["expected_r_training_genes"] = int(len(table))
            out["inner_cv_median_r"] = float(table["cv_r"].median())
        return out

    # ------------------------------------------------------------------ save / load
    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "genes": list(self.genes_), "reference_log": self.reference_log_, "ref_mean": self.ref_mean_,
            "ref_sd": self.ref_sd_, "alpha": float(self.alpha_), "out_mean": self.out_mean_, "out_sd": self.out_sd_,
            "spatial_mean": self.spatial_mean_, "spatial_std": self.spatial_std_,
            "edge_index": self.graph_.edge_index, "edge_weight": self.graph_.edge_weight,
            "has_protein": self.graph_.has_protein.astype(np.uint8), "graph_missing": list(self.graph_.missing),
            "graph_source": self.graph_.embedding_source,
            "ae": {k: v.detach().cpu().numpy() for k, v in self.ae_.state_dict().items()},
        }
        if self.gnn_ is not None:
            state["gnn"] = {k: v.detach().cpu().numpy() for k, v in self.gnn_.state_dict().items()}
        if self.reliability_ is not None:
            state["reliability"] = self.reliability_
        if self.expected_r_ is not None:
            state["expected_r"] = self.expected_r_
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        import torch

        from .network import GeneAutoencoder, GeneGraphPredictor

        _, dev = self._torch()
        self.genes_ = list(state["genes"])
        self.reference_log_ = state["reference_log"]
        self.ref_mean_ = state["ref_mean"]
        self.ref_sd_ = state["ref_sd"]
        self.spatial_mean_ = state["spatial_mean"]
        self.spatial_std_ = state["spatial_std"]
        self.alpha_ = float(state["alpha"])
        self.graph_ = GeneGraph(self.genes_, state["edge_index"], state["edge_weight"],
                                state["has_protein"].astype(bool), list(state["graph_missing"]),
                                str(state["graph_source"]))
        ae_state = {k: torch.from_numpy(np.asarray(v)) for k, v in state["ae"].items()}
        self.ae_ = GeneAutoencoder(ae_state["encoder.weight"].shape[1], ae_state["encoder.weight"].shape[0])
        self.ae_.load_state_dict(ae_state)
        self.ae_.to(dev).eval()
        self.gnn_ = None
        if "gnn" in state:
            gnn_state = {k: torch.from_numpy(np.asarray(v)) for k, v in state["gnn"].items()}
            self.gnn_ = GeneGraphPredictor(N_NODE_FEATURES, gnn_state["head.0.weight"].shape[0])
            self.gnn_.load_state_dict(gnn_state)
            self.gnn_.to(dev).eval()
        self.reliability_ = state.get("reliability")
        self.expected_r_ = state.get("expected_r")
        # bundles before 0.3 predicted in reference units
        self.out_mean_ = state.get("out_mean", self.ref_mean_)
        self.out_sd_ = state.get("out_sd", self.ref_sd_)
