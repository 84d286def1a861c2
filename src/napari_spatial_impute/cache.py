"""The one cache folder: ``$NAPARI_SPATIAL_IMPUTE_CACHE``, else the platform's user cache dir.

Everything the package caches on disk (ESM-2 embeddings, H&E patches, backbone features) lives under
:func:`cache_dir`, one sub-folder per kind. The kinds that are quick to make again (:data:`PRUNED_KINDS`) are
kept under a size cap, ``$NAPARI_SPATIAL_IMPUTE_CACHE_MAX_GB`` (default 5; 0 keeps nothing; inf: no cap):
after each write the least recently used files go first. ESM-2 embeddings (hours of CPU to make) are never
pruned. ``napari-spatial-impute cache`` shows the folder's use; ``--clear`` empties the patches and features
(``--clear esm2`` the embeddings). Only these sub-folders are ever touched, so the root may be a shared folder.

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
#: every sub-folder the package writes (only these are listed, cleared or pruned; the root may be shared)
KINDS = PRUNED_KINDS + ("esm2",)
#: a temporary file older than this (seconds) was left by a process that died; prune removes it
STALE_PARTIAL_S = 3600.0


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
    base = root()
    folder = base / subdir if subdir else base
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def root() -> Path:
    """The cache's root folder, not created (:func:`cache_dir` creates it)."""
    override = os.environ.get(ENV_VAR)
    return Path(override).expanduser() if override else _user_cache_root()


def max_bytes() -> float:
    """The size cap of :data:`PRUNED_KINDS` together, from ``$NAPARI_SPATIAL_IMPUTE_CACHE_MAX_GB`` (``inf``:
    no cap)."""
    raw = os.environ.get(MAX_ENV, "").strip()
    try:
        gb = float(raw) if raw else DEFAULT_MAX_GB
    except ValueError:
        gb = float("nan")
    if not gb >= 0:  # NaN, negative or not a number
        raise InputError(f"{MAX_ENV}={raw!r} is not a size in GB.",
                         f"set it to the cache's size in GB (e.g. {MAX_ENV}=5), 0 to keep nothing, inf for no cap.")
    return gb * 1e9


def entry(kind: str, name: str) -> Path:
    """The path of a cache entry (its folder is made when it is written, by :func:`store_npz`)."""
    return root() / kind / name


def _size(p: Path) -> int | None:
    try:
        return p.stat().st_size
    except OSError:  # removed by another process meanwhile
        return None


def _files(kinds, partial: bool = False) -> list[Path]:
    """The entries (``partial``: the temporary files instead) of ``kinds``."""
    base = root()
    out = []
    for kind in kinds:
        folder = base / kind
        if folder.is_dir():
            out += [p for p in folder.rglob("*") if (".partial" in p.name) == partial and p.is_file()]
    return out


def usage() -> dict[str, tuple[int, int]]:
    """``{kind: (files, bytes)}`` of each kind of :data:`KINDS` present in the cache."""
    out = {}
    for kind in KINDS:
        if (root() / kind).is_dir():
            sizes = [s for s in map(_size, _files([kind])) if s is not None]
            out[kind] = (len(sizes), sum(sizes))
    return out


def clear(kinds=None) -> tuple[int, int]:
    """Delete the cached files of ``kinds`` (default :data:`PRUNED_KINDS`: ESM-2 embeddings only when named),
    temporary files left behind included; returns (files, bytes) removed."""
    kinds = [k for k in (kinds or PRUNED_KINDS) if k in KINDS]
    n = size = 0
    for p in _files(kinds) + _files(kinds, partial=True):
        s = _size(p)
        try:
            p.unlink()
        except OSError:
            continue
        n, size = n + 1, size + (s or 0)
    return n, size


def touch(path: Path) -> None:
    """Mark a cached file as just used (eviction goes by modification time)."""
    try:
        os.utime(path)
    except OSError:
        pass


def prune(limit: float | None = None, keep: Path | None = None) -> int:
    """Delete the least recently used files of :data:`PRUNED_KINDS` until they fit in ``limit`` bytes
    (default :func:`max_bytes`); ``keep`` (the file just written) stays unless the cap is 0. Temporary files
    older than :data:`STALE_PARTIAL_S` (left by a process that died) go too. Returns the bytes freed."""
    limit = max_bytes() if limit is None else limit
    now = time.time()
    for p in _files(PRUNED_KINDS, partial=True):
        try:
            if now - p.stat().st_mtime > STALE_PARTIAL_S:
                p.unlink()
        except OSError:
            pass
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
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.{time.monotonic_ns()}.partial.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
        tmp.replace(path)
        prune(keep=path)
    except (OSError, InputError) as err:  # a full or read-only disk, a bad cap: the cache is an optimisation
        warnings.warn(f"Could not write the cache file {path} ({err}); going on without it. Free some disk, "
                      f"point ${ENV_VAR} at another folder or fix ${MAX_ENV}.", stacklevel=2)
    finally:  # also on Ctrl-C / Cancel: no temporary file left behind
        tmp.unlink(missing_ok=True)
    return path


def load_npz(path: Path, *names: str) -> tuple | None:
    """The arrays ``names`` of a cache entry (marked as used), or None when it is missing, unreadable or
    incomplete (a damaged file is removed, so it is made again)."""
    try:
        with np.load(path) as z:
            out = tuple(z[n] for n in names)
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a truncated or corrupt file (BadZipFile, EOFError, zlib.error, KeyError …)
        path.unlink(missing_ok=True)
        return None
    touch(path)
    return out


__all__ = ["DEFAULT_MAX_GB", "ENV_VAR", "KINDS", "MAX_ENV", "PRUNED_KINDS", "cache_dir", "clear", "entry", "root",
           "load_npz", "max_bytes", "prune", "store_npz", "touch", "usage"]
