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
    return file_digest(path, "sha256")


def file_digest(path: str | Path, algorithm: str = "sha1") -> str:
    """Hex digest of a file read in blocks (SHA-1: cache keys and the identity of backbone weights)."""
    h = hashlib.new(algorithm)
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


def config_digest(config: dict[str, Any]) -> str:
    """SHA-256 of a config's canonical JSON (without the digest itself): detects a hand-edited config.json."""
    body = {k: v for k, v in config.items() if k != "config_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def check_bundle_target(path: str | Path, *, overwrite: bool = False,
                        fix: str = "choose another folder or pass overwrite=True.") -> Path:
    """``path`` where a bundle may be written (a folder of its own): absent or empty unless ``overwrite``, inside a
    writable folder; else an :class:`InputError` with ``fix``. Callers that train first check before the work."""
    from ..atomic import check_writable

    path = Path(path)
    if path.exists() and (path.is_file() or any(path.iterdir())) and not overwrite:
        raise InputError(f"{path} already exists and is not empty.", fix)
    return check_writable(path, "model bundle", folder=True)


def write_bundle(path: str | Path, method: str, config: dict[str, Any], write_files: Callable[[Path], None], *,
                 overwrite: bool = False) -> Path:
    """Write a bundle folder: ``write_files(folder)`` writes the data files, then ``config.json`` (``config`` +
    format, version, method and the files' SHA-256) is added and the folder renamed into place."""
    from ..atomic import atomic_path

    path = check_bundle_target(path, overwrite=overwrite)
    with atomic_path(path, "model bundle", folder=True) as tmp:
        tmp.mkdir(parents=True)
        write_files(tmp)
        checksums = {p.name: sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        full = {"format": FORMAT, "version": VERSION, "method": method, **config, "checksums": checksums}
        full = json.loads(json.dumps(full, default=json_default))
        full["config_sha256"] = config_digest(full)
        (tmp / CONFIG).write_text(json.dumps(full, indent=1))
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
    except (OSError, ValueError) as err:  # ValueError: truncated JSON, not UTF-8
        raise InputError(f"The model bundle {path} is damaged: {CONFIG} cannot be read ({err}).",
                         "re-save or re-copy the model.") from err
    try:
        return _checked(path, config, what)
    except InputError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError) as err:  # a hand-edited value of the wrong kind
        raise _damaged(path, f"{type(err).__name__}: {err}") from err


def _checked(path: Path, config: Any, what: str) -> dict[str, Any]:
    cfg_path = path / CONFIG
    if not isinstance(config, dict) or config.get("format") not in (FORMAT, LEGACY_STCO_FORMAT):
        fmt = config.get("format") if isinstance(config, dict) else None
        raise InputError(f"{path} holds a {fmt!r} folder, not a napari-spatial-impute {what}.",
                         "point at a folder written by save() / 'histology train --out'.")
    config = _upgrade_legacy(config)
    version = int(config.get("version", 0))
    if version > VERSION:
        raise InputError(f"The bundle {path} has format version {version}; this release reads versions ≤ {VERSION}.",
                         "upgrade napari-spatial-impute.")
    if "config_sha256" in config and config_digest(config) != config["config_sha256"]:
        raise _damaged(path, f"{CONFIG} was changed after the model was saved (its checksum does not match)")
    for name, digest in (config.get("checksums") or {}).items():
        file = path / name
        if not file.is_file():
            raise InputError(f"The file {name} of the bundle {path} is missing.", "re-save or re-copy the model.")
        if sha256(file) != digest:
            raise InputError(f"The file {name} of the bundle {path} is damaged (checksum mismatch).",
                             "re-save or re-copy the model.")
    if "method" not in config:
        raise InputError(f"{cfg_path} names no model method.", "re-save the model.")
    _check_structure(path, config)
    return config


#: data files every bundle of a method needs besides config.json (0.1.0 imputers: state.pt)
_REQUIRED = {"stco": ("weights.pt", "bank.npz")}


def _damaged(path: Path, what: str) -> InputError:
    return InputError(f"The model bundle {path} is damaged or was edited by hand: {what}.",
                      "re-save or re-copy the model (a bundle is written by save() / 'histology train --out').")


def _check_structure(path: Path, config: dict[str, Any]) -> None:
    """What every bundle holds: a known method, its parameters as declared, gene lists, its data files."""
    from .params_spec import validate_params
    from .registry import METHODS

    method = str(config["method"]).lower()
    if method not in METHODS:
        raise _damaged(path, f"unknown method {config['method']!r} (known: {', '.join(METHODS)})")
    legacy = "legacy" in config
    if not legacy and not isinstance(config.get("checksums"), dict):
        raise _damaged(path, f"{CONFIG} lists no file checksums")
    params = config.get("params")
    if not isinstance(params, dict):
        raise _damaged(path, f"{CONFIG} has no 'params' object")
    params = {k: v for k, v in params.items() if k not in ("device", "seed")}
    seed = config.get("seed", config["params"].get("seed", 0))
    try:
        validate_params(method, params, seed=seed)
    except InputError as err:
        raise _damaged(path, f"its parameters are not valid ({err.problem})") from None
    genes = config.get("genes")
    if method != "stco" and not legacy:
        ok = isinstance(genes, dict) and all(isinstance(genes.get(k), list) and genes.get(k) for k in
                                             ("shared", "target"))
    else:
        ok = True if method != "stco" else (isinstance(genes, list) and len(genes) > 0)
    if not ok:
        raise _damaged(path, f"{CONFIG} has no usable gene lists")
    files = _REQUIRED.get(method, ("state.pt",) if legacy else ("weights.pt",))
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        raise _damaged(path, f"the file(s) {', '.join(missing)} are missing")


def load_model(path: str | Path, device: str = "auto"):
    """Load any model bundle: the class registered for its ``method`` rebuilds the model on ``device``."""
    from .registry import get_method

    config = read_config(path)
    klass = get_method(config["method"])
    try:
        return klass.from_bundle(Path(path), config, device=device)
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever a damaged file raises: one clear message
        raise _damaged(Path(path), f"{type(err).__name__}: {str(err)[:200]}") from err


__all__ = ["FORMAT", "VERSION", "load_model", "read_config", "sha256", "write_bundle"]
