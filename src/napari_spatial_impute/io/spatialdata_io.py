"""Optional ``[spatialdata]`` extra: SpatialData zarr ↔ :class:`SpatialSample`. Core readers never need it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .spatial_sample import SampleImage, SpatialSample


def _require_spatialdata():
    try:
        import spatialdata
    except ImportError as err:
        raise InputError("Reading / writing SpatialData needs the optional spatialdata package.",
                         "pip install 'napari-spatial-impute[spatialdata]'.") from err
    return spatialdata


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
        region = attrs.get("region")
        region = region[0] if isinstance(region, list | tuple) else region
        if region in sdata.shapes:
            geo = sdata.shapes[region]
            adata.obsm["spatial"] = np.column_stack([geo.geometry.centroid.x, geo.geometry.centroid.y])
        else:
            raise InputError(f"The table {name!r} has no obsm['spatial'] and no shapes region with centroids.",
                             "store (x, y) per cell in obsm['spatial'].")
    sample = SpatialSample(adata=adata, platform="spatialdata", path=str(path))
    for key, img in sdata.images.items():
        arr = img if hasattr(img, "dims") else img["scale0"].ds[key]  # DataArray or multiscale DataTree
        aff = get_transformation(img, to_coordinate_system="global").to_affine_matrix(
            input_axes=("x", "y"), output_axes=("x", "y"))
        data = np.asarray(arr.transpose("y", "x", "c").data) if "c" in arr.dims else np.asarray(arr.data)
        # spatialdata places pixel i on [i, i+1): our affine acts on pixel centres
        aff = np.asarray(aff, dtype=float) @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])
        sample.images.append(SampleImage(name=key, data=data, affine=aff, rgb=data.ndim == 3 and data.shape[-1] == 3))
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
    images = {}
    for img in sample.images:
        data = img.data[0] if isinstance(img.data, list) else img.data
        arr = np.asarray(data)
        arr = np.moveaxis(arr, -1, 0) if img.rgb else arr[None]
        corner = np.asarray(img.affine) @ np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1.0]])
        images[img.name.replace(" ", "_")] = Image2DModel.parse(
            arr, dims=("c", "y", "x"),
            transformations={"global": Affine(corner, input_axes=("x", "y"), output_axes=("x", "y"))})
    sd.SpatialData(images=images, shapes=shapes, tables={"table": table}).write(path)
    return path
