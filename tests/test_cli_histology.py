"""``napari-spatial-impute histology train|evaluate|predict`` on real her2st sections."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import shared_dataset

IMAGES = {"C2": "C2_5714_HE_BT_C2.jpg", "C6": "C6_5714_HE_BT_E2.jpg"}


def section(name: str) -> list[str]:
    root = shared_dataset("her2st_subset")
    return [str(root / f"ST-cnts/{name}.tsv.gz"), str(root / f"ST-spotfiles/{name}_selection.tsv"),
            str(root / "ST-imgs" / IMAGES[name])]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from napari_spatial_impute.cli import main

    out = tmp_path_factory.mktemp("hist") / "model"
    genes = out.parent / "genes.txt"
    genes.write_text("ERBB2\nACTB\nGAPDH\nMGP\nKRT19\nCD74\nCOL1A1\nFN1\n")
    rc = main(["histology", "train", "--section", *section("C2"), "--out", str(out), "--genes", str(genes),
               "--epochs", "5", "--seed", "0", "--device", "cpu", "--quiet",
               "--param", "patch_px=64", "--param", "n_views=1", "--param", "tta=1"])
    assert rc == 0
    return out


def test_import_does_not_load_torch():
    code = "import sys, napari_spatial_impute.cli.histology as c; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_train_writes_a_bundle(bundle):
    cfg = json.loads((bundle / "config.json").read_text())
    assert cfg["genes"] == ["ERBB2", "ACTB", "GAPDH", "MGP", "KRT19", "CD74", "COL1A1", "FN1"]
    assert len(cfg["top_genes"]) == 8 and cfg["params"]["epochs"] == 5 and cfg["method"] == "stco"
    assert (bundle / "weights.pt").is_file() and (bundle / "bank.npz").is_file()


def test_evaluate_writes_metrics(bundle, tmp_path):
    from napari_spatial_impute.cli import main

    metrics = tmp_path / "m.json"
    assert main(["histology", "evaluate", str(bundle), "--section", *section("C6"), "--metrics", str(metrics),
                 "--quiet"]) == 0
    m = json.loads(metrics.read_text())
    assert {"n_spots", "n_genes", "pcc_mean_all", "pcc_mean_top50", "seconds", "per_gene"} <= set(m)
    assert m["n_spots"] == 178 and m["n_genes"] == 8 and set(m["per_gene"]) >= {"ERBB2", "ACTB"}
    # per-gene top flag: "top", and its 0.1.0 name "top50" beside it (all 8 genes are top genes here)
    assert all(row["top"] is True and row["top50"] is True for row in m["per_gene"].values())
    assert -1 <= m["pcc_mean_all"] <= 1
    # the names imputation uses, beside the histology ones
    assert {"pcc_median", "pcc_mean", "spearman_median", "spearman_mean", "ssim_median"} <= set(m)
    assert m["pcc_median"] == pytest.approx(m["pcc_median_all"]) and m["pcc_mean"] == pytest.approx(m["pcc_mean_all"])
    # one training section: nothing held out, so no per-gene expected r to compare
    assert "expected_r_spearman" not in m and "expected_r" not in m["per_gene"]["ERBB2"]


def test_predict_spots_and_whole_slide(bundle, tmp_path):
    import anndata as ad

    from napari_spatial_impute.cli import main

    _, spots, image = section("C6")
    out = tmp_path / "spots.h5ad"
    assert main(["histology", "predict", str(bundle), "--image", image, "--spots", spots, "--out", str(out),
                 "--quiet"]) == 0
    a = ad.read_h5ad(out)
    assert a.shape == (179, 8)  # every spot of the selection file (one of them has no counts)
    import pandas as pd

    sel = pd.read_csv(spots, sep="\t")
    first = f"{sel.x[0]}x{sel.y[0]}"
    assert a.obs_names[0] == first
    np.testing.assert_allclose(a.obsm["spatial_px"][0], [sel.pixel_x[0], sel.pixel_y[0]])
    info = a.uns["napari_spatial_impute"]
    np.testing.assert_allclose(a.obsm["spatial"], a.obsm["spatial_px"] * info["pixel_size_um"])  # µm
    assert info["method"] == "stco" and set(a.uns) == {"napari_spatial_impute"}
    assert np.isfinite(a.X).all()
    # one section, nothing held out: the equal blend of its members, smoothed 100 µm; its ridges read five cuts
    third = pytest.approx(1 / 3)
    assert info["predictor"] == {"contrastive": third, "feature_ridge": third, "feature_krr": third}
    assert info["smoothing_um"] == 100.0 and info["cuts_per_spot"] == 5
    slide = tmp_path / "slide.h5ad"
    with pytest.warns(UserWarning, match="No pixel size given"):  # a bare image: training pixel size assumed
        assert main(["histology", "predict", str(bundle), "--image", image, "--out", str(slide), "--quiet",
                     "--tile-um", "200"]) == 0
    s = ad.read_h5ad(slide)
    info = s.uns["napari_spatial_impute"]
    assert s.n_vars == 8 and 100 < s.n_obs < 400  # C6 tissue ≈ 0.7 × 0.6 of the 6.4 × 6.8 mm image
    assert tuple(info["napari_scale_yx"])[0] == pytest.approx(200 / 0.687, rel=0.02)


def test_predict_one_cut_reaches_the_api(bundle, tmp_path, monkeypatch):
    """``--one-cut`` asks the API for one cut per spot (what it changes: test_stco's jittered-cuts tests)."""
    from napari_spatial_impute.api import histology as api
    from napari_spatial_impute.cli import main

    seen = []
    real = api.predict_histology

    def spy(*args, **kwargs):
        seen.append(kwargs.get("jitter"))
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "predict_histology", spy)
    _, spots, image = section("C6")
    for flags in ([], ["--one-cut"]):
        assert main(["histology", "predict", str(bundle), "--image", image, "--spots", spots, "--quiet",
                     "--out", str(tmp_path / f"p{len(flags)}.h5ad"), *flags]) == 0
    assert seen == [None, False]


def test_bad_input_exits_2(bundle, tmp_path, capsys):
    from napari_spatial_impute.cli import main

    genes = tmp_path / "g.txt"
    genes.write_text("ERBB2\nNOTAGENE1\n")
    rc = main(["histology", "train", "--section", *section("C2"), "--out", str(tmp_path / "m"),
               "--genes", str(genes), "--quiet"])
    assert rc == 2 and "NOTAGENE1" in capsys.readouterr().err
    rc = main(["histology", "evaluate", str(tmp_path), "--section", *section("C6"), "--metrics",
               str(tmp_path / "x.json"), "--quiet"])
    assert rc == 2 and "not a histology model bundle" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


# --- 10x Visium sections (a spaceranger outs/ folder) ----------------------------------------------------------

@pytest.fixture(scope="module")
def c6_visium(tmp_path_factory):
    """her2st C6 re-written as spaceranger writes it (tests/_visium.py): (folder above outs/, image, legacy C6)."""
    from _visium import her2st_as_visium
    from napari_spatial_impute.io.legacy_st import read_st_section

    legacy = read_st_section(*section("C6"))
    return her2st_as_visium(legacy, tmp_path_factory.mktemp("visium") / "C6"), section("C6")[2], legacy


def test_visium_outs_evaluates_as_the_same_section_in_legacy_files(bundle, c6_visium, tmp_path):
    """``evaluate --visium OUTS IMAGE`` on C6 written as a spaceranger folder gives the metrics of C6's legacy-ST
    files: the same spots (off-tissue rows dropped), counts, pixel size and scores."""
    from napari_spatial_impute.cli import main

    root, image, _ = c6_visium
    got = {}
    for kind, args in (("legacy", ["--section", *section("C6")]), ("visium", ["--visium", str(root / "outs"), image])):
        out = tmp_path / f"{kind}.json"
        assert main(["histology", "evaluate", str(bundle), *args, "--metrics", str(out), "--quiet"]) == 0
        got[kind] = json.loads(out.read_text())
    assert got["visium"]["n_spots"] == got["legacy"]["n_spots"] == 178
    for gene, row in got["legacy"]["per_gene"].items():
        assert got["visium"]["per_gene"][gene]["pcc"] == pytest.approx(row["pcc"], abs=1e-5), gene
    assert got["visium"]["pcc_mean_top50"] == pytest.approx(got["legacy"]["pcc_mean_top50"], abs=1e-6)


def test_train_takes_visium_and_legacy_sections_together(c6_visium, tmp_path, monkeypatch):
    """``train --section … --visium ROOT IMAGE`` hands both sections to the API, read alike (ROOT: the folder
    above outs/)."""
    from napari_spatial_impute.api import histology as api
    from napari_spatial_impute.cli import main

    class Seen(Exception):
        pass

    def capture(sections, **kwargs):
        raise Seen(sections)

    monkeypatch.setattr(api, "train_histology", capture)
    root, image, legacy = c6_visium
    with pytest.raises(Seen) as seen:
        main(["histology", "train", "--section", *section("C2"), "--visium", str(root), image,
              "--out", str(tmp_path / "m"), "--quiet"])
    c2, vis = seen.value.args[0]
    assert c2.n_obs > 0 and vis.uns["histology"]["platform"] == "visium"
    assert list(vis.obs_names) == list(legacy.obs_names)
    np.testing.assert_array_equal(np.asarray(vis.X.todense() if hasattr(vis.X, "todense") else vis.X),
                                  np.asarray(legacy.X))
    np.testing.assert_allclose(vis.obsm["spatial_px"], legacy.obsm["spatial_px"])
    assert vis.uns["histology"]["pixel_size_um"] == pytest.approx(legacy.uns["histology"]["pixel_size_um"])
    assert vis.uns["histology"]["section"] == "C6"  # the folder above outs/, not "outs"


def test_predict_reads_visium_tissue_positions(bundle, c6_visium, tmp_path):
    """``predict --spots spatial/tissue_positions.csv``: the in-tissue spots by barcode, the pixel size from the
    scale factors beside it — the values of the legacy spot file."""
    import anndata as ad

    from napari_spatial_impute.cli import main

    root, image, legacy = c6_visium
    out = tmp_path / "v.h5ad"
    assert main(["histology", "predict", str(bundle), "--image", image, "--spots",
                 str(root / "outs/spatial/tissue_positions.csv"), "--out", str(out), "--quiet"]) == 0
    a = ad.read_h5ad(out)
    assert list(a.obs_names) == list(legacy.obs_names)  # 178 in-tissue spots, the two off-tissue rows left out
    np.testing.assert_allclose(a.obsm["spatial_px"], legacy.obsm["spatial_px"])
    ref = ad.read_h5ad(_predict_legacy(bundle, tmp_path))[a.obs_names]
    assert a.uns["napari_spatial_impute"]["pixel_size_um"] == pytest.approx(legacy.uns["histology"]["pixel_size_um"])
    # close, not equal: the legacy file has one spot more (without counts), which the 100 µm smoothing reaches
    np.testing.assert_allclose(a.X, ref.X, atol=0.06)
    assert np.median(np.abs(a.X - ref.X)) < 0.005


def _predict_legacy(bundle, tmp_path):
    from napari_spatial_impute.cli import main

    _, spots, image = section("C6")
    out = tmp_path / "legacy.h5ad"
    assert main(["histology", "predict", str(bundle), "--image", image, "--spots", spots, "--out", str(out),
                 "--quiet"]) == 0
    return out


def test_visium_bad_arguments_exit_2(bundle, c6_visium, tmp_path, capsys):
    from napari_spatial_impute.cli import main

    root, image, _ = c6_visium
    rc = main(["histology", "evaluate", str(bundle), "--metrics", str(tmp_path / "x.json"), "--quiet"])
    assert rc == 2 and "--visium OUTS [IMAGE]" in capsys.readouterr().err
    rc = main(["histology", "evaluate", str(bundle), "--visium", str(root), image, image, "--metrics",
               str(tmp_path / "x.json"), "--quiet"])
    assert rc == 2 and "repeat --visium once per section" in capsys.readouterr().err
    rc = main(["histology", "evaluate", str(bundle), "--visium", str(root), image, "--section", *section("C6"),
               "--metrics", str(tmp_path / "x.json"), "--quiet"])
    assert rc == 2 and "One section needed, 2 given" in capsys.readouterr().err
    rc = main(["histology", "train", "--visium", str(tmp_path), "--out", str(tmp_path / "m"), "--quiet"])
    assert rc == 2 and "filtered_feature_bc_matrix.h5" in capsys.readouterr().err
    rc = main(["histology", "train", "--visium", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m"), "--quiet"])
    assert rc == 2 and "nowhere does not exist" in capsys.readouterr().err
    assert not (tmp_path / "m").exists() and not (tmp_path / "x.json").exists()


def test_visium_hd_bins_read_from_outs_parquet_positions_and_stated_pixel_size(bundle, c6_visium, tmp_path):
    """Visium HD (C6's spots written as ``outs/binned_outputs/square_008um``, tests/_visium.py): the folder above
    outs/ is recognised, its 8 µm bins read (positions from parquet, the pixel size from ``microns_per_pixel``,
    not the 55 µm spot's diameter), evaluated and predicted as the legacy files are."""
    from _visium import her2st_as_visium
    from napari_spatial_impute.cli import main
    from napari_spatial_impute.io import detect_platform, read_sample

    _, image, legacy = c6_visium
    root = her2st_as_visium(legacy, tmp_path / "HD1", hd=True)
    assert detect_platform(root) == "visium"
    sample = read_sample(root)
    notes = " ".join(sample.notes)
    assert sample.platform == "visium_hd" and "8 µm bins" in notes and "no H&E" in notes and not sample.images
    info = sample.adata.uns["histology"]
    assert info["spot_diameter_um"] == info["spot_pitch_um"] == 8.0 and info["section"] == "HD1_square_008um"
    assert info["pixel_size_um"] == pytest.approx(legacy.uns["histology"]["pixel_size_um"])
    np.testing.assert_allclose(sample.adata.obsm["spatial"], legacy.obsm["spatial"])  # µm, from full-res pixels
    from napari_spatial_impute.layers import sample_to_layers

    (_, kw, _), = [t for t in sample_to_layers(sample) if t[2] == "points"]
    assert kw["symbol"] == "square" and kw["size"] == pytest.approx(8.0)  # bins drawn at their size, as squares
    got = {}
    for kind, args in (("legacy", ["--section", *section("C6")]), ("hd", ["--visium", str(root), image])):
        out = tmp_path / f"{kind}.json"
        assert main(["histology", "evaluate", str(bundle), *args, "--metrics", str(out), "--quiet"]) == 0
        got[kind] = json.loads(out.read_text())
    assert got["hd"]["n_spots"] == 178
    assert got["hd"]["pcc_mean_top50"] == pytest.approx(got["legacy"]["pcc_mean_top50"], abs=1e-6)
    import anndata as ad

    out = tmp_path / "p.h5ad"
    positions = root / "outs/binned_outputs/square_008um/spatial/tissue_positions.parquet"
    assert main(["histology", "predict", str(bundle), "--image", image, "--spots", str(positions), "--out", str(out),
                 "--quiet"]) == 0
    a = ad.read_h5ad(out)
    assert list(a.obs_names) == list(legacy.obs_names)
    assert a.uns["napari_spatial_impute"]["pixel_size_um"] == pytest.approx(legacy.uns["histology"]["pixel_size_um"])


def test_visium_hd_bins_are_summed_into_pseudo_spots_for_the_model(bundle, c6_visium):
    """8 µm bins are far smaller than the 150 µm patches: evaluation (as training and per-spot prediction) sums
    them into 100 µm pseudo-spots. C6 with each spot's counts split at random over four bins 3 µm from its centre
    (a Visium HD-like section built from real counts): the pseudo-spots holding one spot's four bins get its exact
    counts and centre, nothing is lost, and the metrics are C6's (within what the few spots cut by a square's
    edge change)."""
    import anndata as ad
    import scipy.sparse as sp

    from napari_spatial_impute.api.histology import evaluate_histology
    from napari_spatial_impute.io.sections import pseudo_spots

    _, _, legacy = c6_visium
    rng = np.random.default_rng(0)
    counts = np.asarray(legacy.X).astype(np.int64)
    parts = np.stack([rng.multinomial(c, [0.25] * 4) for c in counts.ravel()]).reshape(*counts.shape, 4)
    offsets = np.array([[3, 3], [3, -3], [-3, 3], [-3, -3]], float)
    px = legacy.uns["histology"]["pixel_size_um"]
    bins = ad.AnnData(sp.csr_matrix(np.concatenate([parts[..., k] for k in range(4)]).astype(np.float32)),
                      var=legacy.var.copy(), obs=dict(spot=np.tile(legacy.obs_names, 4)))
    bins.obs_names = [f"{s}_{k}" for k in range(4) for s in legacy.obs_names]
    bins.obsm["spatial"] = np.concatenate([legacy.obsm["spatial"] + o for o in offsets])
    bins.obsm["spatial_px"] = np.concatenate([legacy.obsm["spatial_px"] + o / px for o in offsets])
    bins.uns["histology"] = {**legacy.uns["histology"], "spot_diameter_um": 8.0, "spot_pitch_um": 8.0,
                             "platform": "visium_hd"}
    pseudo = pseudo_spots(bins)
    assert sp.issparse(pseudo.X) and pseudo.X.sum() == counts.sum()
    whole = np.flatnonzero(pseudo.obs["n_bins"].to_numpy() == 4)
    assert len(whole) > 0.8 * legacy.n_obs  # most spots' four bins share a square
    for i in whole[:20]:
        j = np.argmin(np.linalg.norm(legacy.obsm["spatial"] - pseudo.obsm["spatial"][i], axis=1))
        np.testing.assert_allclose(pseudo.obsm["spatial"][i], legacy.obsm["spatial"][j], atol=1e-9)
        np.testing.assert_array_equal(pseudo.X[i].toarray().ravel(), counts[j])
    with pytest.warns(UserWarning, match=r"bins of 8 µm are far smaller .* summed into \d+ pseudo-spots of 100 µm"):
        m = evaluate_histology(str(bundle), bins)
    assert m["n_spots"] == pseudo.n_obs
    ref = evaluate_histology(str(bundle), legacy)
    assert m["pcc_mean_top50"] == pytest.approx(ref["pcc_mean_top50"], abs=0.05)  # 0.247 against 0.238 here
    from napari_spatial_impute.io.sections import at_patch_scale

    assert at_patch_scale(legacy, 150.0) is legacy  # 100 µm ST spots are read as they are
