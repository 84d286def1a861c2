"""Which reader fits a path: cheap checks on file names (and an .h5ad's group names) only, for the npe2
reader."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .layouts import is_cosmx_folder, is_merscope_folder, is_xenium_folder, visium_folder


def _is_visium(path: Path) -> bool:
    return visium_folder(path) is not None


def _is_legacy_st(path: Path) -> bool:
    if not path.is_dir():
        return False
    if (path / "ST-cnts").is_dir() and (path / "ST-spotfiles").is_dir():  # her2st layout
        return True
    return any(path.glob("*_selection.tsv*")) and any(path.glob("*.tsv.gz"))


def zarr_root(path: Path) -> Path | None:
    """The ``.zarr`` folder ``path`` is, or lies inside (a file dialog picks a file in it)."""
    return next((p for p in (path, *path.parents) if p.suffix == ".zarr" and p.is_dir()), None)


def is_saved_result(path) -> bool:
    """Whether ``path`` is an imputation result (``.h5ad`` / AnnData ``.zarr`` with ``uns["napari_spatial_impute"]``):
    its genes are imputed values, not counts. Cheap (group names only, no matrix read); never raises."""
    from .. import UNS_KEY

    try:
        path = Path(str(path))
        root = zarr_root(path)
        if root is not None:
            return (root / "obs").is_dir() and (root / "uns" / UNS_KEY).is_dir()
        if path.suffix == ".h5ad" and path.is_file():
            import h5py

            with h5py.File(path, "r") as f:
                return f"uns/{UNS_KEY}" in f
    except Exception:  # noqa: BLE001 - a detector: not a result
        return False
    return False


def detect_platform(path) -> str | None:
    """'xenium', 'cosmx', 'merscope', 'visium', 'st', 'anndata', 'spatialdata' or None. Never raises. The
    instrument readers (pandas) are not imported: :mod:`.layouts` holds their cheap checks."""

    try:
        path = Path(path)
        if path.is_file():
            name = path.name.lower()
            if name.endswith(".h5ad"):
                return "anndata"
            if name in ("cell_feature_matrix.h5", "experiment.xenium"):
                return "xenium"
            if name.endswith(".h5") and is_xenium_folder(path.parent):
                return "xenium"
            if name.endswith(".h5") and (_is_visium(path.parent) or _is_visium(path.parent.parent)):
                return "visium"
            if name.endswith("_selection.tsv") or name.endswith(".tsv.gz"):
                return "st"
            return None
        if not path.is_dir():
            return None
        if path.suffix == ".zarr" and any((path / n).exists() for n in ("zmetadata", ".zattrs", "zarr.json")):
            return "spatialdata"
        if is_xenium_folder(path):
            return "xenium"
        if is_cosmx_folder(path):
            return "cosmx"
        if is_merscope_folder(path):
            return "merscope"
        if _is_visium(path):
            return "visium"
        if _is_legacy_st(path):
            return "st"
    except OSError:
        return None
    return None


def read_sample(path, **kwargs):
    """Read any supported path into a :class:`SpatialSample` (platform detected from file names)."""
    platform = detect_platform(path)
    if platform is None:
        raise InputError(f"{path} is not a recognised spatial dataset (Xenium / CosMx / MERSCOPE folder, Visium "
                         "outs, legacy ST, .h5ad or SpatialData .zarr).",
                         "open the instrument's output folder itself, or an .h5ad with obsm['spatial'].")
    if platform == "xenium":
        from .xenium import read_xenium

        return read_xenium(path, **kwargs)
    if platform == "cosmx":
        from .cosmx import read_cosmx

        return read_cosmx(path, **kwargs)
    if platform == "merscope":
        from .merscope import read_merscope

        return read_merscope(path, **kwargs)
    if platform == "anndata":
        from .h5ad import read_anndata

        return read_anndata(path)
    if platform == "spatialdata":
        from .spatialdata_io import read_spatialdata

        return read_spatialdata(path, **kwargs)
    if platform == "visium":
        from .visium import read_visium

        return read_visium(path, **kwargs)
    from .legacy_st import read_legacy_st

    return read_legacy_st(path, **kwargs)


#: what each instrument reader may skip when only the cells × genes table is wanted (its counts never depend on it)
CELLS_ONLY = {"xenium": {"transcripts": False, "images": False, "boundaries": False},
              "cosmx": {"transcripts": False, "images": False, "labels": False},
              "merscope": {"transcripts": False, "images": False, "boundaries": False},
              "spatialdata": {"images": False, "labels": False, "transcripts": False, "boundaries": False},
              "visium": {"images": False}, "st": {"images": False}}  # spots: their H&E is not decoded


def read_cells(path):
    """The spatial cells × genes AnnData (raw counts, ``obsm["spatial"]`` in µm) of an ``.h5ad`` or of any folder
    :func:`read_sample` opens, reading no image, transcript table or boundaries the counts do not need: what
    imputation takes as its spatial input."""
    from .anndata_io import check_spatial, read_spatial

    platform = detect_platform(path) if Path(path).exists() else None
    if platform in (None, "anndata"):
        return read_spatial(path)  # an .h5ad, or the error naming what to give
    adata = read_sample(path, **CELLS_ONLY.get(platform, {})).adata
    check_spatial(adata, f"{platform} cells of {Path(path).name}")
    return adata


def read_section(counts, spots=None, image=None, **kwargs):
    """A section AnnData: (counts TSV, spots TSV, image) → legacy ST; a folder / .h5ad (+ image) → Visium."""
    p = Path(str(counts))
    if spots is not None and image is not None:
        from .legacy_st import read_st_section

        return read_st_section(counts, spots, image, **kwargs)
    if not p.exists():
        raise InputError(f"The section path {p} does not exist.", "check the path.")
    folder = visium_folder(p)  # outs/, the folder above it, a file inside; Visium HD's bins
    if folder is not None or p.is_dir() or p.suffix == ".h5ad":
        from .visium import read_visium_section

        return read_visium_section(folder or counts, image=image or spots, **kwargs)
    raise InputError(f"Cannot tell what kind of section {counts} is.",
                     "give COUNTS SPOTS IMAGE (legacy ST) or a spaceranger outs/ folder / Visium .h5ad.")
