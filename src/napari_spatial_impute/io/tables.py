"""Reading instrument tables (csv, csv.gz, parquet) with clear errors, and tolerant column matching."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .layouts import find_first, is_gzip, peek_header  # noqa: F401 - the readers' table helpers


def read_table(path: Path, *, what: str, columns: Iterable[str] | None = None,
               required: Sequence[str] = (), dtype: dict | None = None) -> pd.DataFrame:
    """Read a csv(.gz) or parquet table; any failure becomes an :class:`InputError` naming the file.

    ``required`` columns (exact names, after matching) must have no missing values; one missing in a last row
    without a line end is reported as a truncated file. Optional columns may be empty anywhere, the last row
    included, unless that row is cut short (a csv whose text does not end with a line end: a truncated copy).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"The {what} file {path} does not exist.", "check the path.")
    if path.stat().st_size == 0:
        raise InputError(f"The {what} file {path.name} is empty (0 bytes).", "copy the file again from the instrument.")
    cols = list(columns) if columns is not None else None
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path, columns=cols)
        else:
            compression = "gzip" if is_gzip(path) else None
            df = pd.read_csv(path, usecols=cols, compression=compression, dtype=dtype, low_memory=False)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise InputError(f"The {what} file {path.name} is truncated or corrupt ({err}).",
                         "copy the file again from the instrument output.") from err
    except ValueError as err:
        if cols is not None and ("Usecols do not match" in str(err) or "not in" in str(err)):
            found = peek_header(path)
            raise InputError(f"The {what} file {path.name} lacks column(s) {cols}; it has {found[:20]}.",
                             "use an unmodified export, or rename the columns.") from err
        raise InputError(f"Could not parse the {what} file {path.name}: {err}", "re-export the file.") from err
    except Exception as err:  # noqa: BLE001 - every parse failure becomes one clear message
        raise InputError(f"Could not read the {what} file {path.name}: {type(err).__name__}: {err}",
                         "re-export or copy the file again.") from err
    if len(df) == 0:
        raise InputError(f"The {what} file {path.name} has a header but no rows.", "re-export the file.")
    last_na = df.iloc[-1].isna()
    if last_na.any() and path.suffix != ".parquet":
        # empty only in the last row: a row cut short, or just an optional value left empty — the bytes tell
        cols_na = list(last_na[last_na].index)
        if not df[cols_na].iloc[:-1].isna().any().any() and not _ends_with_newline(path):
            raise InputError(f"The {what} file {path.name} looks truncated: its last row has no value in "
                             f"column(s) {cols_na[:5]} and no line end.", "copy the file again from the instrument "
                             "output.")
    for col in required:
        values = df[col]
        missing = values.isna().to_numpy()
        if missing.any():
            if missing[-1] and path.suffix != ".parquet" and not _ends_with_newline(path):
                raise InputError(f"The {what} file {path.name} looks truncated: its last row has no value in "
                                 f"column {col!r}.", "copy the file again from the instrument output.")
            raise InputError(f"The {what} file {path.name} has {int(missing.sum())} empty value(s) in column "
                             f"{col!r} (first at data row {int(np.argmax(missing)) + 1}).",
                             "re-export the file or drop those rows.")
    return df


def _ends_with_newline(path: Path) -> bool:
    """Whether a csv's text (decompressed for gzip) ends with a line end; a complete export always does."""
    if is_gzip(path):
        last = b""
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                last = chunk[-1:]
    else:
        with open(path, "rb") as fh:
            fh.seek(-1, 2)
            last = fh.read(1)
    return last in (b"\n", b"\r")


def read_delimited(path, *, what: str, fix: str, **read_csv_kwargs) -> pd.DataFrame:
    """``pd.read_csv`` for small text tables (spot files, tissue positions): a missing, empty (0 bytes or header
    only), truncated or unparsable file becomes an :class:`InputError` naming the file, with ``fix``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"The {what} file {path} does not exist.", fix)
    if path.stat().st_size == 0:
        raise InputError(f"The {what} file {path} is empty (0 bytes).", fix)
    try:
        df = pd.read_csv(path, **read_csv_kwargs)
    except pd.errors.EmptyDataError as err:
        raise InputError(f"The {what} file {path} has no data (no header and no rows).", fix) from err
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise InputError(f"The {what} file {path} is truncated or corrupt ({err}).", fix) from err
    except Exception as err:  # noqa: BLE001 - every parse failure becomes one clear message
        raise InputError(f"Could not read the {what} file {path}: {type(err).__name__}: {err}", fix) from err
    if len(df) == 0:
        raise InputError(f"The {what} file {path} has a header but no rows.", fix)
    return df


def read_json_object(path, *, what: str, fix: str) -> dict:
    """A JSON file holding one object (e.g. Visium's scalefactors_json.json); a missing, empty or malformed file
    becomes an :class:`InputError` naming the file, with ``fix``."""
    import json

    path = Path(path)
    if not path.is_file():
        raise InputError(f"The {what} file {path} does not exist.", fix)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"The {what} file {path} is not valid JSON ({err}).", fix) from err
    except OSError as err:
        raise InputError(f"Could not read the {what} file {path}: {err}", fix) from err
    if not isinstance(data, dict):
        raise InputError(f"The {what} file {path} holds a JSON {type(data).__name__}, not an object "
                         "({\"key\": value, ...}).", fix)
    return data


def match_column(columns: Iterable[str], candidates: Sequence[str]) -> str | None:
    """The first of ``candidates`` present in ``columns``, compared case-insensitively and ignoring '_', '.'."""

    def norm(s: str) -> str:
        return str(s).lower().replace("_", "").replace(".", "").replace(" ", "")

    lookup = {norm(c): c for c in columns}
    for cand in candidates:
        hit = lookup.get(norm(cand))
        if hit is not None:
            return hit
    return None


def require_columns(columns: Iterable[str], wanted: dict[str, Sequence[str]], *, file: str,
                    platform: str) -> dict[str, str]:
    """Map each key of ``wanted`` (key → accepted spellings) to the actual column; name all missing ones."""
    columns = list(columns)
    out, missing = {}, []
    for key, cands in wanted.items():
        hit = match_column(columns, cands)
        if hit is None:
            missing.append(f"{key} (one of {', '.join(cands)})")
        else:
            out[key] = hit
    if missing:
        raise InputError(
            f"{file}: unknown {platform} export version — missing column(s) {'; '.join(missing)}. "
            f"Columns found: {', '.join(map(str, columns[:25]))}{' …' if len(columns) > 25 else ''}.",
            "use an unmodified instrument export, or rename the columns to one of the accepted names.")
    return out


def polygon_centroids(boundaries: pd.DataFrame) -> pd.DataFrame:
    """Area centroid and area of each polygon in a (cell_id, x, y) vertex table (shoelace formula)."""
    df = boundaries[["cell_id", "x", "y"]]
    ids = df["cell_id"].to_numpy()
    x = df["x"].to_numpy(np.float64)
    y = df["y"].to_numpy(np.float64)
    start = np.r_[True, ids[1:] != ids[:-1]]
    group = np.cumsum(start) - 1
    first = np.flatnonzero(start)
    nxt = np.arange(len(x)) + 1
    end = np.r_[first[1:], len(x)] - 1
    nxt[end] = first  # close every ring
    cross = x * y[nxt] - x[nxt] * y
    area2 = np.bincount(group, cross)
    cx = np.bincount(group, (x + x[nxt]) * cross)
    cy = np.bincount(group, (y + y[nxt]) * cross)
    with np.errstate(divide="ignore", invalid="ignore"):
        cx = cx / (3 * area2)
        cy = cy / (3 * area2)
    # degenerate rings: vertex mean
    bad = ~np.isfinite(cx) | (np.abs(area2) < 1e-12)
    if bad.any():
        n = np.bincount(group)
        cx[bad] = (np.bincount(group, x) / n)[bad]
        cy[bad] = (np.bincount(group, y) / n)[bad]
    return pd.DataFrame({"x": cx, "y": cy, "area": np.abs(area2) / 2}, index=pd.Index(ids[first], name="cell_id"))


def rasterize_polygons(boundaries: pd.DataFrame, cell_ids: Sequence[str], pixel_size_um: float,
                       origin_xy: tuple[float, float], shape: tuple[int, int]) -> np.ndarray:
    """Label mask (rows, cols) with polygon of ``cell_ids[i]`` filled with ``i + 1`` (0 = background).

    Pixel (row, col) covers [origin + col·s, origin + (col+1)·s) in x (same for y).
    """
    from skimage.draw import polygon as fill_polygon

    index = {str(c): i + 1 for i, c in enumerate(cell_ids)}
    dtype = np.uint32 if len(index) >= 2**16 - 1 else np.uint16
    mask = np.zeros(shape, dtype=dtype)
    s = float(pixel_size_um)
    for cid, grp in boundaries.groupby("cell_id", sort=False):
        label = index.get(str(cid))
        if label is None:
            continue
        cols = (grp["x"].to_numpy() - origin_xy[0]) / s - 0.5
        rows = (grp["y"].to_numpy() - origin_xy[1]) / s - 0.5
        rr, cc = fill_polygon(rows, cols, shape=shape)
        mask[rr, cc] = label
    return mask
