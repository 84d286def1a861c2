"""The one cache folder: ``$NAPARI_SPATIAL_IMPUTE_CACHE``, else the platform's user cache dir.

Everything the package caches on disk (ESM-2 embeddings, H&E patches, ...) lives under :func:`cache_dir`,
one sub-folder per kind.

>>> from napari_spatial_impute.cache import cache_dir
>>> cache_dir("esm2")          # e.g. ~/.cache/napari-spatial-impute/esm2 on Linux
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_VAR = "NAPARI_SPATIAL_IMPUTE_CACHE"
APP_NAME = "napari-spatial-impute"


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
    override = os.environ.get(ENV_VAR)
    root = Path(override).expanduser() if override else _user_cache_root()
    folder = root / subdir if subdir else root
    folder.mkdir(parents=True, exist_ok=True)
    return folder


__all__ = ["ENV_VAR", "cache_dir"]
