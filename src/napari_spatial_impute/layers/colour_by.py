"""What a sample's cells can be coloured by: measured genes, ``obs`` columns and imputed genes (Qt-free).

A choice is a key ``"measured:<gene>"``, ``"obs:<column>"`` or ``"imputed:<gene>"``; :func:`colouring` turns it
into a :class:`Colouring` aligned with the sample's cells: float values with a unit and contrast limits, or
category codes with their names (a legend). Measured genes are shown as log1p(counts / library × median
library), the scale of the imputed values, so measured and imputed compare side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..preprocessing import library_scale, library_totals
from .colors import contrast_limits

IMPUTED_UNIT = "log1p normalised expression (imputed)"
MEASURED_UNIT = "log1p normalised counts (measured)"


@dataclass
class Colouring:
    """Per-cell values (``kind="continuous"``) or category codes (``kind="categorical"``, -1 = missing)."""

    key: str
    name: str
    kind: str
    values: np.ndarray
    unit: str = ""
    clim: tuple[float, float] = (0.0, 1.0)
    categories: list[str] = field(default_factory=list)
    counts: np.ndarray | None = None

    @property
    def title(self) -> str:
        """Two short lines for the canvas: the name, then the unit."""
        return f"{self.name}\n{self.unit}" if self.unit else self.name


def choices(adata, result=None, truth=None) -> list[str]:
    """Every key a sample's cells can be coloured by: imputed genes, measured genes (with ``truth``: held-out
    genes measured in the same cells), then obs columns."""
    keys = [f"imputed:{g}" for g in (result.genes if result is not None else [])]
    measured = list(map(str, adata.var_names))
    if truth is not None:
        measured += [g for g in map(str, truth.var_names) if g not in set(measured)]
    keys += [f"measured:{g}" for g in measured]
    keys += [f"obs:{c}" for c in map(str, adata.obs.columns)]
    return keys


def split_key(key: str) -> tuple[str, str]:
    kind, _, name = str(key).partition(":")
    if kind not in ("imputed", "measured", "obs") or not name:
        raise KeyError(f"{key!r} is not a colour-by choice (imputed:<gene>, measured:<gene> or obs:<column>)")
    return kind, name


def counts_matrix(adata):
    """(matrix, gene names) of ``adata``'s counts: found as imputation finds them (``X``, ``layers['counts']``,
    ``.raw``…), so a measured gene is put on the imputed scale once, never log1p of log values; ``X`` when no
    counts are found (the colouring is then as good as the values given)."""
    from ..errors import InputError
    from ..io.reference import find_counts

    try:
        X, names, *_ = find_counts(adata, what="spatial data", flag="--spatial-values")
    except InputError:
        X, names = adata.X, adata.var_names
    return X, pd.Index(list(map(str, names)))


class LibrarySizes:
    """Per-cell library sizes of the measured counts (see :func:`counts_matrix`; without the ``exclude`` genes),
    computed once (log1p-normalising one gene is then cheap)."""

    def __init__(self, adata, exclude=()):
        self.X, self.names = counts_matrix(adata)
        # genes held out of an imputation leave its library sizes: the measured side does the same
        self.total = library_totals(self.X, [i for i in self.names.get_indexer(list(exclude)) if i >= 0])
        self.scale, self.target = library_scale(self.total)

    def normalise(self, counts) -> np.ndarray:
        return np.log1p(np.asarray(counts, dtype=np.float64) * self.scale).astype(np.float32)

    def counts(self, gene: str) -> np.ndarray:
        """One gene's counts per cell (float64)."""
        return _column(self.X, self.names, gene)


def _column(X, names: pd.Index, gene: str) -> np.ndarray:
    i = names.get_indexer([gene])[0]
    if i < 0:
        raise KeyError(f"{gene!r} is not a measured gene")
    col = X[:, i]
    col = col.toarray() if hasattr(col, "toarray") else np.asarray(col)
    return np.asarray(col, np.float64).ravel()


def measured_counts(adata, gene: str) -> np.ndarray:
    """One gene's counts per cell (float64), from the matrix holding ``adata``'s counts."""
    return _column(*counts_matrix(adata), gene)


def measured_values(adata, gene: str, library: LibrarySizes | None = None) -> np.ndarray:
    """One measured gene per cell on the imputed scale (log1p of counts normalised to the median library)."""
    library = library or LibrarySizes(adata)
    return library.normalise(library.counts(gene))


def obs_colouring(key: str, series: pd.Series) -> Colouring:
    """An obs column: numeric → continuous; anything else (or a categorical dtype) → categories."""
    name = key.partition(":")[2]
    if isinstance(series.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(series) \
            or pd.api.types.is_bool_dtype(series):
        cat = series.astype("category")
        codes = cat.cat.codes.to_numpy(np.int64)
        counts = np.bincount(codes[codes >= 0], minlength=len(cat.cat.categories))
        return Colouring(key, name, "categorical", codes, "category",
                         categories=[str(c) for c in cat.cat.categories], counts=counts)
    values = pd.to_numeric(series, errors="coerce").to_numpy(np.float32)
    return Colouring(key, name, "continuous", values, obs_unit(name), contrast_limits(values))


#: units of the numeric obs columns the instrument readers (Xenium, MERSCOPE) and scanpy's QC write
OBS_UNITS = {"cell_area": "µm²", "nucleus_area": "µm²", "volume": "µm³", "x_centroid": "µm", "y_centroid": "µm",
             "n_transcripts": "counts", "n_counts": "counts", "n_genes_by_counts": "genes", "n_genes": "genes",
             "pct_counts_mt": "% of counts"}


def obs_unit(name: str) -> str:
    """The unit of a numeric obs column for the canvas title under its name (:data:`OBS_UNITS`, ``*_counts`` →
    counts, ``*_um2`` → µm²), else "obs column"."""
    if name in OBS_UNITS:
        return OBS_UNITS[name]
    if name.endswith("_counts"):
        return "counts"
    return "µm²" if name.endswith("_um2") else "obs column"


def colouring(key: str, adata, result=None, library: LibrarySizes | None = None, truth=None,
              truth_counts: tuple | None = None) -> Colouring:
    """The :class:`Colouring` of ``key`` for the cells of ``adata`` (``result``: an aligned :class:`SampleResult`;
    ``truth``: an AnnData of held-out genes measured in the same cells, looked up by cell id; ``truth_counts``:
    its :func:`counts_matrix`, when the caller keeps it)."""
    kind, name = split_key(key)
    if kind == "obs":
        if name not in adata.obs.columns:
            raise KeyError(f"{name!r} is not an obs column")
        return obs_colouring(key, adata.obs[name])
    if kind == "imputed":
        if result is None:
            raise KeyError("no imputation result is attached to these cells")
        values = result.values(name)
        unit = IMPUTED_UNIT
    elif name in set(map(str, adata.var_names)) or truth is None:
        values = measured_values(adata, name, library)
        unit = MEASURED_UNIT
    else:  # a held-out gene: normalised by the panel's library, as the imputation's inputs and its scoring are
        counts = _column(*truth_counts, name) if truth_counts is not None else measured_counts(truth, name)
        if not truth.obs_names.equals(adata.obs_names):
            counts = pd.Series(counts, index=truth.obs_names).reindex(adata.obs_names).to_numpy(np.float64)
        values = (library or LibrarySizes(adata)).normalise(counts)
        unit = MEASURED_UNIT
    return Colouring(key, name, "continuous", values, unit, contrast_limits(values))


def paired_genes(adata, result, truth=None) -> list[str]:
    """Genes both measured (in ``adata`` or ``truth``) and imputed in ``result`` (the grid's choices)."""
    if result is None:
        return []
    measured = set(map(str, adata.var_names)) | (set(map(str, truth.var_names)) if truth is not None else set())
    return [g for g in result.genes if g in measured]


def legend_rows(c: Colouring, max_rows: int = 30) -> tuple[list[tuple[str, int, int]], int]:
    """(name, code, count) of the most frequent categories (at most ``max_rows``) and how many are left out."""
    counts = c.counts if c.counts is not None else np.zeros(len(c.categories), np.int64)
    order = np.argsort(-counts, kind="stable")[:max_rows]
    return [(c.categories[i], int(i), int(counts[i])) for i in order], max(0, len(c.categories) - max_rows)
