"""npe2 writer: a Points layer of cells (with imputed genes as features) → .h5ad or .csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def write_points(path: str, data, attributes: dict) -> list[str]:
    """Write cells with their features. ``.h5ad`` keeps the layer's AnnData when it carries one."""
    path = Path(path)
    features = pd.DataFrame(attributes.get("features", {}))
    yx = np.asarray(data)
    if path.suffix == ".h5ad":
        adata = (attributes.get("metadata") or {}).get("adata")
        if adata is None:
            import anndata as ad

            numeric = features.select_dtypes("number")
            adata = ad.AnnData(numeric.to_numpy(np.float32), var=pd.DataFrame(index=list(numeric.columns)))
            adata.obsm["spatial"] = yx[:, ::-1]
        adata.write_h5ad(path, compression="gzip")
    else:
        table = features.copy()
        table.insert(0, "y", yx[:, 0])
        table.insert(0, "x", yx[:, 1])
        table.to_csv(path, index=False)
    return [str(path)]
