"""AnnData files in and out, with clear errors for bad input and no overwritten files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError


def _read(path: str | Path, what: str, backed: str | None = None):
    """An ``.h5ad`` (``backed="r"``: X left on disk) or an :class:`InputError` naming the file and the fix."""
    import anndata as ad

    path = Path(path)
    if not path.exists():
        raise InputError(f"The {what} file {path} does not exist.", "check the path.")
    if path.is_dir():
        other = ("an instrument's output folder (Xenium, CosMx, MERSCOPE, Visium, legacy ST) or a SpatialData .zarr"
                 if what == "spatial" else "Cell Ranger's filtered_feature_bc_matrix folder or .h5")
        raise InputError(f"The {what} path {path} is a folder that is neither an .h5ad nor {other}.",
                         f"give an .h5ad file, or {other}.")
    if path.stat().st_size == 0:
        raise InputError(f"The {what} file {path} is empty (0 bytes).", "re-export it.")
    try:
        adata = ad.read_h5ad(path, backed=backed)
    except Exception as err:  # noqa: BLE001 - any parse failure becomes one clear message
        raise InputError(f"Could not read the {what} file {path.name} as AnnData (.h5ad): {type(err).__name__}: "
                         f"{err}", "write it with anndata's adata.write_h5ad(...).") from err
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
    """Read a spatial AnnData ``.h5ad`` (raw counts in X or layers['counts'], (x, y) in obsm['spatial']); an
    instrument folder or SpatialData store too: :func:`~napari_spatial_impute.io.detect.read_cells`."""
    adata = _read(path, "spatial")
    check_spatial(adata, f"spatial file {Path(path).name}")
    return adata


#: 10x Cell Ranger's matrix folder files (v3: features.tsv.gz; v2: genes.tsv)
MTX_NAMES = ("matrix.mtx.gz", "matrix.mtx")


def tenx_mtx_folder(path: Path) -> Path | None:
    """The Cell Ranger matrix folder ``path`` is or lies in (``matrix.mtx(.gz)`` beside its barcodes / features),
    else None."""
    folder = path.parent if path.is_file() else path
    return folder if any((folder / n).is_file() for n in MTX_NAMES) else None


def _is_10x_h5(path: Path) -> bool:
    """Whether ``path`` is a 10x HDF5 matrix (v3: a ``matrix`` group; v2: a group per genome with ``barcodes``),
    not an AnnData that happens to end in ``.h5``."""
    if path.suffix != ".h5" or not path.is_file() or path.stat().st_size == 0:
        return False
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "obs" in f and "var" in f:
                return False
            return "matrix" in f or any(isinstance(g, h5py.Group) and "barcodes" in g for g in f.values())
    except OSError:
        return True  # not HDF5 at all: the 10x reader names the file and the fix


def _read_10x(path: Path, folder: Path | None):
    """A 10x HDF5 file or matrix folder as AnnData: gene symbols as names (made unique), Ensembl ids in
    ``var["gene_ids"]``; any failure is an :class:`InputError` naming the file."""
    import scanpy as sc

    try:
        adata = sc.read_10x_mtx(folder, var_names="gene_symbols", make_unique=True) if folder is not None \
            else sc.read_10x_h5(path)
    except Exception as err:  # noqa: BLE001 - h5py / scanpy raise several kinds for a damaged or foreign file
        what = f"10x matrix folder {folder}" if folder is not None else f"10x HDF5 file {path}"
        raise InputError(f"Could not read the reference's {what}: {type(err).__name__}: {err}",
                         "give Cell Ranger's filtered_feature_bc_matrix.h5 or filtered_feature_bc_matrix/ folder "
                         "unmodified, or an .h5ad.") from err
    adata.var_names_make_unique()
    return adata


def read_reference(path: str | Path, *, backed: str | None = None):
    """Read a scRNA-seq reference: an AnnData ``.h5ad`` (or ``.zarr``) with counts in layers['counts'], .raw or X
    (checked when used), or Cell Ranger's output as it is: ``filtered_feature_bc_matrix.h5`` or the
    ``filtered_feature_bc_matrix/`` folder (``matrix.mtx.gz`` + features + barcodes; a file in it will do).
    ``backed="r"``: an ``.h5ad``'s X stays on disk (listing its genes reads no matrix)."""
    import anndata as ad

    path = Path(path)
    folder = tenx_mtx_folder(path) if path.exists() else None
    if folder is not None or _is_10x_h5(path):
        adata = _read_10x(path, folder)
    elif path.suffix == ".zarr" and path.is_dir():
        import importlib.util

        if importlib.util.find_spec("zarr") is None:
            raise InputError(f"Reading the reference {path.name} (an AnnData .zarr store) needs the zarr package.",
                             "pip install 'napari-spatial-impute[dask]' (it brings zarr), or give an .h5ad.")
        try:
            adata = ad.read_zarr(path)
        except Exception as err:  # noqa: BLE001 - one clear message for any parse failure
            raise InputError(f"Could not read the reference {path} as an AnnData zarr store: {type(err).__name__}: "
                             f"{err}", "write it with anndata's adata.write_zarr(...), or give an .h5ad.") from err
    else:
        adata = _read(path, "reference", backed=backed)
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
