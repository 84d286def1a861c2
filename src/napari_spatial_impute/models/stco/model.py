"""STco re-implemented: contrastive learning of H&E patches against spot expression, prediction by
retrieval over a bank of training spots.

What differs from the public STco code (and why):

* embeddings are L2-normalised and compared with a **learnable temperature** (STco: no normalisation,
  temperature 1);
* the spot position enters as a **sinusoidal encoding of physical µm** relative to the section's centre
  (STco: learned embeddings of array indices < 128, meaningless across platforms);
* patches are cut at a fixed **physical size** (µm via the image's pixel size), so scanners differ safely;
* the default image backbone is a frozen ImageNet EfficientNet-Lite0 (plain torch) whose features are
  computed once per augmented view (D4 flips/rotations + colour jitter), so training runs in minutes on a
  CPU; ``finetune=True`` (or a ``resnet_*`` backbone) trains the image encoder end to end instead (GPU).

Prediction for a query patch: its image embedding (averaged over ``tta`` rotations) → cosine similarity to
the spot embeddings of every training spot → the ``top_k`` most similar → softmax-weighted (learned
temperature) mean of their log-normalised expression.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from ...errors import InputError
from ...progress import Progress, ProgressGen, iter_chunks, relay, run_to_end
from .expression import gene_columns, section_expression, section_name
from .network import augment, build_heads, clip_loss, position_encoding, to_tensor

DEFAULTS = dict(backbone="lite0", backbone_path=None, finetune=False, patch_um=150.0, patch_px=112,
                n_genes=500, embed_dim=256, epochs=30, batch_size=128, lr=1e-3, weight_decay=0.05,
                temperature=0.07, top_k=50, weighting="linear", n_views=8, tta=4, use_position=True,
                dropout=0.5, feature_batch=64)
#: ``weighting`` of the top-k retrieved spots: "linear" (∝ cosine similarity, as STco), "softmax" (learned
#: temperature) or "uniform". Defaults were chosen on her2st (train C2–C5, test C6; benchmarks/histology_her2st.md):
#: few epochs + strong dropout / weight decay, because ~700 training spots are memorised within ~50 epochs.
N_TOP = 50  #: the most expressed training genes, scored apart by :func:`~napari_spatial_impute.evaluate_histology`


def _torch_device(device: str):
    import torch

    from ...device import resolve_device

    return torch.device(resolve_device(device))


class STco:
    """Contrastive H&E ↔ expression model with retrieval prediction (see module docstring).

    Parameters are plain values (see :data:`DEFAULTS`); ``genes`` fixes the panel (else the ``n_genes``
    most expressed genes shared by all training sections). ``fit_steps`` / ``predict_*_steps`` are
    generators yielding :class:`~napari_spatial_impute.progress.Progress`.
    """

    n_top = N_TOP

    def __init__(self, *, genes: list[str] | None = None, seed: int = 0, device: str = "auto", **params):
        unknown = set(params) - set(DEFAULTS)
        if unknown:
            raise InputError(f"Unknown STco parameters {sorted(unknown)}.", f"use any of {sorted(DEFAULTS)}.")
        if params.get("weighting", "linear") not in ("linear", "softmax", "uniform"):
            raise InputError(f"Unknown weighting {params['weighting']!r}.", "use linear, softmax or uniform.")
        self.cfg = {**DEFAULTS, **params}
        self.requested_genes = list(genes) if genes is not None else None
        self.seed = int(seed)
        self.device = device
        self.genes: list[str] = []
        self.top_genes: list[str] = []  # the N_TOP most expressed training genes
        self.target_sum = 1.0
        self.expr_mean = self.expr_std = None
        self.backbone = self.heads = None
        self.backbone_name = None
        self.bank_emb = self.bank_expr = None
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
        return self.backbone_name in ("lite0", "torchscript") and not self.cfg["finetune"]

    def _choose_genes(self, sections) -> None:
        first = list(map(str, sections[0].var_names))
        if self.requested_genes is not None:
            panel = [first[i] for i in gene_columns(sections[0], self.requested_genes)[0]]
            missing = {}
            for ad_ in sections:
                miss = gene_columns(ad_, list(self.requested_genes))[1]
                if miss:
                    missing[section_name(ad_)] = miss[:5]
            if missing:
                raise InputError(f"Genes of the panel are missing from training sections: {missing}.",
                                 "remove them from the gene list, or check the spelling.")
            panel = list(dict.fromkeys(panel))
        else:
            keys = set(g.upper() for g in first)
            for ad_ in sections[1:]:
                keys &= {str(g).upper() for g in ad_.var_names}
            panel = sorted(g for g in first if g.upper() in keys)
        totals = np.concatenate([np.asarray(a.X.sum(axis=1)).ravel() for a in sections])
        self.target_sum = float(np.median(totals[totals > 0]))
        expr = np.vstack([section_expression(a, panel, self.target_sum) for a in sections])
        order = np.argsort(-expr.mean(0), kind="stable")
        if self.requested_genes is None:
            keep = order[: self.cfg["n_genes"]]
            panel = [panel[i] for i in keep]
            expr = expr[:, keep]
            order = np.arange(len(panel))
        self.genes = panel
        self.top_genes = [panel[i] for i in order[:N_TOP]]
        self.expr_mean = expr.mean(0)
        self.expr_std = expr.std(0) + 1e-3

    def _make_backbone(self):
        from .encoders import build_backbone

        bb, name = build_backbone(self.cfg["backbone"], self.cfg["backbone_path"], patch_px=self.cfg["patch_px"])
        self.backbone_name = name
        self.backbone = bb

    def section_inputs(self, adata, *, check_tissue: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(patches uint8, spot positions (x, y) in µm) of a section read by :mod:`napari_spatial_impute.io`."""
        from .patches import section_geometry, section_patches

        info, xy_px, xy_um = section_geometry(adata)
        patches = section_patches(info["image"], xy_px, float(info["pixel_size_um"]), patch_um=self.cfg["patch_um"],
                                  out_px=self.cfg["patch_px"], check_tissue=check_tissue)
        return patches, xy_um

    # ---- features ---------------------------------------------------------------------------------
    def _features_steps(self, patches: np.ndarray, views, rng, label: str) -> ProgressGen[np.ndarray]:
        """Backbone features (len(views), n, D) for the given dihedral views, batched."""
        import torch

        dev = _torch_device(self.device)
        self.backbone.to(dev).eval()
        n, bs = len(patches), self.cfg["feature_batch"]
        out = None
        total = len(views) * math.ceil(n / bs)
        step = 0
        with torch.no_grad():
            for vi, view in enumerate(views):
                for sl in iter_chunks(n, bs):
                    x = augment(to_tensor(patches[sl], dev), view, rng if (rng is not None and view > 0) else None)
                    f = self.backbone(x).float().cpu().numpy()
                    if out is None:
                        out = np.empty((len(views), n, f.shape[1]), np.float32)
                    out[vi, sl] = f
                    step += 1
                    yield Progress(step, total, f"{label}: view {vi + 1}/{len(views)}", "features")
        return out

    # ---- training ---------------------------------------------------------------------------------
    def fit_steps(self, sections) -> ProgressGen[STco]:
        """Train on sections (AnnData or SpatialSample from :mod:`napari_spatial_impute.io`); yields progress,
        returns self."""
        import torch

        t0 = time.perf_counter()
        if not sections:
            raise InputError("No training sections given.", "pass at least one --section COUNTS SPOTS IMAGE.")
        sections = [getattr(a, "adata", a) for a in sections]
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self._choose_genes(sections)
        self._make_backbone()
        cfg = self.cfg
        patches, pos, expr = [], [], []
        for a in sections:
            p, xy_um = self.section_inputs(a)
            patches.append(p)
            pos.append(position_encoding(xy_um))
            expr.append(section_expression(a, self.genes, self.target_sum))
        patches = np.concatenate(patches)
        pos = np.concatenate(pos)
        expr = np.concatenate(expr)
        self.train_pixel_size_um = float(np.mean([a.uns["histology"]["pixel_size_um"] for a in sections]))
        n = len(patches)
        dev = _torch_device(self.device)
        expr_z = torch.from_numpy((expr - self.expr_mean) / self.expr_std).to(dev)
        pos_t = torch.from_numpy(pos).to(dev)
        trainable_backbone = not self.frozen
        n_views = max(1, int(cfg["n_views"]))
        feat_total = 0 if trainable_backbone else n_views * math.ceil(n / cfg["feature_batch"])
        total = feat_total + cfg["epochs"] + 1
        feats = None
        if not trainable_backbone:
            feats = yield from relay(self._features_steps(patches, list(range(n_views)), rng, "training patches"),
                                     "features", 0, total, span=feat_total)
            feats = torch.from_numpy(feats).to(dev)
            in_dim = feats.shape[2]
        else:
            in_dim = self.backbone.out_dim
        self.heads = build_heads(in_dim, len(self.genes), cfg).to(dev)
        params = list(self.heads.parameters())
        if trainable_backbone:
            self.backbone.to(dev)
            params += list(self.backbone.parameters())
        opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg["epochs"]))
        bs = min(cfg["batch_size"], n)
        self.history = []
        for epoch in range(cfg["epochs"]):
            self.heads.train()
            if trainable_backbone:
                self.backbone.train()
            perm = rng.permutation(n)
            losses = []
            for start in range(0, n - bs + 1 if n >= bs else 1, bs):
                idx = perm[start:start + bs]
                if len(idx) < 2:
                    continue
                idx_t = torch.from_numpy(idx).to(dev)
                if trainable_backbone:
                    view = int(rng.integers(8))
                    x = augment(to_tensor(patches[idx], dev), view, rng)
                    f = self.backbone(x)
                else:
                    views = torch.from_numpy(rng.integers(n_views, size=len(idx))).to(dev)
                    f = feats[views, idx_t]
                img = self.heads.image(f)
                spot = self.heads.spot(expr_z[idx_t], pos_t[idx_t] if cfg["use_position"] else None)
                loss = clip_loss(img, spot, self.heads.logit_scale)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            sched.step()
            self.history.append(float(np.mean(losses)) if losses else float("nan"))
            yield Progress(feat_total + epoch + 1, total, f"epoch {epoch + 1}/{cfg['epochs']} "
                           f"loss {self.history[-1]:.3f}", "train")
        # reference bank: spot embeddings of every training spot (eval mode)
        self.heads.eval()
        with torch.no_grad():
            bank = [self.heads.spot(expr_z[sl], pos_t[sl] if cfg["use_position"] else None)
                    for sl in iter_chunks(n, 1024)]
            self.bank_emb = torch.nn.functional.normalize(torch.cat(bank), dim=1).cpu().numpy()
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

    def embed_patches_steps(self, patches: np.ndarray, tta: int | None = None) -> ProgressGen[np.ndarray]:
        """L2-normalised image embeddings (n, embed_dim), averaged over ``tta`` rotations."""
        import torch

        self._check_fitted()
        tta = max(1, int(self.cfg["tta"] if tta is None else tta))
        views = list(range(min(tta, 8)))
        feats = yield from self._features_steps(patches, views, None, "patches")
        dev = _torch_device(self.device)
        self.heads.to(dev).eval()
        with torch.no_grad():
            emb = 0
            for v in range(len(views)):
                e = self.heads.image(torch.from_numpy(feats[v]).to(dev))
                emb = emb + torch.nn.functional.normalize(e, dim=1)
            emb = torch.nn.functional.normalize(emb, dim=1)
        return emb.cpu().numpy()

    def retrieve(self, emb: np.ndarray, top_k: int | None = None) -> np.ndarray:
        """Expression (n, genes) as the similarity-weighted mean over the ``top_k`` nearest bank spots."""
        self._check_fitted()
        k = min(int(self.cfg["top_k"] if top_k is None else top_k), len(self.bank_emb))
        scale = float(np.exp(min(self._logit_scale(), math.log(100.0))))
        out = np.empty((len(emb), len(self.genes)), np.float32)
        for sl in iter_chunks(len(emb), 2048):
            sims = emb[sl] @ self.bank_emb.T
            idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            s = np.take_along_axis(sims, idx, axis=1)
            if self.cfg["weighting"] == "softmax":
                w = np.exp(scale * (s - s.max(axis=1, keepdims=True)))
            elif self.cfg["weighting"] == "uniform":
                w = np.ones_like(s)
            else:
                w = np.clip(s, 0.0, None) + 1e-6
            w /= w.sum(axis=1, keepdims=True)
            out[sl] = np.einsum("nk,nkg->ng", w, self.bank_expr[idx])
        return out

    def _logit_scale(self) -> float:
        return float(self.heads.logit_scale.detach().cpu())

    def predict_patches_steps(self, patches: np.ndarray, tta: int | None = None) -> ProgressGen[np.ndarray]:
        """Predicted log-normalised expression (n, genes) for RGB uint8 patches (n, px, px, 3)."""
        emb = yield from self.embed_patches_steps(patches, tta)
        return self.retrieve(emb)

    def predict_section_steps(self, adata) -> ProgressGen[np.ndarray]:
        """Predict every spot of a section read by :mod:`napari_spatial_impute.io` (its counts are not used)."""
        patches, _ = self.section_inputs(adata)
        return (yield from self.predict_patches_steps(patches))

    def predict_section(self, adata, callback=None) -> np.ndarray:
        return run_to_end(self.predict_section_steps(adata), callback)

    def predict_image_steps(self, image, pixel_size_um: float | None = None, *, spots_xy=None, tile_um: float = 100.0,
                            min_tissue: float = 0.5, tta: int | None = None) -> ProgressGen[dict]:
        """Whole-slide (no ``spots_xy``: tissue tiles of ``tile_um``) or per-spot prediction from an image.

        Returns a dict: ``values`` (n, genes), ``centres_xy`` (full-res px), ``genes``, and for tiles
        ``grid`` (:class:`~.tiling.TileGrid`, whose ``to_grid`` / ``scale`` / ``translate`` place a heat map
        over the image layer). ``tta`` rotations per patch default to the model's ``tta``.
        """
        from .patches import crop_patches, image_size, load_rgb
        from .tiling import make_grid, tissue_mask

        self._check_fitted()
        if pixel_size_um is None:
            pixel_size_um = self.train_pixel_size_um
            warnings.warn(f"No pixel size given; assuming the training sections' {pixel_size_um:.3f} µm/px.",
                          stacklevel=2)
        width, height = image_size(image)
        size_full = self.cfg["patch_um"] / pixel_size_um
        reduce = 1
        while reduce * 2 <= size_full / self.cfg["patch_px"]:
            reduce *= 2
        arr, factor = load_rgb(image, reduce)
        yield Progress(0, 1, "image decoded", "tiles")
        grid = None
        mask, mscale = tissue_mask(arr, factor)
        if spots_xy is None:
            grid = make_grid(mask, mscale, width, height, tile_um / pixel_size_um, min_tissue)
            centres = grid.centres_xy()
            if len(centres) == 0:
                raise InputError("No tissue found in the image.", "check the image, or lower min_tissue.")
        else:
            from .patches import _warn_off_tissue, check_spots_in_image

            centres = np.asarray(spots_xy, dtype=np.float64)
            check_spots_in_image(centres, width, height)
            iy = np.clip((centres[:, 1] / mscale).astype(int), 0, mask.shape[0] - 1)
            ix = np.clip((centres[:, 0] / mscale).astype(int), 0, mask.shape[1] - 1)
            _warn_off_tissue(mask[iy, ix])
        values = np.empty((len(centres), len(self.genes)), np.float32)
        chunk = 256
        n_chunks = math.ceil(len(centres) / chunk)
        for ci, sl in enumerate(iter_chunks(len(centres), chunk)):
            patches = crop_patches(arr, centres[sl] / factor, size_full / factor, self.cfg["patch_px"])
            values[sl] = run_to_end(self.predict_patches_steps(patches, tta))
            yield Progress(ci + 1, n_chunks, f"tile batch {ci + 1}/{n_chunks}", "predict")
        return {"values": values, "centres_xy": centres, "genes": list(self.genes), "grid": grid,
                "pixel_size_um": float(pixel_size_um)}

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
