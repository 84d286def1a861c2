import anndata as ad
import numpy as np
import pandas as pd

from napari_spatial_impute.layers import (
    BinnedGrid,
    binned_image_layer,
    cells_points_layer,
    contrast_limits,
    genes_by_reliability,
)


def _imputed(n=6):
    xy = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [10.0, 5.0], [0.5, 5.2], [10.2, 5.1]])[:n]
    X = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    a = ad.AnnData(X, var=pd.DataFrame({"reliability": [0.2, 0.9]}, index=["A", "B"]))
    a.obsm["spatial"] = xy
    return a


def test_points_layer_features_and_default_gene_is_most_reliable():
    data, kwargs, kind = cells_points_layer(_imputed(), features="genes")
    assert kind == "points" and kwargs["face_color"] == "B"
    assert list(kwargs["features"].columns) == ["cell_id", "A", "B"]
    np.testing.assert_array_equal(data[2], [0.0, 10.0])  # (y, x)


def test_genes_by_reliability_threshold():
    assert genes_by_reliability(["A", "B", "C"], {"A": 0.2, "B": 0.9, "C": 0.5}, 0.4) == ["B", "C"]
    assert genes_by_reliability(["b", "A"], None) == ["A", "b"]


def test_binned_grid_means_and_alignment():
    a = _imputed()
    grid = BinnedGrid(a.obsm["spatial"], bin_size=5.0)
    img = grid.raster(a.X[:, 0])
    # cells (0,0),(1,0) share bin row 0 col 0; (10,0) → col 2; (10,5),(10.2,5.1) → row 1 col 2; (0.5,5.2) → row 1 col 0
    assert img.shape == (2, 3)
    np.testing.assert_allclose(img[0, 0], np.mean([0, 2]))
    np.testing.assert_allclose(img[1, 2], np.mean([6, 10]))
    assert np.isnan(img[0, 1])
    # world position of bin (row 1, col 2) centre = translate + index * scale = (y 7.5, x 12.5)
    ty, tx = grid.translate
    assert (ty + 1 * 5.0, tx + 2 * 5.0) == (7.5, 12.5)
    data, kwargs, kind = binned_image_layer(a, "A", grid=grid)
    assert kind == "image" and kwargs["scale"] == (5.0, 5.0)


def test_contrast_limits_never_empty():
    assert contrast_limits(np.zeros(10)) == (0.0, 1.0)
    lo, hi = contrast_limits(np.arange(101))
    assert lo == 1.0 and hi == 99.0
