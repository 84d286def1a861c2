"""Readers for spot-based sections with an H&E image: legacy ST (her2st layout) and 10x Visium.

Every reader returns an AnnData with raw counts in ``X``, spot centres in ``obsm["spatial"]`` as **(x, y)
full-resolution image pixels**, and ``uns["histology"]`` = {image (path), pixel_size_um, spot_diameter_um,
spot_pitch_um, platform, section}. Patches are then cut at a fixed physical size, so scanners with other
resolutions still work.

Pixel size of legacy ST images: the files do not state it. The ST array has spots of 100 µm diameter at a
200 µm centre-to-centre pitch (Ståhl et al., Science 2016); :func:`pixel_size_from_pitch` divides that pitch
by the median pixel distance between array neighbours (x±1 at equal y, and y±1 at equal x). On her2st C2–C6
this gives 288–293 px per 200 µm, i.e. ≈ 0.69 µm/px.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

ST_PITCH_UM = 200.0
ST_SPOT_DIAMETER_UM = 100.0
VISIUM_PITCH_UM = 100.0
VISIUM_SPOT_DIAMETER_UM = 55.0


def _exists(path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"The {what} file {path} does not exist.", "check the path.")
    return path


def pixel_size_from_pitch(array_xy: np.ndarray, pixel_xy: np.ndarray, pitch_um: float = ST_PITCH_UM) -> float:
    """µm per pixel from the pixel distance between spots one array step apart (median over pairs)."""
    array_xy = np.asarray(array_xy, dtype=np.int64)
    pixel_xy = np.asarray(pixel_xy, dtype=np.float64)
    index = {(int(a), int(b)): i for i, (a, b) in enumerate(array_xy)}
    dists = []
    for (a, b), i in index.items():
        for nb in ((a + 1, b), (a, b + 1)):
            j = index.get(nb)
            if j is not None:
                dists.append(float(np.hypot(*(pixel_xy[j] - pixel_xy[i]))))
    if len(dists) < 3:
        raise InputError("Too few neighbouring spots to measure the array pitch in pixels.",
                         "pass pixel_size_um=... explicitly.")
    return pitch_um / float(np.median(dists))


def read_st_section(counts, spots, image, *, pixel_size_um: float | None = None, name: str | None = None):
    """Legacy ST section (her2st layout): counts TSV(.gz) with ``"XxY"`` spot ids in rows and genes in
    columns, a spot selection TSV (x, y, pixel_x, pixel_y[, selected]) and the H&E image path."""
    import anndata as ad

    counts, spots, image = _exists(counts, "counts"), _exists(spots, "spot selection"), _exists(image, "image")
    try:
        cnt = pd.read_csv(counts, sep="\t", index_col=0)
    except Exception as err:  # noqa: BLE001
        raise InputError(f"Could not read the counts table {counts}: {err}",
                         "give a tab-separated file with spot ids in the first column, genes as columns.") from err
    pos = pd.read_csv(spots, sep="\t")
    missing = [c for c in ("x", "y", "pixel_x", "pixel_y") if c not in pos.columns]
    if missing:
        raise InputError(f"The spot file {spots.name} lacks columns {missing} (has {list(pos.columns)[:8]}).",
                         "give the ST spot selection TSV with x, y, pixel_x, pixel_y.")
    if "selected" in pos.columns:
        pos = pos[pos["selected"].astype(int) == 1]
    pos.index = pos["x"].astype(int).astype(str) + "x" + pos["y"].astype(int).astype(str)
    pos = pos[~pos.index.duplicated()]
    cnt.index = cnt.index.astype(str)
    shared = [s for s in cnt.index if s in pos.index]
    if not shared:
        raise InputError(f"No spot id of {counts.name} (e.g. {list(cnt.index[:3])}) is in {spots.name} "
                         f"(e.g. {list(pos.index[:3])}).", "give the counts and spot files of the same section.")
    cnt = cnt.loc[shared]
    pos = pos.loc[shared]
    X = cnt.to_numpy(dtype=np.float32)
    adata = ad.AnnData(X=X, obs=pd.DataFrame({"array_x": pos["x"].to_numpy(int), "array_y": pos["y"].to_numpy(int)},
                                             index=pd.Index(shared, name="spot")),
                       var=pd.DataFrame(index=pd.Index(cnt.columns.astype(str), name="gene")))
    adata.var_names_make_unique()
    pixel_xy = pos[["pixel_x", "pixel_y"]].to_numpy(np.float64)
    adata.obsm["spatial"] = pixel_xy
    if pixel_size_um is None:
        pixel_size_um = pixel_size_from_pitch(pos[["x", "y"]].to_numpy(), pixel_xy, ST_PITCH_UM)
    adata.uns["histology"] = {"image": str(image), "pixel_size_um": float(pixel_size_um),
                              "spot_diameter_um": ST_SPOT_DIAMETER_UM, "spot_pitch_um": ST_PITCH_UM,
                              "platform": "st", "section": name or counts.name.split(".")[0]}
    return adata


def _visium_positions(spatial_dir: Path) -> pd.DataFrame:
    for fname, header in (("tissue_positions.csv", 0), ("tissue_positions_list.csv", None)):
        path = spatial_dir / fname
        if path.is_file():
            df = pd.read_csv(path, header=header)
            if header is None:
                df.columns = ["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres",
                              "pxl_col_in_fullres"]
            return df.set_index("barcode")
    raise InputError(f"No tissue_positions(.csv|_list.csv) in {spatial_dir}.", "point at a spaceranger outs/ folder.")


def read_visium(path, image=None, *, pixel_size_um: float | None = None, name: str | None = None):
    """10x Visium: a spaceranger ``outs/`` folder (filtered_feature_bc_matrix.h5 + spatial/) or an AnnData
    (.h5ad or object) with ``uns["spatial"]`` (scanpy layout). ``image`` is the full-resolution H&E; without
    it the hires PNG is used and coordinates are scaled by ``tissue_hires_scalef``."""
    import anndata as ad

    if isinstance(path, ad.AnnData):
        adata = path.copy()
        src = None
    else:
        src = Path(path)
        if src.is_dir():
            import scanpy as sc

            h5 = src / "filtered_feature_bc_matrix.h5"
            if not h5.is_file():
                raise InputError(f"{h5} is missing.", "point at a spaceranger outs/ folder.")
            adata = sc.read_10x_h5(h5)
            adata.var_names_make_unique()
            pos = _visium_positions(src / "spatial")
            adata = adata[adata.obs_names.isin(pos.index)].copy()
            pos = pos.loc[adata.obs_names]
            adata.obsm["spatial"] = pos[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(np.float64)
            scalef = json.loads((src / "spatial" / "scalefactors_json.json").read_text())
            hires = src / "spatial" / "tissue_hires_image.png"
            adata.uns["spatial"] = {name or src.name: {"scalefactors": scalef, "images": {},
                                                        "hires_path": str(hires) if hires.is_file() else None}}
        else:
            adata = ad.read_h5ad(_exists(src, "AnnData"))
    if "spatial" not in adata.obsm or "spatial" not in adata.uns or not adata.uns["spatial"]:
        raise InputError("The Visium AnnData lacks obsm['spatial'] or uns['spatial'].",
                         "read it with scanpy.read_visium or give the spaceranger outs/ folder.")
    lib = next(iter(adata.uns["spatial"]))
    info = adata.uns["spatial"][lib]
    scalef = info.get("scalefactors", {})
    diam_px = float(scalef.get("spot_diameter_fullres", np.nan))
    if pixel_size_um is None:
        if not np.isfinite(diam_px) or diam_px <= 0:
            raise InputError("scalefactors lack spot_diameter_fullres, so the pixel size is unknown.",
                             "pass pixel_size_um=... explicitly.")
        pixel_size_um = VISIUM_SPOT_DIAMETER_UM / diam_px
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2]
    if image is None:
        hires = info.get("images", {}).get("hires")
        s = float(scalef.get("tissue_hires_scalef", 1.0))
        if hires is not None:
            image = np.asarray(hires)
        elif info.get("hires_path"):
            image = info["hires_path"]
        else:
            raise InputError("No H&E image: the AnnData has no uns['spatial'][lib]['images']['hires'].",
                             "pass image=PATH to the full-resolution H&E.")
        xy = xy * s
        pixel_size_um = pixel_size_um / s
    adata.obsm["spatial"] = xy
    adata.uns["histology"] = {"image": image if isinstance(image, np.ndarray) else str(image),
                              "pixel_size_um": float(pixel_size_um), "spot_diameter_um": VISIUM_SPOT_DIAMETER_UM,
                              "spot_pitch_um": VISIUM_PITCH_UM, "platform": "visium", "section": name or lib}
    return adata


def read_section(counts, spots=None, image=None, **kwargs):
    """Dispatch: (counts TSV, spots TSV, image) → legacy ST; a folder / .h5ad (+ image) → Visium."""
    p = Path(str(counts))
    if spots is not None and image is not None:
        return read_st_section(counts, spots, image, **kwargs)
    if p.is_dir() or p.suffix == ".h5ad":
        return read_visium(counts, image=image or spots, **kwargs)
    raise InputError(f"Cannot tell what kind of section {counts} is.",
                     "give COUNTS SPOTS IMAGE (legacy ST) or a spaceranger outs/ folder / Visium .h5ad.")


def read_spots_table(path) -> tuple[list[str], np.ndarray, float | None]:
    """Spot centres for prediction: an ST selection TSV (x, y, pixel_x, pixel_y) or a CSV/TSV with
    ``pixel_x``/``pixel_y`` (or ``x``/``y``) in full-resolution pixels. Returns (ids, (x, y) px, µm/px or None)."""
    path = _exists(path, "spots")
    sep = "\t" if path.suffix in (".tsv", ".txt") or path.name.endswith(".tsv.gz") else ","
    df = pd.read_csv(path, sep=sep)
    if "selected" in df.columns:
        df = df[df["selected"].astype(int) == 1]
    if {"pixel_x", "pixel_y"} <= set(df.columns):
        xy = df[["pixel_x", "pixel_y"]].to_numpy(np.float64)
        if {"x", "y"} <= set(df.columns):
            ids = (df["x"].astype(int).astype(str) + "x" + df["y"].astype(int).astype(str)).tolist()
            try:
                px = pixel_size_from_pitch(df[["x", "y"]].to_numpy(), xy)
            except InputError:
                px = None
            return ids, xy, px
        return [str(i) for i in df.index], xy, None
    if {"x", "y"} <= set(df.columns):
        return [str(i) for i in df.index], df[["x", "y"]].to_numpy(np.float64), None
    raise InputError(f"The spots file {path.name} has no pixel_x/pixel_y or x/y columns (has {list(df.columns)[:8]}).",
                     "give the ST selection TSV, or a CSV with pixel_x, pixel_y in full-resolution pixels.")
