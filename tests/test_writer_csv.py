"""The cells CSV writer with features that carry their own x / y columns."""

from __future__ import annotations

import numpy as np
import pandas as pd


def test_cells_csv_keeps_positions_and_features_named_x_y(tmp_path):
    from napari_spatial_impute._writer import write_points

    yx = np.array([[1.0, 2.0], [3.0, 4.0]])
    feats = pd.DataFrame({"cell_id": ["a", "b"], "x": [20.0, 40.0], "y": [10.0, 30.0], "Gad2": [0.5, 1.5]})
    path = tmp_path / "cells.csv"
    assert write_points(str(path), yx, {"features": feats, "metadata": {}}) == [str(path)]
    table = pd.read_csv(path)
    assert list(table.columns) == ["x", "y", "cell_id", "x_obs", "y_obs", "Gad2"]
    np.testing.assert_array_equal(table[["x", "y"]].to_numpy(), yx[:, ::-1])
    np.testing.assert_array_equal(table["x_obs"], feats["x"])
