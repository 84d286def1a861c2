"""Bad files given to the legacy-ST and Visium readers: each becomes an InputError naming the file and the fix
(never a raw pandas / json / OS traceback)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from napari_spatial_impute.errors import InputError
from napari_spatial_impute.io.legacy_st import read_spots_table, read_st_section
from napari_spatial_impute.io.visium import read_visium_section

SPOTS_HEADER = "x\ty\tpixel_x\tpixel_y\tselected\n"


def _st_files(d: Path) -> tuple[Path, Path, Path]:
    """A valid 2×2-spot legacy-ST section (counts, spots, image)."""
    d.mkdir(parents=True, exist_ok=True)
    counts, spots, image = d / "S1.tsv.gz", d / "S1_selection.tsv", d / "S1_HE.jpg"
    pd.DataFrame({"G1": [1, 2, 3, 4], "G2": [0, 1, 0, 1]}, index=["1x1", "2x1", "1x2", "2x2"]).to_csv(
        counts, sep="\t")
    spots.write_text(SPOTS_HEADER + "".join(f"{x}\t{y}\t{100 * x}\t{100 * y}\t1\n" for x in (1, 2) for y in (1, 2)))
    image.write_bytes(b"\xff\xd8")  # only its existence is checked here
    return counts, spots, image


def test_valid_st_section_still_reads(tmp_path):
    a = read_st_section(*_st_files(tmp_path), pixel_size_um=1.0)
    assert a.shape == (4, 2)


@pytest.mark.parametrize("content,problem", [
    (b"", r"is empty \(0 bytes\)"),
    (b"\n", r"has no data"),
    (SPOTS_HEADER.encode(), r"has a header but no rows"),
], ids=["zero-bytes", "blank-line", "header-only"])
def test_st_section_empty_spot_file(tmp_path, content, problem):
    counts, spots, image = _st_files(tmp_path)
    spots.write_bytes(content)
    with pytest.raises(InputError, match=rf"ST spot selection file .*S1_selection\.tsv {problem}.*Fix: give the"):
        read_st_section(counts, spots, image, pixel_size_um=1.0)


def test_st_section_empty_and_missing_counts(tmp_path):
    counts, spots, image = _st_files(tmp_path)
    with gzip.open(counts, "wb"):
        pass  # a valid gzip of nothing
    with pytest.raises(InputError, match=r"ST counts file .*S1\.tsv\.gz has no data.*Fix:"):
        read_st_section(counts, spots, image, pixel_size_um=1.0)
    counts.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 6)  # a gzip header cut short
    with pytest.raises(InputError, match=r"ST counts file .*S1\.tsv\.gz.*Fix:"):
        read_st_section(counts, spots, image, pixel_size_um=1.0)
    with pytest.raises(InputError, match=r"counts file .*nope\.tsv\.gz does not exist"):
        read_st_section(tmp_path / "nope.tsv.gz", spots, image)


@pytest.mark.parametrize("name,content,problem", [
    ("spots.tsv", b"", r"is empty \(0 bytes\)"),
    ("spots.csv", b"\n\n", r"has no data"),
    ("spots.csv", b"pixel_x,pixel_y\n", r"has a header but no rows"),
], ids=["zero-bytes", "blank", "header-only"])
def test_spots_table_empty(tmp_path, name, content, problem):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(InputError, match=rf"spots file .*{name} {problem}.*Fix: give the ST selection TSV"):
        read_spots_table(f)


def test_spots_table_missing_and_valid(tmp_path):
    with pytest.raises(InputError, match=r"spots file .*gone\.tsv does not exist"):
        read_spots_table(tmp_path / "gone.tsv")
    _, spots, _ = _st_files(tmp_path)
    ids, xy, _ = read_spots_table(spots)
    assert ids == ["1x1", "1x2", "2x1", "2x2"] and xy.shape == (4, 2)


# --- Visium spaceranger outs/ -------------------------------------------------------------------------------

BARCODES = ["AAAC-1", "AAAG-1", "AAAT-1"]


def _write_10x_h5(path: Path) -> None:
    """A 3 spots × 2 genes filtered_feature_bc_matrix.h5 (10x HDF5 v3 layout)."""
    from _visium import write_10x_h5

    write_10x_h5(path, pd.DataFrame([[1, 0], [0, 3], [2, 1]], index=BARCODES, columns=["GA", "GB"]))


def _visium_outs(d: Path) -> Path:
    (d / "spatial").mkdir(parents=True)
    _write_10x_h5(d / "filtered_feature_bc_matrix.h5")
    pd.DataFrame({"barcode": BARCODES, "in_tissue": 1, "array_row": [0, 1, 2], "array_col": [0, 2, 4],
                  "pxl_row_in_fullres": [100, 200, 300], "pxl_col_in_fullres": [110, 210, 310]}).to_csv(
        d / "spatial" / "tissue_positions.csv", index=False)
    (d / "spatial" / "scalefactors_json.json").write_text(json.dumps(
        {"spot_diameter_fullres": 110.0, "tissue_hires_scalef": 0.5}))
    return d


def test_valid_visium_outs_still_reads(tmp_path):
    a = read_visium_section(_visium_outs(tmp_path / "outs"), image=tmp_path / "he.tif")
    assert a.shape == (3, 2) and a.uns["histology"]["pixel_size_um"] == pytest.approx(0.5)


def test_visium_missing_scalefactors(tmp_path):
    d = _visium_outs(tmp_path / "outs")
    (d / "spatial" / "scalefactors_json.json").unlink()
    with pytest.raises(InputError, match=r"scale factors file .*scalefactors_json\.json does not exist.*Fix: copy"):
        read_visium_section(d, image=tmp_path / "he.tif")


@pytest.mark.parametrize("text,problem", [
    ("", "is not valid JSON"),
    ('{"spot_diameter_fullres": 1', "is not valid JSON"),
    ("[1, 2]", "holds a JSON list, not an object"),
], ids=["empty", "cut-short", "list"])
def test_visium_malformed_scalefactors(tmp_path, text, problem):
    d = _visium_outs(tmp_path / "outs")
    (d / "spatial" / "scalefactors_json.json").write_text(text)
    with pytest.raises(InputError, match=rf"scalefactors_json\.json {problem}.*Fix: copy"):
        read_visium_section(d, image=tmp_path / "he.tif")


@pytest.mark.parametrize("fname,content,problem", [
    ("tissue_positions.csv", "", r"is empty \(0 bytes\)"),
    ("tissue_positions.csv", "barcode,in_tissue\n", r"has a header but no rows"),
    ("tissue_positions.csv", "barcode,in_tissue\nAAAC-1,1\n", r"lacks column\(s\)"),
    ("tissue_positions_list.csv", "AAAC-1,1,0,0\n", r"has 4 columns, not the 6"),
], ids=["empty", "header-only", "columns-missing", "list-too-few-columns"])
def test_visium_bad_tissue_positions(tmp_path, fname, content, problem):
    d = _visium_outs(tmp_path / "outs")
    (d / "spatial" / "tissue_positions.csv").unlink()
    (d / "spatial" / fname).write_text(content)
    with pytest.raises(InputError, match=rf"tissue positions file .*{fname} {problem}.*Fix: copy the spatial/"):
        read_visium_section(d, image=tmp_path / "he.tif")


# --- read_table: an empty optional value in the last row is not a truncated file ------------------------------

CELLS = "cell_id,x_centroid,y_centroid,nucleus_area\nc1,1.0,2.0,3.5\nc2,2.0,3.0,4.5\nc3,3.0,4.0,"


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "csv.gz"])
def test_read_table_accepts_empty_optional_value_in_last_row(tmp_path, gz):
    from napari_spatial_impute.io.tables import read_table

    f = tmp_path / ("cells.csv.gz" if gz else "cells.csv")
    data = (CELLS + "\n").encode()
    f.write_bytes(gzip.compress(data) if gz else data)
    df = read_table(f, what="Xenium cells", required=["cell_id", "x_centroid", "y_centroid"])
    assert len(df) == 3 and df["nucleus_area"].isna().tolist() == [False, False, True]


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "csv.gz"])
def test_read_table_still_refuses_a_truncated_file(tmp_path, gz):
    from napari_spatial_impute.io.tables import read_table

    f = tmp_path / ("cells.csv.gz" if gz else "cells.csv")
    data = CELLS.encode()  # cut after "c3,3.0,4.0," : no line end
    f.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(InputError, match=r"cells\.csv(\.gz)? looks truncated.*nucleus_area.*Fix: copy the file"):
        read_table(f, what="Xenium cells")
    f.write_bytes(b"cell_id,x_centroid,y_centroid\nc1,1.0,2.0\nc2,2.0,")  # cut in a required column
    with pytest.raises(InputError, match=r"looks truncated: its last row has no value in column.*y_centroid"):
        read_table(f, what="Xenium cells", required=["x_centroid", "y_centroid"])
    f.write_bytes(gzip.compress((CELLS + "\n").encode())[:-12])  # gzip stream cut short
    with pytest.raises(InputError, match=r"truncated or corrupt"):
        read_table(f, what="Xenium cells")


def test_read_table_names_an_empty_required_value_in_a_complete_file(tmp_path):
    from napari_spatial_impute.io.tables import read_table

    f = tmp_path / "cells.csv"
    f.write_text("cell_id,x_centroid,y_centroid\nc1,1.0,2.0\nc2,2.0,\n")
    with pytest.raises(InputError, match=r"1 empty value\(s\) in column 'y_centroid' \(first at data row 2\)"):
        read_table(f, what="Xenium cells", required=["y_centroid"])


def test_visium_hd_bad_parquet_positions_and_no_pixel_size(tmp_path):
    """Visium HD: a damaged ``tissue_positions.parquet`` and scale factors with neither ``microns_per_pixel``
    nor ``spot_diameter_fullres`` are named with the fix; a bin folder is found from the folder above outs/."""
    from napari_spatial_impute.io.layouts import visium_folder

    d = _visium_outs(tmp_path / "run" / "outs" / "binned_outputs" / "square_008um")
    (d / "spatial" / "tissue_positions.csv").unlink()
    (d / "spatial" / "tissue_positions.parquet").write_bytes(b"PAR1 cut short")
    assert visium_folder(tmp_path / "run") == d
    with pytest.raises(InputError, match=r"Could not read the Visium tissue positions .*parquet.*Fix: copy"):
        read_visium_section(tmp_path / "run", image=tmp_path / "he.tif")
    pd.DataFrame({"barcode": BARCODES, "in_tissue": 1, "array_row": [0, 1, 2], "array_col": [0, 2, 4],
                  "pxl_row_in_fullres": [100, 200, 300], "pxl_col_in_fullres": [110, 210, 310]}).to_parquet(
        d / "spatial" / "tissue_positions.parquet")
    (d / "spatial" / "scalefactors_json.json").write_text(json.dumps({"bin_size_um": 8.0}))
    with pytest.raises(InputError, match=r"microns_per_pixel.*pixel size is unknown.*Fix: pass pixel_size_um"):
        read_visium_section(tmp_path / "run", image=tmp_path / "he.tif")
    (d / "spatial" / "scalefactors_json.json").write_text(json.dumps({"bin_size_um": 8.0, "microns_per_pixel": 0.5}))
    a = read_visium_section(tmp_path / "run", image=tmp_path / "he.tif")
    assert a.uns["histology"]["pixel_size_um"] == 0.5 and a.uns["histology"]["spot_diameter_um"] == 8.0
    assert a.uns["histology"]["platform"] == "visium_hd"
