"""Which reader fits a path: cheap checks on file names only (used by the npe2 reader)."""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import InputError


def _st_module():
    """The histology package's Visium / legacy-ST reader module, or None when it is not there."""
    try:
        return importlib.import_module("napari_spatial_impute.histology.io_st")
    except ImportError:
        return None


def _is_visium(path: Path) -> bool:
    base = path / "outs" if (path / "outs").is_dir() else path
    return (base / "spatial").is_dir() and any((base / "spatial").glob("tissue_positions*.csv"))


def _is_legacy_st(path: Path) -> bool:
    if not path.is_dir():
        return False
    if (path / "ST-cnts").is_dir() and (path / "ST-spotfiles").is_dir():  # her2st layout
        return True
    return any(path.glob("*_selection.tsv*")) and any(path.glob("*.tsv.gz"))


def st_reader_available() -> bool:
    """Whether the histology package's Visium / ST reader module is installed."""
    return _st_module() is not None


def detect_platform(path) -> str | None:
    """'xenium', 'cosmx', 'merscope', 'visium', 'st', 'anndata', 'spatialdata' or None. Never raises."""
    from .cosmx import is_cosmx_folder
    from .merscope import is_merscope_folder
    from .xenium import is_xenium_folder

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

        return read_spatialdata(path)
    return _read_st(path, platform)


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


def _read_st(path, platform: str):
    """Visium / legacy ST through the histology package's readers (optional module)."""
    mod = _st_module()
    if mod is None:
        raise InputError(f"{path} looks like {platform} data, whose reader (histology.io_st) is not available.",
                         "update napari-spatial-impute.")
    path = Path(path)
    notes = []
    if platform == "visium":
        base = path.parent if path.is_file() else path
        base = base / "outs" if (base / "outs").is_dir() else base
        adata = mod.read_visium(base)
    else:
        counts, spots, image, others = _st_section_files(path)
        adata = mod.read_st_section(counts, spots, image)
        if others:
            notes.append(f"opened section {counts.name}; other sections here: {', '.join(others)}")
    return sample_from_histology(adata, platform, str(path), notes)


def sample_from_histology(adata, platform: str, path: str = "", notes: list[str] | None = None):
    """A histology-reader AnnData (``obsm['spatial']`` in H&E pixels, ``uns['histology']`` with the image and its
    µm per pixel) → :class:`SpatialSample` in µm with the H&E as an RGB image."""
    import numpy as np

    from ..coords import pixel_grid_affine
    from .images import read_plain_image
    from .spatial_sample import SampleImage, SpatialSample

    info = adata.uns.get("histology", {})
    ps = float(info.get("pixel_size_um", 1.0))
    adata.obsm["spatial"] = np.asarray(adata.obsm["spatial"], dtype=np.float64)[:, :2] * ps
    adata.uns["spatial_unit"] = "um"
    sample = SpatialSample(adata=adata, platform=platform, path=path, notes=list(notes or []))
    image = info.get("image")
    if image is not None:
        img = image if isinstance(image, np.ndarray) else read_plain_image(Path(image))
        sample.images.append(SampleImage(name="H&E", data=img, affine=pixel_grid_affine(ps),
                                         rgb=img.ndim == 3 and img.shape[-1] in (3, 4),
                                         source=str(image) if not isinstance(image, np.ndarray) else "uns"))
    return sample
