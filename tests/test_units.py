"""Units claimed only where the data is in µm: the bundled samples, a pixel-unit .h5ad and its images."""

from __future__ import annotations

import numpy as np


def test_napari_units_reads_the_spellings_of_micrometres():
    from napari_spatial_impute.coords import napari_units

    for unit in ("um", "µm", "micron", "Micrometer", " micrometres "):
        assert napari_units(unit) == ("um", "um")
    for unit in ("px", "pixel", "mm", "", None):
        assert napari_units(unit) is None


def test_samples_claim_micrometres_only_when_their_coordinates_are():
    """osmFISH's bundled coordinates are image pixels (up to ≈ 48,000): drawn without units; the Xenium sample
    (µm, its file says so with 'spatial_units') keeps µm."""
    from napari_spatial_impute._sample_data import osmfish_sample, xenium_sample
    from napari_spatial_impute.datasets import sample_path
    from napari_spatial_impute.io.h5ad import read_anndata

    (_, osm, _), = osmfish_sample()
    (_, xen, _), = xenium_sample()
    assert "units" not in osm and xen["units"] == ("um", "um")
    assert read_anndata(str(sample_path("spatial.h5ad", "data/xenium_mouse_brain"))).unit == "um"
    assert read_anndata(str(sample_path("spatial.h5ad"))).unit == "px"


def test_pixel_unit_h5ad_images_claim_no_units(tmp_path):
    import anndata as ad

    from napari_spatial_impute.io.h5ad import sample_from_adata
    from napari_spatial_impute.layers.instrument import sample_to_layers

    a = ad.AnnData(np.ones((3, 2), np.float32))
    a.obsm["spatial"] = np.array([[10.0, 10.0], [20.0, 10.0], [10.0, 20.0]])
    a.uns["spatial"] = {"lib": {"images": {"hires": np.zeros((40, 40, 3), np.uint8)},
                                "scalefactors": {"tissue_hires_scalef": 1.0}}}
    layers = sample_to_layers(sample_from_adata(a))
    assert layers and all("units" not in kwargs for _, kwargs, _ in layers)
    a.uns["spatial_unit"] = "um"
    assert all(kwargs["units"] == ("um", "um") for _, kwargs, _ in sample_to_layers(sample_from_adata(a)))
