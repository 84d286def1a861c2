"""Imputation results that may not fit in memory: a zarr-backed AnnData written chunk by chunk.

:class:`ResultWriter` creates a valid AnnData zarr store (``anndata.read_zarr`` opens it) under a temporary
``<name>.partial`` folder, takes blocks of predictions (rows = cells, columns = genes) as they are computed,
and renames the folder into place only when every block has been written; on error or cancel the partial
folder is removed. :func:`read_gene` reads one gene (one column) without loading the matrix.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

#: genes per zarr chunk: reading one gene decompresses n_cells × this many values
GENE_CHUNK = 16


def is_zarr_path(path) -> bool:
    """Whether an output path names a zarr store (``….zarr``, with or without a trailing slash)."""
    return path is not None and str(path).rstrip("/").endswith(".zarr")


def choose_cell_chunk(n_genes: int, budget_bytes: int = 512 << 20, *, lo: int = 1024, hi: int = 262_144) -> int:
    """Cells per prediction chunk so that one dense chunk (cells × genes float32) stays within ``budget_bytes``."""
    return int(np.clip(budget_bytes // max(1, 4 * n_genes), lo, hi))


def check_finite(pred: np.ndarray, method: str) -> None:
    """Refuse to hand out predictions with NaN / inf (the sign of inputs the checks did not catch)."""
    bad = ~np.isfinite(np.asarray(pred))
    if bad.any():
        raise InputError(f"{method} produced {int(bad.sum())} non-finite (NaN/inf) predictions; nothing was "
                         "written.", "check the inputs' values (counts, no NaN/inf, not all zero) and report "
                         "this if they are fine.")


def zarr_support() -> str | None:
    """``None`` when ``.zarr`` results can be written here, else why not (zarr ≥ 3 with anndata ≥ 0.12)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        z, a = version("zarr"), version("anndata")
    except PackageNotFoundError:
        return "the zarr package is not installed"
    if int(z.split(".")[0]) < 3:
        return f"zarr {z} is older than 3"
    major_minor = tuple(int(x) for x in a.split(".")[:2] if x.isdigit())
    if major_minor < (0, 12):
        return f"anndata {a} cannot write zarr 3 stores (needs ≥ 0.12)"
    return None


def check_zarr_support() -> None:
    """Raise a clear :class:`InputError` when ``.zarr`` results cannot be written with the installed packages."""
    reason = zarr_support()
    if reason is not None:
        raise InputError(f"Results in .zarr need zarr ≥ 3 and anndata ≥ 0.12 ({reason}).",
                         "pip install -U 'anndata>=0.12' 'zarr>=3' (Python ≥ 3.11), or write .h5ad for results "
                         "that fit in memory.")


def check_target(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists.", "choose another output path or pass --overwrite.")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise InputError(f"The output folder {parent} does not exist.", "create it or choose another path.")
    from ..atomic import check_writable

    check_writable(path, "result store", folder=True)


class ResultWriter:
    """Write an (n_cells × n_genes) float32 result to ``path`` (``.zarr``) block by block.

    >>> with ResultWriter(path, obs, var, obsm={"spatial": xy}, uns=info, cell_chunk=8192) as w:
    ...     for rows, block in blocks:
    ...         w.write(rows, block)
    """

    def __init__(self, path, obs: pd.DataFrame, var: pd.DataFrame, *, obsm: dict | None = None,
                 uns: dict | None = None, cell_chunk: int = 65_536, overwrite: bool = False):
        check_zarr_support()
        import anndata as ad
        import zarr

        from ..atomic import AtomicTarget

        self.path = Path(path)
        check_target(self.path, overwrite)
        # the package's one write-then-rename: committed by close(), discarded by abort()
        self._target = AtomicTarget(self.path, "result store", overwrite=overwrite, folder=True)
        self.tmp = self._target.tmp
        self.shape = (len(obs), len(var))
        self._written = 0
        try:
            shell = ad.AnnData(obs=obs, var=var, obsm=obsm or {}, uns=uns or {})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # anndata's notice about zarr v2 becoming v3
                shell.write_zarr(self.tmp)  # obs, var, obsm, uns in anndata's own encoding; X absent
            root = zarr.open_group(str(self.tmp), mode="r+", use_consolidated=False)
            chunks = (int(min(max(1, cell_chunk), max(1, self.shape[0]))), int(min(GENE_CHUNK, max(1, self.shape[1]))))
            self.X = root.create_array("X", shape=self.shape, chunks=chunks, dtype="float32", fill_value=np.nan)
            self.X.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        except OSError as err:
            self.abort()
            raise InputError(f"Could not write {self.path}: {err.strerror or err}.",
                             "choose a writable folder with enough free space.") from err
        except BaseException:
            self.abort()
            raise

    def write(self, rows: slice, block: np.ndarray, cols: slice | None = None) -> None:
        """Store predictions of the cells ``rows`` for the genes ``cols`` (default: every gene); each
        (rows, cols) region is written once."""
        cols = slice(0, self.shape[1]) if cols is None else cols
        block = np.asarray(block, dtype=np.float32)
        try:
            check_finite(block, "this model")
        except InputError:
            self.abort()
            raise
        if block.shape != (rows.stop - rows.start, cols.stop - cols.start):
            raise ValueError(f"block shape {block.shape} does not fit rows {rows} × cols {cols}")
        try:
            self.X[rows, cols] = block
        except OSError as err:
            self.abort()
            raise InputError(f"Writing {self.path} failed: {err.strerror or err} (disk full or not writable?).",
                             "free space or choose another output folder; the partial output was removed.") from err
        self._written += block.size

    def close(self, uns: dict | None = None) -> Path:
        """Check every cell was written, merge ``uns`` (known only at the end, e.g. run time) into the ``uns``
        given at creation (its keys replace same-named ones, the others stay), then move the store into place."""
        import zarr

        total = self.shape[0] * self.shape[1]
        if self._written != total:
            self.abort()
            raise RuntimeError(f"only {self._written} of {total} values ({self.shape[0]} cells × {self.shape[1]} "
                               "genes) were written")
        try:
            if uns:
                import anndata as ad

                root = zarr.open_group(str(self.tmp), mode="r+", use_consolidated=False)
                if "uns" not in root:
                    ad.io.write_elem(root, "uns", {})
                for key, value in uns.items():  # merged: the spatial data's uns written at creation stays
                    ad.io.write_elem(root["uns"], key, value)
            zarr.consolidate_metadata(str(self.tmp))
        except OSError as err:
            from ..atomic import os_error

            self.abort()
            raise os_error(err, self.path, "result store") from err
        return self._target.commit()

    def abort(self) -> None:
        """Remove the partial output (cancel, error)."""
        self._target.discard()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_result(adata, path, *, overwrite: bool = False) -> Path:
    """An in-memory result to ``path``: a ``.zarr`` store (as :class:`ResultWriter` writes them, so the reader
    opens it as a result) or an ``.h5ad`` file; through a temporary name either way."""
    if not is_zarr_path(path):
        from .anndata_io import write_h5ad_safely

        return write_h5ad_safely(adata, path, overwrite=overwrite)
    X = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    chunk = choose_cell_chunk(adata.n_vars)
    with ResultWriter(path, adata.obs, adata.var, obsm=dict(adata.obsm), uns=dict(adata.uns), cell_chunk=chunk,
                      overwrite=overwrite) as writer:
        for start in range(0, adata.n_obs, chunk):
            rows = slice(start, min(adata.n_obs, start + chunk))
            writer.write(rows, np.asarray(X[rows], np.float32))
    return Path(path)


def read_gene(path, gene: str) -> np.ndarray:
    """One gene's values for every cell from a zarr result, without loading the whole matrix."""
    import zarr

    root = zarr.open_group(str(path), mode="r")
    import anndata as ad

    names = [str(n) for n in ad.io.read_elem(root["var"]).index]
    hits = np.flatnonzero(np.asarray(names, dtype=object) == gene)
    if hits.size == 0:
        raise InputError(f"Gene {gene!r} is not in the result {path}.", "choose one of its var_names.")
    return np.asarray(root["X"][:, int(hits[0])], dtype=np.float32)


def open_result(path):
    """A zarr result as AnnData with ``X`` left on disk: obs / var / obsm / uns in memory, ``X`` a lazy dask
    array over the store (scanpy, ``to_df`` and slicing read what they need; ``X.compute()`` all of it), or
    None without dask; ``uns["_zarr_X"]`` names the store. Returns (AnnData, the zarr array)."""
    import anndata as ad
    import zarr

    root = zarr.open_group(str(path), mode="r")
    obs = ad.io.read_elem(root["obs"])
    var = ad.io.read_elem(root["var"])
    obsm = ad.io.read_elem(root["obsm"]) if "obsm" in root else {}
    uns = ad.io.read_elem(root["uns"]) if "uns" in root else {}
    try:
        import dask.array as da
    except ImportError:
        X = None
    else:
        X = da.from_zarr(root["X"])
    out = ad.AnnData(X=X, obs=obs, var=var, obsm=obsm, uns=uns)
    out.uns["_zarr_X"] = str(path)  # where the values live; read_gene reads one gene from it
    return out, root["X"]
