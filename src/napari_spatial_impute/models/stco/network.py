"""STco's networks and training pieces: position encoding, the projection heads
(image head, spot encoder, learnable temperature) and the symmetric CLIP loss. torch is imported on use."""

from __future__ import annotations

import math

import numpy as np


def position_encoding(xy_um: np.ndarray, n_freq: int = 8) -> np.ndarray:
    """Sinusoidal features of (x, y) µm relative to the section's median spot: wavelengths 0.1–12.8 mm."""
    xy = (np.asarray(xy_um, dtype=np.float64) - np.median(xy_um, axis=0)) / 1000.0  # mm
    freqs = 2 * math.pi / (0.1 * 2.0 ** np.arange(n_freq))
    ang = xy[:, :, None] * freqs[None, None, :]
    return np.concatenate([np.sin(ang), np.cos(ang)], axis=2).reshape(len(xy), -1).astype(np.float32)


def to_tensor(patches_u8: np.ndarray, device):
    import torch

    return torch.from_numpy(np.ascontiguousarray(patches_u8)).to(device).permute(0, 3, 1, 2).float().div_(255.0)


def build_heads(in_dim: int, n_genes: int, cfg: dict):
    import torch
    from torch import nn

    class ProjectionHead(nn.Module):
        def __init__(self, din: int, dout: int, dropout: float):
            super().__init__()
            self.norm_in = nn.LayerNorm(din)
            self.proj = nn.Linear(din, dout)
            self.fc = nn.Linear(dout, dout)
            self.drop = nn.Dropout(dropout)
            self.norm = nn.LayerNorm(dout)

        def forward(self, x):
            p = self.proj(self.norm_in(x))
            return self.norm(p + self.drop(self.fc(nn.functional.gelu(p))))

    class SpotEncoder(nn.Module):
        def __init__(self, n_genes: int, pos_dim: int, dout: int, dropout: float):
            super().__init__()
            self.expr = nn.Sequential(nn.Linear(n_genes, 512), nn.GELU(), nn.Dropout(dropout))
            self.pos = nn.Linear(pos_dim, 512) if pos_dim else None
            self.head = ProjectionHead(512, dout, dropout)

        def forward(self, expr, pos=None):
            h = self.expr(expr)
            if self.pos is not None and pos is not None:
                h = h + self.pos(pos)
            return self.head(h)

    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.image = ProjectionHead(in_dim, cfg["embed_dim"], cfg["dropout"])
            self.spot = SpotEncoder(n_genes, 32 if cfg["use_position"] else 0, cfg["embed_dim"], cfg["dropout"])
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg["temperature"])))

    return Heads()


def clip_loss(img, spot, logit_scale):
    import torch
    import torch.nn.functional as F

    img = F.normalize(img, dim=1)
    spot = F.normalize(spot, dim=1)
    logits = logit_scale.clamp(max=math.log(100.0)).exp() * img @ spot.T
    target = torch.arange(len(img), device=img.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
