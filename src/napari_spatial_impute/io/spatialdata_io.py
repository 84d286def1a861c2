"""Optional ``[spatialdata]`` extra: SpatialData zarr ↔ :class:`SpatialSample`. Core readers never need it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .spatial_sample import SampleImage, SpatialSample


def _require_spatialdata():
    try:
        import spatialdata
    except ImportError as err:
        raise InputError("Reading / writing SpatialData needs the optional spatialdata package.",
                         "pip install 'napari-spatial-impute[spatialdata]'.") from err
    return spatialdata


def shape_centroids(geo) -> pd.DataFrame:
    """(x, y) centroid of each shape of a GeoDataFrame-like element (``.geometry.centroid``), indexed by its
    index (SpatialData's instance ids)."""
    cen = geo.geometry.centroid
    return pd.DataFrame({"x": np.asarray(cen.x, dtype=np.float64), "y": np.asarray(cen.y, dtype=np.float64)},
                        index=pd.Index(geo.index))


def align_centroids(obs: pd.DataFrame, centroids: dict[str, pd.DataFrame], *, region_key: str | None,
                    instance_key: str | None, where: str = "the table") -> np.ndarray:
    """(n_obs, 2) coordinates of each table row, taken from the shapes its ``region_key`` names and matched by
    ``instance_key`` (SpatialData's link between a table and its region), never by row order.

    ``centroids``: region name → DataFrame(x, y) indexed by instance id. Ids are compared as strings, so 7 and
    "7" match. Without ``region_key`` every row belongs to the single region. A row whose region or instance
    id is not among the shapes raises an :class:`InputError`.
    """
    fix = "store (x, y) per cell in obsm['spatial'], or write the table and shapes together (same instance ids)."
    if instance_key is None or instance_key not in obs.columns:
        raise InputError(f"{where} has no instance_key column ({instance_key!r}) linking its rows to the shapes "
                         f"{list(centroids)}, so the cell coordinates cannot be matched.", fix)
    if region_key is not None and region_key in obs.columns:
        row_region = obs[region_key].astype(str).to_numpy()
    elif len(centroids) == 1:
        row_region = np.full(len(obs), next(iter(centroids)), dtype=object)
    else:
        raise InputError(f"{where} annotates several regions {list(centroids)} but has no region_key column "
                         f"({region_key!r}).", fix)
    ids = obs[instance_key].astype(str).to_numpy()
    xy = np.full((len(obs), 2), np.nan)
    done = np.zeros(len(obs), dtype=bool)
    for region, cen in centroids.items():
        rows = np.flatnonzero(row_region == str(region))
        if rows.size == 0:
            continue
        cen = cen[~pd.Index(cen.index).duplicated()]
        pos = pd.Index(cen.index.astype(str)).get_indexer(ids[rows])
        if (pos < 0).any():
            bad = ids[rows][pos < 0]
            raise InputError(f"{where}: {bad.size} of its {rows.size} rows of region {region!r} have an "
                             f"{instance_key} (e.g. {bad[0]!r}) that is not a shape of {region!r}.", fix)
        xy[rows] = cen[["x", "y"]].to_numpy(np.float64)[pos]
        done[rows] = True
    if not done.all():
        other = sorted(set(row_region[~done]))[:5]
        raise InputError(f"{where}: {int((~done).sum())} rows belong to region(s) {other} that are not shapes "
                         f"with centroids (have {list(centroids)}).", fix)
    return xy


#: where :func:`write_spatialdata` keeps the images' own names (element name → name), which SpatialData restricts
IMAGE_NAMES_KEY = "napari_spatial_impute_image_names"


def element_name(name: str, taken: set[str]) -> str:
    """A SpatialData element name for ``name`` (letters, digits, ``_ . -`` only: "H&E" → "H_E"), unique in
    ``taken`` (which it joins)."""
    base = re.sub(r"[^0-9A-Za-z_.-]", "_", str(name)).strip(".") or "image"
    out, k = base, 1
    while out in taken:
        k += 1
        out = f"{base}_{k}"
    taken.add(out)
    return out


def read_spatialdata(path, table: str | None = None) -> SpatialSample:
    """Read a SpatialData ``.zarr``: its table (cells × genes) with centroids from its region element, and its
    2-D images with their ``global`` affine (taken as µm when the store says nothing)."""
    sd = _require_spatialdata()
    from spatialdata.transformations import get_transformation

    sdata = sd.read_zarr(Path(path))
    if not sdata.tables:
        raise InputError(f"{path} has no table (cells × genes).", "add an AnnData table to the SpatialData object.")
    name = table or next(iter(sdata.tables))
    adata = sdata.tables[name]
    if "spatial" not in adata.obsm:
        attrs = adata.uns.get("spatialdata_attrs", {})
        regions = attrs.get("region")
        regions = list(regions) if isinstance(regions, list | tuple | np.ndarray) else [regions]
        shapes = {r: shape_centroids(sdata.shapes[r]) for r in regions if r is not None and r in sdata.shapes}
        if not shapes:
            raise InputError(f"The table {name!r} of {path} has no obsm['spatial'] and no shapes region with "
                             "centroids.", "store (x, y) per cell in obsm['spatial'].")
        adata.obsm["spatial"] = align_centroids(adata.obs, shapes, region_key=attrs.get("region_key"),
                                                instance_key=attrs.get("instance_key"), where=f"{path} table {name!r}")
    sample = SpatialSample(adata=adata, platform="spatialdata", path=str(path))
    names = dict(adata.uns.pop(IMAGE_NAMES_KEY, {}))  # the images' own names, when this package wrote the store
    for key, img in sdata.images.items():
        arr = img if hasattr(img, "dims") else img["scale0"].ds[key]  # DataArray or multiscale DataTree
        aff = get_transformation(img, to_coordinate_system="global").to_affine_matrix(
            input_axes=("x", "y"), output_axes=("x", "y"))
        data = np.asarray(arr.transpose("y", "x", "c").data) if "c" in arr.dims else np.asarray(arr.data)
        # spatialdata places pixel i on [i, i+1): our affine acts on pixel centres
        aff = np.asarray(aff, dtype=float) @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])
        sample.images.append(SampleImage(name=str(names.get(key, key)), data=data, affine=aff,
                                         rgb=data.ndim == 3 and data.shape[-1] == 3))
    return sample


def write_spatialdata(sample: SpatialSample, path) -> Path:
    """Write a sample (table, images, cell centroids as circles) as a SpatialData ``.zarr``."""
    sd = _require_spatialdata()
    import geopandas as gpd
    from shapely.geometry import Point
    from spatialdata.models import Image2DModel, ShapesModel, TableModel
    from spatialdata.transformations import Affine

    path = Path(path)
    if path.exists():
        raise InputError(f"{path} already exists.", "choose another output path.")
    xy = np.asarray(sample.adata.obsm["spatial"])[:, :2]
    circles = gpd.GeoDataFrame({"radius": np.full(len(xy), 5.0)},
                               geometry=[Point(x, y) for x, y in xy], index=sample.adata.obs_names)
    shapes = {"cells": ShapesModel.parse(circles)}
    table = sample.adata.copy()
    table.obs["region"] = "cells"
    table.obs["instance_id"] = table.obs_names.to_numpy()
    table = TableModel.parse(table, region="cells", region_key="region", instance_key="instance_id")
    images, taken = {}, set()
    for img in sample.images:
        data = img.data[0] if isinstance(img.data, list) else img.data
        arr = np.asarray(data)
        arr = np.moveaxis(arr, -1, 0) if img.rgb else arr[None]
        corner = np.asarray(img.affine) @ np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1.0]])
        key = element_name(img.name, taken)
        table.uns.setdefault(IMAGE_NAMES_KEY, {})[key] = str(img.name)
        images[key] = Image2DModel.parse(
            arr, dims=("c", "y", "x"),
            transformations={"global": Affine(corner, input_axes=("x", "y"), output_axes=("x", "y"))})
    sd.SpatialData(images=images, shapes=shapes, tables={"table": table}).write(path)
    return path
