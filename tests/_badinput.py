"""Helpers of the bad-input tests: run the CLI, checksum inputs, list what a run left behind."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def checksum(path: Path) -> str:
    """SHA-256 of a file, or of every file under a folder (names included)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """Run the CLI in-process: (exit code, stderr)."""
    from napari_spatial_impute.cli import main

    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def dense(X) -> np.ndarray:
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def log_normalised(X) -> np.ndarray:
    """scanpy's normalize_total(1e4) + log1p of a counts matrix."""
    X = dense(X).astype(np.float64)
    return np.log1p(X / np.clip(X.sum(1, keepdims=True), 1, None) * 1e4)


def leftovers(folder: Path, before: set[str]) -> set[str]:
    """Names in ``folder`` that were not there before (outputs, ``.partial`` files)."""
    return {p.name for p in Path(folder).iterdir()} - before


def longest_gaps(gen) -> dict[str, float]:
    """Per stage: the longest time between two events of the generator (from its first event on)."""
    next(gen)
    gaps: dict[str, float] = {}
    last = time.perf_counter()
    try:
        while True:
            event = next(gen)
            now = time.perf_counter()
            gaps[event.stage] = max(gaps.get(event.stage, 0.0), now - last)
            last = now
    except StopIteration:
        return gaps
