"""H&E prediction takes images and spots as people hold them (issue 14's bad-input family, found by a review):
spots as a DataFrame / AnnData / array with their names, pixel values of any range read once per slide,
transparent or black canvas read as background, planar TIFFs, Fiji / OME calibrations, PIL and dask images;
and a section given twice is refused before it can validate on itself."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from napari_spatial_impute.errors import InputError
from test_stco_generalisation import PX_UM, backbone_file, small_model, synthetic  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def section(synthetic):  # noqa: F811
    s = synthetic[2]  # not a training section of small_model
    return s, s.uns["histology"]["image"], np.asarray(s.obsm["spatial_px"], np.float64)


def test_spots_as_a_dataframe_an_anndata_or_an_array(small_model, section):  # noqa: F811
    """A DataFrame's columns are read by name (napari Points come as (y, x): the column order must not swap
    them) and its index names the spots; an AnnData gives its pixel positions and names; a pixel size may come
    as text (a widget, a config file)."""
    import anndata as ad

    from napari_spatial_impute import predict_histology

    adata, image, xy = section
    ids = [f"spot{i}" for i in range(len(xy))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = predict_histology(small_model, image, PX_UM, spots_xy=xy, device="cpu")
        table = predict_histology(small_model, image, PX_UM, device="cpu",
                                  spots_xy=pd.DataFrame({"y": xy[:, 1], "x": xy[:, 0]}, index=ids))
        spots = ad.AnnData(obs=pd.DataFrame(index=ids), obsm={"spatial_px": xy})
        as_adata = predict_histology(small_model, image, str(PX_UM), spots_xy=spots, device="cpu")
    np.testing.assert_allclose(table.X, plain.X)
    np.testing.assert_allclose(as_adata.X, plain.X)
    np.testing.assert_allclose(table.obsm["spatial_px"], xy)
    assert list(table.obs_names) == ids == list(as_adata.obs_names)


@pytest.mark.parametrize("spots,words", [
    (np.array([[10.0, np.nan], [20.0, 30.0]]), r"1 of the 2 spots have no position .*row 0"),
    (np.zeros((4, 3)), r"shape \(4, 3\); expected \(n, 2\)"),
    (pd.DataFrame({"a": [1.0], "b": [2.0], "c": [3.0]}), "none names the pixel positions"),
])
def test_spots_that_cannot_be_used_are_named(small_model, section, spots, words):  # noqa: F811
    from napari_spatial_impute import predict_histology

    _, image, _ = section
    with pytest.raises(InputError, match=words):
        predict_histology(small_model, image, PX_UM, spots_xy=spots, device="cpu")
    with pytest.raises(InputError, match="2 spot names for 1 spots"):
        predict_histology(small_model, image, PX_UM, spots_xy=[[50.0, 50.0]], obs_names=["a", "b"], device="cpu")


def test_a_section_given_twice_is_refused(synthetic, backbone_file):  # noqa: F811
    """Trained on [C5, C5], the bundle validated C5 on itself (0.97 expected r, 0.27 reached on C6)."""
    from napari_spatial_impute import train_histology

    with pytest.raises(InputError, match=r"sections 1 and 3 are the same section \(S0\)"):
        train_histology([synthetic[0], synthetic[1], synthetic[0]], device="cpu", backbone="torchscript",
                        backbone_path=str(backbone_file), epochs=1)


def test_pixel_values_of_any_range(tmp_path):
    """Floats in [0, 1] with a little overshoot stay in [0, 1] (one pixel at 1.01 had turned the image black);
    16-bit data is scaled by its bit depth, not stretched by its brightest pixel; a 16-bit greyscale PNG is not
    clipped to white."""
    from PIL import Image

    from napari_spatial_impute.models.stco.pixels import as_rgb, load_rgb, value_range

    rng = np.random.default_rng(0)
    img = rng.integers(60, 230, (64, 48, 3)).astype(np.uint8)
    f = img.astype(np.float32) / 255.0
    f[0, 0, 0] = 1.01
    np.testing.assert_array_equal(as_rgb(f)[1:], img[1:])
    twelve = img.astype(np.uint16) * 16  # a 12-bit scan stored as uint16
    assert value_range(twelve) == 4095 and value_range(twelve[:8, :8]) == 4095
    assert np.abs(as_rgb(twelve).astype(int) - img).max() <= 1
    grey16 = (img[..., 0].astype(np.uint16) * 257)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    with pytest.warns(UserWarning, match="greyscale"):
        arr, _ = load_rgb(tmp_path / "g16.png")
    np.testing.assert_array_equal(arr[..., 0], img[..., 0])


def test_black_canvas_is_not_tissue(section):
    """The black corners of a rotated slide or the padding of a registered one are background."""
    from napari_spatial_impute.models.stco.tiling import tissue_mask

    _, image, _ = section
    padded = np.concatenate([image, np.zeros((image.shape[0], 400, 3), np.uint8)], axis=1)
    mask, step = tissue_mask(padded)
    inner, _ = tissue_mask(image)
    w = int(image.shape[1] / step)
    assert not mask[:, w + 2:].any()
    assert abs(mask[:, :w].mean() - inner.mean()) < 0.05


def test_tiffs_as_other_tools_write_them(section, tmp_path):
    """Planar-separate RGB (each colour a plane of its own) reads as the image; Fiji's calibration and an OME
    size in nm give the pixel size."""
    import tifffile

    from napari_spatial_impute.models.stco.slide import TiffSlide, open_slide, tiff_pixel_size_um

    _, image, _ = section
    crop = np.ascontiguousarray(image[:300, :260])
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(crop, -1, 0), photometric="rgb", tile=(64, 64))
    slide = TiffSlide(tmp_path / "planar.tif")
    np.testing.assert_array_equal(slide.read(0, 0, 260, 300)[0], crop)
    tifffile.imwrite(tmp_path / "fiji.tif", crop, imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"unit": "micron"})
    tifffile.imwrite(tmp_path / "ome.tif", crop, ome=True, photometric="rgb",
                     metadata={"PhysicalSizeX": 687.3, "PhysicalSizeXUnit": "nm",
                               "PhysicalSizeY": 687.3, "PhysicalSizeYUnit": "nm"})
    for name, expected in (("fiji.tif", 0.5), ("ome.tif", 0.6873)):
        with tifffile.TiffFile(tmp_path / name) as tif:
            assert tiff_pixel_size_um(tif) == pytest.approx(expected)
    from PIL import Image

    assert open_slide(Image.fromarray(crop)).read(0, 0, 260, 300)[0].shape == (300, 260, 3)
    with pytest.raises(InputError, match="a dict; expected an image file or an RGB array"):
        open_slide({"not": "an image"})


def test_lazy_arrays_are_scaled_once_for_the_whole_slide(section):
    import dask.array as da

    from napari_spatial_impute.models.stco.slide import open_slide

    _, image, _ = section
    twelve = da.from_array(image.astype(np.uint16) * 16, chunks=(128, 128, 3))
    slide = open_slide(twelve)
    a, _, _ = slide.read(0, 0, 100, 100)
    np.testing.assert_allclose(a.astype(int), image[:100, :100].astype(int), atol=1)


def test_a_spots_file_keeps_its_barcodes(tmp_path):
    from napari_spatial_impute.io.legacy_st import read_spots_table

    pd.DataFrame({"barcode": ["AAAC-1", "AAAG-1"], "pixel_x": [10.0, 20.0], "pixel_y": [5.0, 6.0]}).to_csv(
        tmp_path / "spots.csv", index=False)
    ids, xy, _ = read_spots_table(tmp_path / "spots.csv")
    assert ids == ["AAAC-1", "AAAG-1"] and xy.tolist() == [[10.0, 5.0], [20.0, 6.0]]
