"""Outputs of the CLI in the format their path names."""

from __future__ import annotations

import numpy as np


def test_cv_result_written_as_zarr_when_the_path_says_so(sample_paths, tmp_path):
    """``impute --cv K --out x.zarr``: a zarr store the reader opens as a result (it was an HDF5 file named
    x.zarr), with the cross-validated prediction of every shared gene."""
    import anndata as ad

    from napari_spatial_impute.cli import main
    from napari_spatial_impute.io.detect import is_saved_result

    sp, ref = sample_paths
    out = tmp_path / "cv.zarr"
    assert main(["impute", str(sp), str(ref), "--method", "knn", "--cv", "3", "--out", str(out), "--quiet"]) == 0
    assert out.is_dir() and is_saved_result(out)
    got = ad.read_zarr(out)
    assert got.shape == (3405, 33) and np.isfinite(np.asarray(got.X)).all()
    assert "cv" in got.uns["napari_spatial_impute"]


def test_allocator_tuning_applies_to_command_lines_only_and_yields_to_the_user(monkeypatch):
    """The command line keeps freed blocks below 256 MB in its heap (fewer page faults: benchmarks/README.md);
    a MALLOC_* variable of the user's, or NAPARI_SPATIAL_IMPUTE_MALLOC=0, leaves the allocator alone. Checked in a
    child process, so this test session's allocator is not changed."""
    import subprocess
    import sys

    from napari_spatial_impute.cli.common import tune_malloc

    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    assert tune_malloc() is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_MALLOC", "0")
    assert tune_malloc() is False
    monkeypatch.delenv("NAPARI_SPATIAL_IMPUTE_MALLOC")
    code = "from napari_spatial_impute.cli.common import tune_malloc; print(tune_malloc())"
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == ("True" if sys.platform.startswith("linux") else "False")
