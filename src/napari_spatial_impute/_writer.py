"""npe2 writers: cells (Points, imputed genes included) → .h5ad / .zarr / .csv; segmentation (Labels) → .tif / .npy
with a per-cell table (.csv) beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def write_points(path: str, data, attributes: dict) -> list[str]:
    """Write cells with their features. ``.h5ad`` / ``.zarr``: the attached imputation result (every imputed gene,
    reliability, provenance) when there is one, else the layer's AnnData; ``.csv``: x, y and every feature."""
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
        if path.suffix == ".zarr":
            adata.write_zarr(path)
        else:
            adata.write_h5ad(path, compression="gzip")
    else:
        table = features.copy()
        table.insert(0, "y", yx[:, 0])
        table.insert(0, "x", yx[:, 1])
        table.to_csv(path, index=False)
    return [str(path)]


def write_labels(path: str, data, attributes: dict) -> list[str]:
    """Write a segmentation mask (``.tif`` or ``.npy``) and, when the layer has features (label id, cell id,
    obs columns), ``<name>.cells.csv`` beside it."""
    path = Path(path)
    mask = np.asarray(data[0] if isinstance(data, list) else data)
    if path.suffix == ".npy":
        np.save(path, mask)
    else:
        import tifffile

        tifffile.imwrite(path, mask, compression="zlib")
    out = [str(path)]
    features = pd.DataFrame(attributes.get("features", {}))
    if len(features.columns):
        table = path.with_name(path.stem + ".cells.csv")
        features.to_csv(table, index=False)
        out.append(str(table))
    return out
