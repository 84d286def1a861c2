"""10x Visium: a spaceranger ``outs/`` folder or an AnnData in scanpy's layout, with its H&E image.

:func:`read_visium_section` returns a section AnnData (layout in :mod:`.sections`: µm in ``obsm["spatial"]``,
H&E pixels in ``obsm["spatial_px"]``); :func:`read_visium` a :class:`SpatialSample` (for napari).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .layouts import VISIUM_POSITIONS, visium_folder
from .sections import existing_file as _exists
from .sections import section_to_sample, set_spot_coordinates
from .tables import read_delimited, read_json_object

VISIUM_PITCH_UM = 100.0
VISIUM_SPOT_DIAMETER_UM = 55.0
POSITION_COLUMNS = ["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]
COPY_SPATIAL = "copy the spatial/ folder of the spaceranger outs/ again (unmodified)."


def _read_positions(path: Path) -> pd.DataFrame:
    """One tissue positions file: ``tissue_positions.csv`` (header), ``tissue_positions_list.csv`` (none) or
    Visium HD's ``tissue_positions.parquet``."""
    header = None if path.name.startswith("tissue_positions_list") else 0
    if path.suffix == ".parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as err:  # noqa: BLE001 - pyarrow raises several kinds for a damaged file
            raise InputError(f"Could not read the Visium tissue positions {path} ({err}).", COPY_SPATIAL) from err
    else:
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
    for fname in VISIUM_POSITIONS:
        if (spatial_dir / fname).is_file():
            return _read_positions(spatial_dir / fname)
    raise InputError(f"No tissue_positions(.csv|_list.csv|.parquet) in {spatial_dir}.",
                     "point at a spaceranger outs/ folder (Visium HD: outs/ or one of its binned_outputs/square_*um).")


def outs_folder(path) -> Path:
    """The spaceranger folder of ``path`` (:func:`~.layouts.visium_folder`: itself, the folder above ``outs/``, a
    file inside; Visium HD: its 8 µm bins unless a ``square_*um`` folder is given); ``path``'s folder when none
    is recognised (the reader then names what is missing)."""
    found = visium_folder(path)
    if found is not None:
        return found
    path = Path(path)
    base = path.parent if path.is_file() else path
    return base / "outs" if (base / "outs").is_dir() else base


def _bin_size_um(folder: Path, scalef: dict) -> float | None:
    """Visium HD's bin size in µm (``bin_size_um`` of the scale factors, else the ``square_NNNum`` folder name);
    None for standard Visium."""
    if "bin_size_um" in scalef:
        return float(scalef["bin_size_um"])
    m = re.fullmatch(r"square_(\d+)um", folder.name)
    return float(m.group(1)) if m else None


def scalefactor_pixel_size(scalef: dict, spot_um: float) -> float | None:
    """µm per full-resolution pixel from spaceranger's scale factors: Visium HD's ``microns_per_pixel``, else the
    spot's (HD: the bin's) ``spot_um`` over ``spot_diameter_fullres``; None when neither is there."""
    if float(scalef.get("microns_per_pixel", 0) or 0) > 0:
        return float(scalef["microns_per_pixel"])
    diam = float(scalef.get("spot_diameter_fullres", np.nan) or np.nan)
    return spot_um / diam if np.isfinite(diam) and diam > 0 else None


def read_visium_section(path, image=None, *, pixel_size_um: float | None = None, name: str | None = None,
                        require_image: bool = True):
    """10x Visium: a spaceranger ``outs/`` folder (filtered_feature_bc_matrix.h5 + spatial/; or the folder above
    it; Visium HD: its 8 µm bins or the ``binned_outputs/square_*um`` folder given) or an AnnData (.h5ad or object)
    with ``uns["spatial"]`` (scanpy layout). ``image`` is the full-resolution H&E; without it the hires PNG is used
    and coordinates are scaled by ``tissue_hires_scalef`` (no image at all: an error, or with
    ``require_image=False`` the spots alone). The pixel size is Visium HD's ``microns_per_pixel``, else the spot's
    (HD: the bin's) size over ``spot_diameter_fullres``. An AnnData's ``obsm["spatial"]`` is read as full-resolution
    pixels (scanpy's layout); the result holds µm there and the H&E pixels in ``obsm["spatial_px"]`` (see
    :mod:`.sections`)."""
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
            placed = adata.obs_names.isin(pos.index)
            if not placed.all():  # (spaceranger lists every barcode it counted; a copy only when some are not)
                adata = adata[placed].copy()
            pos = pos.loc[adata.obs_names]
            adata.obsm["spatial"] = pos[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(np.float64)
            scalef = read_json_object(src / "spatial" / "scalefactors_json.json", what="Visium scale factors",
                                      fix="copy spatial/scalefactors_json.json from the spaceranger outs/ folder.")
            hires = src / "spatial" / "tissue_hires_image.png"
            bins = _bin_size_um(src, scalef)
            if bins is not None and "bin_size_um" not in scalef:
                scalef = {**scalef, "bin_size_um": bins}
            adata.uns["spatial"] = {name or _library(src): {"scalefactors": scalef, "images": {},
                                                        "hires_path": str(hires) if hires.is_file() else None}}
        else:
            adata = ad.read_h5ad(_exists(src, "AnnData"))
    if "spatial" not in adata.obsm or "spatial" not in adata.uns or not adata.uns["spatial"]:
        raise InputError("The Visium AnnData lacks obsm['spatial'] or uns['spatial'].",
                         "read it with scanpy.read_visium or give the spaceranger outs/ folder.")
    lib = next(iter(adata.uns["spatial"]))
    info = adata.uns["spatial"][lib]
    scalef = info.get("scalefactors", {})
    bins = float(scalef["bin_size_um"]) if "bin_size_um" in scalef else None  # Visium HD: square bins, no gaps
    spot_um = bins or VISIUM_SPOT_DIAMETER_UM
    if pixel_size_um is None:
        pixel_size_um = scalefactor_pixel_size(scalef, spot_um)
        if pixel_size_um is None:
            raise InputError("scalefactors lack spot_diameter_fullres (and microns_per_pixel), so the pixel size is "
                             "unknown.", "pass pixel_size_um=... explicitly.")
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2]
    if image is None:
        hires = info.get("images", {}).get("hires")
        s = float(scalef.get("tissue_hires_scalef", 1.0))
        if hires is not None:
            image = np.asarray(hires)
        elif info.get("hires_path"):
            image = info["hires_path"]
        elif require_image:
            raise InputError("No H&E image: no spatial/tissue_hires_image.png, nor uns['spatial'][lib]['images']"
                             "['hires'] in an AnnData.", "pass the full-resolution H&E (image=PATH).")
        if image is not None:
            xy = xy * s
            pixel_size_um = pixel_size_um / s
    image = image if image is None or isinstance(image, np.ndarray) else str(image)
    set_spot_coordinates(adata, xy, pixel_size_um, image=image,
                         spot_diameter_um=spot_um, spot_pitch_um=bins or VISIUM_PITCH_UM,
                         platform="visium_hd" if bins else "visium", section=name or lib)
    return adata


def _library(folder: Path) -> str:
    """The sample's name for a spaceranger folder: the folder above ``outs/``; Visium HD adds the bin folder."""
    if folder.parent.name == "binned_outputs":
        outs = folder.parent.parent
        return f"{outs.parent.name if outs.name == 'outs' else outs.name}_{folder.name}"
    return folder.parent.name if folder.name == "outs" else folder.name


def read_visium(path, *, images: bool = True, **kwargs):
    """A spaceranger output (``outs/`` or the folder above it, or a file inside; Visium HD: its 8 µm bins, or the
    ``binned_outputs/square_*um`` folder given) → SpatialSample in µm with the H&E as an RGB image."""
    folder = outs_folder(path)
    notes = []
    if folder.parent.name == "binned_outputs" and Path(path).resolve() != folder.resolve():
        notes.append(f"Visium HD: the {folder.name[7:-2].lstrip('0')} µm bins (binned_outputs/{folder.name}); open "
                     "another binned_outputs/square_*um folder for other bin sizes")
    section = read_visium_section(folder, **{"require_image": False, **kwargs})
    if section.uns["histology"]["image"] is None:
        notes.append("no H&E image (spatial/tissue_hires_image.png, or image=PATH): the spots alone")
    return section_to_sample(section, section.uns["histology"]["platform"], str(path), notes=notes, images=images)


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
        sf = read_json_object(scalef, what="Visium scale factors", fix=COPY_SPATIAL)
        px = scalefactor_pixel_size(sf, _bin_size_um(path.parent.parent, sf) or VISIUM_SPOT_DIAMETER_UM)
    return [str(b) for b in pos.index], xy, px
