"""Xenium reader on the real 10x sample (matrix + cells) and on a full synthetic folder built from it."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_spatial_impute.coords import apply_affine_xy, invert_affine
from napari_spatial_impute.errors import InputError
from napari_spatial_impute.io import read_sample, read_xenium

DATA = Path(__file__).resolve().parents[2] / "shared/datasets/xenium_mouse_brain_ctx_hp"
pytestmark = pytest.mark.skipif(not DATA.exists(), reason=f"shared dataset absent: {DATA}")


@pytest.fixture(scope="module")
def sample():
    return read_xenium(DATA)


def test_real_sample_shapes_genes_and_golden_coordinates(sample):
    a = sample.adata
    assert a.shape == (36602, 248)  # 248 "Gene Expression" of 541 features
    assert list(a.var_names[:4]) == ["2010300C02Rik", "Acsbg1", "Acta2", "Acvrl1"]
    assert not any(g.startswith(("NegControl", "BLANK", "Unassigned")) for g in a.var_names)
    assert {"Gfap", "Sox10", "Vip"} <= set(a.var_names)
    assert sample.platform == "xenium" and sample.unit == "um"
    # golden centroids (µm) straight from cells.csv.gz rows 1 and 3
    np.testing.assert_allclose(a[["1", "3"]].obsm["spatial"],
                               [[1898.8149169921874, 2540.963146972656], [2368.07322998, 2534.40926514]],
                               rtol=0, atol=1e-6)
    xy = a.obsm["spatial"]
    assert 234 < xy[:, 0].min() < 235 and 5446 < xy[:, 0].max() < 5448
    assert 181 < xy[:, 1].min() < 182 and 3533 < xy[:, 1].max() < 3535


def test_matrix_rows_join_the_cells_table(sample):
    # transcript_counts in cells.csv.gz = gene counts of the same cell in the h5: proves the row join
    counts = np.asarray(sample.adata.X.sum(axis=1)).ravel()
    np.testing.assert_array_equal(counts, sample.adata.obs["transcript_counts"].to_numpy())


def test_read_sample_detects_folder_and_h5_file():
    assert read_sample(DATA).adata.n_obs == 36602
    assert read_sample(DATA / "cell_feature_matrix.h5").adata.n_obs == 36602


# --- a complete synthetic folder around the real cells ------------------------------------------------------

def _write_ome(path: Path, img: np.ndarray, pixel_size: float) -> None:
    import tifffile

    tifffile.imwrite(path, img, ome=True, metadata={"axes": "YX", "PhysicalSizeX": pixel_size,
                                                    "PhysicalSizeY": pixel_size, "Channel": {"Name": ["DAPI"]}})


@pytest.fixture(scope="module")
def full_folder(tmp_path_factory, sample):
    """Real matrix + cells, plus a DAPI OME-TIFF (2 µm/px) with a nucleus drawn at each centroid, transcripts
    and hexagonal boundaries for the cells of a 300 µm window."""
    d = tmp_path_factory.mktemp("xenium")
    shutil.copy(DATA / "cell_feature_matrix.h5", d)
    shutil.copy(DATA / "cells.csv.gz", d)
    ps = 2.0
    xy = sample.adata.obsm["spatial"]
    h, w = int(3600 / ps), int(5500 / ps)
    img = np.zeros((h, w), dtype=np.uint16)
    cols = np.floor(xy[:, 0] / ps).astype(int)
    rows = np.floor(xy[:, 1] / ps).astype(int)
    img[rows, cols] = 1000
    (d / "morphology_focus").mkdir()
    _write_ome(d / "morphology_focus" / "morphology_focus_0000.ome.tif", img, ps)
    rng = np.random.default_rng(0)
    genes = np.array(["Gfap", "Vip", "NegControlProbe_00042", "BLANK_0001"])
    n = 4000
    pd.DataFrame({"transcript_id": np.arange(n), "cell_id": rng.choice(sample.adata.obs_names[:50], n),
                  "x_location": rng.uniform(1000, 1300, n), "y_location": rng.uniform(1000, 1300, n),
                  "z_location": rng.uniform(0, 10, n), "feature_name": rng.choice(genes, n),
                  "qv": rng.uniform(0, 40, n)}).to_parquet(d / "transcripts.parquet")
    win = np.flatnonzero((xy[:, 0] > 1000) & (xy[:, 0] < 1300) & (xy[:, 1] > 1000) & (xy[:, 1] < 1300))
    ang = np.linspace(0, 2 * np.pi, 7)[:-1]
    rows_b = [{"cell_id": sample.adata.obs_names[i], "vertex_x": xy[i, 0] + 2.5 * np.cos(t),
               "vertex_y": xy[i, 1] + 2.5 * np.sin(t)} for i in win for t in ang]
    pd.DataFrame(rows_b).to_parquet(d / "cell_boundaries.parquet")
    (d / "experiment.xenium").write_text(json.dumps({"pixel_size": ps, "analysis_sw_version": "xenium-1.9"}))
    return d, win


def test_full_folder_images_transcripts_boundaries_line_up(full_folder, sample):
    d, win = full_folder
    s = read_xenium(d)
    assert [i.name for i in s.images] == ["DAPI"]
    img = s.images[0]
    assert img.pixel_size_um == pytest.approx(2.0)
    # every cell centroid lands on its drawn nucleus pixel
    cr = np.floor(apply_affine_xy(invert_affine(img.affine), s.adata.obsm["spatial"]) + 0.5).astype(int)
    data = np.asarray(img.data[0] if isinstance(img.data, list) else img.data)
    assert (data[cr[:, 1], cr[:, 0]] == 1000).mean() == 1.0
    # transcripts: qv ≥ 20 and no control probes
    tx = s.transcripts
    assert set(tx["gene"].astype(str)) == {"Gfap", "Vip"} and (tx["qv"] >= 20).all()
    assert 0.2 * 4000 < len(tx) < 0.35 * 4000
    # boundaries → labels: each centroid in the window falls inside its own label
    assert s.boundaries["cell_id"].nunique() == len(win)
    lab = s.labels[0]
    inv = {v: k for k, v in lab.label_to_obs.items()}
    names = s.adata.obs_names[win]
    cr = np.floor(apply_affine_xy(invert_affine(lab.affine), s.adata.obsm["spatial"][win]) + 0.5).astype(int)
    own = lab.data[cr[:, 1], cr[:, 0]] == np.array([inv[n] for n in names])
    assert own.mean() >= 0.95


def test_pixel_size_from_ome_metadata_without_experiment_file(full_folder, tmp_path):
    d, _ = full_folder
    e = tmp_path / "x"
    shutil.copytree(d, e)
    (e / "experiment.xenium").unlink()
    s = read_xenium(e, transcripts=False, boundaries=False)
    assert s.images[0].pixel_size_um == pytest.approx(2.0)


# --- bad input ---------------------------------------------------------------------------------------------

def test_missing_cells_file_is_named(tmp_path):
    shutil.copy(DATA / "cell_feature_matrix.h5", tmp_path)
    with pytest.raises(InputError, match=r"cells\.parquet / cells\.csv\.gz"):
        read_xenium(tmp_path)


def test_missing_matrix_is_named(tmp_path):
    shutil.copy(DATA / "cells.csv.gz", tmp_path)
    with pytest.raises(InputError, match="cell_feature_matrix.h5"):
        read_sample(tmp_path)  # still recognised as Xenium from cells.csv.gz


def test_truncated_cells_table_is_named(tmp_path):
    shutil.copy(DATA / "cell_feature_matrix.h5", tmp_path)
    raw = (DATA / "cells.csv.gz").read_bytes()
    (tmp_path / "cells.csv.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=r"cells\.csv\.gz"):
        read_xenium(tmp_path)


def test_unknown_export_version_names_columns(tmp_path):
    shutil.copy(DATA / "cell_feature_matrix.h5", tmp_path)
    cells = pd.read_csv(DATA / "cells.csv.gz").rename(columns={"x_centroid": "cx", "y_centroid": "cy"})
    with gzip.open(tmp_path / "cells.csv.gz", "wt") as fh:
        cells.to_csv(fh, index=False)
    with pytest.raises(InputError, match=r"unknown Xenium export version.*x_centroid"):
        read_xenium(tmp_path)


def test_image_that_disagrees_with_coordinates(full_folder, tmp_path):
    d, _ = full_folder
    e = tmp_path / "x"
    shutil.copytree(d, e)
    _write_ome(e / "morphology_focus" / "morphology_focus_0000.ome.tif", np.zeros((100, 120), np.uint16), 2.0)
    with pytest.raises(InputError, match=r"morphology_focus_0000\.ome\.tif.*does not match"):
        read_xenium(e)


def test_mtx_matrix_folder_and_cells_parquet(sample, tmp_path):
    """XOA also writes cell_feature_matrix/ (Matrix Market) and cells.parquet: same cells, genes and counts."""
    import h5py
    import scipy.io
    import scipy.sparse as sp

    d = tmp_path / "x"
    (d / "cell_feature_matrix").mkdir(parents=True)
    with h5py.File(DATA / "cell_feature_matrix.h5") as f:
        m = f["matrix"]
        mat = sp.csc_matrix((m["data"][:], m["indices"][:], m["indptr"][:]), shape=tuple(m["shape"][:]))
        names = [b.decode() for b in m["features"]["name"][:]]
        ids = [b.decode() for b in m["features"]["id"][:]]
        types = [b.decode() for b in m["features"]["feature_type"][:]]
        barcodes = [b.decode() for b in m["barcodes"][:]]
    mat, barcodes = mat[:, :3000], barcodes[:3000]  # a slice keeps the text Matrix Market quick
    with gzip.open(d / "cell_feature_matrix" / "matrix.mtx.gz", "wb") as fh:
        scipy.io.mmwrite(fh, mat)
    pd.DataFrame({"id": ids, "name": names, "type": types}).to_csv(
        d / "cell_feature_matrix" / "features.tsv.gz", sep="\t", header=False, index=False)
    pd.Series(barcodes).to_csv(d / "cell_feature_matrix" / "barcodes.tsv.gz", sep="\t", header=False, index=False)
    pd.read_csv(DATA / "cells.csv.gz").to_parquet(d / "cells.parquet")
    s = read_sample(d)
    ref = sample.adata[:3000]
    assert s.platform == "xenium" and s.adata.n_obs == 3000 and list(s.adata.var_names) == list(ref.var_names)
    assert (s.adata.X != ref.X).nnz == 0
    np.testing.assert_allclose(s.adata.obsm["spatial"], ref.obsm["spatial"])


@pytest.mark.parametrize("prefix,align_name", [
    ("Xenium_V1_FFPE_Human_Breast_IDC_With_Addon", "Xenium_V1_FFPE_Human_Breast_IDC_With_Addon_he_imagealignment.csv"),
    ("sample", "sample_he_image_alignment.csv")], ids=["10x-name", "underscored-name"])
def test_post_xenium_he_is_placed_through_its_alignment(full_folder, tmp_path, prefix, align_name):
    import tifffile

    d, _ = full_folder
    e = tmp_path / "x"
    shutil.copytree(d, e)
    # H&E pixels twice as large as morphology pixels, shifted by (10, 20) morphology pixels
    tifffile.imwrite(e / f"{prefix}_he_image.ome.tif", np.zeros((900, 1400, 3), np.uint8), photometric="rgb")
    np.savetxt(e / align_name, [[2, 0, 10], [0, 2, 20], [0, 0, 1]], delimiter=",")
    s = read_xenium(e, transcripts=False, boundaries=False)
    he = next(i for i in s.images if i.name == "H&E")
    assert he.rgb
    # H&E pixel (col 0, row 0) → morphology px (10, 20) → µm at 2 µm/px (+ half a morphology pixel)
    np.testing.assert_allclose(apply_affine_xy(he.affine, [[0, 0], [1, 0]]), [[21.0, 41.0], [25.0, 41.0]])
