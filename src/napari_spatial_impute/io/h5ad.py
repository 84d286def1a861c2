"""Any AnnData ``.h5ad`` with ``obsm['spatial']`` → :class:`SpatialSample` (images from scanpy's ``uns['spatial']``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..coords import pixel_grid_affine
from ..errors import InputError
from .spatial_sample import SampleImage, SpatialSample


def read_anndata(path) -> SpatialSample:
    """Read an ``.h5ad``; coordinates stay in their own unit (``uns['spatial_unit']``, else µm if the file says
    so, else "px"). scanpy/squidpy Visium-style images in ``uns['spatial'][library]['images']`` are placed with
    ``1 / tissue_<res>_scalef`` so they line up with ``obsm['spatial']``."""
    from .anndata_io import read_spatial

    adata = read_spatial(path)
    return sample_from_adata(adata, platform=str(adata.uns.get("platform", "anndata")), path=str(Path(path)))


def sample_from_adata(adata, *, platform: str = "anndata", path: str = "") -> SpatialSample:
    """Wrap an in-memory spatial AnnData (e.g. from a Visium / ST reader) as a :class:`SpatialSample`."""
    unit = str(next((adata.uns[k] for k in ("spatial_unit", "spatial_units", "unit") if k in adata.uns), "px"))
    sample = SpatialSample(adata=adata, platform=platform, unit=unit, path=path)
    spatial = adata.uns.get("spatial")
    if isinstance(spatial, dict):
        for lib, entry in spatial.items():
            if not isinstance(entry, dict):
                continue
            imgs = entry.get("images", {}) or {}
            sf = entry.get("scalefactors", {}) or {}
            for res in ("hires", "lowres"):
                if res in imgs:
                    scalef = float(sf.get(f"tissue_{res}_scalef", 1.0))
                    if scalef <= 0:
                        raise InputError(f"uns['spatial'][{lib!r}]['scalefactors'] has tissue_{res}_scalef={scalef}.",
                                         "store a positive scale factor.")
                    img = np.asarray(imgs[res])
                    # obsm['spatial'] is in full-resolution pixels; pixel i of the hires image spans
                    # [i, i+1) / scalef full-resolution pixels.
                    sample.images.append(SampleImage(name=f"{lib} {res}", data=img,
                                                     affine=pixel_grid_affine(1.0 / scalef),
                                                     rgb=img.ndim == 3 and img.shape[-1] in (3, 4)))
                    break
    return sample
