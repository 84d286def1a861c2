"""The one cache folder: ``$NAPARI_SPATIAL_IMPUTE_CACHE``, else the platform's user cache dir.

Everything the package caches on disk (ESM-2 embeddings, H&E patches, backbone features) lives under
:func:`cache_dir`, one sub-folder per kind. The kinds that are quick to make again (:data:`PRUNED_KINDS`) are
kept under a size cap, ``$NAPARI_SPATIAL_IMPUTE_CACHE_MAX_GB`` (default 5; 0 keeps nothing): after each write
the least recently used files go first. ESM-2 embeddings (hours of CPU to make) are never pruned.
``napari-spatial-impute cache`` shows the folder's use; ``--clear`` empties it.

>>> from napari_spatial_impute.cache import cache_dir
>>> cache_dir("esm2")          # e.g. ~/.cache/napari-spatial-impute/esm2 on Linux
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .errors import InputError

ENV_VAR = "NAPARI_SPATIAL_IMPUTE_CACHE"
MAX_ENV = "NAPARI_SPATIAL_IMPUTE_CACHE_MAX_GB"
APP_NAME = "napari-spatial-impute"
DEFAULT_MAX_GB = 5.0
#: sub-folders kept under the size cap (made again in seconds to minutes when evicted)
PRUNED_KINDS = ("patches", "features")


def _user_cache_root() -> Path:
    """The platform's user cache folder for this package (platformdirs if installed)."""
    try:
        from platformdirs import user_cache_dir
    except ImportError:
        pass
    else:
        return Path(user_cache_dir(APP_NAME, appauthor=False))
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / APP_NAME / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / APP_NAME
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / APP_NAME


def cache_dir(subdir: str | None = None) -> Path:
    """The cache folder (``subdir`` inside it if given), created if missing.

    ``$NAPARI_SPATIAL_IMPUTE_CACHE`` overrides the root; otherwise the platform's user cache dir
    (``~/.cache/napari-spatial-impute`` on Linux, ``~/Library/Caches/napari-spatial-impute`` on macOS,
    ``%LOCALAPPDATA%\\napari-spatial-impute\\Cache`` on Windows).
    """
    root = _root()
    folder = root / subdir if subdir else root
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _root() -> Path:
    override = os.environ.get(ENV_VAR)
    return Path(override).expanduser() if override else _user_cache_root()


def max_bytes() -> int:
    """The size cap of :data:`PRUNED_KINDS` together, from ``$NAPARI_SPATIAL_IMPUTE_CACHE_MAX_GB``."""
    raw = os.environ.get(MAX_ENV, "").strip()
    try:
        gb = float(raw) if raw else DEFAULT_MAX_GB
    except ValueError:
        raise InputError(f"{MAX_ENV}={raw!r} is not a number.",
                         f"set it to the cache's size in GB (e.g. {MAX_ENV}=5), 0 to keep nothing.") from None
    return max(0, int(gb * 1e9))


def _files(kinds) -> list[Path]:
    root = _root()
    out = []
    for kind in kinds:
        folder = root / kind
        if folder.is_dir():
            out += [p for p in folder.rglob("*") if p.is_file() and ".partial" not in p.name]
    return out


def usage() -> dict[str, tuple[int, int]]:
    """``{kind: (files, bytes)}`` of every sub-folder of the cache."""
    root = _root()
    kinds = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    out = {}
    for kind in kinds:
        files = _files([kind])
        out[kind] = (len(files), sum(p.stat().st_size for p in files))
    return out


def clear(kinds=None) -> tuple[int, int]:
    """Delete the cached files of ``kinds`` (default: all); returns (files, bytes) removed."""
    kinds = list(kinds) if kinds else list(usage())
    n = size = 0
    for p in _files(kinds):
        try:
            s = p.stat().st_size
            p.unlink()
        except OSError:
            continue
        n, size = n + 1, size + s
    return n, size


def touch(path: Path) -> None:
    """Mark a cached file as just used (eviction goes by modification time)."""
    try:
        os.utime(path)
    except OSError:
        pass


def prune(limit: int | None = None, keep: Path | None = None) -> int:
    """Delete the least recently used files of :data:`PRUNED_KINDS` until they fit in ``limit`` bytes
    (default :func:`max_bytes`); ``keep`` (the file just written) stays unless the cap is 0. Returns the bytes
    freed."""
    limit = max_bytes() if limit is None else limit
    entries = []
    for p in _files(PRUNED_KINDS):
        try:
            st = p.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, p))
    total = sum(e[1] for e in entries)
    freed = 0
    for _, size, p in sorted(entries, key=lambda e: e[0]):
        if total - freed <= limit:
            break
        if p == keep and limit > 0:
            continue
        try:
            p.unlink()
        except OSError:
            continue
        freed += size
    return freed


def store_npz(path: Path, *, compressed: bool = False, **arrays: np.ndarray) -> Path:
    """Write a cache entry: under a temporary name, renamed when complete, then the cache pruned to its cap.
    A write that fails (full or read-only disk) warns and leaves no file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.{time.monotonic_ns()}.partial.npz")
    try:
        (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
        tmp.replace(path)
    except OSError as err:  # a full or read-only disk: the cache is an optimisation, the result still comes
        tmp.unlink(missing_ok=True)
        warnings.warn(f"Could not write the cache file {path} ({err}); going on without it. Free some disk or "
                      f"point ${ENV_VAR} at another folder.", stacklevel=2)
        return path
    prune(keep=path)
    return path


__all__ = ["DEFAULT_MAX_GB", "ENV_VAR", "MAX_ENV", "PRUNED_KINDS", "cache_dir", "clear", "max_bytes", "prune",
           "store_npz", "touch", "usage"]
