import numpy as np
import pytest

from napari_spatial_impute import coords


def test_xy_yx_roundtrip_golden():
    xy = np.array([[10.0, 2.0], [3.5, 7.25]])
    np.testing.assert_array_equal(coords.xy_to_yx(xy), [[2.0, 10.0], [7.25, 3.5]])
    np.testing.assert_array_equal(coords.yx_to_xy(coords.xy_to_yx(xy)), xy)


def test_units_and_flip():
    np.testing.assert_allclose(coords.um_to_px([2.125], 0.2125), [10.0])
    np.testing.assert_allclose(coords.px_to_um([10.0], 0.2125), [2.125])
    np.testing.assert_array_equal(coords.flip_y([[1.0, 3.0]], 10.0), [[1.0, 7.0]])
    with pytest.raises(ValueError):
        coords.um_to_px([1.0], 0)


def test_affine_xy_to_yx_acts_the_same():
    A = np.array([[2.0, 0.0, 5.0], [0.0, 3.0, -1.0], [0, 0, 1]])  # x' = 2x + 5, y' = 3y - 1
    B = coords.affine_xy_to_yx(A)
    y, x = 4.0, 1.0
    np.testing.assert_allclose(B @ [y, x, 1], [3 * y - 1, 2 * x + 5, 1])


def test_affine_to_napari_scale_or_affine():
    assert coords.affine_to_napari(np.array([[0.5, 0, 10], [0, 0.25, 20], [0, 0, 1]])) == {
        "scale": (0.25, 0.5), "translate": (20.0, 10.0)}
    rot = np.array([[0, -1, 3], [1, 0, 4], [0, 0, 1.0]])
    np.testing.assert_allclose(coords.affine_to_napari(rot)["affine"], [[0, 1, 4], [-1, 0, 3], [0, 0, 1]])


def test_bundled_sample_points_are_yx(osmfish):
    from napari_spatial_impute.layers import cells_points_layer

    spatial, _ = osmfish
    data, kwargs, kind = cells_points_layer(spatial)
    assert kind == "points"
    # Locations.txt first row: X = 18171.23094, Y = 24590.79527 → napari (y, x)
    np.testing.assert_allclose(data[0], [24590.79527, 18171.23094])
