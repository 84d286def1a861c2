"""Legacy Spatial Transcriptomics (ST, her2st layout): counts TSV + spot selection TSV + H&E image.

:func:`read_st_section` returns a section AnnData (layout in :mod:`.sections`: µm in ``obsm["spatial"]``,
H&E pixels in ``obsm["spatial_px"]``); :func:`read_legacy_st` a :class:`SpatialSample` of a section from any of
its files or the dataset root (for napari).

Pixel size of legacy ST images: the files do not state it. The ST array has spots of 100 µm diameter at a
200 µm centre-to-centre pitch (Ståhl et al., Science 2016); :func:`pixel_size_from_pitch` divides that pitch
by the median pixel distance between array neighbours (x±1 at equal y, and y±1 at equal x). On her2st C2–C6
this gives 288–293 px per 200 µm, i.e. ≈ 0.69 µm/px.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .sections import existing_file as _exists
from .sections import section_to_sample, set_spot_coordinates
from .tables import read_delimited

ST_PITCH_UM = 200.0
ST_SPOT_DIAMETER_UM = 100.0


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
    cnt = read_delimited(counts, what="ST counts", sep="\t", index_col=0,
                         fix="give the section's tab-separated counts file (spot ids in the first column, genes as "
                             "columns); copy ST-cnts/ again if it was cut short.")
    pos = read_delimited(spots, what="ST spot selection", sep="\t",
                         fix="give the section's spot selection TSV (x, y, pixel_x, pixel_y[, selected]); copy "
                             "ST-spotfiles/ again if it was cut short.")
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
    if pixel_size_um is None:
        pixel_size_um = pixel_size_from_pitch(pos[["x", "y"]].to_numpy(), pixel_xy, ST_PITCH_UM)
    set_spot_coordinates(adata, pixel_xy, pixel_size_um, image=str(image), spot_diameter_um=ST_SPOT_DIAMETER_UM,
                         spot_pitch_um=ST_PITCH_UM, platform="st", section=name or counts.name.split(".")[0])
    return adata


def read_spots_table(path) -> tuple[list[str], np.ndarray, float | None]:
    """Spot centres for prediction: an ST selection TSV (x, y, pixel_x, pixel_y), a Visium
    ``tissue_positions(.csv|_list.csv)`` (in-tissue spots; µm/px from the ``scalefactors_json.json`` beside it) or a
    CSV/TSV with ``pixel_x``/``pixel_y`` (or ``x``/``y``) in full-resolution pixels. Returns (ids, (x, y) px, µm/px
    or None)."""
    path = _exists(path, "spots")
    if path.name.startswith("tissue_positions"):
        from .visium import read_visium_spots

        return read_visium_spots(path)
    sep = "\t" if path.suffix in (".tsv", ".txt") or path.name.endswith(".tsv.gz") else ","
    df = read_delimited(path, what="spots", sep=sep,
                        fix="give the ST selection TSV, or a CSV with pixel_x, pixel_y in full-resolution pixels.")
    if {"pxl_col_in_fullres", "pxl_row_in_fullres", "in_tissue"} <= set(df.columns):  # a renamed Visium file
        from .visium import read_visium_spots

        return read_visium_spots(path)
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
        return _spot_ids(df), xy, None
    if {"x", "y"} <= set(df.columns):
        return _spot_ids(df), df[["x", "y"]].to_numpy(np.float64), None
    raise InputError(f"The spots file {path.name} has no pixel_x/pixel_y or x/y columns (has {list(df.columns)[:8]}).",
                     "give the ST selection TSV, or a CSV with pixel_x, pixel_y in full-resolution pixels.")


#: columns of a spots table that name its spots
SPOT_ID_COLUMNS = ("barcode", "barcodes", "spot_id", "spot", "id", "name", "cell_id")


def _spot_ids(df) -> list[str]:
    """The spots' names: an id column (barcode, spot_id, …), else a first column of unique text, else row numbers."""
    col = next((c for c in SPOT_ID_COLUMNS if c in df.columns), None)
    first = df.columns[0] if len(df.columns) else None
    if col is None and first is not None and first not in ("pixel_x", "pixel_y", "x", "y") \
            and df[first].dtype == object and df[first].is_unique:
        col = first
    return df[col].astype(str).tolist() if col is not None else [str(i) for i in df.index]


def _st_section_files(path: Path) -> tuple[Path, Path, Path, list[str]]:
    """(counts, spots, image, other sections) of a legacy-ST (her2st layout) section from any of its files or
    the dataset root (then its first section)."""
    path = Path(path)
    if path.is_dir():
        root = path
        names = sorted(p.name[: -len(".tsv.gz")] for p in (root / "ST-cnts").glob("*.tsv.gz"))
        if not names:
            raise InputError(f"{root}/ST-cnts has no <section>.tsv.gz counts file.", "copy the ST-cnts folder.")
        name = names[0]
    else:
        root = path.parent.parent
        name = path.name[: -len(".tsv.gz")] if path.name.endswith(".tsv.gz") else path.name.split("_selection")[0]
        names = sorted(p.name[: -len(".tsv.gz")] for p in (root / "ST-cnts").glob("*.tsv.gz")) or [name]
    counts = root / "ST-cnts" / f"{name}.tsv.gz"
    spots = next(iter(sorted((root / "ST-spotfiles").glob(f"{name}_selection.tsv*"))), None)
    images = sorted((root / "ST-imgs").glob(f"{name}_*.jpg")) + sorted((root / "ST-imgs").glob(f"**/{name}/*.jpg"))
    if not counts.is_file():
        raise InputError(f"The counts file {counts} of section {name} is missing.", "copy ST-cnts/.")
    if spots is None:
        raise InputError(f"ST-spotfiles/{name}_selection.tsv of section {name} is missing.", "copy ST-spotfiles/.")
    if not images:
        raise InputError(f"No H&E image ST-imgs/{name}_*.jpg for section {name}.", "copy ST-imgs/.")
    return counts, spots, images[0], [n for n in names if n != name]


def read_legacy_st(path, *, images: bool = True, **kwargs):
    """A legacy-ST section (from any of its files, or the dataset root: its first section) → SpatialSample in µm
    with the H&E as an RGB image (``images=False``: not decoded)."""
    counts, spots, image, others = _st_section_files(Path(path))
    adata = read_st_section(counts, spots, image, **kwargs)
    notes = [f"opened section {counts.name}; other sections here: {', '.join(others)}"] if others else []
    return section_to_sample(adata, "st", str(path), notes, images=images)
