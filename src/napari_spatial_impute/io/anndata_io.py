"""AnnData files in and out, with clear errors for bad input and no overwritten files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError


def _read(path: str | Path, what: str):
    import anndata as ad

    path = Path(path)
    if not path.exists():
        raise InputError(f"The {what} file {path} does not exist.", "check the path.")
    if path.is_dir():
        raise InputError(f"The {what} path {path} is a folder, not an .h5ad file.",
                         "open instrument folders with napari_spatial_impute.io readers or napari's File ▸ Open.")
    if path.stat().st_size == 0:
        raise InputError(f"The {what} file {path} is empty (0 bytes).", "re-export it.")
    try:
        adata = ad.read_h5ad(path)
    except Exception as err:  # noqa: BLE001 - any parse failure becomes one clear message
        raise InputError(f"Could not read the {what} file {path} as AnnData (.h5ad): {type(err).__name__}: {err}",
                         "write it with anndata's adata.write_h5ad(...).") from err
    return adata


def check_spatial(adata, source: str = "spatial data") -> None:
    """Validate a spatial AnnData: cells and genes present, (n, 2) finite ``obsm['spatial']``.

    What the expression values are (counts, log-normalised, …) is checked where they are used
    (:func:`napari_spatial_impute.io.reference.find_counts`), since the user may declare them."""
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(f"The {source} is empty ({adata.n_obs} cells × {adata.n_vars} genes).",
                         "point at a file with cells in rows and genes in columns.")
    if "spatial" not in adata.obsm:
        raise InputError(f"The {source} has no coordinates: obsm['spatial'] is missing.",
                         "store (x, y) per cell in adata.obsm['spatial'].")
    xy = np.asarray(adata.obsm["spatial"])
    if xy.ndim != 2 or xy.shape[1] < 2 or xy.shape[0] != adata.n_obs:
        raise InputError(f"obsm['spatial'] of the {source} has shape {xy.shape}; expected ({adata.n_obs}, 2).",
                         "store (x, y) per cell in adata.obsm['spatial'].")
    if not np.all(np.isfinite(xy[:, :2].astype(float))):
        raise InputError(f"obsm['spatial'] of the {source} holds NaN/inf coordinates.", "drop those cells.")


def read_spatial(path: str | Path):
    """Read a spatial AnnData (raw counts in X or layers['counts'], (x, y) in obsm['spatial'])."""
    adata = _read(path, "spatial")
    check_spatial(adata, f"spatial file {Path(path).name}")
    return adata


def read_reference(path: str | Path):
    """Read a scRNA-seq reference AnnData (counts in layers['counts'], .raw or X; checked when used)."""
    adata = _read(path, "reference")
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(f"The reference file {Path(path).name} is empty ({adata.n_obs} cells × {adata.n_vars} "
                         "genes).", "point at a file with cells in rows and genes in columns.")
    return adata


def write_h5ad_safely(adata, path: str | Path, *, overwrite: bool = False, what: str = "output file") -> Path:
    """Write ``adata`` to ``path`` via a temporary file (removed on any error or Ctrl-C); refuse to overwrite
    unless asked; an unwritable destination is an :class:`InputError` naming it."""
    from ..atomic import atomic_path

    with atomic_path(path, what, overwrite=overwrite) as tmp:
        adata.write_h5ad(tmp, compression="gzip")
    return Path(path)
