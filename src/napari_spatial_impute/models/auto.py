"""``method="auto"``: inner cross-validation on the panel's own measured genes picks the method or blend.

1. **Screen.** The measured genes are split into inner folds (seeded); each fold is hidden (from the inputs
   and from the library size) and predicted from the rest on a seeded subsample of at most ``cv_cells``
   cells. kNN runs on every fold first (cheap).
2. **Slower candidates** (stImpute, SpaIM) run on the first ``screen_folds`` folds only (one that cannot hold
   the target set, e.g. stImpute above its dense-reference limit, is skipped and says why). A candidate that
   does not beat kNN there — alone or in an even blend with kNN — by ``screen_margin`` median r is dropped,
   so a panel where the slower methods don't help costs little more than kNN. Survivors run the other folds.
3. **Decision.** Convex blends of the surviving candidates' CV predictions (weights on a 0.1 grid) are scored
   by median per-gene Pearson r; the best one is used unless it beats kNN alone by less than ``margin``
   (then kNN: never chosen on noise). The decision and its evidence go to ``uns`` (``model_info``) and to
   ``var`` (``auto_method``, ``expected_r`` from a ridge on gene descriptors fitted to the blend's CV r).
4. The chosen methods are fitted on all cells and blended with the chosen weights.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..progress import Progress, ProgressGen, relay
from .base import ImputeData, Imputer
from .expected_r import (
    DESCRIPTORS,
    InnerCV,
    expected_r_for,
    gene_descriptors,
    inner_cv_steps,
    inner_folds,
    pearson_per_gene,
    subsample_rows,
)

#: parameters of each candidate in the inner CV: lighter than the fitted ones (fewer epochs, one SpaIM network),
#: so the screen stays cheap; expected r is auto's own
CANDIDATE_PARAMS: dict[str, dict[str, Any]] = {
    "knn": {"expected_r": False},
    "stimpute": {"reliability": False, "ae_epochs": 20, "gnn_epochs": 3},
    "spaim": {"n_models": 1, "epochs": 40, "expected_r": False, "anchor": "none"},
}
#: the fitted (final) candidates: SpaIM keeps its 3-network ensemble
FINAL_PARAMS: dict[str, dict[str, Any]] = {
    "knn": {"expected_r": False},
    "stimpute": {"reliability": False},
    "spaim": {"expected_r": False, "anchor": "none"},
}


#: the methods auto considers unless told (kNN is always one of them)
DEFAULT_CANDIDATES = "knn,stimpute,spaim"


class AutoImputer(Imputer):
    """Chooses kNN, stImpute, SpaIM or a blend of them by inner cross-validation on the measured genes.

    Parameters
    ----------
    candidates : comma-separated methods to consider (kNN is always one of them).
    folds : inner folds over the measured genes.
    cv_cells : spatial cells used by the inner CV (a seeded subsample).
    screen_folds : folds the slower candidates are screened on before running the rest.
    screen_margin : a slower candidate continues only if it (or its even blend with kNN) beats kNN by this
        median r on the screen folds.
    margin : a blend replaces kNN only when its CV median r is higher by at least this.
    """

    method = "auto"
    param_names = ("candidates", "folds", "cv_cells", "screen_folds", "screen_margin", "margin", "seed", "device")

    def __init__(self, candidates: str = DEFAULT_CANDIDATES, folds: int = 5,
                 cv_cells: int = 1500, screen_folds: int = 1, screen_margin: float = 0.0, margin: float = 0.0,
                 *, seed: int = 0, device: str = "auto"):
        super().__init__(seed=seed, device=device)
        if isinstance(candidates, str):
            candidates = [c.strip().lower() for c in candidates.split(",") if c.strip()]
        unknown = [c for c in candidates if c not in CANDIDATE_PARAMS]
        if unknown:
            raise InputError(f"auto cannot choose among {unknown}.", f"use some of {', '.join(CANDIDATE_PARAMS)}.")
        self.candidates = ",".join(dict.fromkeys(["knn", *candidates]))
        self.folds = int(folds)
        self.cv_cells = int(cv_cells)
        self.screen_folds = int(screen_folds)
        self.screen_margin = float(screen_margin)
        self.margin = float(margin)
        self.weights_: dict[str, float] = {}
        self.models_: dict[str, Imputer] = {}
        self.expected_r_: np.ndarray | None = None
        self.evidence_: dict[str, Any] = {}

    def _factory(self, name: str, final: bool = False):
        from .registry import get_imputer

        klass = get_imputer(name)
        params = (FINAL_PARAMS if final else CANDIDATE_PARAMS)[name]
        return lambda: klass(seed=self.seed, device=self.device, **params)

    # ------------------------------------------------------------------ fit
    def fit_steps(self, data: ImputeData) -> ProgressGen[None]:
        n_genes = len(data.shared_genes)
        if n_genes < 4:
            raise InputError(f"method='auto' needs at least 4 measured genes to cross-validate (got {n_genes}).",
                             "name a method (e.g. method='knn').")
        n_folds = len(inner_folds(n_genes, self.folds, self.seed))
        rows = subsample_rows(data.n_cells, self.cv_cells, self.seed + 3)
        cv_args = {"folds": self.folds, "seed": self.seed, "rows": rows}
        yield Progress(0, 100, "auto: kNN inner CV", "auto")
        cvs: dict[str, InnerCV] = {}
        cvs["knn"] = yield from relay(inner_cv_steps(self._factory("knn"), data, label="kNN", **cv_args),
                                      "auto", 0, 100, span=10)
        screen = list(range(min(self.screen_folds, n_folds)))
        rest = [i for i in range(n_folds) if i not in screen]
        evidence: dict[str, Any] = {"inner_folds": n_folds, "cv_cells": int(len(rows)), "screen": {}}
        knn_r = cvs["knn"].pcc
        pos_knn = {g: i for i, g in enumerate(cvs["knn"].genes)}
        for c, name in enumerate(n for n in self.candidates.split(",") if n != "knn"):
            from .registry import get_imputer

            too_wide = get_imputer(name).width_problem(data)
            if too_wide is not None:  # e.g. stImpute with a whole-transcriptome target set: not a candidate
                evidence["screen"][name] = {"kept": False, "skipped": too_wide}
                continue
            part = yield from relay(inner_cv_steps(self._factory(name), data, fold_ids=screen, label=f"{name} screen",
                                                   **cv_args), "auto", 10 + 30 * c, 100, span=10)
            cols = [pos_knn[g] for g in part.genes]
            base = float(np.median(knn_r[cols]))
            alone = float(np.median(part.pcc))
            even = float(np.median(pearson_per_gene(part.truth, 0.5 * part.pred + 0.5 * cvs["knn"].pred[:, cols])))
            gain = max(alone, even) - base
            evidence["screen"][name] = {"genes": len(cols), "knn_median_r": base, "median_r": alone,
                                        "even_blend_median_r": even, "cpu_s": part.seconds,
                                        "kept": bool(gain >= self.screen_margin)}
            if gain < self.screen_margin:
                continue
            if not rest:  # the screen covered every fold (screen_folds ≥ the inner folds)
                cvs[name] = part
                continue
            more = yield from relay(inner_cv_steps(self._factory(name), data, fold_ids=rest, label=name, **cv_args),
                                    "auto", 20 + 30 * c, 100, span=20)
            cvs[name] = _concat(part, more)
        weights, table = self._choose(cvs)
        evidence["blends"] = table
        self.weights_ = weights
        evidence["weights"] = dict(weights)
        yield Progress(75, 100, "auto: fitting " + self.describe(), "auto")
        # per-gene CV evidence of the chosen blend, and the expected-r model fitted on it
        genes_cv = cvs["knn"].genes
        blend_cv = self._blend({n: _aligned(cvs[n], genes_cv) for n in weights})
        r_cv = pearson_per_gene(cvs["knn"].truth, blend_cv)
        desc = cvs["knn"].descriptors.copy()  # reference descriptors + the blend's own signal
        ref_sd = desc[:, DESCRIPTORS.index("ref_sd")]
        desc[:, DESCRIPTORS.index("pred_signal")] = np.divide(blend_cv.std(0), ref_sd, out=np.zeros_like(ref_sd),
                                                              where=ref_sd > 0)
        er_model = expected_r_for(InnerCV(genes_cv, rows, cvs["knn"].truth, blend_cv, desc), r_cv)
        self.inner_cv_ = pd.DataFrame({n: _aligned_r(cvs[n], genes_cv) for n in cvs}, index=genes_cv)
        self.inner_cv_["chosen"] = r_cv
        models = {}
        for n, name in enumerate(weights):
            model = self._factory(name, final=True)()
            yield from relay(model.fit_steps(data), "auto", 75 + round(20 * n / len(weights)), 100,
                             span=max(1, round(20 / len(weights))), prefix=f"{name}: ")
            models[name] = model
        self.models_ = models
        self.shared_genes_ = list(data.shared_genes)
        self.target_genes_ = list(data.target_genes)
        self.cell_independent_predict = all(m.cell_independent_predict for m in models.values())
        self.fitted_ = True
        self.expected_r_ = None
        if data.target_genes:
            sample = yield from relay(self._predict_sample(data, rows), "auto", 95, 100, span=5)
            D = gene_descriptors(data, list(data.target_genes), list(data.shared_genes), sample)
            self.expected_r_ = er_model.predict(D).astype(np.float32)
        evidence["cv_median_r"] = {n: float(np.median(_aligned_r(cvs[n], genes_cv))) for n in cvs}
        evidence["cv_median_r"]["chosen"] = float(np.median(r_cv))
        self.evidence_ = evidence
        yield Progress(100, 100, "auto: " + self.describe(), "auto")

    def _choose(self, cvs: dict[str, InnerCV]) -> tuple[dict[str, float], list[dict]]:
        """Best blend on a 0.1 weight grid by CV median r; kNN unless the best beats it by ``margin``."""
        names = list(cvs)
        genes = cvs["knn"].genes
        preds = {n: _aligned(cvs[n], genes) for n in names}
        truth = cvs["knn"].truth
        table = []
        grid = [w for w in itertools.product(range(11), repeat=len(names)) if sum(w) == 10]
        for w in grid:
            weights = {n: wi / 10 for n, wi in zip(names, w) if wi}
            r = float(np.median(pearson_per_gene(truth, self._blend({n: preds[n] for n in weights}, weights))))
            table.append({"weights": weights, "median_r": r})
        knn = next(t for t in table if t["weights"] == {"knn": 1.0})
        best = max(table, key=lambda t: (t["median_r"], t["weights"].get("knn", 0.0)))
        chosen = best if best["median_r"] >= knn["median_r"] + self.margin else knn
        top = sorted(table, key=lambda t: -t["median_r"])[:5]
        return dict(chosen["weights"]), [knn] + [t for t in top if t is not knn]

    def _blend(self, preds: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
        weights = self.weights_ if weights is None else weights
        return sum(weights[n] * preds[n] for n in weights)

    def _predict_sample(self, data: ImputeData, rows: np.ndarray) -> ProgressGen[np.ndarray]:
        preds = {}
        for n, (name, model) in enumerate(self.models_.items()):
            span = (round(100 * n / len(self.models_)), 100, round(100 / len(self.models_)))
            if model.cell_independent_predict:
                preds[name] = yield from relay(model.predict_steps(data.subset_cells(rows)), "auto", span[0],
                                               span[1], span=span[2], prefix=f"{name}: ")
            else:
                full = yield from relay(model.predict_steps(data), "auto", span[0], span[1], span=span[2],
                                        prefix=f"{name}: ")
                preds[name] = full[rows]
        return self._blend(preds)

    def describe(self) -> str:
        """The chosen blend as text, e.g. ``"0.6 stimpute + 0.4 knn"`` (one method: its name)."""
        if len(self.weights_) == 1:
            return next(iter(self.weights_))
        return " + ".join(f"{w:g} {n}" for n, w in sorted(self.weights_.items(), key=lambda t: -t[1]))

    # ------------------------------------------------------------------ predict / report
    def predict_steps(self, data: ImputeData | None = None) -> ProgressGen[np.ndarray]:
        self._check_fitted()
        if data is None:
            raise InputError("AutoImputer.predict needs the spatial data.", "pass the ImputeData used in fit.")
        preds = {}
        for n, (name, model) in enumerate(self.models_.items()):
            preds[name] = yield from relay(model.predict_steps(data), "predict", round(100 * n / len(self.models_)),
                                           100, span=round(100 / len(self.models_)), prefix=f"{name}: ")
        return self._blend(preds).astype(np.float32)

    def gene_annotations(self) -> pd.DataFrame | None:
        if not self.fitted_ or not self.target_genes_:
            return None
        df = pd.DataFrame({"auto_method": self.describe()}, index=pd.Index(self.target_genes_))
        if self.expected_r_ is not None and len(self.expected_r_) == len(df):
            df["expected_r"] = self.expected_r_
            df["reliability"] = self.expected_r_
        return df

    def info(self) -> dict:
        """The decision and its CV evidence (goes to ``uns`` as ``model_info``)."""
        return {"auto_method": self.describe(), "weights": dict(self.weights_), **self.evidence_}

    # ------------------------------------------------------------------ bundle
    def _state(self) -> dict[str, Any]:
        members = []
        for name, model in self.models_.items():
            params = {k: v for k, v in model.get_params().items() if isinstance(v, (str, int, float, bool))}
            members.append({"method": name, "params": json.dumps(params), "state": model._state(),
                            "shared": list(model.shared_genes_), "target": list(model.target_genes_)})
        state = {"members": members, "weights": json.dumps(self.weights_), "evidence": json.dumps(self.evidence_)}
        if self.expected_r_ is not None:
            state["expected_r"] = self.expected_r_
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        from .registry import get_imputer

        self.models_ = {}
        for m in state["members"]:
            model = get_imputer(m["method"])(**json.loads(m["params"]))
            model.shared_genes_, model.target_genes_ = list(m["shared"]), list(m["target"])
            model._load_state(m["state"])
            model.fitted_ = True
            self.models_[m["method"]] = model
        self.weights_ = json.loads(state["weights"])
        self.evidence_ = json.loads(state["evidence"])
        self.expected_r_ = state.get("expected_r")
        self.cell_independent_predict = all(m.cell_independent_predict for m in self.models_.values())


def _concat(a: InnerCV, b: InnerCV) -> InnerCV:
    return InnerCV(a.genes + b.genes, a.rows, np.hstack([a.truth, b.truth]), np.hstack([a.pred, b.pred]),
                   np.vstack([a.descriptors, b.descriptors]), a.seconds + b.seconds)


def _aligned(cv: InnerCV, genes: list[str]) -> np.ndarray:
    pos = {g: i for i, g in enumerate(cv.genes)}
    return cv.pred[:, [pos[g] for g in genes]]


def _aligned_r(cv: InnerCV, genes: list[str]) -> np.ndarray:
    pos = {g: i for i, g in enumerate(cv.genes)}
    return cv.pcc[[pos[g] for g in genes]]
