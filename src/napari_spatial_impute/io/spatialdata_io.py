"""Optional ``[spatialdata]`` extra: SpatialData zarr ↔ :class:`SpatialSample`. Core readers never need it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .spatial_sample import SampleImage, SampleLabels, SpatialSample


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
#: where it keeps each label mask's own name and its label id → cell map (element name → {name, ids, obs})
LABELS_KEY = "napari_spatial_impute_labels"
#: a label mask is read at the finest pyramid level of at most this many pixels (the instrument readers' cap)
MAX_LABEL_PIXELS = 64_000_000


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


def levels(element) -> list:
    """The pyramid levels of an image / labels element as lazy DataArrays, finest first (one for a single
    scale). Each level's data variable is taken whatever its name."""
    if not hasattr(element, "children"):  # a DataArray (a DataTree has dims too)
        return [element]
    names = sorted(element.children, key=lambda k: int(k[5:]) if k.startswith("scale") and k[5:].isdigit() else 0)
    return [next(iter(element[n].ds.data_vars.values())) for n in names]


def coordinate_system(sdata) -> str:
    """The coordinate system everything is placed in: ``global`` when an element has it, else the first found."""
    from spatialdata.transformations import get_transformation

    found = []
    for kind in ("images", "labels", "shapes"):
        for element in getattr(sdata, kind).values():
            found += list(get_transformation(element, get_all=True))
    return "global" if "global" in found or not found else found[0]


def to_system(element, system: str) -> np.ndarray | None:
    """3×3 affine from an element's intrinsic (x, y) to ``system``; None when it has no transformation there."""
    from spatialdata.transformations import get_transformation

    systems = get_transformation(element, get_all=True)
    if system not in systems:
        return None
    return np.asarray(systems[system].to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y")), dtype=float)


def element_affine(element, level, base, system: str = "global") -> np.ndarray | None:
    """3×3 affine from pixel-centre indices (col, row) of ``level`` to ``system``: SpatialData places pixel i of
    scale 0 on [i, i + 1); a coarser level's pixel covers ``base / level`` of them. None when the element is not
    placed in ``system``."""
    aff = to_system(element, system)
    if aff is None:
        return None
    fy, fx = (base.sizes["y"] / level.sizes["y"]), (base.sizes["x"] / level.sizes["x"])
    return aff @ np.array([[fx, 0, 0], [0, fy, 0], [0, 0, 1.0]]) @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])


def fit_affine(src: np.ndarray, dst: np.ndarray, tol: float = 0.005) -> np.ndarray | None:
    """The 3×3 affine taking points ``src`` (n, 2) onto ``dst`` by least squares, or None when it does not fit
    them to within ``tol`` × the extent of ``dst`` (not the same cells, or not one affine apart)."""
    if len(src) < 3:
        return None
    a = np.column_stack([src, np.ones(len(src))])
    sol, *_ = np.linalg.lstsq(a, dst, rcond=None)
    rms = float(np.sqrt(np.mean(np.sum((a @ sol - dst) ** 2, axis=1))))
    extent = float(np.max(np.ptp(dst, axis=0))) or 1.0
    if not np.isfinite(rms) or rms > tol * extent:
        return None
    return np.vstack([sol.T, [0.0, 0.0, 1.0]])


def cell_id_sets(adata, attrs: dict) -> list[np.ndarray]:
    """The columns that may name the table's cells in other elements, as strings, one per row: its
    ``instance_key``, ``cell_id``, and the row names."""
    return [adata.obs[c].astype(str).to_numpy() for c in (attrs.get("instance_key"), "cell_id")
            if c is not None and c in adata.obs.columns] + [adata.obs_names.astype(str).to_numpy()]


def table_frame(sdata, adata, attrs: dict, regions: list, system: str) -> tuple[np.ndarray, str]:
    """(3×3 affine from ``system`` to the table's ``obsm["spatial"]``, how it was found). Instrument readers keep
    cells in µm and place images in pixels (spatialdata-io's Xenium: images in ``global`` = morphology pixels,
    cell shapes in µm scaled into it), so the map is fitted on the centroids of a shapes element that holds the
    table's cells (by instance id, ``cell_id`` or row name); without one, the table is taken to be in the
    coordinate system itself."""
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2]
    id_sets = cell_id_sets(adata, attrs)
    keys = [r for r in regions if r in sdata.shapes] + [k for k in sdata.shapes if k not in regions]
    for key in keys:
        geo = sdata.shapes[key]
        aff = to_system(geo, system)
        if aff is None:
            continue
        index = pd.Index(pd.Index(geo.index).astype(str))
        for ids in id_sets:
            pos = index.get_indexer(ids)
            rows = np.flatnonzero(pos >= 0)
            if len(rows) < max(3, 0.5 * len(ids)):
                continue
            rows = rows[np.linspace(0, len(rows) - 1, min(len(rows), 2000)).astype(int)]
            cen = shape_centroids(geo.iloc[pos[rows]])[["x", "y"]].to_numpy()
            cen = cen @ aff[:2, :2].T + aff[:2, 2]
            m = fit_affine(cen, xy[rows])
            if m is not None:
                return m, f"images placed in the table's coordinates (obsm['spatial']) through the shapes {key!r}"
    return np.eye(3), f"obsm['spatial'] taken in the coordinate system {system!r} (no shapes of the cells to check)"


def _image(name: str, element, frame: np.ndarray, system: str) -> SampleImage | None:
    """A SampleImage of an image element, lazy (dask), every pyramid level: RGB for 3–4 uint8 channels, else
    channels on axis 0 (named by the element's ``c`` coordinate) or one grey plane; placed by ``frame`` after its
    transformation to ``system`` (None when it has none there)."""
    lv = levels(element)
    aff = element_affine(element, lv[0], lv[0], system)
    if aff is None:
        return None
    base = lv[0]
    channels = [str(c) for c in base.coords["c"].values] if "c" in base.dims else []
    rgb = len(channels) in (3, 4) and base.dtype == np.uint8
    if rgb:
        data = [a.transpose("y", "x", "c").data for a in lv]
    elif len(channels) > 1:
        data = [a.transpose("c", "y", "x").data for a in lv]
    else:
        data = [(a.isel(c=0) if "c" in a.dims else a).transpose("y", "x").data for a in lv]
    return SampleImage(name=name, data=data if len(data) > 1 else data[0], affine=frame @ aff,
                       rgb=rgb, channel_axis=0 if not rgb and len(channels) > 1 else None,
                       channel_names=channels if not rgb and len(channels) > 1 else None, source="spatialdata")


def _labels(name: str, element, label_to_obs: dict[int, str], frame: np.ndarray, system: str) -> SampleLabels | None:
    """A SampleLabels of a labels element at its finest level of ≤ :data:`MAX_LABEL_PIXELS` pixels (the coarsest
    when none is that small), read into memory (colouring cells by a gene indexes the whole mask)."""
    lv = levels(element)
    small = [a for a in lv if a.sizes["y"] * a.sizes["x"] <= MAX_LABEL_PIXELS]
    level = small[0] if small else lv[-1]
    aff = element_affine(element, level, lv[0], system)
    if aff is None:
        return None
    return SampleLabels(name=name, data=np.asarray(level.transpose("y", "x").data), affine=frame @ aff,
                        label_to_obs=label_to_obs, source="spatialdata")


def read_spatialdata(path, table: str | None = None, *, images: bool = True, labels: bool = True,
                     transcripts: bool = True, boundaries: bool = True, min_qv: float = 20.0) -> SpatialSample:
    """Read a SpatialData ``.zarr``: its table (cells × genes) with centroids from its region element, its 2-D
    images (lazy, every pyramid level) and label masks with their ``global`` affine (taken as µm when the store
    says nothing). A label mask that the table annotates links its ids to the table's cells (``instance_key``).
    The first points element with a gene column gives the transcripts (control probes and those under
    ``min_qv`` left out, as the Xenium reader does) and a shapes element of polygons named by the table's cells
    their boundaries (rasterised into a mask when no label mask names the cells). ``images`` / ``labels`` /
    ``transcripts`` / ``boundaries`` False: leave them out (the cells alone, for imputation)."""
    sd = _require_spatialdata()

    sdata = sd.read_zarr(Path(path))
    if not sdata.tables:
        raise InputError(f"{path} has no table (cells × genes).", "add an AnnData table to the SpatialData object.")
    name = table or next(iter(sdata.tables))
    adata = sdata.tables[name]
    attrs = adata.uns.get("spatialdata_attrs", {})
    regions = attrs.get("region")
    regions = [str(r) for r in regions] if isinstance(regions, list | tuple | np.ndarray) else [regions]
    system = coordinate_system(sdata)
    if "spatial" not in adata.obsm:  # the centroids of the shapes it annotates, placed in the coordinate system
        shapes = {}
        for r in regions:
            aff = to_system(sdata.shapes[r], system) if r is not None and r in sdata.shapes else None
            if aff is not None:
                cen = shape_centroids(sdata.shapes[r])
                cen[["x", "y"]] = cen[["x", "y"]].to_numpy() @ aff[:2, :2].T + aff[:2, 2]
                shapes[r] = cen
        if not shapes:
            raise InputError(f"The table {name!r} of {path} has no obsm['spatial'] and no shapes region with "
                             "centroids.", "store (x, y) per cell in obsm['spatial'].")
        adata.obsm["spatial"] = align_centroids(adata.obs, shapes, region_key=attrs.get("region_key"),
                                                instance_key=attrs.get("instance_key"), where=f"{path} table {name!r}")
        frame, how = np.eye(3), f"cells at their shapes' centroids in the coordinate system {system!r}"
    else:
        frame, how = table_frame(sdata, adata, attrs, regions, system)
    sample = SpatialSample(adata=adata, platform="spatialdata", path=str(path), notes=[how])
    names = dict(adata.uns.pop(IMAGE_NAMES_KEY, {}))  # the images' own names, when this package wrote the store
    for key, img in (sdata.images.items() if images else ()):
        image = _image(str(names.get(key, key)), img, frame, system)
        if image is None:
            sample.notes.append(f"image {key!r} left out: it is not placed in the coordinate system {system!r}")
        else:
            sample.images.append(image)
    ours = adata.uns.pop(LABELS_KEY, {})
    for key, lab in (sdata.labels.items() if labels else ()):
        if key in ours:  # written by this package: its own name and map
            info = ours[key]
            mapping = {int(i): str(o) for i, o in zip(np.asarray(info["ids"]), np.asarray(info["obs"]))}
            mask = _labels(str(info.get("name", key)), lab, mapping, frame, system)
        else:
            mask = _labels(key, lab, _annotated(adata, key, attrs) if key in regions else {}, frame, system)
        if mask is None:
            sample.notes.append(f"labels {key!r} left out: they are not placed in the coordinate system {system!r}")
        else:
            sample.labels.append(mask)
    if transcripts:
        sample.transcripts = _points(sdata, frame, system, min_qv, sample.notes)
    if boundaries:
        sample.boundaries = _outlines(sdata, adata, attrs, frame, system, sample.notes)
        if sample.boundaries is not None and not any(lab.label_to_obs for lab in sample.labels):
            from .xenium import labels_from_boundaries

            step = min((img.pixel_size_um for img in sample.images), default=1.0)
            sample.labels.append(labels_from_boundaries(sample.boundaries, adata.obs_names, step))
    return sample


def _points(sdata, frame: np.ndarray, system: str, min_qv: float, notes: list[str]) -> pd.DataFrame | None:
    """The transcripts of the first points element placed in ``system`` with x, y and a gene column."""
    from .spatialdata_elements import gene_column, read_transcripts

    for key, points in sdata.points.items():
        aff = to_system(points, system)
        if aff is None:
            notes.append(f"points {key!r} left out: they are not placed in the coordinate system {system!r}")
        elif gene_column(points) is None or not {"x", "y"} <= set(points.columns):
            notes.append(f"points {key!r} left out: no x, y and gene column (feature_key)")
        else:
            notes.append(f"transcripts from the points {key!r}")
            return read_transcripts(points, frame @ aff, min_qv, notes)
    return None


def _outlines(sdata, adata, attrs: dict, frame: np.ndarray, system: str, notes: list[str]) -> pd.DataFrame | None:
    """Cell outlines from the first shapes element of polygons named by the table's cells (whole cells before
    nuclei: spatialdata-io writes ``cell_boundaries`` and ``nucleus_boundaries``)."""
    from .spatialdata_elements import polygon_cells, read_boundaries

    for key in sorted(sdata.shapes, key=lambda k: ("nucle" in k.lower(), "cell" not in k.lower())):
        geo = sdata.shapes[key]
        aff = to_system(geo, system)
        cells = None if aff is None else polygon_cells(geo, cell_id_sets(adata, attrs), adata.obs_names)
        if cells is not None:
            notes.append(f"cell boundaries from the shapes {key!r}")
            return read_boundaries(geo, cells, frame @ aff)
    return None


def _annotated(adata, region: str, attrs: dict) -> dict[int, str]:
    """label id → cell of the table rows that annotate the labels element ``region`` (by ``instance_key``)."""
    inst, rkey = attrs.get("instance_key"), attrs.get("region_key")
    if inst is None or inst not in adata.obs.columns:
        return {}
    rows = np.ones(adata.n_obs, bool) if rkey is None or rkey not in adata.obs.columns else \
        (adata.obs[rkey].astype(str).to_numpy() == region)
    ids = pd.to_numeric(adata.obs[inst][rows], errors="coerce")
    ok = ids.notna().to_numpy()
    return dict(zip(ids.to_numpy()[ok].astype(np.int64).tolist(), adata.obs_names[rows][ok].astype(str).tolist()))


def write_spatialdata(sample: SpatialSample, path) -> Path:
    """Write a sample (table, images, label masks, cell centroids as circles) as a SpatialData ``.zarr``; names
    SpatialData refuses are made valid ("H&E" → "H_E") and the originals kept for :func:`read_spatialdata`."""
    sd = _require_spatialdata()
    import geopandas as gpd
    from shapely.geometry import Point
    from spatialdata.models import Image2DModel, Labels2DModel, ShapesModel, TableModel
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
    images, taken = {}, {"cells"}  # element names are unique across kinds: "cells" are the shapes
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
    labels = {}
    for lab in sample.labels:
        data = lab.data[0] if isinstance(lab.data, list) else lab.data
        corner = np.asarray(lab.affine) @ np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1.0]])
        key = element_name(lab.name, taken)  # one namespace: SpatialData names must be unique across elements
        ids = np.fromiter(lab.label_to_obs.keys(), dtype=np.int64, count=len(lab.label_to_obs))
        obs = np.array([str(v) for v in lab.label_to_obs.values()], dtype=object)
        table.uns.setdefault(LABELS_KEY, {})[key] = {"name": str(lab.name), "ids": ids, "obs": obs}
        labels[key] = Labels2DModel.parse(
            np.asarray(data), dims=("y", "x"),
            transformations={"global": Affine(corner, input_axes=("x", "y"), output_axes=("x", "y"))})
    points = {}
    if sample.transcripts is not None and len(sample.transcripts):
        from spatialdata.models import PointsModel

        tx = sample.transcripts.rename(columns={"gene": "feature_name"})
        points[element_name("transcripts", taken)] = PointsModel.parse(
            tx, coordinates={"x": "x", "y": "y"}, feature_key="feature_name")
    if sample.boundaries is not None and len(sample.boundaries):
        from .spatialdata_elements import outline_polygons

        shapes[element_name("cell_boundaries", taken)] = ShapesModel.parse(outline_polygons(sample.boundaries))
    sd.SpatialData(images=images, labels=labels, points=points, shapes=shapes, tables={"table": table}).write(path)
    return path

