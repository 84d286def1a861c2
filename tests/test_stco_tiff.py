"""TIFF H&E for STco (issue 14) on a real her2st crop: training / evaluation patches of a TIFF section are read
region by region and equal those of the whole image; compressed tiles (JPEG, as scanners write them) decode with
imagecodecs, and without it the error names the extra to install."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_dataset


@pytest.fixture(scope="module")
def crop():
    """A 2048 × 2048 px crop of her2st C6 (0.687 µm/px) and its spot centres inside the crop."""
    from PIL import Image

    from napari_spatial_impute.io import read_st_section

    root = shared_dataset("her2st_subset")
    c6 = read_st_section(root / "ST-cnts/C6.tsv.gz", root / "ST-spotfiles/C6_selection.tsv",
                         root / "ST-imgs/C6_5714_HE_BT_E2.jpg")
    xy = c6.obsm["spatial_px"]
    x0, y0 = (np.median(xy, axis=0) - 1024).astype(int)
    Image.MAX_IMAGE_PIXELS = None
    with Image.open(c6.uns["histology"]["image"]) as im:
        arr = np.asarray(im.crop((x0, y0, x0 + 2048, y0 + 2048)).convert("RGB"))
    local = xy - [x0, y0]
    inside = ((local > 150) & (local < 2048 - 150)).all(axis=1)
    assert inside.sum() > 20
    return arr, local[inside], float(c6.uns["histology"]["pixel_size_um"])


@pytest.mark.parametrize("out_px", [112, 32])  # read at full resolution / at 1/4 (block means, as the whole read)
def test_tiff_section_patches_are_read_by_region_and_equal_the_whole_read(crop, tmp_path, monkeypatch, out_px):
    import tifffile

    from napari_spatial_impute.models.stco import slide as slide_mod
    from napari_spatial_impute.models.stco.patches import section_patches

    arr, xy, px = crop
    path = tmp_path / "c6.tif"
    tifffile.imwrite(path, arr, tile=(256, 256), compression="zlib", photometric="rgb")
    regions = []
    real_read = slide_mod.TiffSlide.read

    def spy(self, *args, **kwargs):
        out = real_read(self, *args, **kwargs)
        regions.append(self.regions[-1])
        return out

    monkeypatch.setattr(slide_mod.TiffSlide, "read", spy)
    whole = section_patches(arr, xy, px, patch_um=150, out_px=out_px, use_cache=False,
                            check_tissue=False)
    tiled = section_patches(path, xy, px, patch_um=150, out_px=out_px, use_cache=False,
                            check_tissue=False)
    np.testing.assert_array_equal(tiled, whole)
    # one block of spots here: the window around them (plus half a patch), not the whole image
    assert regions and all(x1 - x0 < 2048 and y1 - y0 < 2048 for x0, y0, x1, y1 in regions)


@pytest.mark.parametrize("context_cut", ["box", "resize"])
def test_context_patches_of_a_tiff_read_by_region_equal_the_whole_image(crop, tmp_path, context_cut):
    """Context patches (4× the patch, channels 3–5) read block by block from a TIFF equal those of the whole image,
    spots whose context leaves the image (white there) included; the box-reduced cut (the default) looks like each
    crop resized alone (the cut of bundles from before)."""
    import tifffile

    from napari_spatial_impute.models.stco.patches import section_patches

    arr, xy, px = crop
    path = tmp_path / "c6.tif"
    tifffile.imwrite(path, arr, tile=(256, 256), compression="zlib", photometric="rgb")
    kw = dict(patch_um=150, out_px=64, use_cache=False, check_tissue=False, context=4.0)
    whole = section_patches(arr, xy, px, context_cut=context_cut, **kw)
    tiled = section_patches(path, xy, px, context_cut=context_cut, **kw)
    assert whole.shape == (len(xy), 64, 64, 6)
    np.testing.assert_array_equal(tiled, whole)
    assert (whole[..., 3:] == 255).all(axis=-1).any(axis=(1, 2)).sum() > 5  # contexts reaching past the crop
    if context_cut == "box":
        resized = section_patches(arr, xy, px, context_cut="resize", **kw)
        np.testing.assert_array_equal(whole[..., :3], resized[..., :3])  # the patches themselves: unchanged
        diff = np.abs(whole[..., 3:].astype(int) - resized[..., 3:])
        # the same squares through another low-pass filter: 0.46 grey levels apart on average here (4.5 when the
        # squares' corners were rounded to the reduced grid; 1.6 reduced down to the output size)
        assert diff.mean() < 1.0 and np.corrcoef(whole[..., 3:].ravel(), resized[..., 3:].ravel())[0, 1] > 0.999


def test_tiff_patches_reads_stay_local(crop, tmp_path):
    import tifffile

    from napari_spatial_impute.models.stco.patches import region_patches
    from napari_spatial_impute.models.stco.slide import TiffSlide

    arr, xy, px = crop
    path = tmp_path / "c6.tif"
    tifffile.imwrite(path, arr, tile=(256, 256), compression="zlib", photometric="rgb")
    slide = TiffSlide(path)
    size = 150 / px
    got = region_patches(slide, xy, size, 64, 2, block_px=512)
    slide.close()
    assert max(max(x1 - x0, y1 - y0) for x0, y0, x1, y1 in slide.regions) <= 512 + size + 4
    from napari_spatial_impute.models.stco.patches import crop_patches
    from napari_spatial_impute.models.stco.pixels import block_mean

    np.testing.assert_array_equal(got, crop_patches(block_mean(arr, 2), xy / 2, size / 2, 64))


def test_compressed_tiff_tiles_decode_or_name_the_extra(crop, tmp_path, monkeypatch):
    import tifffile

    from napari_spatial_impute.errors import InputError
    from napari_spatial_impute.models.stco.slide import CODECS_EXTRA, TiffSlide, open_slide

    arr = crop[0][:1024, :1024]
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        imagecodecs = None
    if imagecodecs is not None:  # what a scanner writes: JPEG tiles (YCbCr)
        path = tmp_path / "jpeg.tif"
        tifffile.imwrite(path, arr, tile=(256, 256), compression="jpeg", photometric="rgb")
        slide = TiffSlide(path)
        got, factor, origin = slide.read(100, 200, 700, 900)
        ref = tifffile.imread(path)
        slide.close()
        assert factor == 1 and origin == (100, 200)
        np.testing.assert_array_equal(got, ref[200:900, 100:700])
        assert np.abs(got.astype(int) - arr[200:900, 100:700]).mean() < 6  # lossy, close
    path = tmp_path / "zlib.tif"
    tifffile.imwrite(path, arr, tile=(256, 256), compression="zlib", photometric="rgb")

    class NoCodecs(dict):
        def __getitem__(self, key):
            raise KeyError(f"<COMPRESSION.{key}> requires the 'imagecodecs' package")

    monkeypatch.setattr(tifffile.TIFF, "DECOMPRESSORS", NoCodecs())
    with pytest.raises(InputError) as err:
        open_slide(path)
    text = str(err.value) + " " + str(getattr(err.value, "hint", ""))
    assert "imagecodecs" in text and f"napari-spatial-impute[{CODECS_EXTRA}]" in text and "zlib.tif" in text


@pytest.mark.parametrize("kind", ["png", "tiff", "array"])
def test_jittered_cuts_equal_the_patches_cut_at_the_moved_spots(crop, tmp_path, kind, monkeypatch):
    """The moved cuts the feature ridges average (decoded once for a PNG / JPEG, read by region for a TIFF, from
    memory for an array) are the patches :func:`section_patches` cuts at the moved spots, whatever the file; a
    spot prediction cuts its own and its moved cuts from one decode."""
    from types import SimpleNamespace

    import anndata as ad
    import tifffile
    from PIL import Image

    from napari_spatial_impute.models.stco import patches as patches_module
    from napari_spatial_impute.models.stco.defaults import DEFAULTS
    from napari_spatial_impute.models.stco.jitter import moved_centres, moved_section_patches_steps, section_cuts_steps
    from napari_spatial_impute.models.stco.patches import section_patches
    from napari_spatial_impute.progress import run_to_end

    arr, xy, px = crop
    image = {"png": tmp_path / "c6.png", "tiff": tmp_path / "c6.tif", "array": arr}[kind]
    if kind == "png":
        Image.fromarray(arr).save(image)
    elif kind == "tiff":
        tifffile.imwrite(image, arr, tile=(256, 256), compression="zlib", photometric="rgb")
    section = ad.AnnData(np.zeros((len(xy), 1), np.float32), uns={"histology": {"image": image, "pixel_size_um": px}},
                         obsm={"spatial": xy * px, "spatial_px": xy})
    cfg = {**DEFAULTS, "patch_px": 32, "context": 2.0}
    model = SimpleNamespace(jitters=True, cfg=cfg, train_pixel_size_um=px)
    events = []
    moved = run_to_end(moved_section_patches_steps(model, section), events.append)
    assert moved.shape == (4, len(xy), 32, 32, 6) and len(events) >= 4  # an event after each move
    at = moved_centres(xy, cfg["jitter_um"] / px, 2048, 2048)
    direct = section_patches(image, at, px, patch_um=150, out_px=32, use_cache=False, check_tissue=False,
                             context=2.0, context_cut=cfg["context_cut"])
    np.testing.assert_array_equal(moved.reshape(direct.shape), direct)
    assert not np.array_equal(moved[0], moved[3])  # moved by 2 × 11 µm in x and y: other pixels
    # the spots' own cut and the moved ones together (a spot prediction): the same pixels, one decode of a PNG
    decodes = []
    load_rgb = patches_module.load_rgb
    monkeypatch.setattr(patches_module, "load_rgb", lambda *a, **k: decodes.append(1) or load_rgb(*a, **k))
    monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_CACHE", str(tmp_path / "cold-cache"))
    own, both, xy_um = run_to_end(section_cuts_steps(model, section, moved=True, check_tissue=False))
    assert len(decodes) == (0 if kind == "tiff" else 1)  # a TIFF is read region by region
    np.testing.assert_array_equal(both, moved)
    np.testing.assert_array_equal(own, section_patches(image, xy, px, patch_um=150, out_px=32, use_cache=False,
                                                       check_tissue=False, context=2.0,
                                                       context_cut=cfg["context_cut"]))
    np.testing.assert_allclose(xy_um, xy * px)
    # training: the own cut read now, the moved cuts from the same decode into the cache only, read back later
    # without a second decode (a her2st JPEG: 0.9 s); with no cache (an array) they are cut when needed
    monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_CACHE", str(tmp_path / "training-cache"))
    decodes.clear()
    own2, none, _ = run_to_end(section_cuts_steps(model, section, cache_moved=True, check_tissue=False))
    assert none is None and len(decodes) == (0 if kind == "tiff" else 1)
    np.testing.assert_array_equal(own2, own)
    later = run_to_end(moved_section_patches_steps(model, section))
    assert len(decodes) == (2 if kind == "array" else 0 if kind == "tiff" else 1)
    np.testing.assert_array_equal(later, moved)
    # a training section of another magnification is told so once, when its own cut is read, not per moved cut
    import warnings

    model.train_pixel_size_um = 2 * px
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_to_end(moved_section_patches_steps(model, section))
    with pytest.warns(UserWarning, match="magnification"):
        run_to_end(section_cuts_steps(model, section, check_tissue=False))


def test_every_reader_reduces_by_block_means(tmp_path):
    """Patches read at 1/2 are 2 × 2 block means whatever holds the image (array, PNG, plain or tiled TIFF), as a
    JPEG's DCT draft gives: a one-pixel checkerboard comes out grey, where every other pixel would be black or
    white (aliasing that a model trained on JPEGs never saw)."""
    import tifffile
    from PIL import Image

    from napari_spatial_impute.models.stco.patches import section_patches
    from napari_spatial_impute.models.stco.pixels import load_rgb

    board = (np.indices((512, 512)).sum(0) % 2 * 255).astype(np.uint8)
    arr = np.repeat(board[..., None], 3, axis=2)
    Image.fromarray(arr).save(tmp_path / "board.png")
    tifffile.imwrite(tmp_path / "board.tif", arr, photometric="rgb")
    tifffile.imwrite(tmp_path / "tiled.tif", arr, tile=(64, 64), photometric="rgb")
    xy = np.array([[200.0, 200.0], [300.5, 250.0]])
    for image in (arr, tmp_path / "board.png", tmp_path / "board.tif", tmp_path / "tiled.tif"):
        p = section_patches(image, xy, 1.0, patch_um=128, out_px=64, reduce=2, use_cache=False, check_tissue=False)
        assert np.abs(p.astype(int) - 127).max() <= 1, image
    small, factor = load_rgb(arr, 2)
    assert factor == 2 and small.shape == (256, 256, 3) and np.abs(small.astype(int) - 127).max() <= 1
