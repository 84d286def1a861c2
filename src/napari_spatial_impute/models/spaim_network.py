"""SpaIM's network and its size: the style-transfer network (shared decoder), the Gram style loss, the
optimiser, and the memory estimate / check run before training (see :mod:`.spaim` for the method)."""

from __future__ import annotations

import os
import warnings

from ..errors import InputError

BYTES_PER_FLOAT = 4


def n_parameters(n_cells: int, n_clusters: int, hidden: tuple[int, int] = (512, 256), style_dim: int = 64) -> int:
    """Parameter count of the SpaIM network for ``n_cells`` spatial cells and ``n_clusters`` clusters."""
    h1, h2 = hidden
    lin = lambda a, b: a * b + b  # noqa: E731
    ln = lambda d: 2 * d  # noqa: E731
    st_enc = 2 * (lin(n_cells, h1) + ln(h1) + lin(h1, h2) + ln(h2))  # content + style encoders
    sc_enc = lin(n_clusters, h2) + ln(h2) + lin(h2, h1) + ln(h1)
    style = lin(style_dim, h2) + ln(h2) + lin(style_dim, h1) + ln(h1) + style_dim
    dec = lin(h2, h1) + ln(h1) + lin(h1, n_cells)
    return int(st_enc + sc_enc + style + dec)


def estimate_memory(n_cells: int, n_genes: int, n_clusters: int = 30, hidden: tuple[int, int] = (512, 256),
                    style_dim: int = 64, batch_size: int = 64, n_models: int = 3) -> int:
    """Bytes a SpaIM fit + predict needs (weights, gradients, Adam moments, data, activations, output).

    ``n_genes`` = training (shared) + predicted genes; each costs one float per spatial cell. The network
    in training needs 4 copies of its weights (weights, gradients, two Adam moments) + its moving average;
    the other ``n_models - 1`` trained networks one copy each.
    """
    params = n_parameters(n_cells, n_clusters, hidden, style_dim)
    optimiser = (4 + max(1, int(n_models))) * params
    data = n_genes * (n_cells + n_clusters)  # targets / predictions + content
    h1, h2 = hidden
    activations = batch_size * (8 * n_cells + 12 * (h1 + h2))  # inputs, both outputs, grads, LayerNorm stats
    return int(BYTES_PER_FLOAT * (optimiser + data + activations))


def available_memory(device: str = "cpu") -> int | None:
    """Free bytes on ``device`` (RAM for cpu/mps, free GPU memory for cuda); ``None`` when unknown."""
    if device.startswith("cuda"):
        import torch

        try:
            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except Exception:  # noqa: BLE001 - no number is fine
            return None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(need: int, device: str, what: str) -> None:
    """Raise :class:`InputError` when ``need`` bytes exceed what ``device`` has free; warn above half."""
    free = available_memory(device)
    if free is None:
        return
    gib = lambda b: b / 2**30  # noqa: E731
    if need > free:
        raise InputError(f"{what} needs about {gib(need):.1f} GiB but only {gib(free):.1f} GiB is free on "
                         f"{device}.", "use a device with more memory, smaller hidden widths / batch_size, or "
                         "impute a subset of the cells (the model's size grows with the number of cells).")
    if need > 0.5 * free:
        warnings.warn(f"{what} needs about {gib(need):.1f} GiB of the {gib(free):.1f} GiB free on {device}.",
                      stacklevel=3)


def build_network(n_cells: int, n_clusters: int, hidden: tuple[int, int], style_dim: int,
                  zero_output: bool = False):
    """The SpaIM network (ST autoencoder + ST generator sharing one decoder) for ``n_cells`` spatial cells.

    ``zero_output``: the last decoder layer starts at zero (an untrained network outputs 0: with the kNN
    anchor, a residual of 0 = the kNN imputation)."""
    import torch
    from torch import nn

    class Block(nn.Module):
        """Linear → LayerNorm → ReLU."""

        def __init__(self, d_in: int, d_out: int):
            super().__init__()
            self.linear = nn.Linear(d_in, d_out)
            self.norm = nn.LayerNorm(d_out)

        def forward(self, x):
            return torch.relu(self.norm(self.linear(x)))

    class SpaIMNet(nn.Module):
        """ST autoencoder (content + style encoders) and ST generator sharing one decoder."""

        def __init__(self):
            super().__init__()
            h1, h2 = hidden
            self.st_content1, self.st_content2 = Block(n_cells, h1), Block(h1, h2)
            self.st_style1, self.st_style2 = Block(n_cells, h1), Block(h1, h2)
            self.sc_content2, self.sc_content1 = Block(n_clusters, h2), Block(h2, h1)
            self.style_code = nn.Parameter(torch.ones(style_dim))
            self.gen_style2, self.gen_style1 = Block(style_dim, h2), Block(style_dim, h1)
            self.dec2 = Block(h2, h1)
            self.dec1 = nn.Linear(h1, n_cells)
            if zero_output:
                nn.init.zeros_(self.dec1.weight)
                nn.init.zeros_(self.dec1.bias)

        def decode(self, c1, c2, s1, s2):
            """Two-level fusion: the deep code is decoded, then the shallow one is added before the output."""
            return self.dec1(self.dec2(c2 * s2) + c1 * s1)

        def generate(self, content):
            """scRNA-seq content (batch × K) → spatial expression (batch × N), plus its codes."""
            c2 = self.sc_content2(content)
            c1 = self.sc_content1(c2)
            code = self.style_code.expand(content.shape[0], -1)
            s2, s1 = self.gen_style2(code), self.gen_style1(code)
            return self.decode(c1, c2, s1, s2), (c1, c2, s1, s2)

        def autoencode(self, st):
            """Spatial expression (batch × N) → reconstruction, plus its codes."""
            c1 = self.st_content1(st)
            c2 = self.st_content2(c1)
            s1 = self.st_style1(st)
            s2 = self.st_style2(s1)
            return self.decode(c1, c2, s1, s2), (c1, c2, s1, s2)

    return SpaIMNet()


def gram(feat):
    """Gram matrix of a batch of codes, normalised by its size (as in neural style transfer)."""
    b, d = feat.shape
    return feat @ feat.T / (b * d)


def adamw(params, lr: float, weight_decay: float, dev):
    """AdamW, fused where this torch supports it on ``dev`` (5–10× faster steps on CPU)."""
    import torch

    params = list(params)
    if dev.type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


class deterministic:
    """Context: deterministic torch algorithms (warn-only where none exists), previous setting restored."""

    def __enter__(self):
        import torch

        self._prev = (torch.are_deterministic_algorithms_enabled(),
                      torch.is_deterministic_algorithms_warn_only_enabled())
        torch.use_deterministic_algorithms(True, warn_only=True)
        return self

    def __exit__(self, *exc):
        import torch

        torch.use_deterministic_algorithms(self._prev[0], warn_only=self._prev[1])
        return False
