"""Generic .h5ad reader, platform detection and the optional SpatialData path."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from napari_spatial_impute.datasets import sample_path
from napari_spatial_impute.errors import InputError
from napari_spatial_impute.io import detect_platform, read_anndata, read_sample
from napari_spatial_impute.layers import sample_to_layers


def test_h5ad_with_spatial_and_visium_style_image(tmp_path):
    import anndata as ad

    src = ad.read_h5ad(str(sample_path("spatial.h5ad")))
    s = read_anndata(str(sample_path("spatial.h5ad")))
    assert s.adata.shape == src.shape == (3405, 33)
    np.testing.assert_allclose(s.adata.obsm["spatial"], src.obsm["spatial"])
    # scanpy layout: hires image at 0.5 of full resolution → pixel i spans full-res [2i, 2i + 2)
    img = np.zeros((50, 60, 3), np.uint8)
    src.uns["spatial"] = {"lib": {"images": {"hires": img}, "scalefactors": {"tissue_hires_scalef": 0.5}}}
    src.write_h5ad(tmp_path / "v.h5ad")
    s2 = read_sample(tmp_path / "v.h5ad")
    assert s2.images[0].rgb and s2.images[0].pixel_size_um == pytest.approx(2.0)
    np.testing.assert_allclose(s2.images[0].affine[:2, 2], [1.0, 1.0])  # centre of pixel 0 = full-res 1.0
    layers = sample_to_layers(s2)
    assert [t for _, _, t in layers] == ["image", "points"]
    assert layers[0][1]["scale"] == (2.0, 2.0)


def test_h5ad_without_coordinates_is_refused(tmp_path):
    import anndata as ad

    a = ad.read_h5ad(str(sample_path("spatial.h5ad")))
    del a.obsm["spatial"]
    a.write_h5ad(tmp_path / "nocoords.h5ad")
    with pytest.raises(InputError, match=r"obsm\['spatial'\]"):
        read_anndata(tmp_path / "nocoords.h5ad")


def test_detect_platform_unknown_and_missing(tmp_path):
    assert detect_platform(tmp_path) is None
    assert detect_platform(tmp_path / "nope") is None
    with pytest.raises(InputError, match="not a recognised spatial dataset"):
        read_sample(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("spatialdata") is None,
                    reason="optional [spatialdata] extra not installed")
def test_spatialdata_round_trip(tmp_path):  # pragma: no cover - runs only with the extra
    from napari_spatial_impute.io.spatialdata_io import read_spatialdata, write_spatialdata

    s = read_anndata(str(sample_path("spatial.h5ad")))
    write_spatialdata(s, tmp_path / "s.zarr")
    back = read_spatialdata(tmp_path / "s.zarr")
    np.testing.assert_allclose(back.adata.obsm["spatial"], s.adata.obsm["spatial"])


def test_spatialdata_missing_extra_gives_install_hint(tmp_path):
    if importlib.util.find_spec("spatialdata") is not None:
        pytest.skip("spatialdata is installed")
    from napari_spatial_impute.io.spatialdata_io import read_spatialdata

    with pytest.raises(InputError, match=r"napari-spatial-impute\[spatialdata\]"):
        read_spatialdata(tmp_path / "x.zarr")
