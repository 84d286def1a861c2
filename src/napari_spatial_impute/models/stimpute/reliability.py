"""stImpute's expected r: inner folds over the input genes retrain the pipeline without them (on a subsample
of cells, half the GNN epochs), and :mod:`..expected_r` maps gene descriptors to the held-out genes' r."""

from __future__ import annotations

import numpy as np

from ...progress import ProgressGen, relay
from ..expected_r import expected_r_for, inner_cv_steps, target_expected_r
from .training import relay_part


def fit_expected_r_steps(model, data, n_steps: int) -> ProgressGen[None]:
    """Set ``model.expected_r_`` (targets) and ``model.inner_cv_`` (the inner-CV table); progress part 1."""
    params = {**model.get_params(), "reliability": False, "gnn_epochs": max(1, model.gnn_epochs // 2)}
    factory = lambda: type(model)(**params)  # noqa: E731
    cv = yield from relay_part(inner_cv_steps(factory, data, folds=model.reliability_folds,
                                              max_cells=model.cv_cells, seed=model.seed, label="expected r"),
                               1, n_steps, "expected r")
    sample = yield from relay(model.predict_steps(data.subset_cells(cv.rows)), "fit", n_steps, n_steps, span=0)
    model.expected_r_ = target_expected_r(expected_r_for(cv), data, sample).astype(np.float32)
    model.inner_cv_ = cv.table()
