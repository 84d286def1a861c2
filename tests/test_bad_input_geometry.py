"""Families 3 and 4 — impossible geometry and nonsense physical values.

A legacy-ST section whose spots lie outside its H&E image, or whose image belongs to another section, opens in
napari with a warning notification (the layers still open, so the mismatch can be seen); the API and CLI warn or
refuse. Zero / negative pixel sizes, zero tile sizes and files that are not images are refused with the valid
range. Sections are mutated copies of the real her2st subset in ../shared (skipped when absent)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from _badinput import checksum, cli
from conftest import shared_dataset
from napari_spatial_impute.errors import InputError

OLD = Path(__file__).resolve().parent / "data" / "bundles_0.1.0"
IMAGES = {"C2": "C2_5714_HE_BT_C2.jpg", "C6": "C6_5714_HE_BT_E2.jpg"}


def _section_copy(tmp_path: Path, *, image_of: str = "C2", shift_px: float = 0.0) -> Path:
    """her2st section C2 in its folder layout, with another section's image or shifted spot pixels."""
    root = shared_dataset("her2st_subset")
    d = tmp_path / f"st_{image_of}_{int(shift_px)}"
    for sub in ("ST-cnts", "ST-spotfiles", "ST-imgs"):
        (d / sub).mkdir(parents=True)
    shutil.copy(root / "ST-cnts/C2.tsv.gz", d / "ST-cnts")
    shutil.copy(root / "ST-imgs" / IMAGES[image_of], d / "ST-imgs" / IMAGES["C2"])
    import pandas as pd

    spots = pd.read_csv(root / "ST-spotfiles/C2_selection.tsv", sep="\t")
    spots["pixel_x"] += shift_px
    spots.to_csv(d / "ST-spotfiles/C2_selection.tsv", sep="\t", index=False)
    return d


@pytest.fixture
def notes(monkeypatch):
    import napari_spatial_impute._reader as reader

    shown: list[tuple[str, bool]] = []
    monkeypatch.setattr(reader, "_notify", lambda msg, warning=False: shown.append((msg, warning)))
    return shown


@pytest.mark.parametrize("how,words", [("other_image", "on tissue"), ("outside", "outside the")])
def test_reader_notifies_and_still_opens_the_layers(tmp_path, notes, how, words):
    from napari_spatial_impute._reader import get_reader

    d = _section_copy(tmp_path, image_of="C6") if how == "other_image" else _section_copy(tmp_path, shift_px=1e5)
    before = checksum(d)
    reader = get_reader(str(d))
    assert reader is not None
    layers = reader(str(d))
    assert {t for _, _, t in layers} >= {"image", "points"}
    assert any(words in msg and warning for msg, warning in notes), notes
    assert checksum(d) == before


def test_reader_is_silent_for_a_matching_section(tmp_path, notes):
    from napari_spatial_impute._reader import get_reader

    d = _section_copy(tmp_path)
    layers = get_reader(str(d))(str(d))
    assert layers and notes == []


def test_api_warns_or_refuses_the_same_sections(tmp_path):
    from napari_spatial_impute.io.legacy_st import read_legacy_st, read_st_section
    from napari_spatial_impute.models.stco.patches import check_spots_in_image, image_size

    d = _section_copy(tmp_path, image_of="C6")
    with pytest.warns(UserWarning, match="on tissue"):
        read_legacy_st(d)
    d = _section_copy(tmp_path, shift_px=1e5)
    with pytest.warns(UserWarning, match="outside the"):
        read_legacy_st(d)
    adata = read_st_section(d / "ST-cnts/C2.tsv.gz", d / "ST-spotfiles/C2_selection.tsv",
                            d / "ST-imgs" / IMAGES["C2"])
    with pytest.raises(InputError, match="outside the"):  # training / prediction cannot use such spots
        check_spots_in_image(adata.obsm["spatial_px"], *image_size(str(d / "ST-imgs" / IMAGES["C2"])))


def test_histology_train_refuses_spots_outside_the_image(tmp_path, capsys):
    d = _section_copy(tmp_path, shift_px=1e5)
    rc, err = cli(["histology", "train", "--section", d / "ST-cnts/C2.tsv.gz", d / "ST-spotfiles/C2_selection.tsv",
                   d / "ST-imgs" / IMAGES["C2"], "--out", tmp_path / "m", "--quiet", "--device", "cpu",
                   "--epochs", "1"], capsys)
    assert rc == 2 and "outside the" in err and not (tmp_path / "m").exists()


# ---- physical values --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [0, -0.5, float("nan"), float("inf"), "abc"])
def test_pixel_sizes_are_refused_with_the_valid_range(value):
    from napari_spatial_impute.coords import pixel_grid_affine, px_to_um, um_to_px

    for fn in (lambda: px_to_um([1.0], value), lambda: um_to_px([1.0], value), lambda: pixel_grid_affine(value)):
        with pytest.raises(InputError, match="must be a number > 0"):
            fn()


def test_read_section_refuses_a_zero_pixel_size(tmp_path):
    from napari_spatial_impute.io.legacy_st import read_st_section

    root = shared_dataset("her2st_subset")
    with pytest.raises(InputError, match="pixel size"):
        read_st_section(root / "ST-cnts/C2.tsv.gz", root / "ST-spotfiles/C2_selection.tsv",
                        root / "ST-imgs" / IMAGES["C2"], pixel_size_um=0)


@pytest.fixture
def he_png(tmp_path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    img = np.full((256, 256, 3), 240, np.uint8)
    img[64:192, 64:192] = rng.integers(80, 160, (128, 128, 3), dtype=np.uint8)
    path = tmp_path / "he.png"
    Image.fromarray(img).save(path)
    return path


@pytest.mark.parametrize("extra,words", [
    (["--tile-um", "0"], "tile size"), (["--tile-um", "-5"], "tile size"),
    (["--pixel-size", "0"], "pixel size"), (["--pixel-size", "-1"], "pixel size"),
])
def test_histology_predict_refuses_nonsense_sizes(tmp_path, capsys, he_png, extra, words):
    before = checksum(he_png)
    rc, err = cli(["histology", "predict", OLD / "stco_lite0" / "bundle", "--image", he_png, "--out",
                   tmp_path / "p.h5ad", "--quiet", "--device", "cpu", *extra], capsys)
    assert rc == 2 and words in err and ("> 0" in err or "(0," in err), err
    assert not (tmp_path / "p.h5ad").exists() and checksum(he_png) == before


@pytest.mark.parametrize("content", [b"hello, not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b""])
def test_a_file_that_is_not_an_image_is_refused(tmp_path, capsys, content):
    bad = tmp_path / "he.jpg"
    bad.write_bytes(content)
    rc, err = cli(["histology", "predict", OLD / "stco_lite0" / "bundle", "--image", bad, "--out",
                   tmp_path / "p.h5ad", "--quiet", "--device", "cpu"], capsys)
    assert rc == 2 and "Traceback" not in err, err
    assert err.startswith("error: Could not open he.jpg as an image:") and "give a JPEG/PNG/TIFF H&E image" in err, err
    assert not (tmp_path / "p.h5ad").exists()


def test_api_refuses_zero_tile_size_before_loading_the_model(he_png):
    import napari_spatial_impute as nsi

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match="tile size"):
            nsi.predict_histology("/no/such/model", he_png, tile_um=0)
        with pytest.raises(InputError, match="min_tissue"):
            nsi.predict_histology("/no/such/model", he_png, min_tissue=2)
