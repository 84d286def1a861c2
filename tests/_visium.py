"""A real her2st section re-written as a 10x spaceranger ``outs/`` folder (the layout Visium users have).

The counts go into ``filtered_feature_bc_matrix.h5`` (10x HDF5 v3), the selection file's full-resolution spot
centres into ``spatial/tissue_positions.csv`` (plus off-tissue rows, which spaceranger lists too) and the pixel
size into ``scalefactors_json.json`` as the 55 µm spot's diameter in pixels, so the same section read either way
gives the same spots, counts and pixel size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def write_10x_h5(path: Path, counts: pd.DataFrame, gene_ids=None) -> None:
    """``counts`` (barcodes × genes) as a filtered_feature_bc_matrix.h5 (10x HDF5 v3 layout); ``gene_ids``: the
    genes' Ensembl ids (else made up)."""
    import h5py
    import scipy.sparse as sp

    m = sp.csc_matrix(counts.to_numpy(np.int32).T)  # genes × barcodes
    genes = [str(g) for g in counts.columns]
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g["barcodes"] = np.array([str(b) for b in counts.index], dtype="S")
        g["data"], g["indices"], g["indptr"] = m.data, m.indices, m.indptr
        g["shape"] = np.array(m.shape, dtype=np.int32)
        feat = g.create_group("features")
        ids = [f"ENSG{i:011d}" for i in range(len(genes))] if gene_ids is None else [str(i) for i in gene_ids]
        feat["id"] = np.array(ids, dtype="S")
        feat["name"] = np.array(genes, dtype="S")
        feat["feature_type"] = np.array(["Gene Expression"] * len(genes), dtype="S")
        feat["genome"] = np.array(["GRCh38"] * len(genes), dtype="S")
        feat["_all_tag_keys"] = np.array(["genome"], dtype="S")


def her2st_as_visium(section, out: Path, hd: bool = False, hires: bool = False) -> Path:
    """``section`` (a legacy-ST section AnnData, from ``read_st_section``) → ``out/outs/`` as spaceranger writes
    it; returns ``out``. Barcodes are the ST spot ids. ``hd``: as Visium HD writes its 8 µm bins
    (``outs/binned_outputs/square_008um/``, positions in parquet, the pixel size as ``microns_per_pixel``) — the
    spots stand for bins: a test of the layout, not of HD geometry. ``hires``: also ``tissue_hires_image.png``, the
    H&E at ``tissue_hires_scalef`` (0.1) as spaceranger writes it."""
    outs = out / "outs" / "binned_outputs" / "square_008um" if hd else out / "outs"
    (outs / "spatial").mkdir(parents=True)
    counts = pd.DataFrame(np.asarray(section.X), index=section.obs_names, columns=section.var_names)
    write_10x_h5(outs / "filtered_feature_bc_matrix.h5", counts)
    xy = np.asarray(section.obsm["spatial_px"])
    pos = pd.DataFrame({"barcode": section.obs_names, "in_tissue": 1, "array_row": section.obs["array_y"],
                        "array_col": section.obs["array_x"], "pxl_row_in_fullres": xy[:, 1],
                        "pxl_col_in_fullres": xy[:, 0]})
    off = pd.DataFrame({"barcode": ["OFF1-1", "OFF2-1"], "in_tissue": 0, "array_row": [0, 0], "array_col": [0, 2],
                        "pxl_row_in_fullres": [10.0, 10.0], "pxl_col_in_fullres": [10.0, 300.0]})
    px = float(section.uns["histology"]["pixel_size_um"])
    if hd:
        pd.concat([off, pos]).reset_index(drop=True).to_parquet(outs / "spatial" / "tissue_positions.parquet")
        scalef = {"spot_diameter_fullres": 8.0 / px, "bin_size_um": 8.0, "microns_per_pixel": px,
                  "tissue_hires_scalef": 0.1, "fiducial_diameter_fullres": 89.0 / px}
    else:
        pd.concat([off, pos]).to_csv(outs / "spatial" / "tissue_positions.csv", index=False)
        scalef = {"spot_diameter_fullres": 55.0 / px, "tissue_hires_scalef": 0.1,
                  "fiducial_diameter_fullres": 89.0 / px}
    (outs / "spatial" / "scalefactors_json.json").write_text(json.dumps(scalef))
    if hires:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None
        with Image.open(section.uns["histology"]["image"]) as im:
            small = im.convert("RGB").resize((round(im.width * 0.1), round(im.height * 0.1)), Image.BILINEAR)
        small.save(outs / "spatial" / "tissue_hires_image.png")
    return out
