"""STco: gene expression from H&E by contrastive patch ↔ spot learning and retrieval (see :mod:`.model`).

Modules: :mod:`.model` (the :class:`STco` estimator), :mod:`.network` (heads, loss, augmentation),
:mod:`.encoders` (image backbones), :mod:`.expression` (gene panel, normalisation), :mod:`.patches`
(physical-size patches, cache), :mod:`.tiling` (tissue mask, whole-slide tiles), :mod:`.state` (bundle files).
torch is imported on first use.
"""

from __future__ import annotations

from .model import DEFAULTS, N_TOP, STco

__all__ = ["DEFAULTS", "N_TOP", "STco"]
