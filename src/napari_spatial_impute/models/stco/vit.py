"""A Vision Transformer in plain torch with timm's parameter names, so state dicts of timm ViT pathology
encoders (ViT-Ti/S/B/L, optional LayerScale) load as STco backbones (``backbone="vit"``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int, layer_scale: bool):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(dim, 3 * dim)
        self.attn.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, hidden)
        self.mlp.fc2 = nn.Linear(hidden, dim)
        if layer_scale:
            self.ls1, self.ls2 = nn.Module(), nn.Module()
            self.ls1.gamma = nn.Parameter(torch.ones(dim))
            self.ls2.gamma = nn.Parameter(torch.ones(dim))
        self.layer_scale = layer_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.attn.qkv(self.norm1(x)).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = self.attn.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, d))
        x = x + (a * self.ls1.gamma if self.layer_scale else a)
        m = self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))
        return x + (m * self.ls2.gamma if self.layer_scale else m)


class VisionTransformer(nn.Module):
    """A ViT in plain torch with timm's parameter names (``patch_embed.proj``, ``cls_token``, ``pos_embed``,
    ``blocks.N.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.fc1,mlp.fc2,ls2.gamma}``, ``norm``), so state
    dicts of timm ViT pathology encoders load. Input: RGB in [0, 1] (ImageNet-normalised inside); output: the
    class token after the final norm. The position embedding is interpolated to the patch grid of the input."""

    def __init__(self, dim: int = 384, depth: int = 12, heads: int | None = None, patch: int = 16,
                 hidden: int | None = None, grid: int = 14, layer_scale: bool = False):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        self.blocks = nn.ModuleList([_ViTBlock(dim, heads or max(1, dim // 64), hidden or 4 * dim, layer_scale)
                                     for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.out_dim = dim
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_state_dict(cls, state: dict) -> VisionTransformer:
        """The architecture a timm-style ViT state dict describes (heads = width / 64, as ViT-Ti/S/B/L)."""
        w = state["patch_embed.proj.weight"]
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        grid = int(round(math.sqrt(state["pos_embed"].shape[1] - 1)))
        return cls(dim=w.shape[0], depth=depth, patch=w.shape[2], hidden=state["blocks.0.mlp.fc1.weight"].shape[0],
                   grid=grid, layer_scale="blocks.0.ls1.gamma" in state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed.proj((x - self.mean) / self.std)
        gh, gw = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        pos = self.pos_embed[:, 1:]
        g = int(round(math.sqrt(pos.shape[1])))
        if (gh, gw) != (g, g):
            pos = F.interpolate(pos.reshape(1, g, g, -1).permute(0, 3, 1, 2), size=(gh, gw), mode="bicubic",
                                align_corners=False).permute(0, 2, 3, 1).reshape(1, gh * gw, -1)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1) + self.pos_embed[:, :1], x + pos], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]
