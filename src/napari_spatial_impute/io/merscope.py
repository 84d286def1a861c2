"""Vizgen MERSCOPE output → :class:`SpatialSample` (µm world, y down).

Reads the official layout (``cell_by_gene.csv``, ``cell_metadata.csv``, ``detected_transcripts.csv``,
``images/mosaic_<stain>_z<k>.tif`` + ``images/micron_to_mosaic_pixel_transform.csv``, ``cell_boundaries.parquet``)
and the Giotto-style layout (``*transcripts*.gz`` with global_x/global_y, ``cell_boundaries/z<k>_polygons.gz``
with y negated, ``images/*_<stain>_z<k>.jpg|tif`` with optional GDAL ``.aux.xml``). Without a cell table the
cell × gene counts come from assigning transcripts to polygons (rasterised at ≤ 0.25 µm per pixel).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..coords import invert_affine, pixel_grid_affine
from ..errors import InputError
from .checks import check_covers
from .images import gdal_aux_geotransform, open_tiff, read_plain_image
from .layouts import MERSCOPE_TRANSCRIPTS
from .spatial_sample import SampleImage, SampleLabels, SpatialSample
from .tables import (
    find_first,
    match_column,
    peek_header,
    polygon_centroids,
    rasterize_polygons,
    read_table,
    require_columns,
)

CONTROL_PATTERN = re.compile(r"^(Blank|NegControl)", re.IGNORECASE)
IMAGE_RE = re.compile(r"_(?P<stain>[A-Za-z0-9]+)_z(?P<z>\d+)\.(tif|tiff|jpg|jpeg|png)$", re.IGNORECASE)
MAX_LABEL_PIXELS = 64_000_000


def _transcripts(folder: Path) -> pd.DataFrame | None:
    f = find_first(folder, MERSCOPE_TRANSCRIPTS)
    if f is None:
        return None
    header = peek_header(f)
    c = require_columns(header, {"x": ["global_x"], "y": ["global_y"], "gene": ["gene", "target"]},
                        file=f.name, platform="MERSCOPE")
    for k, cand in (("z", ["global_z"]), ("cell_id", ["cell_id"])):
        hit = match_column(header, cand)
        if hit:
            c[k] = hit
    df = read_table(f, what="MERSCOPE transcripts", columns=list(c.values()), required=[c["x"], c["y"], c["gene"]],
                    dtype={c["cell_id"]: str} if "cell_id" in c else None)
    out = pd.DataFrame({"x": df[c["x"]].to_numpy(np.float32), "y": df[c["y"]].to_numpy(np.float32),
                        "gene": pd.Categorical(df[c["gene"]].astype(str))})
    if "z" in c:
        out["z"] = df[c["z"]].to_numpy()
    if "cell_id" in c:
        out["cell_id"] = df[c["cell_id"]].astype(str).to_numpy()
    out.attrs["source"] = f.name
    return out


def _polygons(folder: Path, tx: pd.DataFrame | None, notes: list[str]) -> dict[int, pd.DataFrame]:
    """Boundaries per z plane: DataFrame(cell_id, x, y) in µm, y down."""
    planes: dict[int, pd.DataFrame] = {}
    pq = folder / "cell_boundaries.parquet"
    if pq.exists():
        from .wkb import wkb_outer_ring

        header = peek_header(pq)
        c = require_columns(header, {"cell_id": ["EntityID", "cell_id"], "geom": ["Geometry", "geometry"]},
                            file=pq.name, platform="MERSCOPE")
        zcol = match_column(header, ["ZIndex", "z"])
        df = read_table(pq, what="MERSCOPE cell boundaries", columns=[*c.values(), *([zcol] if zcol else [])])
        for z, grp in (df.groupby(zcol) if zcol else [(0, df)]):
            parts = []
            for cid, blob in zip(grp[c["cell_id"]].astype(str), grp[c["geom"]]):
                ring = wkb_outer_ring(bytes(blob))
                parts.append(pd.DataFrame({"cell_id": cid, "x": ring[:, 0], "y": ring[:, 1]}))
            if parts:
                planes[int(z)] = pd.concat(parts, ignore_index=True)
        return planes
    d = folder / "cell_boundaries"
    if d.is_dir():
        for f in sorted(d.glob("*polygons*")):
            m = re.search(r"z(\d+)", f.name)
            c = require_columns(peek_header(f), {"cell_id": ["poly_ID", "cell_id", "EntityID"], "x": ["x"],
                                                 "y": ["y"]}, file=f.name, platform="MERSCOPE")
            df = read_table(f, what="MERSCOPE cell polygons", columns=list(c.values()), dtype={c["cell_id"]: str},
                            required=[c["x"], c["y"]])
            planes[int(m.group(1)) if m else len(planes)] = pd.DataFrame(
                {"cell_id": df[c["cell_id"]].astype(str).to_numpy(), "x": df[c["x"]].to_numpy(np.float64),
                 "y": df[c["y"]].to_numpy(np.float64)})
    if planes and tx is not None:
        ref_y = float(np.median(tx["y"]))
        for z, p in planes.items():
            if np.median(p["y"]) < 0 < ref_y:  # Giotto stores y negated
                p["y"] = -p["y"]
                notes.append(f"cell polygons z{z}: y was negated (Giotto convention); flipped back")
    return planes


def _image_transform(folder: Path, image_file: Path, tx: pd.DataFrame | None, shape, notes: list[str],
                     micron_to_pixel: np.ndarray | None):
    """Affine (col, row) pixel centre → (x, y) µm for one mosaic image, and where it came from."""
    half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])
    if micron_to_pixel is not None:
        return invert_affine(micron_to_pixel) @ half, "transform argument"
    tf = folder / "images" / "micron_to_mosaic_pixel_transform.csv"
    if tf.exists():
        try:
            m = np.loadtxt(tf, delimiter=None).reshape(3, 3)
        except ValueError as err:
            raise InputError(f"{tf.name} is not a 3×3 matrix ({err}).",
                             "copy it again from the MERSCOPE output.") from err
        return invert_affine(m) @ half, tf.name
    gt = gdal_aux_geotransform(image_file)
    if gt is not None:
        x0, dxc, dxr, y0, dyc, dyr = gt
        if y0 < 0 < dyr or (dyr < 0 and y0 > 0):  # a north-up GeoTransform of negated y: flip back
            y0, dyc, dyr = -y0, -dyc, -dyr
        return np.array([[dxc, dxr, x0], [dyc, dyr, y0], [0, 0, 1.0]]) @ half, image_file.name + ".aux.xml"
    if tx is None:
        return None, "none"
    rows, cols = shape[0], shape[1]
    x0, x1 = float(tx["x"].min()), float(tx["x"].max())
    y0, y1 = float(tx["y"].min()), float(tx["y"].max())
    notes.append(f"{image_file.name}: no micron_to_mosaic_pixel_transform.csv; placed by fitting the transcript "
                 "extent to the image (exact only for crops cut to the transcripts)")
    return pixel_grid_affine((x1 - x0) / cols, x0, y0, (y1 - y0) / rows), "transcript extent (estimated)"


def read_merscope(path, *, transcripts: bool = True, images: bool = True, boundaries: bool = True,
                  z_plane: int | None = None, micron_to_pixel: np.ndarray | None = None) -> SpatialSample:
    """Read a MERSCOPE output folder (official or Giotto-style layout, see module docstring).

    ``micron_to_pixel``: optional 3×3 µm → mosaic pixel matrix overriding the transform file.
    ``z_plane``: which polygon / image plane to show (default: the lowest present).
    """
    import anndata as ad
    import scipy.sparse as sp

    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"The MERSCOPE folder {folder} does not exist.", "check the path.")
    notes: list[str] = []
    tx = _transcripts(folder)
    has_table = find_first(folder, ["cell_by_gene.csv", "cell_by_gene.csv.gz"]) is not None
    planes = _polygons(folder, tx, notes) if (boundaries or not has_table) else {}
    z_show = z_plane if z_plane is not None else (min(planes) if planes else 0)

    cbg = find_first(folder, ["cell_by_gene.csv", "cell_by_gene.csv.gz"])
    if cbg is not None:
        table = read_table(cbg, what="MERSCOPE cell_by_gene", dtype={0: str})
        ids = table.iloc[:, 0].astype(str).to_numpy()
        genes = [c for c in table.columns[1:] if not CONTROL_PATTERN.match(str(c))]
        X = sp.csr_matrix(table[genes].to_numpy(np.float32))
        obs = pd.DataFrame(index=pd.Index(ids))
        meta_f = find_first(folder, ["cell_metadata.csv", "cell_metadata.csv.gz"])
        if meta_f is None:
            raise InputError(f"The MERSCOPE folder {folder} has cell_by_gene.csv but no cell_metadata.csv "
                             "(cell centroids).", "copy cell_metadata.csv from the MERSCOPE output.")
        meta = read_table(meta_f, what="MERSCOPE cell metadata", dtype={0: str})
        mc = require_columns(meta.columns, {"x": ["center_x"], "y": ["center_y"]}, file=meta_f.name,
                             platform="MERSCOPE")
        meta.index = meta.iloc[:, 0].astype(str).to_numpy()
        meta = meta.iloc[:, 1:]
        missing = obs.index.difference(meta.index)
        if len(missing):
            raise InputError(f"{len(missing)} cells of cell_by_gene.csv (e.g. {missing[0]}) are missing from "
                             f"{meta_f.name}.", "copy both files from the same run.")
        obs = meta.loc[obs.index].copy()
        xy = obs[[mc["x"], mc["y"]]].to_numpy(np.float64)
        source = cbg.name
    else:
        if tx is None:
            raise InputError(f"The MERSCOPE folder {folder} has no cell_by_gene.csv and no transcripts table "
                             "(detected_transcripts.csv).", "copy cell_by_gene.csv + cell_metadata.csv, or the "
                             "transcripts and cell boundaries.")
        if not planes:
            raise InputError(f"The MERSCOPE folder {folder} has transcripts but neither cell_by_gene.csv nor cell "
                             "boundaries (cell_boundaries.parquet or cell_boundaries/*polygons*), so no cells.",
                             "copy cell_by_gene.csv + cell_metadata.csv or the cell boundaries.")
        X, obs, genes, xy = _count_in_polygons(tx, planes, z_show, notes)
        source = "transcripts assigned to polygons"
    adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index([str(g) for g in genes])))
    adata.obsm["spatial"] = xy
    adata.uns.update({"spatial_unit": "um", "platform": "merscope", "counts_source": source})
    sample = SpatialSample(adata=adata, platform="merscope", path=str(folder), notes=notes)

    if images and (folder / "images").is_dir():
        for f in sorted((folder / "images").iterdir()):
            m = IMAGE_RE.search(f.name)
            if not m or int(m.group("z")) != z_show:
                continue
            if f.suffix.lower() in (".tif", ".tiff"):
                data, _ = open_tiff(f)
            else:
                data = read_plain_image(f)
            shape = (data[0] if isinstance(data, list) else data).shape
            affine, how = _image_transform(folder, f, tx, shape, notes, micron_to_pixel)
            if affine is None:
                notes.append(f"{f.name}: no transform to µm; skipped")
                continue
            check_covers(affine, shape, xy, file=f.name)
            sample.images.append(SampleImage(name=f"{m.group('stain')} z{z_show}", data=data, affine=affine,
                                             source=f"{f} (placement: {how})"))
    if boundaries and z_show in planes:
        b = planes[z_show]
        sample.boundaries = b[b["cell_id"].isin(adata.obs_names)].reset_index(drop=True)
        sample.labels = [_labels(sample.boundaries, adata.obs_names)]
    if transcripts and tx is not None:
        keep = ~tx["gene"].astype(str).str.match(CONTROL_PATTERN.pattern, case=False).to_numpy()
        sample.transcripts = tx.loc[keep].reset_index(drop=True)
    return sample


def _grid(b: pd.DataFrame, pixel_size: float):
    x0, y0 = float(b["x"].min()), float(b["y"].min())
    x1, y1 = float(b["x"].max()), float(b["y"].max())
    s = max(pixel_size, float(np.sqrt((x1 - x0) * (y1 - y0) / MAX_LABEL_PIXELS)))
    return s, (x0, y0), (int(np.ceil((y1 - y0) / s)) + 1, int(np.ceil((x1 - x0) / s)) + 1)


def _labels(b: pd.DataFrame, obs_names) -> SampleLabels:
    s, origin, shape = _grid(b, 0.25)
    ids = [str(c) for c in obs_names]
    mask = rasterize_polygons(b, ids, s, origin, shape)
    return SampleLabels(name="cells", data=mask, affine=pixel_grid_affine(s, *origin),
                        label_to_obs={i + 1: c for i, c in enumerate(ids)}, source="rasterised cell polygons")


def _count_in_polygons(tx: pd.DataFrame, planes: dict[int, pd.DataFrame], z_show: int, notes: list[str]):
    """Assign each transcript to the polygon containing it and count.

    With a ``global_z`` column a transcript is tested against the polygons of its own z plane only. Without
    one its plane is unknown, so it belongs to a cell when it lies inside that cell's polygon on *any* plane;
    where polygons of different cells overlap across planes, the shown plane ``z_show`` wins, then the lowest
    other plane (planes are tried in that order and a transcript keeps its first hit).
    """
    import scipy.sparse as sp

    ordered = [z_show, *[z for z in sorted(planes) if z != z_show]]
    ordered = [z for z in ordered if z in planes]
    cell_ids = pd.unique(pd.concat([planes[z]["cell_id"] for z in ordered]))
    index = {c: i for i, c in enumerate(cell_ids)}
    is_ctrl = tx["gene"].astype(str).str.match(CONTROL_PATTERN.pattern, case=False).to_numpy()
    assigned = np.full(len(tx), -1, dtype=np.int64)
    has_z = "z" in tx
    tz = tx["z"].to_numpy() if has_z else None
    for z in ordered:
        b = planes[z]
        sel = np.flatnonzero(tz == z) if has_z else np.flatnonzero(assigned < 0)
        if sel.size == 0:
            continue
        local_ids = list(pd.unique(b["cell_id"]))
        s, origin, shape = _grid(b, 0.25)
        mask = rasterize_polygons(b, local_ids, s, origin, shape)
        cols = np.floor((tx["x"].to_numpy()[sel] - origin[0]) / s).astype(np.int64)
        rows = np.floor((tx["y"].to_numpy()[sel] - origin[1]) / s).astype(np.int64)
        ok = (cols >= 0) & (cols < shape[1]) & (rows >= 0) & (rows < shape[0])
        lab = np.zeros(sel.size, dtype=np.int64)
        lab[ok] = mask[rows[ok], cols[ok]]
        to_global = np.array([-1] + [index[c] for c in local_ids], dtype=np.int64)
        hit = lab > 0  # never overwrite an earlier plane's hit with "outside" (without z, sel spans all planes)
        assigned[sel[hit]] = to_global[lab[hit]]
    real = (assigned >= 0) & ~is_ctrl
    gene_codes, genes = pd.factorize(tx["gene"].astype(str).to_numpy()[real], sort=True)
    X = sp.csr_matrix((np.ones(int(real.sum()), np.float32), (assigned[real], gene_codes)),
                      shape=(len(cell_ids), len(genes)))
    X.sum_duplicates()
    cents = pd.concat([polygon_centroids(planes[z]) for z in ordered])
    cents = cents[~cents.index.duplicated(keep="first")].reindex(cell_ids)
    obs = pd.DataFrame({"area_um2": cents["area"].to_numpy(),
                        "n_transcripts": np.asarray(X.sum(axis=1)).ravel(),
                        "blank_counts": np.bincount(assigned[(assigned >= 0) & is_ctrl], minlength=len(cell_ids))},
                       index=pd.Index(cell_ids))
    notes.append(f"cell × gene counted from {int(real.sum())} of {len(tx)} transcripts inside {len(cell_ids)} polygons")
    return X, obs, list(genes), cents[["x", "y"]].to_numpy(np.float64)
