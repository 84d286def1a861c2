"""The one model-bundle format, shared by every model (kNN, stImpute, SpaIM, STco).

A bundle is a folder::

    config.json   {"format": "napari-spatial-impute-model", "version": 2, "method": "knn" | ... | "stco",
                   "class", "params", "genes", "constants", ..., "checksums": {file: sha256}}
    weights.pt    tensors / arrays (``torch.save``, loadable with ``weights_only=True``)
    ...           other files a model needs (STco: bank.npz, backbone.torchscript.pt)

:func:`write_bundle` writes it atomically (into ``<name>.partial``, then renamed) and never replaces an
existing bundle unless asked; :func:`read_config` checks the format, the version and every file's checksum;
:func:`load_model` returns the model class registered for the bundle's ``method``. Bundles written by 0.1.0
(imputers: ``bundle_version`` 1 + ``state.pt``; STco: ``format`` "napari-spatial-impute/stco") still load.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

FORMAT = "napari-spatial-impute-model"
VERSION = 2
#: 0.1.0's STco format name (its imputers already used :data:`FORMAT`, with ``bundle_version`` 1)
LEGACY_STCO_FORMAT = "napari-spatial-impute/stco"
CONFIG = "config.json"


def sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file (read in blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def json_default(obj: Any) -> Any:
    """``json.dumps`` fallback: numpy scalars / arrays, sets and tuples, else ``str``."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def write_bundle(path: str | Path, method: str, config: dict[str, Any], write_files: Callable[[Path], None], *,
                 overwrite: bool = False) -> Path:
    """Write a bundle folder: ``write_files(folder)`` writes the data files, then ``config.json`` (``config`` +
    format, version, method and the files' SHA-256) is added and the folder renamed into place."""
    path = Path(path)
    if path.exists() and (path.is_file() or any(path.iterdir())) and not overwrite:
        raise InputError(f"{path} already exists and is not empty.", "choose another folder or pass overwrite=True.")
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        write_files(tmp)
        checksums = {p.name: sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        full = {"format": FORMAT, "version": VERSION, "method": method, **config, "checksums": checksums}
        (tmp / CONFIG).write_text(json.dumps(full, indent=1, default=json_default))
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        tmp.replace(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _upgrade_legacy(config: dict[str, Any]) -> dict[str, Any]:
    """A 0.1.0 config in today's key names (``version``, ``method``)."""
    if config.get("format") == LEGACY_STCO_FORMAT:
        return {**config, "format": FORMAT, "method": "stco", "legacy": "0.1.0"}
    if "version" not in config and "bundle_version" in config:
        return {**config, "version": int(config["bundle_version"]), "legacy": "0.1.0"}
    return config


def read_config(path: str | Path, *, what: str = "model bundle") -> dict[str, Any]:
    """The checked ``config.json`` of a bundle: known format, version this release reads, intact files."""
    path = Path(path)
    cfg_path = path / CONFIG
    if not cfg_path.is_file():
        raise InputError(f"{path} is not a {what} (no {CONFIG}).",
                         "point at a folder written by save() / 'histology train --out'.")
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"The file {cfg_path} of the bundle is damaged ({err}).", "re-save the model.") from err
    if not isinstance(config, dict) or config.get("format") not in (FORMAT, LEGACY_STCO_FORMAT):
        fmt = config.get("format") if isinstance(config, dict) else None
        raise InputError(f"{path} holds a {fmt!r} folder, not a napari-spatial-impute {what}.",
                         "point at a folder written by save() / 'histology train --out'.")
    config = _upgrade_legacy(config)
    version = int(config.get("version", 0))
    if version > VERSION:
        raise InputError(f"The bundle {path} has format version {version}; this release reads versions ≤ {VERSION}.",
                         "upgrade napari-spatial-impute.")
    for name, digest in (config.get("checksums") or {}).items():
        file = path / name
        if not file.is_file():
            raise InputError(f"The file {name} of the bundle {path} is missing.", "re-save or re-copy the model.")
        if sha256(file) != digest:
            raise InputError(f"The file {name} of the bundle {path} is damaged (checksum mismatch).",
                             "re-save or re-copy the model.")
    if "method" not in config:
        raise InputError(f"{cfg_path} names no model method.", "re-save the model.")
    return config


def load_model(path: str | Path, device: str = "auto"):
    """Load any model bundle: the class registered for its ``method`` rebuilds the model on ``device``."""
    from .registry import get_method

    config = read_config(path)
    klass = get_method(config["method"])
    return klass.from_bundle(Path(path), config, device=device)


__all__ = ["FORMAT", "VERSION", "load_model", "read_config", "sha256", "write_bundle"]
