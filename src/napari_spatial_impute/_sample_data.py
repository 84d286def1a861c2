"""napari sample data ("File ▸ Open Sample ▸ Spatial Impute")."""

from __future__ import annotations

#: osmFISH measures every gene of its paired reference: the widget pre-selects these to predict them held out
OSMFISH_HELD_OUT = ["Gad2", "Vip", "Plp1", "Mfge8", "Aldoc", "Sox10"]


def osmfish_sample():
    """osmFISH cortex cells (Codeluppi et al. 2018) with the paired Allen SSp reference in metadata.

    The reference measures no gene the panel lacks, so the Impute widget pre-selects a few measured genes
    (:data:`OSMFISH_HELD_OUT`): each is hidden from the input and predicted, then compared with its measurement.
    """
    from .coords import napari_units
    from .datasets import load_osmfish_sample
    from .layers import cells_points_layer

    spatial, reference = load_osmfish_sample()
    # osmFISH's coordinates are its image pixels (uns['spatial_unit'] = "px"): no µm claimed
    units = napari_units(spatial.uns.get("spatial_unit"))
    data, kwargs, kind = cells_points_layer(spatial, "osmFISH cells", units=units, metadata={
        "reference": reference, "suggested_genes": OSMFISH_HELD_OUT, "sample": "bundled:osmfish_allenssp"})
    kwargs["metadata"]["source"] = "osmFISH + Allen SSp (bundled sample; see PROVENANCE.md)"
    return [(data, kwargs, kind)]


def xenium_sample():
    """Real Xenium mouse-brain cells (150-gene panel) with a paired reference of other cells measuring all 248
    genes, and the 98 hidden genes measured in the same cells (``metadata["truth"]``: the measured side of the
    measured-vs-imputed grid). An empty gene choice imputes the genes the panel truly lacks."""
    from .datasets import load_xenium_sample
    from .layers import cells_points_layer

    spatial, reference, truth = load_xenium_sample(with_truth=True)
    data, kwargs, kind = cells_points_layer(spatial, "Xenium cells", metadata={
        "reference": reference, "truth": truth, "sample": "bundled:xenium_mouse_brain", "unit": "um"})
    kwargs["metadata"]["source"] = "Xenium mouse brain, 10x Genomics (bundled sample; see PROVENANCE.md)"
    return [(data, kwargs, kind)]
