"""Imputation results that belong to a sample: aligned with its cells by cell id, read one gene at a time, and
saved as AnnData (``.h5ad`` or ``.zarr``) block by block, atomically (Qt-free).

:class:`SampleResult` wraps an in-memory AnnData or a zarr-backed one (:func:`napari_spatial_impute.io.results.
open_result`); :meth:`SampleResult.values` gives one gene per sample cell (NaN where the result has no
prediction). :func:`save_result_steps` is a progress generator: cancelling it (a worker's quit) removes the
partial file, so nothing half-written is ever left at the target path.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import UNS_KEY
from ..atomic import PARTIAL, atomic_path, remove
from ..errors import InputError
from ..io.detect import zarr_root
from ..progress import Progress, ProgressGen

#: above this many values (cells × genes) imputed genes are not all copied into the cells layer's features
MAX_FEATURE_VALUES = 20_000_000


class SampleResult:
    """An imputation result aligned with a sample's cells (``cell_ids``, optional ``cell_xy`` in µm).

    Raises :class:`InputError` when no cell id matches, or when the matched cells sit elsewhere (a result of
    another slide that reuses ids such as "1", "2", …); nothing is coloured then.
    """

    def __init__(self, adata, cell_ids, cell_xy=None, *, tolerance_um: float = 2.0):
        self.adata = adata
        self._zarr = _zarr_array(adata)
        names = pd.Index(np.asarray(adata.obs_names, dtype=str))
        if not names.is_unique:
            raise InputError("The result has duplicate cell ids.", "give every cell a unique obs_name.")
        ids = np.asarray(cell_ids, dtype=str)
        self.index = names.get_indexer(ids)
        self.n_cells = len(ids)
        self.n_matched = int((self.index >= 0).sum())
        if self.n_matched == 0:
            raise InputError(
                f"The result's cell ids do not match the open sample (result e.g. {list(map(str, names[:3]))}, sample "
                f"e.g. {list(map(str, ids[:3]))}); nothing was recoloured.",
                "open the sample the result was computed from, or impute again on these cells.")
        if cell_xy is not None and "spatial" in adata.obsm:
            ok = self.index >= 0
            res_xy = np.asarray(adata.obsm["spatial"], np.float64)[self.index[ok], :2]
            d = np.median(np.linalg.norm(res_xy - np.asarray(cell_xy, np.float64)[ok, :2], axis=1))
            if not np.isfinite(d) or d > tolerance_um:
                raise InputError(f"The result's cells share ids with the open sample but lie {d:.1f} µm away "
                                 "from them (median): it was computed on another slide; nothing was recoloured.",
                                 "open the sample the result was computed from.")
        self.genes = [str(g) for g in adata.var_names]
        self._col = {g: i for i, g in enumerate(self.genes)}
        self.reliability = ({g: float(v) for g, v in adata.var["reliability"].items()}
                            if "reliability" in adata.var else None)
        self.info = dict(adata.uns.get(UNS_KEY, {}))

    @property
    def on_disk(self) -> bool:
        return self._zarr is not None

    @property
    def method(self) -> str:
        return str(self.info.get("method", "model"))

    def raw_column(self, gene: str) -> np.ndarray:
        """One gene for the result's own cells (one zarr column read when the values are on disk)."""
        if gene not in self._col:
            raise KeyError(f"{gene!r} is not an imputed gene")
        j = self._col[gene]
        if self._zarr is not None:
            return np.asarray(self._zarr[:, j], dtype=np.float32)
        col = self.adata.X[:, j]
        col = col.toarray() if hasattr(col, "toarray") else np.asarray(col)
        return np.asarray(col, dtype=np.float32).ravel()

    def values(self, gene: str) -> np.ndarray:
        """One imputed gene per sample cell (NaN for cells without a prediction)."""
        col = self.raw_column(gene)
        out = np.full(self.n_cells, np.nan, dtype=np.float32)
        ok = self.index >= 0
        out[ok] = col[self.index[ok]]
        return out

    def features(self, max_values: int = MAX_FEATURE_VALUES) -> pd.DataFrame | None:
        """Every imputed gene as feature columns aligned with the sample's cells, or None when too large
        (or on disk): the shown gene is added column by column instead."""
        if self.on_disk or self.n_cells * len(self.genes) > max_values:
            return None
        X = self.adata.X.toarray() if hasattr(self.adata.X, "toarray") else np.asarray(self.adata.X)
        out = np.full((self.n_cells, len(self.genes)), np.nan, dtype=np.float32)
        ok = self.index >= 0
        out[ok] = X[self.index[ok]]
        return pd.DataFrame(out, columns=self.genes)

    def blocks(self, rows: int = 65_536):
        """(row slice, dense float32 block) of the result's own cells, in order."""
        n = self.adata.n_obs
        for start in range(0, n, rows):
            sl = slice(start, min(n, start + rows))
            block = self._zarr[sl, :] if self._zarr is not None else self.adata.X[sl]
            block = block.toarray() if hasattr(block, "toarray") else np.asarray(block)
            yield sl, np.asarray(block, dtype=np.float32)


def _zarr_array(adata):
    """The zarr array of a result whose values stay on disk (``X`` None, or the lazy dask view of it)."""
    path = adata.uns.get("_zarr_X")
    if not path or not (adata.X is None or type(adata.X).__module__.startswith("dask")):
        return None
    import zarr

    return zarr.open_group(str(path), mode="r")["X"]


def _provenance(result: SampleResult, extra: dict | None) -> dict:
    from .. import __version__

    info = {k: v for k, v in result.info.items()}
    info.update({"saved_by": f"napari-spatial-impute {__version__}", "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"),
                 "reliability": "var['reliability'] (predicted PCC)" if result.reliability else "none"})
    for k, v in (extra or {}).items():
        info[k] = v if isinstance(v, (str, int, float, bool)) else json.dumps(v, default=str)
    return info


def _shell(result: SampleResult, provenance: dict):
    import anndata as ad

    src = result.adata
    uns = {k: v for k, v in src.uns.items() if k not in ("_zarr_X", UNS_KEY)}
    uns[UNS_KEY] = provenance
    obs = src.obs.copy()
    for col in obs.columns:  # h5ad / zarr cannot store mixed object columns
        if obs[col].dtype == object:
            obs[col] = obs[col].astype(str)
    return ad.AnnData(obs=obs, var=src.var.copy(), obsm={k: np.asarray(v) for k, v in src.obsm.items()}, uns=uns)


def save_result_steps(result: SampleResult, path, *, overwrite: bool = False, provenance: dict | None = None,
                      rows: int = 65_536) -> ProgressGen[Path]:
    """Write every imputed gene, reliability (``var``) and provenance (``uns``) to ``.h5ad`` or ``.zarr``.

    Written block by block under ``<name>.partial`` and renamed into place at the end; an error or a cancel
    (the generator closed) removes the partial file.
    """
    path = Path(path)
    if path.suffix not in (".h5ad", ".zarr"):
        raise InputError(f"Cannot save results as {path.suffix or 'a file without extension'}.",
                         "use a .h5ad file, or .zarr for results larger than memory.")
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists.", "choose another file name.")
    if not path.parent.is_dir():
        raise InputError(f"The folder {path.parent} does not exist.", "choose an existing folder.")
    info = _provenance(result, provenance)
    shell = _shell(result, info)
    n = result.adata.n_obs
    yield Progress(0, max(1, n), f"saving {n:,} cells × {len(result.genes):,} genes to {path.name}", "save")
    if path.suffix == ".zarr":
        from ..io.results import ResultWriter

        writer = ResultWriter(path, shell.obs, shell.var, obsm=dict(shell.obsm), uns=dict(shell.uns),
                              cell_chunk=min(rows, max(1, n)), overwrite=overwrite)
        try:
            for sl, block in result.blocks(rows):
                writer.write(sl, block)
                yield Progress(sl.stop, max(1, n), f"saved {sl.stop:,} of {n:,} cells", "save")
            writer.close()
        except BaseException:
            writer.abort()
            raise
        return path
    with atomic_path(path, "result file") as tmp:
        yield from _write_h5ad_blocks(shell, result, tmp, rows)
    return path


def _write_h5ad_blocks(shell, result: SampleResult, tmp: Path, rows: int):
    import h5py

    n, g = result.adata.n_obs, len(result.genes)
    shell.write_h5ad(tmp)
    with h5py.File(tmp, "r+") as f:
        if "X" in f:
            del f["X"]
        X = f.create_dataset("X", shape=(n, g), dtype="float32", compression="gzip",
                             chunks=(max(1, min(n, 4096)), max(1, min(g, 64))))
        X.attrs["encoding-type"] = "array"
        X.attrs["encoding-version"] = "0.2.0"
        for sl, block in result.blocks(rows):
            X[sl, :] = block
            yield Progress(sl.stop, max(1, n), f"saved {sl.stop:,} of {n:,} cells", "save")


def remove_partial(path) -> None:
    """Remove what a cancelled save may have left (``<path>.partial``)."""
    remove(Path(str(path) + PARTIAL))


# --- opening a saved result (the reader) -----------------------------------------------------------------

def read_result(path):
    """A saved result as AnnData: ``.h5ad`` in memory, ``.zarr`` with X left on disk (read one gene at a time)."""
    path = Path(str(path))
    root = zarr_root(path)
    try:
        if root is not None:
            from ..io.results import open_result

            return open_result(root)[0]
        if path.suffix == ".h5ad" and path.is_file():
            import anndata as ad

            return ad.read_h5ad(path)
    except (OSError, KeyError, ValueError) as err:
        raise InputError(f"Could not read the result {path.name}: {err}.",
                         "choose a result saved by 'Save results…' (.h5ad or .zarr).") from err
    raise InputError(f"{path} is not a saved result (an .h5ad file or a .zarr folder).",
                     "choose a result saved by 'Save results…'.")


def saved_result_layers(path, cmap: str = "magma") -> list[tuple]:
    """A saved result as a cells Points layer whose genes are imputed values, shown as saved.

    ``metadata["adata"]`` holds the cells without genes (obs columns, coordinates), so nothing offers the imputed
    values as "measured" counts to be normalised again; ``metadata["result"]`` is the result aligned with them
    (the "Colour cells by" dock attaches it: imputed genes and obs columns). Every gene is a feature column when
    the result is small (else the shown one)."""
    import anndata as ad

    from .cells import cells_points_layer, default_gene

    path = Path(str(path))
    adata = read_result(path)
    if "spatial" not in adata.obsm:
        raise InputError(f"The result {path.name} has no cell coordinates (obsm['spatial']).",
                         "open the sample it was computed from and use 'Load result…' in the Impute dock.")
    ids = np.asarray(adata.obs_names, dtype=str)
    result = SampleResult(adata, ids)
    xy = np.asarray(adata.obsm["spatial"], np.float64)[:, :2]
    cells = ad.AnnData(obs=adata.obs.copy(), obsm={"spatial": xy},
                       uns={"spatial_unit": adata.uns.get("spatial_unit", "um")})  # the scale bar's unit
    gene = default_gene(adata)
    feats = result.features()
    if feats is None:
        feats = pd.DataFrame({gene: result.values(gene)})
    info = result.info
    what = "predicted from H&E" if result.method == "stco" else "imputed"  # a saved histology prediction
    data, kwargs, kind = cells_points_layer(
        cells, f"{what} ({result.method}) {path.name}", gene=gene, cmap=cmap, extra_features=feats,
        metadata={"result": result, "saved_result": str(path), "sample": f"result:{path}", "source": str(path),
                  "info": info, "colour_by": f"imputed:{gene}"})
    return [(data, kwargs, kind)]
