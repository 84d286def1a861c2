"""Remembered widget choices (reference path, method, device, colormap, last folder) in a small JSON file.

The file lives in the platform's user config folder (``~/.config/napari-spatial-impute/widgets.json`` on Linux),
the sibling of :func:`napari_spatial_impute.cache.cache_dir`; ``$NAPARI_SPATIAL_IMPUTE_CONFIG`` overrides the
folder (tests point it at a temporary one). A broken or unwritable file is ignored, never an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV_VAR = "NAPARI_SPATIAL_IMPUTE_CONFIG"
DEFAULTS = {"reference": "", "method": "", "device": "auto", "colormap": "magma", "last_folder": ""}


def config_dir() -> Path:
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    try:
        from platformdirs import user_config_dir
    except ImportError:
        return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "napari-spatial-impute"
    return Path(user_config_dir("napari-spatial-impute", appauthor=False))


def settings_path() -> Path:
    return config_dir() / "widgets.json"


def load() -> dict:
    """The remembered choices (defaults for anything missing or unreadable)."""
    out = dict(DEFAULTS)
    try:
        stored = json.loads(settings_path().read_text())
        out.update({k: v for k, v in stored.items() if isinstance(v, str)})
    except (OSError, ValueError):
        pass
    return out


def save(**changes: str) -> None:
    """Remember ``changes`` (merged into the stored choices)."""
    data = load()
    data.update({k: str(v) for k, v in changes.items()})
    try:
        path = settings_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    except OSError:
        pass


def default_method(methods: list[str]) -> str:
    """The remembered method if still available, else "auto" when registered, else knn."""
    remembered = load()["method"]
    if remembered in methods:
        return remembered
    return "auto" if "auto" in methods else ("knn" if "knn" in methods else methods[0])
