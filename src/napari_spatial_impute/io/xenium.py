"""10x Genomics Xenium output folder → :class:`SpatialSample` (µm world, y down)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..coords import PLATFORM_PIXEL_SIZE_UM, pixel_grid_affine
from ..errors import InputError
from .checks import check_covers
from .images import ome_pixel_size_um, open_tiff
from .layouts import CELLS_NAMES, MATRIX_NAMES
from .spatial_sample import SampleImage, SampleLabels, SpatialSample
from .tables import find_first, read_table, require_columns

CONTROL_PREFIXES = ("NegControl", "BLANK", "Unassigned", "DeprecatedCodeword", "Intergenic", "antisense")
#: Labels rasterised from boundaries stay below this many pixels (coarser pixels for big slides).
MAX_LABEL_PIXELS = 64_000_000
#: H&E → morphology alignment: 10x names it ``<sample>_he_imagealignment.csv``; ``*he_image_alignment.csv`` also read
HE_ALIGNMENT_NAMES = ("*he_imagealignment.csv", "*he_image_alignment.csv")


def _folder(path) -> Path:
    path = Path(path)
    if path.is_file() and (path.name in (*MATRIX_NAMES, *CELLS_NAMES, "experiment.xenium")):
        path = path.parent
    if not path.exists():
        raise InputError(f"The Xenium folder {path} does not exist.", "check the path.")
    if not path.is_dir():
        raise InputError(f"{path} is not a Xenium output folder.", "open the folder that holds cells.csv.gz.")
    return path


def read_10x_h5(path: Path):
    """10x HDF5 feature-barcode matrix → (cells × features CSR, barcodes, features DataFrame)."""
    import h5py
    import scipy.sparse as sp

    try:
        with h5py.File(path, "r") as f:
            m = f["matrix"]
            shape = tuple(int(s) for s in m["shape"][:])
            mat = sp.csc_matrix((m["data"][:], m["indices"][:], m["indptr"][:]), shape=shape)
            barcodes = [b.decode() if isinstance(b, bytes) else str(b) for b in m["barcodes"][:]]
            feats = m["features"]
            names = [b.decode() for b in feats["name"][:]]
            ids = [b.decode() for b in feats["id"][:]] if "id" in feats else names
            types = ([b.decode() for b in feats["feature_type"][:]] if "feature_type" in feats
                     else ["Gene Expression"] * len(names))
    except KeyError as err:
        raise InputError(f"{path.name} is not a 10x feature-barcode matrix (missing HDF5 key {err}).",
                         "use the cell_feature_matrix.h5 written by the instrument.") from err
    except OSError as err:
        raise InputError(f"{path.name} is not a readable HDF5 file ({err}); it may be truncated.",
                         "copy the file again from the instrument output.") from err
    if mat.shape != (len(names), len(barcodes)):
        raise InputError(f"{path.name}: matrix shape {mat.shape} disagrees with {len(names)} features × "
                         f"{len(barcodes)} barcodes.", "copy the file again.")
    features = pd.DataFrame({"gene_ids": ids, "feature_types": types}, index=pd.Index(names, name=None))
    return mat.T.tocsr(), barcodes, features


def _read_mtx_folder(folder: Path):
    import scipy.io
    import scipy.sparse as sp

    def pick(stem):
        hit = find_first(folder, [f"{stem}.gz", stem])
        if hit is None:
            raise InputError(f"The matrix folder {folder} has no {stem}(.gz).", "copy the complete folder.")
        return hit

    try:
        mat = sp.csr_matrix(scipy.io.mmread(pick("matrix.mtx")))
    except Exception as err:  # noqa: BLE001
        raise InputError(f"Could not read {folder.name}/matrix.mtx(.gz): {err}", "copy the folder again.") from err
    feats = pd.read_csv(pick("features.tsv"), sep="\t", header=None)
    barcodes = pd.read_csv(pick("barcodes.tsv"), sep="\t", header=None)[0].astype(str).tolist()
    types = feats[2].astype(str).tolist() if feats.shape[1] > 2 else ["Gene Expression"] * len(feats)
    features = pd.DataFrame({"gene_ids": feats[0].astype(str).tolist(), "feature_types": types},
                            index=pd.Index(feats[1].astype(str).tolist()))
    return mat.T.tocsr(), barcodes, features


def _pixel_size(folder: Path, notes: list[str]) -> tuple[float, str]:
    exp = folder / "experiment.xenium"
    if exp.exists():
        try:
            meta = json.loads(exp.read_text())
            if float(meta.get("pixel_size", 0)) > 0:
                return float(meta["pixel_size"]), "experiment.xenium"
        except (ValueError, TypeError) as err:
            notes.append(f"experiment.xenium unreadable ({err}); pixel size from image metadata or default")
    return PLATFORM_PIXEL_SIZE_UM["xenium"], "default"


def _image_files(folder: Path) -> list[Path]:
    focus_dir = folder / "morphology_focus"
    if focus_dir.is_dir():
        files = sorted(focus_dir.glob("*.ome.tif"))
        if files:
            return files
    for name in ("morphology_focus.ome.tif", "morphology_mip.ome.tif"):
        if (folder / name).exists():
            return [folder / name]
    return []


def _channel_names(path: Path) -> list[str]:
    import re

    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            ome = tf.ome_metadata or ""
    except Exception:  # noqa: BLE001
        return []
    return re.findall(r'<Channel [^>]*Name="([^"]+)"', ome)


def _read_images(folder: Path, ps: float, ps_source: str, xy: np.ndarray, notes: list[str]) -> list[SampleImage]:
    images = []
    for f in _image_files(folder):
        data, axes = open_tiff(f)
        file_ps = ome_pixel_size_um(f)
        use_ps = ps if ps_source == "experiment.xenium" or file_ps is None else file_ps
        names = _channel_names(f)
        channel_axis = None
        ax = axes.upper()
        if "C" in ax and ax.index("C") < len(ax) - 2:
            channel_axis = ax.index("C")
        if "Z" in ax:  # a z-stack: keep it, napari shows a slider
            notes.append(f"{f.name} is a z-stack ({axes}); shown with a z slider")
        stem = f.name.replace(".ome.tif", "")
        name = names[0] if len(names) == 1 else stem
        img = SampleImage(name=f"{name}", data=data, affine=pixel_grid_affine(use_ps), channel_axis=channel_axis,
                          channel_names=names or None, source=str(f))
        level0 = data[0] if isinstance(data, list) else data
        yx_shape = tuple(level0.shape[i] for i, a in enumerate(ax) if a in "YX")
        check_covers(img.affine, yx_shape, xy, file=f.name)
        images.append(img)
    he = find_first(folder, ["*he_image.ome.tif", "*he_image.tif"])
    align = find_first(folder, HE_ALIGNMENT_NAMES)
    if he is not None and align is not None:
        try:
            m = np.loadtxt(align, delimiter=",").reshape(3, 3)
        except ValueError as err:
            raise InputError(f"{align.name} is not a 3×3 affine matrix ({err}).", "re-export the alignment.") from err
        data, axes = open_tiff(he)
        # alignment: H&E pixel (x, y) → morphology pixel (x, y); then morphology pixel → µm
        images.append(SampleImage(name="H&E", data=data, affine=pixel_grid_affine(ps) @ m,
                                  rgb=axes.upper().endswith("S") or axes.upper().endswith("C"), source=str(he)))
    elif he is not None:
        notes.append(f"{he.name} found without an alignment file ({' or '.join(HE_ALIGNMENT_NAMES)}): not placed")
    return images


def _read_transcripts(folder: Path, min_qv: float, notes: list[str]) -> pd.DataFrame | None:
    f = find_first(folder, ["transcripts.parquet", "transcripts.csv.gz", "transcripts.csv"])
    if f is None:
        return None
    from .tables import peek_header

    header = peek_header(f)
    cols = require_columns(header, {"x": ["x_location"], "y": ["y_location"], "gene": ["feature_name"]},
                           file=f.name, platform="Xenium")
    # cell_id is left out: tens of millions of Python strings would dominate memory
    optional = {k: c for k, c in (("z", "z_location"), ("qv", "qv")) if c in header}
    df = read_table(f, what="Xenium transcripts", columns=[*cols.values(), *optional.values()],
                    required=[cols["x"], cols["y"]])
    out = pd.DataFrame({"x": df[cols["x"]].to_numpy(np.float32), "y": df[cols["y"]].to_numpy(np.float32)})
    genes = df[cols["gene"]]
    if genes.dtype == object and len(genes) and isinstance(genes.iloc[0], bytes):
        genes = genes.str.decode("utf-8")
    out["gene"] = pd.Categorical(genes.astype(str))
    for k, c in optional.items():
        out[k] = df[c].to_numpy(np.float32)
    return real_transcripts(out, min_qv, notes)


def real_transcripts(tx: pd.DataFrame, min_qv: float, notes: list[str]) -> pd.DataFrame:
    """The decoded molecules of a transcript table (x, y, gene[, qv, …]): control probes and codewords
    (:data:`CONTROL_PREFIXES`) left out, and those under ``min_qv`` when it has a ``qv`` column; a note says how
    many were kept."""
    keep = ~tx["gene"].astype(str).str.startswith(CONTROL_PREFIXES).to_numpy()
    if "qv" in tx:
        keep &= tx["qv"].to_numpy() >= min_qv
    notes.append(f"transcripts: kept {int(keep.sum())} of {len(tx)} (qv ≥ {min_qv}, no control probes)")
    return tx.loc[keep].reset_index(drop=True)


def _read_boundaries(folder: Path) -> pd.DataFrame | None:
    f = find_first(folder, ["cell_boundaries.parquet", "cell_boundaries.csv.gz", "cell_boundaries.csv"])
    if f is None:
        return None
    from .tables import peek_header

    cols = require_columns(peek_header(f), {"cell_id": ["cell_id"], "x": ["vertex_x"], "y": ["vertex_y"]},
                           file=f.name, platform="Xenium")
    df = read_table(f, what="Xenium cell boundaries", columns=list(cols.values()), required=[cols["x"], cols["y"]])
    cid = df[cols["cell_id"]]
    if cid.dtype == object and len(cid) and isinstance(cid.iloc[0], bytes):
        cid = cid.str.decode("utf-8")
    return pd.DataFrame({"cell_id": cid.astype(str).to_numpy(), "x": df[cols["x"]].to_numpy(np.float64),
                         "y": df[cols["y"]].to_numpy(np.float64)})


def labels_from_boundaries(boundaries: pd.DataFrame, obs_names, pixel_size_um: float, name: str = "cells",
                           max_pixels: int = MAX_LABEL_PIXELS) -> SampleLabels:
    """Rasterise cell polygons (µm) into a label mask on a grid of ≥ ``pixel_size_um`` (coarser when needed to
    stay under ``max_pixels``); label i + 1 ↔ ``obs_names[i]``."""
    from .tables import rasterize_polygons

    x0, y0 = float(boundaries["x"].min()), float(boundaries["y"].min())
    x1, y1 = float(boundaries["x"].max()), float(boundaries["y"].max())
    s = max(float(pixel_size_um), float(np.sqrt((x1 - x0) * (y1 - y0) / max_pixels)))
    shape = (int(np.ceil((y1 - y0) / s)) + 1, int(np.ceil((x1 - x0) / s)) + 1)
    ids = [str(c) for c in obs_names]
    mask = rasterize_polygons(boundaries, ids, s, (x0, y0), shape)
    return SampleLabels(name=name, data=mask, affine=pixel_grid_affine(s, x0, y0),
                        label_to_obs={i + 1: c for i, c in enumerate(ids)}, source="rasterised boundaries")


def read_xenium(path, *, transcripts: bool = True, images: bool = True, boundaries: bool = True,
                min_qv: float = 20.0) -> SpatialSample:
    """Read a Xenium output folder (or its ``cell_feature_matrix.h5``).

    Needs ``cell_feature_matrix.h5`` (or ``cell_feature_matrix/`` with matrix.mtx.gz) and ``cells.parquet`` /
    ``cells.csv.gz``; reads ``transcripts.*``, ``morphology_focus/`` / ``morphology_mip.ome.tif``,
    ``cell_boundaries.*`` and a post-Xenium H&E with its alignment when present. Only "Gene Expression"
    features are kept. World unit: µm (Xenium's own), y down.
    """
    import anndata as ad

    folder = _folder(path)
    notes: list[str] = []
    h5 = folder / "cell_feature_matrix.h5"
    mtx = folder / "cell_feature_matrix"
    if h5.exists():
        X, barcodes, features = read_10x_h5(h5)
    elif mtx.is_dir():
        X, barcodes, features = _read_mtx_folder(mtx)
    elif (folder / "cell_feature_matrix.zarr.zip").exists():
        raise InputError(f"{folder.name} only has cell_feature_matrix.zarr.zip, which this reader does not read.",
                         "use cell_feature_matrix.h5 (also written by Xenium Onboard Analysis).")
    else:
        raise InputError(f"The Xenium folder {folder} has no cell_feature_matrix.h5 (nor cell_feature_matrix/).",
                         "copy cell_feature_matrix.h5 from the Xenium output folder.")
    cells_file = find_first(folder, list(CELLS_NAMES))
    if cells_file is None:
        raise InputError(f"The Xenium folder {folder} has no cells.parquet / cells.csv.gz (cell centroids).",
                         "copy cells.csv.gz from the Xenium output folder.")
    from .tables import peek_header

    cols = require_columns(peek_header(cells_file),
                           {"cell_id": ["cell_id"], "x": ["x_centroid"], "y": ["y_centroid"]},
                           file=cells_file.name, platform="Xenium")
    cells = read_table(cells_file, what="Xenium cells", required=[cols["x"], cols["y"]])
    cid = cells[cols["cell_id"]]
    if cid.dtype == object and len(cid) and isinstance(cid.iloc[0], bytes):
        cid = cid.str.decode("utf-8")
    cells.index = pd.Index(cid.astype(str).to_numpy(), name=None)
    cells = cells.drop(columns=[cols["cell_id"]])
    if cells.index.has_duplicates:
        raise InputError(f"{cells_file.name} lists some cell_id more than once.", "re-export the cells table.")
    missing = pd.Index(barcodes).difference(cells.index)
    if len(missing):
        raise InputError(f"{len(missing)} cells of the matrix (e.g. {missing[0]!r}) are missing from "
                         f"{cells_file.name} ({len(cells)} rows vs {len(barcodes)} matrix cells): it may be "
                         "truncated or from another run.", "copy cells.csv.gz and the matrix from the same run.")
    cells = cells.loc[barcodes]
    gene_mask = (features["feature_types"] == "Gene Expression").to_numpy()
    X = X[:, np.flatnonzero(gene_mask)].astype(np.float32)
    var = features.loc[gene_mask].copy()
    var.index = var.index.astype(str)
    var_names_unique = not var.index.has_duplicates
    adata = ad.AnnData(X=X, obs=cells.copy(), var=var)
    if not var_names_unique:
        adata.var_names_make_unique()
    xy = cells[[cols["x"], cols["y"]]].to_numpy(np.float64)
    adata.obsm["spatial"] = xy
    ps, ps_source = _pixel_size(folder, notes)
    adata.uns["spatial_unit"] = "um"
    adata.uns["platform"] = "xenium"
    sample = SpatialSample(adata=adata, platform="xenium", path=str(folder), notes=notes)
    if images:
        sample.images = _read_images(folder, ps, ps_source, xy, notes)
    if transcripts:
        sample.transcripts = _read_transcripts(folder, min_qv, notes)
    if boundaries:
        sample.boundaries = _read_boundaries(folder)
        if sample.boundaries is not None:
            sample.labels = [labels_from_boundaries(sample.boundaries, adata.obs_names, ps)]
    adata.uns["pixel_size_um"] = ps
    return sample
