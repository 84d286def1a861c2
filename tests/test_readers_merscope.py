"""MERSCOPE reader on the real mouse-brain mini crop (Giotto layout) and an official-layout copy of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_spatial_impute.coords import apply_affine_xy, invert_affine
from napari_spatial_impute.errors import InputError
from napari_spatial_impute.io import read_merscope, read_sample

DATA = Path(__file__).resolve().parents[2] / "shared/datasets/merscope_mouse_brain_mini"
pytestmark = pytest.mark.skipif(not DATA.exists(), reason=f"shared dataset absent: {DATA}")
#: PROVENANCE.md (GDAL .aux.xml of the source rasters): x = 6400.029 + 0.1086265·col, y = 4699.967 + 0.1086266·row
PROV = np.array([[0.1086265, 0, 6400.029], [0, 0.1086266, 4699.967], [0, 0, 1.0]])
PROV_CENTRE = PROV @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1.0]])


@pytest.fixture(scope="module")
def sample():
    return read_merscope(DATA)


def _label_at(lab, xy):
    cr = np.floor(apply_affine_xy(invert_affine(lab.affine), xy) + 0.5).astype(int)
    return lab.data[cr[:, 1], cr[:, 0]]


def test_cells_counted_in_polygons(sample):
    a = sample.adata
    assert a.n_obs == 505  # 498 polygons in z0 + 7 only in z1
    assert a.n_vars == 410 and not any(g.lower().startswith("blank") for g in a.var_names)
    assert a.X.sum() == 32283  # transcripts inside a polygon of their own z plane (not Blank)
    assert sample.boundaries["cell_id"].nunique() == 498
    assert len(sample.transcripts) == 80343 - 337  # Blank-* dropped from the display


def test_golden_centroids_and_polygon_y_flip(sample):
    a = sample.adata
    np.testing.assert_allclose(a[["40951783403982682273285375368232495429"]].obsm["spatial"][0],
                               [6405.0673, 4780.4991], atol=1e-3)
    xy = a.obsm["spatial"]
    assert (xy[:, 1] > 4690).all() and (xy[:, 1] < 5160).all()  # polygon y was negated in the files
    assert any("negated" in n for n in sample.notes)


def test_estimated_image_placement_matches_provenance(sample):
    assert [i.name for i in sample.images] == ["dapi z0", "polyT z0"]
    img = sample.images[0]
    corners = np.array([[0, 0], [4602, 4142]], dtype=float)
    np.testing.assert_allclose(apply_affine_xy(img.affine, corners), apply_affine_xy(PROV_CENTRE, corners), atol=0.05)


def test_transform_file_gives_the_exact_transform(tmp_path):
    shutil.copytree(DATA, tmp_path / "m")
    np.savetxt(tmp_path / "m" / "images" / "micron_to_mosaic_pixel_transform.csv", np.linalg.inv(PROV), delimiter=" ")
    s = read_merscope(tmp_path / "m", transcripts=False)
    np.testing.assert_allclose(s.images[0].affine, PROV_CENTRE, atol=1e-9)


def test_centroids_in_own_label_and_nuclei_under_cells(sample):
    lab = sample.labels[0]
    inv = {v: k for k, v in lab.label_to_obs.items()}
    names = sample.boundaries["cell_id"].unique()
    own = _label_at(lab, sample.adata[names].obsm["spatial"]) == np.array([inv[n] for n in names])
    assert own.mean() >= 0.95
    # DAPI is brighter under cell polygons than outside them: the image lines up with the cells
    img = sample.images[0]
    rows, cols = np.mgrid[0:img.shape[0]:8, 0:img.shape[1]:8]
    xy = apply_affine_xy(img.affine, np.column_stack([cols.ravel(), rows.ravel()]))
    cr = np.floor(apply_affine_xy(invert_affine(lab.affine), xy) + 0.5).astype(int)
    ok = (cr[:, 0] >= 0) & (cr[:, 0] < lab.data.shape[1]) & (cr[:, 1] >= 0) & (cr[:, 1] < lab.data.shape[0])
    in_cell = np.zeros(len(xy), bool)
    in_cell[ok] = lab.data[cr[ok, 1], cr[ok, 0]] > 0
    dapi = img.data[rows.ravel(), cols.ravel()].astype(float)
    assert dapi[in_cell].mean() > 1.3 * dapi[~in_cell].mean()


def test_official_layout(sample, tmp_path):
    """cell_by_gene.csv + cell_metadata.csv (+ detected_transcripts.csv) as MERSCOPE writes them."""
    a = sample.adata
    cbg = pd.DataFrame(a.X.toarray().astype(int), columns=a.var_names, index=pd.Index(a.obs_names, name="cell"))
    cbg["Blank-1"] = 1
    cbg.to_csv(tmp_path / "cell_by_gene.csv")
    xy = a.obsm["spatial"]
    pd.DataFrame({"fov": 0, "volume": 1.0, "center_x": xy[:, 0], "center_y": xy[:, 1]},
                 index=pd.Index(a.obs_names, name="EntityID")).to_csv(tmp_path / "cell_metadata.csv")
    tx = pd.read_csv(DATA / "vizgen_transcripts.gz")
    tx.assign(cell_id=-1).to_csv(tmp_path / "detected_transcripts.csv")
    s = read_sample(tmp_path)
    assert s.platform == "merscope" and s.adata.shape == a.shape
    np.testing.assert_array_equal(s.adata.X.toarray(), a.X.toarray())
    np.testing.assert_allclose(s.adata.obsm["spatial"], xy)
    assert len(s.transcripts) == 80343 - 337


def test_missing_cells_are_explained(tmp_path):
    shutil.copy(DATA / "vizgen_transcripts.gz", tmp_path)
    with pytest.raises(InputError, match="neither cell_by_gene.csv nor cell boundaries"):
        read_merscope(tmp_path)


def test_metadata_missing_is_named(sample, tmp_path):
    pd.DataFrame({"cell": ["a"], "Gad1": [1]}).to_csv(tmp_path / "cell_by_gene.csv", index=False)
    with pytest.raises(InputError, match="no cell_metadata.csv"):
        read_merscope(tmp_path)


def _wkb_polygon(xy: np.ndarray) -> bytes:
    import struct

    ring = np.vstack([xy, xy[:1]])
    return (struct.pack("<BII", 1, 3, 1) + struct.pack("<I", len(ring)) + ring.astype("<f8").tobytes())


def _wkb_multipolygon(xy: np.ndarray) -> bytes:
    import struct

    return struct.pack("<BII", 1, 6, 1) + _wkb_polygon(xy)


def test_boundaries_parquet_with_wkb_geometry(sample, tmp_path):
    """cell_boundaries.parquet (EntityID, ZIndex, Geometry as WKB MultiPolygon), as MERSCOPE / VPT write it."""
    b = sample.boundaries
    rows = [{"EntityID": cid, "ZIndex": 0, "Geometry": (_wkb_multipolygon if i % 2 else _wkb_polygon)(
        g[["x", "y"]].to_numpy())} for i, (cid, g) in enumerate(b.groupby("cell_id", sort=False))]
    pd.DataFrame(rows).to_parquet(tmp_path / "cell_boundaries.parquet")
    shutil.copy(DATA / "vizgen_transcripts.gz", tmp_path / "detected_transcripts.csv.gz")
    s = read_merscope(tmp_path, images=False)
    assert s.adata.n_obs == 498 and s.boundaries["cell_id"].nunique() == 498
    ref = sample.adata[s.adata.obs_names]
    np.testing.assert_allclose(s.adata.obsm["spatial"], ref.obsm["spatial"], atol=1e-6)
    # counts from z0 polygons only here (no z1 boundaries given): never more than with both planes
    assert 0 < s.adata.X.sum() <= sample.adata.X.sum()


def test_wkb_reader_handles_z_and_big_endian():
    import struct

    from napari_spatial_impute.io.wkb import wkb_outer_ring

    ring = np.array([[0, 0], [2, 0], [2, 1], [0, 0]], dtype=float)
    xyz = np.column_stack([ring, np.full(4, 7.0)])
    z_poly = struct.pack("<BII", 1, 1003, 1) + struct.pack("<I", 4) + xyz.astype("<f8").tobytes()
    be_poly = struct.pack(">BII", 0, 3, 1) + struct.pack(">I", 4) + ring.astype(">f8").tobytes()
    np.testing.assert_array_equal(wkb_outer_ring(z_poly), ring)
    np.testing.assert_array_equal(wkb_outer_ring(be_poly), ring)


def _square(cid: str, x0: float, y0: float, size: float = 10.0) -> pd.DataFrame:
    return pd.DataFrame({"cell_id": cid, "x": [x0, x0 + size, x0 + size, x0], "y": [y0, y0, y0 + size, y0 + size]})


def _no_z_folder(folder: Path) -> Path:
    """Two polygon planes and a transcripts table without global_z (Giotto layout, synthetic)."""
    (folder / "cell_boundaries").mkdir(parents=True)
    # z0: A at [0, 10]², P at [40, 50]²; z1: B at [20, 30]², Q at [45, 55]² (overlaps P)
    pd.concat([_square("A", 0, 0), _square("P", 40, 0)]).to_csv(folder / "cell_boundaries" / "z0_polygons.csv",
                                                                  index=False)
    pd.concat([_square("B", 20, 0), _square("Q", 45, 0)]).to_csv(folder / "cell_boundaries" / "z1_polygons.csv",
                                                                  index=False)
    pd.DataFrame({"global_x": [5.0, 25.0, 35.0, 47.0, 52.0], "global_y": [5.0, 5.0, 5.0, 5.0, 5.0],
                  "gene": ["g1", "g2", "g1", "g1", "g2"]}).to_csv(folder / "sample_transcripts.csv", index=False)
    return folder


def test_counts_without_z_keep_hits_of_every_plane(tmp_path):
    """Without global_z a transcript counts for the cell whose polygon holds it on any plane (a later plane
    must not overwrite an earlier hit); where cells of two planes overlap, the shown plane wins."""
    folder = _no_z_folder(tmp_path / "m")
    a = read_merscope(folder, images=False).adata
    counts = pd.DataFrame(a.X.toarray(), index=a.obs_names, columns=a.var_names)
    # (5,5) in A (z0), (25,5) in B (z1), (35,5) in none, (47,5) in P (z0) and Q (z1) → P, (52,5) only in Q
    assert counts.loc["A"].to_dict() == {"g1": 1, "g2": 0}
    assert counts.loc["B"].to_dict() == {"g1": 0, "g2": 1}
    assert counts.loc["P"].to_dict() == {"g1": 1, "g2": 0}
    assert counts.loc["Q"].to_dict() == {"g1": 0, "g2": 1}
    assert a.X.sum() == 4
    shown_z1 = read_merscope(folder, images=False, z_plane=1).adata
    assert shown_z1[["Q"]].X.sum() == 2 and shown_z1[["P"]].X.sum() == 0 and shown_z1[["A"]].X.sum() == 1
