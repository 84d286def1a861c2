"""10x Visium: a spaceranger ``outs/`` folder or an AnnData in scanpy's layout, with its H&E image.

:func:`read_visium_section` returns a section AnnData (layout in :mod:`.sections`: µm in ``obsm["spatial"]``,
H&E pixels in ``obsm["spatial_px"]``); :func:`read_visium` a :class:`SpatialSample` (for napari).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .sections import existing_file as _exists
from .sections import section_to_sample, set_spot_coordinates
from .tables import read_delimited, read_json_object

VISIUM_PITCH_UM = 100.0
VISIUM_SPOT_DIAMETER_UM = 55.0
POSITION_COLUMNS = ["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]
COPY_SPATIAL = "copy the spatial/ folder of the spaceranger outs/ again (unmodified)."


def _read_positions(path: Path) -> pd.DataFrame:
    """One tissue positions file: ``tissue_positions.csv`` (header) or ``tissue_positions_list.csv`` (none)."""
    header = None if path.name.startswith("tissue_positions_list") else 0
    df = read_delimited(path, what="Visium tissue positions", header=header, fix=COPY_SPATIAL)
    if header is None:
        if df.shape[1] != len(POSITION_COLUMNS):
            raise InputError(f"The Visium tissue positions file {path} has {df.shape[1]} columns, not the "
                             f"{len(POSITION_COLUMNS)} of {', '.join(POSITION_COLUMNS)}.", COPY_SPATIAL)
        df.columns = POSITION_COLUMNS
    missing = [c for c in POSITION_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"The Visium tissue positions file {path} lacks column(s) {missing} (has "
                         f"{list(df.columns)[:8]}).", COPY_SPATIAL)
    return df.set_index("barcode")


def _visium_positions(spatial_dir: Path) -> pd.DataFrame:
    for fname in ("tissue_positions.csv", "tissue_positions_list.csv"):
        if (spatial_dir / fname).is_file():
            return _read_positions(spatial_dir / fname)
    raise InputError(f"No tissue_positions(.csv|_list.csv) in {spatial_dir}.", "point at a spaceranger outs/ folder.")


def outs_folder(path) -> Path:
    """The spaceranger ``outs/`` folder of ``path``: itself, the folder above it, or a file inside it."""
    path = Path(path)
    base = path.parent if path.is_file() else path
    if base.name == "spatial" and not (base / "spatial").is_dir():
        base = base.parent
    return base / "outs" if (base / "outs").is_dir() else base


def read_visium_section(path, image=None, *, pixel_size_um: float | None = None, name: str | None = None):
    """10x Visium: a spaceranger ``outs/`` folder (filtered_feature_bc_matrix.h5 + spatial/; or the folder above
    it) or an AnnData (.h5ad or object) with ``uns["spatial"]`` (scanpy layout). ``image`` is the full-resolution
    H&E; without it the hires PNG is used and coordinates are scaled by ``tissue_hires_scalef``. An AnnData's
    ``obsm["spatial"]`` is read as full-resolution pixels (scanpy's layout); the result holds µm there and the
    H&E pixels in ``obsm["spatial_px"]`` (see :mod:`.sections`)."""
    import anndata as ad

    if isinstance(path, ad.AnnData):
        adata = path.copy()
        src = None
    else:
        src = Path(path)
        if src.is_dir():
            import scanpy as sc

            src = outs_folder(src)
            h5 = src / "filtered_feature_bc_matrix.h5"
            if not h5.is_file():
                raise InputError(f"{h5} is missing.", "point at a spaceranger outs/ folder.")
            adata = sc.read_10x_h5(h5)
            adata.var_names_make_unique()
            pos = _visium_positions(src / "spatial")
            adata = adata[adata.obs_names.isin(pos.index)].copy()
            pos = pos.loc[adata.obs_names]
            adata.obsm["spatial"] = pos[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(np.float64)
            scalef = read_json_object(src / "spatial" / "scalefactors_json.json", what="Visium scale factors",
                                      fix="copy spatial/scalefactors_json.json from the spaceranger outs/ folder.")
            hires = src / "spatial" / "tissue_hires_image.png"
            library = src.parent.name if src.name == "outs" else src.name
            adata.uns["spatial"] = {name or library: {"scalefactors": scalef, "images": {},
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
    set_spot_coordinates(adata, xy, pixel_size_um, image=image if isinstance(image, np.ndarray) else str(image),
                         spot_diameter_um=VISIUM_SPOT_DIAMETER_UM, spot_pitch_um=VISIUM_PITCH_UM, platform="visium",
                         section=name or lib)
    return adata


def read_visium(path, **kwargs):
    """A spaceranger output (``outs/`` or the folder above it, or a file inside) → SpatialSample in µm with the
    H&E as an RGB image."""
    return section_to_sample(read_visium_section(outs_folder(path), **kwargs), "visium", str(path))


def read_visium_spots(path) -> tuple[list[str], np.ndarray, float | None]:
    """Spot centres of a Visium ``tissue_positions(.csv|_list.csv)`` (in-tissue spots only): (barcodes, (x, y)
    full-resolution pixels, µm/px from ``scalefactors_json.json`` beside it, else None)."""
    path = Path(path)
    pos = _read_positions(_exists(path, "Visium tissue positions"))
    pos = pos[pos["in_tissue"].astype(int) == 1]
    if pos.empty:
        raise InputError(f"No spot of {path.name} is marked in_tissue.", COPY_SPATIAL)
    xy = pos[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(np.float64)
    px = None
    scalef = path.parent / "scalefactors_json.json"
    if scalef.is_file():
        diam = float(read_json_object(scalef, what="Visium scale factors", fix=COPY_SPATIAL)
                     .get("spot_diameter_fullres", np.nan))
        px = VISIUM_SPOT_DIAMETER_UM / diam if np.isfinite(diam) and diam > 0 else None
    return [str(b) for b in pos.index], xy, px
