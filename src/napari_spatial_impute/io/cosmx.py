"""NanoString CosMx SMI flat-file export → :class:`SpatialSample` (µm world, y down).

Quirks handled here (see docs/formats/cosmx.md):

* ``cell_ID`` is unique only within a FOV: cells are keyed ``"<fov>_<cell_ID>"``; ``cell_ID == 0`` is background.
* Global pixel coordinates have y pointing **up**; world y = −y_global · pixel size so that images keep their
  row direction. Per-FOV local → global offsets (and signs) are fitted from the transcripts / metadata.
* Label masks / composites: pixel row r ↔ y_local = top − r (top = FOV height, or the GeoTIFF tiepoint of a
  crop), column c ↔ x_local = left + c.
* Column names drift between exports (``fov``/``FOV``, ``cell_ID``/``cell_id``, ``target``/``gene``...).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..coords import PLATFORM_PIXEL_SIZE_UM, apply_affine_xy, cosmx_global_px_to_um
from ..errors import InputError
from .checks import check_covers
from .images import geotiff_origin, read_plain_image
from .layouts import COSMX_FILES
from .spatial_sample import SampleImage, SampleLabels, SpatialSample
from .tables import find_first, match_column, peek_header, read_table, require_columns

CONTROL_PATTERN = re.compile(r"^(NegPrb|Negative|SystemControl|FalseCode|NegControl)", re.IGNORECASE)
FOV = ["fov", "FOV", "fov_id"]
CELL = ["cell_ID", "cell_id", "cellID", "CellId"]
def cell_key(fov, cell_id) -> np.ndarray:
    """Per-slide unique cell name ``"<fov>_<cell_ID>"`` (CosMx ids repeat across FOVs)."""
    return (pd.Series(np.asarray(fov)).astype(int).astype(str) + "_"
            + pd.Series(np.asarray(cell_id)).astype(int).astype(str)).to_numpy()


def _pixel_size(fovpos: pd.DataFrame | None, override: float | None) -> tuple[float, str]:
    if override is not None:
        return float(override), "argument"
    if fovpos is not None and len(fovpos) > 1:
        px = match_column(fovpos.columns, ["x_global_px", "X_px"])
        mm = match_column(fovpos.columns, ["x_global_mm", "X_mm"])
        if px and mm:
            dpx = fovpos[px].to_numpy(float) - fovpos[px].to_numpy(float)[0]
            dmm = fovpos[mm].to_numpy(float) - fovpos[mm].to_numpy(float)[0]
            ok = np.abs(dpx) > 100
            if ok.any():
                return float(np.median(dmm[ok] * 1000.0 / dpx[ok])), "fov_positions mm/px"
    return PLATFORM_PIXEL_SIZE_UM["cosmx"], "default"


def _fit_local_to_global(df: pd.DataFrame, fov_col: str, cols: dict[str, str]) -> dict[int, tuple]:
    """Per FOV (ax, sx, ay, sy): global = a + s · local, s = ±1 (fitted sign, median offset)."""
    out = {}
    for fov, g in df.groupby(fov_col, sort=True):
        if len(g) == 0:
            continue
        xl, xg = g[cols["xl"]].to_numpy(float), g[cols["xg"]].to_numpy(float)
        yl, yg = g[cols["yl"]].to_numpy(float), g[cols["yg"]].to_numpy(float)
        sx = -1.0 if len(g) > 1 and np.cov(xl, xg)[0, 1] < 0 else 1.0
        sy = -1.0 if len(g) > 1 and np.cov(yl, yg)[0, 1] < 0 else 1.0
        out[int(fov)] = (float(np.median(xg - sx * xl)), sx, float(np.median(yg - sy * yl)), sy)
    return out


def _fov_files(folder: Path, sub: str, exts: tuple[str, ...]) -> dict[int, Path]:
    d = folder / sub
    if not d.is_dir():
        return {}
    out = {}
    for f in sorted(d.iterdir()):
        m = re.search(r"F(\d+)", f.stem)
        if m and f.suffix.lower() in exts:
            out[int(m.group(1))] = f
    return out


def _image_affine(fit: tuple, ps: float, left: float, top: float) -> np.ndarray:
    """(col, row) pixel centre → (x, y) µm for a FOV image whose corner (0, 0) is at local (left, top)."""
    ax, sx, ay, sy = fit
    return np.array([[ps * sx, 0.0, ps * (ax + sx * (left + 0.5))],
                     [0.0, ps * sy, -ps * (ay + sy * (top - 0.5))],
                     [0.0, 0.0, 1.0]])


def _label_geometry(path: Path, shape: tuple[int, int]) -> tuple[float, float]:
    geo = geotiff_origin(path) if path.suffix.lower() in (".tif", ".tiff") else None
    if geo is not None:
        x0, y0, sx, sy = geo
        if abs(sx - 1) > 1e-6 or abs(sy - 1) > 1e-6:
            raise InputError(f"{path.name} has a GeoTIFF pixel scale of {sx} × {sy}; expected 1 (FOV pixels).",
                             "use the CellLabels files of the export unchanged.")
        return x0, y0
    return 0.0, float(shape[0])


def _label_centroids(mask: np.ndarray) -> pd.DataFrame:
    """Mean (col, row) pixel index and pixel count of every label id > 0."""
    flat = mask.ravel()
    ids = np.unique(flat)
    ids = ids[ids > 0]
    if ids.size == 0:
        return pd.DataFrame(columns=["col", "row", "n"])
    rows, cols = np.indices(mask.shape)
    n = np.bincount(flat, minlength=int(ids.max()) + 1)
    sc = np.bincount(flat, cols.ravel(), minlength=n.size)
    sr = np.bincount(flat, rows.ravel(), minlength=n.size)
    return pd.DataFrame({"col": sc[ids] / n[ids], "row": sr[ids] / n[ids], "n": n[ids]}, index=ids)


def read_cosmx(path, *, transcripts: bool = True, images: bool = True, labels: bool = True,
               pixel_size_um: float | None = None) -> SpatialSample:
    """Read a CosMx flat-file folder.

    Needs ``*_exprMat_file.csv`` or ``*_tx_file.csv`` (the cell × gene table is then counted from transcripts
    per (fov, cell_ID > 0)); uses ``*_metadata_file.csv`` (centroids, areas), ``*_fov_positions_file.csv``,
    ``CellLabels/CellLabels_F*.tif`` and ``CellComposite/*_F*.jpg`` when present.
    """
    import anndata as ad

    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"The CosMx folder {folder} does not exist.", "check the path.")
    files = {k: find_first(folder, pats) for k, pats in COSMX_FILES.items()}
    if files["expr"] is None and files["tx"] is None:
        raise InputError(f"The CosMx folder {folder} has neither *_exprMat_file.csv nor *_tx_file.csv: no counts.",
                         "copy the flat files (exprMat and/or tx file) of the export into the folder.")
    notes: list[str] = []

    fovpos = _read_fov_positions(files["fov"])
    ps, ps_source = _pixel_size(fovpos, pixel_size_um)
    notes.append(f"pixel size {ps} µm ({ps_source})")
    tx = None
    if files["tx"] is not None and (transcripts or files["expr"] is None or labels or images):
        tx = _read_transcripts(files["tx"])
    meta = _read_metadata(files["meta"]) if files["meta"] is not None else None
    X, obs, genes = _cells_by_genes(files, tx, meta, notes)
    fits = _fov_fits(tx, meta, fovpos)

    label_files = _fov_files(folder, "CellLabels", (".tif", ".tiff")) if labels or images else {}
    comp_files = _fov_files(folder, "CellComposite", (".jpg", ".jpeg", ".png", ".tif", ".tiff")) if images else {}
    centroid_um = pd.DataFrame(index=obs.index, columns=["x", "y"], dtype=float)
    sample_labels, geometry = _read_label_masks(label_files, fits, ps, tx, obs.index, centroid_um, notes,
                                                keep=labels)
    sample_images = _read_composites(comp_files, fits, ps, geometry)
    _fill_centroids(centroid_um, obs, meta, tx, ps)

    var = pd.DataFrame(index=pd.Index(genes))
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.obsm["spatial"] = centroid_um[["x", "y"]].to_numpy(np.float64)
    adata.uns.update({"spatial_unit": "um", "platform": "cosmx", "pixel_size_um": ps})
    tx_out = _transcripts_table(tx, ps) if transcripts and tx is not None else None
    return SpatialSample(adata=adata, images=sample_images, labels=sample_labels, transcripts=tx_out,
                         platform="cosmx", path=str(folder), notes=notes)


# --- the steps of read_cosmx ----------------------------------------------------------------------------

def _read_fov_positions(path: Path | None) -> pd.DataFrame | None:
    """The FOV positions table (column ``fov``), or None without the file."""
    if path is None:
        return None
    fovpos = read_table(path, what="CosMx FOV positions")
    fc = require_columns(fovpos.columns, {"fov": FOV}, file=path.name, platform="CosMx")
    return fovpos.rename(columns={fc["fov"]: "fov"})


def _read_transcripts(path: Path) -> pd.DataFrame:
    """Transcripts with columns fov, cell, gene, xg, yg (global px) [, xl, yl, z, comp]."""
    header = peek_header(path)
    tc = require_columns(header, {"fov": FOV, "cell": CELL, "gene": ["target", "gene"],
                                  "xg": ["x_global_px"], "yg": ["y_global_px"]},
                         file=path.name, platform="CosMx")
    for key, cands in (("xl", ["x_local_px"]), ("yl", ["y_local_px"]), ("z", ["z"]), ("comp", ["CellComp"])):
        hit = match_column(header, cands)
        if hit:
            tc[key] = hit
    tx = read_table(path, what="CosMx transcripts", columns=list(tc.values()),
                    required=[tc["xg"], tc["yg"], tc["fov"], tc["cell"], tc["gene"]])
    tx = tx.rename(columns={v: k for k, v in tc.items()})
    tx["fov"] = tx["fov"].astype(int)
    tx["cell"] = tx["cell"].astype(int)
    return tx


def _read_metadata(path: Path) -> pd.DataFrame:
    """Cell metadata (cells with ``cell_ID > 0``), indexed by :func:`cell_key`."""
    meta = read_table(path, what="CosMx cell metadata")
    mc = require_columns(meta.columns, {"fov": FOV, "cell": CELL}, file=path.name, platform="CosMx")
    meta = meta.rename(columns={mc["fov"]: "fov", mc["cell"]: "cell_ID"})
    meta = meta[meta["cell_ID"] > 0]
    meta.index = cell_key(meta["fov"], meta["cell_ID"])
    return meta


def _counts_from_expression_matrix(path: Path):
    """(X, obs, genes, source) from ``*_exprMat_file.csv`` (control probes summed into ``neg_probe_counts``)."""
    import scipy.sparse as sp

    expr = read_table(path, what="CosMx expression matrix")
    ec = require_columns(expr.columns, {"fov": FOV, "cell": CELL}, file=path.name, platform="CosMx")
    expr = expr[expr[ec["cell"]] > 0]
    gene_cols = [c for c in expr.columns if c not in (ec["fov"], ec["cell"]) and not CONTROL_PATTERN.match(str(c))]
    neg_cols = [c for c in expr.columns if CONTROL_PATTERN.match(str(c))]
    values = expr[gene_cols].to_numpy()
    if not np.issubdtype(values.dtype, np.number) or np.isnan(values.astype(float)).any():
        raise InputError(f"{path.name} has non-numeric or empty counts (truncated file?).",
                         "copy the file again from the export.")
    X = sp.csr_matrix(values.astype(np.float32))
    obs = pd.DataFrame({"fov": expr[ec["fov"]].astype(int).to_numpy(),
                        "cell_ID": expr[ec["cell"]].astype(int).to_numpy()})
    obs["neg_probe_counts"] = expr[neg_cols].sum(axis=1).to_numpy() if neg_cols else 0
    return X, obs, [str(g) for g in gene_cols], path.name


def _counts_from_transcripts(tx: pd.DataFrame, name: str):
    """(X, obs, genes, source) counted from transcripts per (fov, cell_ID > 0)."""
    import scipy.sparse as sp

    assigned = tx[tx["cell"] > 0]
    is_ctrl = assigned["gene"].astype(str).str.match(CONTROL_PATTERN.pattern, case=False).to_numpy()
    keys = cell_key(assigned["fov"], assigned["cell"])
    cell_codes, cell_names = pd.factorize(keys, sort=False)
    real = ~is_ctrl
    gene_codes, genes_idx = pd.factorize(assigned["gene"].astype(str).to_numpy()[real], sort=True)
    X = sp.csr_matrix((np.ones(int(real.sum()), np.float32), (cell_codes[real], gene_codes)),
                      shape=(len(cell_names), len(genes_idx)))
    X.sum_duplicates()
    first = pd.DataFrame({"fov": assigned["fov"].to_numpy(), "cell_ID": assigned["cell"].to_numpy(),
                          "code": cell_codes}).drop_duplicates("code").sort_values("code")
    obs = first[["fov", "cell_ID"]].reset_index(drop=True)
    obs["neg_probe_counts"] = np.bincount(cell_codes[is_ctrl], minlength=len(cell_names))
    return X, obs, [str(g) for g in genes_idx], f"counted from {name}"


def _cells_by_genes(files: dict, tx: pd.DataFrame | None, meta: pd.DataFrame | None, notes: list[str]):
    """(X, obs, genes): the expression matrix (else transcript counts), obs keyed ``"<fov>_<cell_ID>"`` with
    ``n_transcripts`` and the metadata columns."""
    if files["expr"] is not None:
        X, obs, genes, source = _counts_from_expression_matrix(files["expr"])
    else:
        X, obs, genes, source = _counts_from_transcripts(tx, files["tx"].name)
        notes.append("cell × gene table counted from transcripts per (fov, cell_ID > 0)")
    obs.index = cell_key(obs["fov"], obs["cell_ID"])
    if obs.index.has_duplicates:
        raise InputError(f"{source}: some (fov, cell_ID) pairs appear twice.", "re-export the expression matrix.")
    obs["n_transcripts"] = np.asarray(X.sum(axis=1)).ravel()
    if meta is not None:
        extra = meta.drop(columns=["fov", "cell_ID"]).reindex(obs.index)
        obs = pd.concat([obs, extra], axis=1)
    return X, obs, genes


def _fov_fits(tx: pd.DataFrame | None, meta: pd.DataFrame | None, fovpos: pd.DataFrame | None) -> dict[int, tuple]:
    """Per-FOV local → global fits from transcripts, else metadata centroids; FOV positions fill the rest."""
    fits: dict[int, tuple] = {}
    if tx is not None and "xl" in tx and "yl" in tx:
        fits = _fit_local_to_global(tx, "fov", {"xl": "xl", "xg": "xg", "yl": "yl", "yg": "yg"})
    elif meta is not None:
        lc = {k: match_column(meta.columns, [c]) for k, c in
              (("xl", "CenterX_local_px"), ("yl", "CenterY_local_px"), ("xg", "CenterX_global_px"),
               ("yg", "CenterY_global_px"))}
        if all(lc.values()):
            fits = _fit_local_to_global(meta, "fov", lc)
    if fovpos is not None:
        pc = {k: match_column(fovpos.columns, c) for k, c in (("x", ["x_global_px", "X_px"]),
                                                             ("y", ["y_global_px", "Y_px"]))}
        if all(pc.values()):
            for _, r in fovpos.iterrows():
                fits.setdefault(int(r["fov"]), (float(r[pc["x"]]), 1.0, float(r[pc["y"]]), 1.0))
    return fits


def _read_label_masks(label_files: dict[int, Path], fits: dict[int, tuple], ps: float, tx: pd.DataFrame | None,
                      obs_names: pd.Index, centroid_um: pd.DataFrame, notes: list[str], *, keep: bool):
    """Read every FOV's CellLabels mask, check it against the transcripts and write the label centroids (µm) of
    known cells into ``centroid_um`` → (label layers if ``keep``, {fov: (left, top, shape)})."""
    sample_labels: list[SampleLabels] = []
    geometry: dict[int, tuple[float, float, tuple[int, int]]] = {}
    for fov, f in label_files.items():
        if fov not in fits:
            notes.append(f"{f.name}: FOV {fov} has no position (no transcripts / fov_positions): skipped")
            continue
        mask = read_plain_image(f)
        if mask.ndim != 2:
            raise InputError(f"{f.name} has shape {mask.shape}; a label mask is one 2-D plane.", "use CellLabels.")
        if not np.issubdtype(mask.dtype, np.integer):
            if not np.all(np.isfinite(mask)) or np.any(mask != np.round(mask)):
                raise InputError(f"{f.name} holds non-integer values; not a label mask.", "use CellLabels files.")
            mask = mask.astype(np.int32)
        left, top = _label_geometry(f, mask.shape)
        geometry[fov] = (left, top, mask.shape)
        affine = _image_affine(fits[fov], ps, left, top)
        if tx is not None:
            sel = tx[(tx["fov"] == fov)]
            if len(sel):
                check_covers(affine, mask.shape, _tx_world(sel, ps), file=f.name, what=f"FOV {fov} transcripts")
        cents = _label_centroids(mask)
        names = np.char.add(f"{fov}_", cents.index.astype(str).to_numpy())
        in_obs = pd.Index(names).isin(obs_names)
        world = apply_affine_xy(affine, cents[["col", "row"]].to_numpy())
        centroid_um.loc[names[in_obs], ["x", "y"]] = world[in_obs]
        if keep:
            sample_labels.append(SampleLabels(
                name=f"cells F{fov:03d}", data=mask, affine=affine, source=str(f),
                label_to_obs={int(i): n for i, n, ok in zip(cents.index, names, in_obs) if ok}))
    return sample_labels, geometry


def _read_composites(comp_files: dict[int, Path], fits: dict[int, tuple], ps: float,
                     geometry: dict[int, tuple[float, float, tuple[int, int]]]) -> list[SampleImage]:
    """Every FOV's CellComposite image, placed like its label mask (same size required) or at the FOV origin."""
    sample_images: list[SampleImage] = []
    for fov, f in comp_files.items():
        if fov not in fits:
            continue
        img = read_plain_image(f)
        if fov in geometry and tuple(img.shape[:2]) == tuple(geometry[fov][2]):
            left, top = geometry[fov][0], geometry[fov][1]
        elif fov in geometry:
            raise InputError(f"{f.name} is {img.shape[1]} × {img.shape[0]} px but the label mask of FOV {fov} is "
                             f"{geometry[fov][2][1]} × {geometry[fov][2][0]} px.",
                             "use the CellComposite and CellLabels of the same export.")
        else:
            left, top = 0.0, float(img.shape[0])
        sample_images.append(SampleImage(name=f"composite F{fov:03d}", data=img, affine=_image_affine(fits[fov], ps,
                                         left, top), rgb=img.ndim == 3 and img.shape[-1] in (3, 4), source=str(f)))
    return sample_images


def _fill_centroids(centroid_um: pd.DataFrame, obs: pd.DataFrame, meta: pd.DataFrame | None,
                    tx: pd.DataFrame | None, ps: float) -> None:
    """Cell centroids (µm) in place: metadata, else label masks (already in ``centroid_um``), else transcript
    means; ``obs["centroid_source"]`` says which."""
    obs["centroid_source"] = "label"
    have = centroid_um["x"].notna().to_numpy()
    if meta is not None:
        gx = match_column(meta.columns, ["CenterX_global_px"])
        gy = match_column(meta.columns, ["CenterY_global_px"])
        if gx and gy:
            m = obs[[gx, gy]].to_numpy(float)
            ok = np.isfinite(m).all(axis=1)
            centroid_um.loc[ok, ["x", "y"]] = cosmx_global_px_to_um(m[ok], ps)
            obs.loc[ok, "centroid_source"] = "metadata"
            have = have | ok
    if not have.all():
        if tx is None:
            raise InputError(f"{sum(~have)} cells have no position: no metadata centroids, label or transcripts.",
                             "add the *_metadata_file.csv or the *_tx_file.csv of the export.")
        assigned = tx[tx["cell"] > 0]
        w = _tx_world(assigned, ps)
        mean = pd.DataFrame(w, columns=["x", "y"]).groupby(cell_key(assigned["fov"], assigned["cell"])).mean()
        missing = obs.index[~have]
        centroid_um.loc[missing, ["x", "y"]] = mean.reindex(missing).to_numpy()
        obs.loc[missing, "centroid_source"] = "transcripts"
    obs["centroid_source"] = pd.Categorical(obs["centroid_source"])


def _transcripts_table(tx: pd.DataFrame, ps: float) -> pd.DataFrame:
    """Transcripts in µm (x, y, gene, fov, cell_ID[, z, CellComp]) without control probes."""
    w = _tx_world(tx, ps)
    tx_out = pd.DataFrame({"x": w[:, 0].astype(np.float32), "y": w[:, 1].astype(np.float32),
                           "gene": pd.Categorical(tx["gene"].astype(str)), "fov": tx["fov"].to_numpy(),
                           "cell_ID": tx["cell"].to_numpy()})
    if "z" in tx:
        tx_out["z"] = tx["z"].to_numpy()
    if "comp" in tx:
        tx_out["CellComp"] = tx["comp"].astype(str).to_numpy()
    keep = ~tx_out["gene"].astype(str).str.match(CONTROL_PATTERN.pattern, case=False).to_numpy()
    return tx_out.loc[keep].reset_index(drop=True)


def _tx_world(tx: pd.DataFrame, ps: float) -> np.ndarray:
    """Global pixel (x, y up) → world µm (x, y down)."""
    return cosmx_global_px_to_um(np.column_stack([tx["xg"].to_numpy(float), tx["yg"].to_numpy(float)]), ps)
