"""CosMx flat-file reader on the real Lung12 mini export (tx file + FOV positions + label masks + composites)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_spatial_impute.coords import apply_affine_xy, invert_affine
from napari_spatial_impute.errors import InputError
from napari_spatial_impute.io import read_cosmx, read_sample

DATA = Path(__file__).resolve().parents[2] / "shared/datasets/cosmx_nsclc_lung12_mini"
pytestmark = pytest.mark.skipif(not DATA.exists(), reason=f"shared dataset absent: {DATA}")


@pytest.fixture(scope="module")
def sample():
    return read_cosmx(DATA)


def _pixel_of(lab, xy):
    return np.floor(apply_affine_xy(invert_affine(lab.affine), xy) + 0.5).astype(int)


def _label_at(lab, xy):
    cr = _pixel_of(lab, xy)
    ok = (cr[:, 0] >= 0) & (cr[:, 0] < lab.data.shape[1]) & (cr[:, 1] >= 0) & (cr[:, 1] < lab.data.shape[0])
    out = np.zeros(len(xy), dtype=np.int64)
    out[ok] = lab.data[cr[ok, 1], cr[ok, 0]]
    return out


def test_cell_by_gene_counted_from_transcripts(sample):
    a = sample.adata
    assert a.shape == (120, 960)  # 67 cells in FOV 2, 53 in FOV 3; 960-plex panel without NegPrb
    assert (a.obs["fov"] == 2).sum() == 67 and (a.obs["fov"] == 3).sum() == 53
    assert not any(g.startswith("NegPrb") for g in a.var_names)
    tx = pd.read_csv(DATA / "Lung12_tx_file.csv")
    real = tx[(tx.cell_ID > 0) & ~tx.target.str.startswith("NegPrb")]
    assert a.X.sum() == len(real)
    # one cell checked gene by gene against the raw file: per-FOV ids (2_12 ≠ 3_12)
    c = real[(real.fov == 2) & (real.cell_ID == 12)].target.value_counts()
    row = a["2_12"].X.toarray().ravel()
    got = pd.Series(row, index=a.var_names)
    assert got[got > 0].sort_index().to_dict() == c.sort_index().astype(float).to_dict()
    assert a.obs.loc["2_12", "neg_probe_counts"] == ((tx.fov == 2) & (tx.cell_ID == 12)
                                                    & tx.target.str.startswith("NegPrb")).sum()


def test_golden_coordinates_in_um(sample):
    # label centroid of cell 12 in FOV 2, mapped local px → global px (y up) → µm (y down) at 0.12028 µm/px
    np.testing.assert_allclose(sample.adata[["2_12", "3_1"]].obsm["spatial"],
                               [[706.4585, 18838.1162], [763.8457, 18838.5125]], atol=1e-3)
    # FOV 3's crop (x_local 0-672) abuts FOV 2's (x_local 4800-5472) at global x = 5966.7 px = 717.7 µm
    assert sample.adata.obsm["spatial"][sample.adata.obs.fov == 3, 0].min() > 717.7
    assert sample.adata.obsm["spatial"][sample.adata.obs.fov == 2, 0].max() < 717.8
    tx = sample.transcripts
    first = pd.read_csv(DATA / "Lung12_tx_file.csv", nrows=1)
    np.testing.assert_allclose([tx.x[0], tx.y[0]], [first.x_global_px[0] * 0.12028, -first.y_global_px[0] * 0.12028],
                               rtol=1e-6)


def test_transcripts_fall_in_their_own_label(sample):
    tx = sample.transcripts
    for lab in sample.labels:
        fov = int(lab.name[-3:])
        t = tx[(tx.fov == fov) & (tx.cell_ID > 0)]
        hit = _label_at(lab, t[["x", "y"]].to_numpy()) == t.cell_ID.to_numpy()
        assert hit.mean() >= 0.95, (lab.name, hit.mean())


def test_centroids_fall_in_their_own_label(sample):
    inside = []
    for lab in sample.labels:
        inv = {v: k for k, v in lab.label_to_obs.items()}
        names = list(inv)
        got = _label_at(lab, sample.adata[names].obsm["spatial"])
        inside.extend(got == np.array([inv[n] for n in names]))
    assert len(inside) == 120 and np.mean(inside) >= 0.95


def test_centroids_from_transcripts_without_masks_also_land_in_labels(sample, tmp_path):
    for f in ("Lung12_tx_file.csv", "Lung12_fov_positions_file.csv"):
        shutil.copy(DATA / f, tmp_path)
    s = read_cosmx(tmp_path)
    assert (s.adata.obs["centroid_source"] == "transcripts").all() and not s.labels
    inside = []
    for lab in sample.labels:
        inv = {v: k for k, v in lab.label_to_obs.items()}
        names = list(inv)
        inside.extend(_label_at(lab, s.adata[names].obsm["spatial"]) == np.array([inv[n] for n in names]))
    assert np.mean(inside) >= 0.95


def test_composite_lines_up_with_labels(sample):
    for img, lab in zip(sample.images, sample.labels):
        np.testing.assert_allclose(img.affine, lab.affine)
        blue = img.data[..., 2].astype(float)  # DAPI channel of the composite
        assert blue[lab.data > 0].mean() > 2 * blue[lab.data == 0].mean()


def test_expr_matrix_and_metadata_export_with_FOV_spelling(sample, tmp_path):
    """A newer-style export (exprMat + metadata, 'FOV' / 'cell_id' headers) gives the same cells and places."""
    a = sample.adata
    expr = pd.DataFrame(a.X.toarray().astype(int), columns=a.var_names)
    expr.insert(0, "cell_id", a.obs["cell_ID"].to_numpy())
    expr.insert(0, "FOV", a.obs["fov"].to_numpy())
    expr["NegPrb1"] = a.obs["neg_probe_counts"].to_numpy()
    expr.to_csv(tmp_path / "Run_exprMat_file.csv", index=False)
    xy = a.obsm["spatial"]
    pd.DataFrame({"FOV": a.obs["fov"], "cell_id": a.obs["cell_ID"], "Area": 100,
                  "CenterX_global_px": xy[:, 0] / 0.12028, "CenterY_global_px": -xy[:, 1] / 0.12028}
                 ).to_csv(tmp_path / "Run_metadata_file.csv", index=False)
    pos = pd.read_csv(DATA / "Lung12_fov_positions_file.csv").rename(columns={"fov": "FOV"})
    pos.to_csv(tmp_path / "Run_fov_positions_file.csv", index=False)
    s = read_cosmx(tmp_path)
    assert s.adata.shape == a.shape and list(s.adata.obs_names) == list(a.obs_names)
    np.testing.assert_array_equal(s.adata.X.toarray(), a.X.toarray())
    np.testing.assert_allclose(s.adata.obsm["spatial"], xy, atol=1e-6)
    assert (s.adata.obs["centroid_source"] == "metadata").all() and "Area" in s.adata.obs


def test_read_sample_detects_cosmx():
    assert read_sample(DATA).platform == "cosmx"


# --- bad input ---------------------------------------------------------------------------------------------

def test_missing_counts_files_are_named(tmp_path):
    shutil.copy(DATA / "Lung12_fov_positions_file.csv", tmp_path)
    with pytest.raises(InputError, match=r"_exprMat_file\.csv nor \*_tx_file\.csv"):
        read_cosmx(tmp_path)


def test_truncated_tx_file_is_named(tmp_path):
    raw = (DATA / "Lung12_tx_file.csv").read_bytes()
    cut = raw[: len(raw) // 2]
    cut = cut[: cut.rfind(b"\n") + 1] + b"2,0,5324.26,-157187.5"  # last line cut mid-row
    (tmp_path / "Lung12_tx_file.csv").write_bytes(cut)
    with pytest.raises(InputError, match=r"Lung12_tx_file\.csv looks truncated"):
        read_cosmx(tmp_path)


def test_unknown_export_version_is_named(tmp_path):
    tx = pd.read_csv(DATA / "Lung12_tx_file.csv").rename(columns={"x_global_px": "xg", "target": "probe"})
    tx.to_csv(tmp_path / "Run_tx_file.csv", index=False)
    with pytest.raises(InputError, match=r"Run_tx_file\.csv: unknown CosMx export version.*target"):
        read_cosmx(tmp_path)


def test_label_mask_that_disagrees_with_coordinates(tmp_path):
    import tifffile

    shutil.copytree(DATA, tmp_path / "c")
    tifffile.imwrite(tmp_path / "c" / "CellLabels" / "CellLabels_F002.tif", np.zeros((100, 100), np.int32))
    with pytest.raises(InputError, match=r"CellLabels_F002\.tif.*does not match"):
        read_cosmx(tmp_path / "c")
