"""Gene expression from H&E: STco re-implemented (contrastive patch ↔ spot learning, retrieval prediction).

Readers (:func:`read_section`, :func:`read_st_section`, :func:`read_visium`), the model (:class:`STco`),
and the API (:func:`train`, :func:`evaluate`, :func:`load_model`, :func:`prediction_to_anndata`).
Heavy imports (torch) happen on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "read_section": ".io_st", "read_st_section": ".io_st", "read_visium": ".io_st",
    "read_spots_table": ".io_st", "STco": ".model", "train": ".api", "train_steps": ".api",
    "evaluate": ".api", "evaluate_steps": ".api", "load_model": ".api", "prediction_to_anndata": ".api",
    "heatmap_from_anndata": ".api", "TileGrid": ".tiling", "tissue_mask": ".tiling",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
