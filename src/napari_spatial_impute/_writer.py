"""npe2 writers: cells (Points, imputed genes included) → .h5ad / .zarr / .csv; segmentation (Labels) → .tif / .npy
with a per-cell table (.csv) beside it (label id, cell id, obs columns and the imputed genes the sample's result
added to the layer's features).

Every file is written under ``<name>.partial`` and renamed at the end (:func:`~napari_spatial_impute.atomic.
atomic_path`): an error leaves no partial file at the target path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_path


def write_points(path: str, data, attributes: dict) -> list[str]:
    """Write cells with their features. ``.h5ad`` / ``.zarr``: the attached imputation result (every imputed gene,
    reliability, provenance) when there is one, else the layer's AnnData; ``.csv``: x, y (the markers' positions)
    and every feature (a feature named x / y as ``x_obs`` / ``y_obs``)."""
    path = Path(path)
    meta = attributes.get("metadata") or {}
    features = pd.DataFrame(attributes.get("features", {}))
    yx = np.asarray(data)
    if path.suffix in (".h5ad", ".zarr"):
        result = meta.get("result")
        if result is not None:
            from .layers.results import save_result_steps
            from .progress import run_to_end

            prov = {"sample": str(meta.get("sample") or meta.get("source") or "")}
            return [str(run_to_end(save_result_steps(result, path, overwrite=True, provenance=prov)))]
        adata = meta.get("adata")
        if adata is None:
            import anndata as ad

            numeric = features.select_dtypes("number")
            adata = ad.AnnData(numeric.to_numpy(np.float32), var=pd.DataFrame(index=list(numeric.columns)))
            adata.obsm["spatial"] = yx[:, ::-1]
        with atomic_path(path, "cells file", folder=path.suffix == ".zarr") as tmp:
            if path.suffix == ".zarr":
                adata.write_zarr(tmp)
            else:
                adata.write_h5ad(tmp, compression="gzip")
    else:
        # x, y: the markers' positions; an obs column already called x / y (common in .h5ad files) is kept as x_obs
        table = features.rename(columns={c: f"{c}_obs" for c in ("x", "y") if c in features.columns})
        table.insert(0, "y", yx[:, 0])
        table.insert(0, "x", yx[:, 1])
        with atomic_path(path, "cells table") as tmp:
            table.to_csv(tmp, index=False)
    return [str(path)]


def write_labels(path: str, data, attributes: dict) -> list[str]:
    """Write a segmentation mask (``.tif`` or ``.npy``) and, when the layer has features (label id, cell id,
    obs columns, imputed genes), ``<name>.cells.csv`` beside it."""
    path = Path(path)
    mask = np.asarray(data[0] if isinstance(data, list) else data)
    features = pd.DataFrame(attributes.get("features", {}))
    table = path.with_name(path.stem + ".cells.csv") if len(features.columns) else None
    with atomic_path(path, "segmentation mask") as tmp:
        if path.suffix == ".npy":
            with open(tmp, "wb") as f:  # np.save(<str>) would append ".npy" to the temporary name
                np.save(f, mask)
        else:
            import tifffile

            tifffile.imwrite(tmp, mask, compression="zlib")
        if table is not None:
            with atomic_path(table, "per-cell table") as tmp_table:
                features.to_csv(tmp_table, index=False)
    return [str(path)] + ([str(table)] if table is not None else [])
