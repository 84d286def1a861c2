"""A SpatialData store's points (transcripts) and polygon shapes (cell boundaries) in the table's frame, as the
instrument folder readers give them: transcripts (x, y, gene[, z, qv]) and boundaries (cell_id, x, y vertices)."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: a points element's gene column when its ``feature_key`` names none (spatialdata-io: Xenium ``feature_name``,
#: CosMx ``target``, MERSCOPE ``gene``)
GENE_COLUMNS = ("feature_name", "gene", "target", "feature")


def _apply(place: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return xy @ place[:2, :2].T + place[:2, 2]


def gene_column(element) -> str | None:
    """The column of a points element that names each molecule's gene (its ``feature_key`` first)."""
    cols = list(element.columns)
    key = element.attrs.get("spatialdata_attrs", {}).get("feature_key")
    if key in cols:
        return key
    return next((c for c in GENE_COLUMNS if c in cols), None)


def read_transcripts(element, place: np.ndarray, min_qv: float, notes: list[str]) -> pd.DataFrame:
    """The molecules of a points element (dask DataFrame; only x, y, the gene and z / qv are computed) placed by
    ``place`` (3×3, intrinsic → the table's frame), without control probes or molecules under ``min_qv``."""
    from .xenium import real_transcripts

    gene = gene_column(element)
    extra = [c for c in ("z", "qv") if c in element.columns]
    df = element[["x", "y", gene, *extra]].compute()
    xy = _apply(place, df[["x", "y"]].to_numpy(np.float64))
    out = pd.DataFrame({"x": xy[:, 0].astype(np.float32), "y": xy[:, 1].astype(np.float32)})
    names = df[gene]
    if names.dtype == object and len(names) and isinstance(names.iloc[0], bytes):
        names = names.str.decode("utf-8")
    out["gene"] = pd.Categorical(names.astype(str).to_numpy())
    for c in extra:
        out[c] = df[c].to_numpy(np.float32)
    return real_transcripts(out, min_qv, notes)


def polygon_cells(geo, id_sets: list[np.ndarray], obs_names) -> np.ndarray | None:
    """For a shapes element of polygons: the table row name of each shape (matched by instance id, ``cell_id`` or
    row name: the first that names at least half the shapes), "" for shapes of no cell; None when it holds no
    polygons or no id set matches."""
    if not len(geo) or not geo.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).all():
        return None
    index = pd.Index(pd.Index(geo.index).astype(str))
    names = np.asarray(obs_names).astype(str)
    for ids in id_sets:
        pos = pd.Index(ids).get_indexer(index) if not pd.Index(ids).has_duplicates else None
        if pos is not None and (pos >= 0).sum() >= 0.5 * len(index):
            return np.where(pos >= 0, names[np.maximum(pos, 0)], "")
    return None


def read_boundaries(geo, cells: np.ndarray, place: np.ndarray) -> pd.DataFrame:
    """Polygon outlines (cell_id, x, y; vertices in order, one ring per cell: a multipolygon's largest part)
    of the shapes whose ``cells`` entry names a cell, placed by ``place``."""
    import shapely

    keep = np.flatnonzero(cells != "")
    parts = geo.geometry.iloc[keep].reset_index(drop=True).explode(index_parts=False)
    owner = parts.index.to_numpy()  # position in ``keep``
    area = shapely.area(parts.to_numpy())
    order = np.lexsort((-area, owner))  # each cell's largest part first
    first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
    rings = shapely.get_exterior_ring(parts.to_numpy()[first])
    xy, which = shapely.get_coordinates(rings, return_index=True)
    xy = _apply(place, xy)
    return pd.DataFrame({"cell_id": cells[keep][owner[first]][which], "x": xy[:, 0], "y": xy[:, 1]})


def outline_polygons(boundaries: pd.DataFrame):
    """A GeoDataFrame of one polygon per cell (index: cell_id) from outline vertices (cell_id, x, y; rings of
    fewer than 3 vertices left out): what :func:`read_boundaries` reads back."""
    import geopandas as gpd
    import shapely

    ids = boundaries["cell_id"].astype(str).to_numpy()
    start = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    size = np.diff(np.r_[start, len(ids)])
    ring = np.repeat(np.arange(len(start)), size)
    ok = np.repeat(size >= 3, size)
    _, ring = np.unique(ring[ok], return_inverse=True)
    rings = shapely.linearrings(boundaries[["x", "y"]].to_numpy(np.float64)[ok], indices=ring)
    return gpd.GeoDataFrame(geometry=shapely.polygons(rings), index=pd.Index(ids[start][size >= 3]))
