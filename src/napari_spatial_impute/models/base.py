"""The contract every imputation model follows.

A model sees an :class:`ImputeData` (prepared, log-normalised arrays; no AnnData, no Qt) and has the
scikit-learn shape ``fit(data) -> self`` / ``predict(data) -> array`` plus generator twins
``fit_steps`` / ``predict_steps`` that yield :class:`~napari_spatial_impute.progress.Progress` so widgets
can show progress and cancel between steps. ``save`` / ``load`` use the one bundle format of
:mod:`.bundle`: ``config.json`` (method, params, genes) + ``weights.pt`` (weights / arrays).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError
from ..progress import Progress, ProgressGen, relay, run_to_end
from .bundle import write_bundle

#: the largest reference matrix (cells × input + target genes, float32 bytes) held dense: above it the prepared
#: reference stays sparse, and models that need it dense (stImpute) refuse it (:meth:`Imputer.width_problem`)
DENSE_REFERENCE_BYTES = 1 << 30

@dataclass
class ImputeData:
    """Prepared inputs of one imputation problem.

    ``spatial`` holds the spatial cells' log-normalised expression of ``shared_genes`` (columns in that
    order); ``reference`` the reference cells' log-normalised expression of all ``reference_genes`` (dense,
    or CSR for wide references: use :meth:`reference_columns` / :meth:`reference_dense` to read it).
    ``target_genes`` (reference spelling) are the genes to predict for every spatial cell.
    """

    spatial: np.ndarray
    reference: np.ndarray
    reference_genes: list[str]
    shared_genes: list[str]
    target_genes: list[str]
    spatial_obs_names: list[str] | None = None
    spatial_coords: np.ndarray | None = None
    reference_obs: pd.DataFrame | None = None
    constants: dict[str, Any] = field(default_factory=dict)
    #: per-target-gene annotations from the reference (other identifiers), carried into the output's ``var``
    reference_var: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        self.spatial = np.ascontiguousarray(self.spatial, dtype=np.float32)
        if sp.issparse(self.reference):
            self.reference = sp.csr_matrix(self.reference, dtype=np.float32)
        else:
            self.reference = np.ascontiguousarray(self.reference, dtype=np.float32)
        if self.spatial.shape[1] != len(self.shared_genes):
            raise ValueError("spatial columns must match shared_genes")
        if self.reference.shape[1] != len(self.reference_genes):
            raise ValueError("reference columns must match reference_genes")
        pos = {g: i for i, g in enumerate(self.reference_genes)}
        missing = [g for g in list(self.shared_genes) + list(self.target_genes) if g not in pos]
        if missing:
            raise ValueError(f"genes not in the reference: {missing[:5]}")
        self._pos = pos

    @property
    def n_cells(self) -> int:
        return self.spatial.shape[0]

    @property
    def n_reference(self) -> int:
        return self.reference.shape[0]

    @property
    def shared_idx(self) -> np.ndarray:
        return np.array([self._pos[g] for g in self.shared_genes], dtype=np.int64)

    def reference_columns(self, genes: list[str]) -> np.ndarray:
        """Dense (n_reference, len(genes)) values of some reference genes."""
        block = self.reference[:, [self._pos[g] for g in genes]]
        return block.toarray() if sp.issparse(block) else np.asarray(block)

    def reference_dense(self) -> np.ndarray:
        """The whole reference as a dense array (only for models that need it; refuses very wide data)."""
        if not sp.issparse(self.reference):
            return self.reference
        n_bytes = 4 * self.reference.shape[0] * self.reference.shape[1]
        if n_bytes > 4 << 30:
            raise InputError(f"This method needs the reference dense: {n_bytes / 2**30:.1f} GB.",
                             "impute fewer genes at once (--genes / --n-top-genes) or use --method knn.")
        return self.reference.toarray()

    @property
    def reference_shared(self) -> np.ndarray:
        return self.reference_columns(self.shared_genes)

    def subset_cells(self, rows: slice | np.ndarray) -> ImputeData:
        """The same problem for a subset of the spatial cells (e.g. one chunk)."""
        names = None if self.spatial_obs_names is None else list(np.asarray(self.spatial_obs_names)[rows])
        coords = None if self.spatial_coords is None else self.spatial_coords[rows]
        return ImputeData(self.spatial[rows], self.reference, self.reference_genes, self.shared_genes,
                          self.target_genes, names, coords, self.reference_obs, dict(self.constants),
                          self.reference_var)

    def with_targets(self, target_genes: list[str]) -> ImputeData:
        """The same problem asking for other target genes."""
        return ImputeData(self.spatial, self.reference, self.reference_genes, self.shared_genes,
                          list(target_genes), self.spatial_obs_names, self.spatial_coords,
                          self.reference_obs, dict(self.constants), self.reference_var)


class Imputer(ABC):
    """Base class of imputation models (fit / predict / save / load, seeded, device-aware)."""

    method: ClassVar[str] = "base"
    #: True when predicting a subset of cells gives exactly those rows of the full prediction
    #: (required for chunked / Dask prediction). Per-slide models (SpaIM) set False.
    cell_independent_predict: ClassVar[bool] = True
    #: Names of ``__init__`` parameters saved in the bundle.
    param_names: ClassVar[tuple[str, ...]] = ("seed", "device")

    def __init__(self, *, seed: int = 0, device: str = "auto"):
        self.seed = int(seed)
        self.device = device
        self.fitted_: bool = False
        self.shared_genes_: list[str] = []
        self.target_genes_: list[str] = []

    # --- to implement -------------------------------------------------------------------------
    @abstractmethod
    def fit_steps(self, data: ImputeData) -> ProgressGen[None]:
        """Train on ``data``; yield progress; return nothing."""

    @abstractmethod
    def predict_steps(self, data: ImputeData | None = None) -> ProgressGen[np.ndarray]:
        """Predict ``data.target_genes`` for every spatial cell; return (n_cells, n_targets) float32."""

    def _state(self) -> dict[str, Any]:
        """Arrays / tensors needed to predict after :meth:`load` (override)."""
        return {}

    def _load_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Inverse of :meth:`_state` (override)."""

    def gene_annotations(self) -> pd.DataFrame | None:
        """Optional per-target-gene annotations (e.g. reliability) for ``var`` of the output."""
        return None

    @staticmethod
    def width_problem(data: ImputeData) -> str | None:
        """Why ``data``'s reference is too wide for this model (None: it fits; override where it matters)."""
        return None

    # --- shared behaviour ----------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names}

    def fit(self, data: ImputeData, callback=None) -> Imputer:
        run_to_end(self.fit_steps(data), callback)
        return self

    def predict(self, data: ImputeData | None = None, callback=None) -> np.ndarray:
        return run_to_end(self.predict_steps(data), callback)

    def predict_into_steps(self, data: ImputeData, write, cell_chunk: int) -> ProgressGen[None]:
        """Predict chunk by chunk, handing each block to ``write(rows, cols, block)`` (out-of-core results).

        Peak memory is one (cell_chunk × n_targets) block. Per-slide models (``cell_independent_predict`` False)
        predict every cell at once. Models may override this to reuse work across gene blocks.
        """
        n = data.n_cells
        chunk = n if not self.cell_independent_predict else max(1, int(cell_chunk))
        starts = list(range(0, n, chunk))
        for i, start in enumerate(starts):
            rows = slice(start, min(n, start + chunk))
            block = yield from relay(self.predict_steps(data.subset_cells(rows)), "predict",
                                     round(100 * i / len(starts)), 100, span=max(1, round(100 / len(starts))),
                                     prefix=f"cells {rows.start:,}–{rows.stop:,}: ")
            write(rows, slice(0, len(data.target_genes)), block)

    def fit_predict_steps(self, data: ImputeData) -> ProgressGen[np.ndarray]:
        """Fit then predict, progress mapped onto 0–70 % (fit) and 70–100 % (predict)."""
        yield from relay(self.fit_steps(data), "", 0, 100, span=70)
        pred = yield from relay(self.predict_steps(data), "", 70, 100, span=30)
        yield Progress(100, 100, "done", "predict")
        return pred

    def _check_fitted(self) -> None:
        if not self.fitted_:
            raise InputError(f"This {type(self).__name__} is not fitted yet.", "call fit(...) first or load a bundle.")

    def _check_predict_input(self, data: ImputeData | None, known_genes: list[str], fix: str) -> dict[str, int]:
        """Validate ``data`` against the fitted model; returns gene → column in ``known_genes``."""
        self._check_fitted()
        name = type(self).__name__
        if data is None:
            raise InputError(f"{name}.predict needs the spatial data.", "pass the ImputeData used in fit.")
        if list(data.shared_genes) != list(self.shared_genes_):
            raise InputError("The spatial genes differ from those the model was fitted on.",
                             "prepare the data with the same shared genes.")
        pos = {g: i for i, g in enumerate(known_genes)}
        missing = [g for g in data.target_genes if g not in pos]
        if missing:
            raise InputError(f"Genes not in the fitted model: {missing[:5]}.", fix)
        return pos

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write a bundle folder (config.json + weights.pt, atomically). Refuses to overwrite unless asked."""
        import torch

        self._check_fitted()
        config = {"class": type(self).__name__, "params": self.get_params(),
                  "genes": {"shared": list(self.shared_genes_), "target": list(self.target_genes_)},
                  "constants": {}}
        state = _to_torch(self._state())
        return write_bundle(path, self.method, config, lambda folder: torch.save(state, folder / "weights.pt"),
                            overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> Imputer:
        """Load a bundle written by :meth:`save` (any method when called on :class:`Imputer`)."""
        from .bundle import load_model

        model = load_model(path, device="auto" if device is None else device)
        if not isinstance(model, cls):
            raise InputError(f"{path} holds a {type(model).__name__} model, not {cls.__name__}.",
                             f"load it with {type(model).__name__}.load or napari_spatial_impute.load_model.")
        return model

    @classmethod
    def from_bundle(cls, path: Path, config: dict[str, Any], device: str | None = None) -> Imputer:
        """Rebuild a fitted model from a checked bundle config (see :func:`.bundle.load_model`)."""
        import torch

        params = dict(config["params"])
        if device is not None:
            params["device"] = device
        model = cls(**params)
        genes = config.get("genes") or {}
        legacy = "shared_genes" in config  # 0.1.0: genes at the top level, arrays in state.pt
        weights = path / ("state.pt" if legacy else "weights.pt")
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - surface a clear message
            raise InputError(f"Could not read {weights}: {err}.", "re-save the model.") from err
        model.shared_genes_ = list(config["shared_genes"] if legacy else genes["shared"])
        model.target_genes_ = list(config["target_genes"] if legacy else genes["target"])
        model._load_state(_from_torch(state))
        model.fitted_ = True
        return model


def _to_torch(obj):
    import torch

    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        return {k: _to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_torch(v) for v in obj]
    return obj


def _from_torch(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: _from_torch(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_torch(v) for v in obj]
    return obj
