"""read_sample / get_reader dispatch to the Visium / legacy-ST readers of io/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_spatial_impute._reader import get_reader
from napari_spatial_impute.io import detect_platform, read_sample
from napari_spatial_impute.layers import sample_to_layers

HER2ST = Path(__file__).resolve().parents[2] / "shared/datasets/her2st_subset"
pytestmark = pytest.mark.skipif(not HER2ST.exists(), reason=f"shared dataset absent: {HER2ST}")


@pytest.mark.parametrize("rel", ["", "ST-cnts/C3.tsv.gz", "ST-spotfiles/C3_selection.tsv"])
def test_her2st_paths_open_through_the_reader(rel):
    path = HER2ST / rel if rel else HER2ST
    assert detect_platform(path) == "st" and get_reader(str(path)) is not None
    s = read_sample(path)
    section = "C2" if not rel else "C3"
    spots = pd.read_csv(HER2ST / "ST-spotfiles" / f"{section}_selection.tsv", sep="\t")
    spots = spots[spots["selected"] == 1] if "selected" in spots else spots
    ps = s.images[0].pixel_size_um
    assert 0.6 < ps < 0.8  # ≈ 0.69 µm/px from the 200 µm ST pitch
    # spot centres in µm = H&E pixel coordinates × pixel size: spots and image share one world
    first = spots.iloc[0]
    name = f"{int(first.x)}x{int(first.y)}"
    assert name in s.adata.obs_names, name
    np.testing.assert_allclose(s.adata[name].obsm["spatial"][0], [first.pixel_x * ps, first.pixel_y * ps])
    layers = sample_to_layers(s)
    assert [t for _, _, t in layers] == ["image", "points"] and layers[0][1]["rgb"]
    assert layers[-1][1]["size"] == 100.0  # ST spot diameter in µm
