"""What every instrument reader returns: :class:`SpatialSample` (cells, images, labels, transcripts, boundaries).

World coordinates are micrometres with (x, y) = (column, row) direction, y pointing down (image rows), so
every element of one sample lines up when shown with the affines below.

Affine convention: a 3×3 homogeneous matrix acting on **pixel-centre indices (col, row)** of an array and
returning **(x, y) in µm** (napari puts pixel ``i`` centred on data coordinate ``i``). A pixel whose corner
sits at ``origin`` with width ``s`` therefore has ``translate = origin + s / 2``
(:func:`napari_spatial_impute.coords.pixel_grid_affine` builds it; the other affine helpers live there too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


def _pixel_size_um(affine) -> float:
    """Mean µm per pixel (x and y) of a pixel → µm affine (square root of its 2×2 determinant)."""
    a = np.asarray(affine)
    return float(np.sqrt(abs(np.linalg.det(a[:2, :2]))))


@dataclass
class SampleImage:
    """One image of a sample: ``data`` (rows, cols[, channels]) or a list of pyramid levels (finest first)."""

    name: str
    data: Any
    affine: np.ndarray
    rgb: bool = False
    channel_axis: int | None = None
    channel_names: list[str] | None = None
    source: str = ""

    @property
    def pixel_size_um(self) -> float:
        """Mean µm per pixel (x and y) of the finest level."""
        return _pixel_size_um(self.affine)

    @property
    def shape(self) -> tuple[int, ...]:
        level = self.data[0] if isinstance(self.data, list) else self.data
        return tuple(int(s) for s in level.shape)


@dataclass
class SampleLabels:
    """A segmentation mask: integer ``data`` (rows, cols); ``label_to_obs`` maps label id → ``obs_name``."""

    name: str
    data: Any
    affine: np.ndarray
    label_to_obs: dict[int, str] = field(default_factory=dict)
    source: str = ""

    @property
    def pixel_size_um(self) -> float:
        """Mean µm per pixel (x and y)."""
        return _pixel_size_um(self.affine)


@dataclass
class SpatialSample:
    """Cells × genes (``adata``: raw counts in X, ``obsm['spatial']`` (x, y) in ``unit``) plus what lines up
    with them: images, label masks, transcripts (DataFrame x, y, gene[, z, cell_id]) and cell boundaries
    (DataFrame cell_id, x, y: polygon vertices in order, one polygon per cell_id)."""

    adata: Any
    images: list[SampleImage] = field(default_factory=list)
    labels: list[SampleLabels] = field(default_factory=list)
    transcripts: pd.DataFrame | None = None
    boundaries: pd.DataFrame | None = None
    platform: str = "unknown"
    unit: str = "um"
    path: str = ""
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # short: the AnnData repr is long
        parts = [f"{self.adata.n_obs} cells × {self.adata.n_vars} genes"]
        if self.images:
            parts.append("images " + ", ".join(i.name for i in self.images))
        if self.labels:
            parts.append(f"{len(self.labels)} label mask(s)")
        if self.transcripts is not None:
            parts.append(f"{len(self.transcripts)} transcripts")
        if self.boundaries is not None:
            parts.append(f"{self.boundaries['cell_id'].nunique()} boundaries")
        return f"SpatialSample({self.platform}, " + "; ".join(parts) + f", unit={self.unit})"
