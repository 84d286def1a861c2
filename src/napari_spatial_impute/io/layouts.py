"""Instrument output layouts: the file names each reader looks for and the cheap checks that recognise a
folder (no pandas / anndata, for the npe2 reader's detection), and the small file helpers they share."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

#: Xenium's cell-by-gene matrix and cells table, in the order they are tried
MATRIX_NAMES = ("cell_feature_matrix.h5", "cell_feature_matrix", "cell_feature_matrix.zarr.zip")
CELLS_NAMES = ("cells.parquet", "cells.csv.gz", "cells.csv")
#: CosMx flat files (AtoMx export), by role
COSMX_FILES = {
    "expr": ["*exprMat_file.csv.gz", "*exprMat_file.csv"],
    "meta": ["*metadata_file.csv.gz", "*metadata_file.csv"],
    "fov": ["*fov_positions_file.csv.gz", "*fov_positions_file.csv"],
    "tx": ["*tx_file.csv.gz", "*tx_file.csv"],
}
#: MERSCOPE transcripts: the official names, then tables a user renamed (recognised by their global_x / global_y)
MERSCOPE_TRANSCRIPTS = ["detected_transcripts.csv", "detected_transcripts.csv.gz", "detected_transcripts.parquet",
                        "*transcripts*.csv.gz", "*transcripts*.gz", "*transcripts*.csv"]


def find_first(folder: Path, patterns: Sequence[str]) -> Path | None:
    """First file in ``folder`` matching one of the glob ``patterns`` (in order of the patterns)."""
    for pattern in patterns:
        hits = sorted(p for p in folder.glob(pattern) if p.is_file())
        if hits:
            return hits[0]
    return None


def peek_header(path: Path) -> list[str]:
    """Column names of a csv / csv.gz / parquet file without reading it (empty list when unreadable)."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        opener = gzip.open if is_gzip(path) else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            line = fh.readline()
        return [c.strip().strip('"') for c in line.rstrip("\r\n").split(",")]
    except Exception:  # noqa: BLE001 - a peek never raises
        return []


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def is_xenium_folder(path: Path) -> bool:
    """Cheap check: a folder with Xenium's matrix / cells / experiment files."""
    names = (*MATRIX_NAMES, *CELLS_NAMES, "experiment.xenium", "transcripts.parquet", "morphology_focus")
    return path.is_dir() and any((path / n).exists() for n in names)


def is_cosmx_folder(path: Path) -> bool:
    """Cheap check: a folder with CosMx flat files or CellLabels/."""
    if not path.is_dir():
        return False
    if (path / "CellLabels").is_dir():
        return True
    return any(find_first(path, pats) is not None for pats in COSMX_FILES.values())


def is_merscope_folder(path: Path) -> bool:
    """Cheap check: official MERSCOPE files, or a transcripts table with global_x / global_y."""
    if not path.is_dir():
        return False
    if any((path / n).exists() for n in ("cell_by_gene.csv", "cell_metadata.csv", "detected_transcripts.csv")):
        return True
    if (path / "images" / "micron_to_mosaic_pixel_transform.csv").exists():
        return True
    f = find_first(path, MERSCOPE_TRANSCRIPTS[3:])
    return f is not None and {"global_x", "global_y"} <= set(peek_header(f))


#: spaceranger's spot positions, in the order they are tried (Visium HD: parquet, in each binned_outputs/ folder)
VISIUM_POSITIONS = ("tissue_positions.csv", "tissue_positions_list.csv", "tissue_positions.parquet")
#: Visium HD bin folders tried, in order, when an outs/ folder holds binned_outputs/ (8 µm: 10x's default view)
VISIUM_HD_BINS = ("square_008um", "square_016um", "square_002um")


def visium_folder(path: Path) -> Path | None:
    """The spaceranger folder of ``path`` that holds ``spatial/tissue_positions*`` (and the counts): ``path``
    itself, its ``outs/``, or for Visium HD ``binned_outputs/square_008um`` (else 016, 002) below either; a file
    or ``spatial/`` inside one counts as the folder. None when there is none."""
    path = Path(path)
    base = path.parent if path.is_file() else path
    if base.name == "spatial" and not (base / "spatial").is_dir():
        base = base.parent
    for cand in (base, base / "outs"):
        if any((cand / "spatial" / n).is_file() for n in VISIUM_POSITIONS):
            return cand
        for b in VISIUM_HD_BINS:
            hd = cand / "binned_outputs" / b
            if any((hd / "spatial" / n).is_file() for n in VISIUM_POSITIONS):
                return hd
    return None
