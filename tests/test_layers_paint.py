"""Qt-free painting, colour-by choices and result saving (layers.paint / colour_by / results)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from napari_spatial_impute.layers.colour_by import colouring, legend_rows, obs_colouring
from napari_spatial_impute.layers.paint import (
    categories_rgba,
    category_colors,
    paint_rgba,
    paint_values,
    prepare_mask,
    values_rgba,
)
from napari_spatial_impute.layers.results import SampleResult, save_result_steps
from napari_spatial_impute.progress import run_to_end


def _mask():
    mask = np.zeros((40, 40), np.int32)
    mask[2:8, 2:8] = 5
    mask[20:30, 20:30] = 9
    return mask


def test_paint_values_puts_each_cells_value_under_its_label():
    pm = prepare_mask(_mask(), [5, 9, 7], ["a", "b", "z"], ["b", "a"], scale=(0.5, 0.5), translate=(10, 20))
    img = paint_values(pm, [2.0, 3.0])  # b=2, a=3
    assert img[4, 4] == 3.0 and img[25, 25] == 2.0 and np.isnan(img[0, 0])
    assert pm.n_matched == 2  # label 7 ("z") has no cell
    rgba = paint_rgba(pm, np.array([[1, 0, 0, 1], [0, 1, 0, 1]], float))
    assert tuple(rgba[25, 25]) == (255, 0, 0, 255) and rgba[0, 0, 3] == 0


def test_large_mask_is_strided_and_placed_like_the_original():
    mask = np.kron(np.arange(1, 101, dtype=np.int32).reshape(10, 10), np.ones((100, 100), np.int32))
    pm = prepare_mask(mask, np.arange(1, 101), [str(i) for i in range(1, 101)], [str(i) for i in range(1, 101)],
                      max_pixels=10_000, scale=(2.0, 2.0), translate=(0.0, 0.0))
    assert pm.mask.size <= 10_000 and pm.step == 10
    # pixel j of the strided mask is original pixel j*step + step//2, at world (j*step + 5) * 2
    assert pm.scale == (20.0, 20.0) and pm.translate == (10.0, 10.0)
    np.testing.assert_array_equal(paint_values(pm, np.arange(100.0))[::10, ::10].ravel(), np.arange(100.0))


def test_values_rgba_nan_and_categories():
    rgba = values_rgba([0.0, 1.0, np.nan], "magma", (0.0, 1.0))
    assert rgba.shape == (3, 4) and rgba[2, 3] == pytest.approx(0.5)
    colors = category_colors(10_000)
    assert len({tuple(np.round(c, 4)) for c in colors}) > 9_000
    assert categories_rgba([0, -1], 3)[1, 3] == pytest.approx(0.5)


def test_colouring_choices():
    a = ad.AnnData(np.array([[1, 3], [0, 4]], np.float32), obs=pd.DataFrame(
        {"type": pd.Categorical(["x", "y"]), "area": [1.5, 2.5]}, index=["c1", "c2"]),
        var=pd.DataFrame(index=["G1", "G2"]))
    c = colouring("measured:G1", a)
    np.testing.assert_allclose(c.values, np.log1p([1 / 4 * 4, 0.0]), rtol=1e-6)  # median library = 4
    assert colouring("obs:type", a).kind == "categorical"
    assert colouring("obs:area", a).kind == "continuous"
    big = obs_colouring("obs:k", pd.Series([f"k{i % 10_000}" for i in range(20_000)]))
    rows, left = legend_rows(big)
    assert len(rows) == 30 and left == 9_970
    with pytest.raises(KeyError):
        colouring("imputed:G1", a)


@pytest.mark.parametrize("suffix", [".h5ad", ".zarr"])
def test_save_result_round_trip(tmp_path, suffix):
    res = ad.AnnData(np.arange(12, dtype=np.float32).reshape(4, 3), obs=pd.DataFrame(index=list("abcd")),
                     var=pd.DataFrame({"reliability": [0.1, 0.5, 0.9]}, index=["A", "B", "C"]))
    res.obsm["spatial"] = np.arange(8.0).reshape(4, 2)
    res.uns["napari_spatial_impute"] = {"method": "knn"}
    sr = SampleResult(res, list("dcba"), res.obsm["spatial"][::-1])
    np.testing.assert_array_equal(sr.values("B"), [10, 7, 4, 1])
    out = tmp_path / f"r{suffix}"
    run_to_end(save_result_steps(sr, out, provenance={"sample": "s"}, rows=3))
    back = ad.read_h5ad(out) if suffix == ".h5ad" else ad.read_zarr(out)
    np.testing.assert_array_equal(np.asarray(back.X), res.X)
    assert list(back.var["reliability"]) == [0.1, 0.5, 0.9]
    assert back.uns["napari_spatial_impute"]["method"] == "knn"
    assert back.uns["napari_spatial_impute"]["sample"] == "s"
    assert not (tmp_path / f"r{suffix}.partial").exists()
