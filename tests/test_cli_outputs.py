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
