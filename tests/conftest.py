"""Shared fixtures. Threads are pinned to 1: CI machines have 2 cores."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"


_CACHE_ENV = "NAPARI_SPATIAL_IMPUTE_CACHE"
_OWN_CACHE: list[str] = []


def pytest_configure(config):
    # the package's disk caches (H&E patches, backbone features) go to a folder of this run, removed at its
    # end, not to the user's cache (wherever it is), which a test suite has no business filling or pruning
    _OWN_CACHE.append(tempfile.mkdtemp(prefix="nsi-test-cache-"))
    os.environ[_CACHE_ENV] = _OWN_CACHE[0]
    os.environ.pop(_CACHE_ENV + "_MAX_GB", None)  # the default cap, whatever the user's shell says
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def pytest_unconfigure(config):
    for folder in _OWN_CACHE:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(_CACHE_ENV, None)


def shared_dataset(name: str) -> Path:
    """Path of a dataset in ../shared/datasets, skipping the test when it is absent (user clones)."""
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"../shared/datasets/{name} is not present (only in CI / the dev workspace)")
    return path


@pytest.fixture(scope="session")
def osmfish():
    """The bundled osmFISH + Allen SSp pair (spatial, reference)."""
    from napari_spatial_impute.datasets import load_osmfish_sample

    return load_osmfish_sample()


@pytest.fixture
def osmfish_copy(osmfish):
    spatial, reference = osmfish
    return spatial.copy(), reference.copy()


@pytest.fixture
def sample_paths():
    from napari_spatial_impute.datasets import sample_path

    return Path(str(sample_path("spatial.h5ad"))), Path(str(sample_path("reference.h5ad")))
