"""Helpers every sub-command shares: output checks, JSON output, the progress bar."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError


def check_outputs(paths, overwrite: bool, *, folders: bool = False) -> None:
    """Before any work: refuse to replace an existing file (or non-empty folder) unless ``--overwrite``, and
    refuse a destination that cannot be written (read-only folder, a file in the way); ``folders``: the outputs
    are folders (model bundles, ``.zarr``)."""
    from ..atomic import check_writable
    from ..io.results import is_zarr_path

    seen = set()
    for path in paths:
        if not path:
            continue
        p = Path(path)
        if p.resolve() in seen:
            raise InputError(f"{p} is given twice as an output.", "give each output its own path.")
        seen.add(p.resolve())
        if p.exists() and not overwrite and (p.is_file() or any(p.iterdir())):
            raise InputError(f"{p} already exists.", "choose another path or pass --overwrite.")
        check_writable(p, "output", folder=folders or is_zarr_path(p))


def write_json(obj: dict, path: str | Path) -> None:
    """Write ``obj`` as JSON atomically (``<name>.partial``, then renamed); NaN is written as null."""
    from ..atomic import atomic_path

    text = json.dumps(_no_nan(obj), indent=2, allow_nan=False)
    with atomic_path(path, "metrics file") as tmp:
        tmp.write_text(text)


def _no_nan(obj):
    """NaN / inf → None (JSON has no NaN; a metric undefined for a constant gene is null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_no_nan(v) for v in obj]
    return obj


def progress_bar(quiet: bool, desc: str) -> tuple[Callable | None, Callable[[], None]]:
    """(callback, close) showing progress on a tqdm bar, or (None, no-op) with ``--quiet``."""
    if quiet:
        return None, lambda: None
    from ..progress import tqdm_callback

    return tqdm_callback(desc)



def read_gene_list(path) -> list[str]:
    """Genes from a text file: one per line (commas and spaces also separate; '#' starts a comment)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"The gene list {p} does not exist.", "give a text file with one gene per line.")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"Could not read the gene list {p}: {err}.", "give a plain text file.") from err
    genes = [g for line in text.splitlines() for g in line.split("#", 1)[0].replace(",", " ").split()]
    if not genes:
        raise InputError(f"The gene list {p} is empty.", "write one gene symbol per line.")
    return genes


def tune_malloc() -> bool:
    """Linux (glibc): let this command-line process keep freed blocks below 256 MB in its heap (mmap threshold
    256 MB, trim threshold 512 MB, top pad 64 MB). torch's per-batch activations (tens of MB) were otherwise
    mapped and unmapped batch after batch, each time faulted in again: `histology train` on her2st C2–C5 took
    131.5 → 111.2 s wall (system time 28.0 → 8.5 s) with the same peak memory (benchmarks/README.md). Not done
    when any ``MALLOC_*`` variable is set (yours win) or ``NAPARI_SPATIAL_IMPUTE_MALLOC=0``; never in napari's
    process. Returns whether it was applied."""
    import ctypes
    import os
    import sys

    if not sys.platform.startswith("linux") or os.environ.get("NAPARI_SPATIAL_IMPUTE_MALLOC") == "0" \
            or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc; other C libraries have no such tuning
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        return bool(libc.mallopt(m_mmap_threshold, 256 << 20) and libc.mallopt(m_trim_threshold, 512 << 20)
                    and libc.mallopt(m_top_pad, 64 << 20))
    except (OSError, AttributeError):
        return False
