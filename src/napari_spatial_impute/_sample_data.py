"""napari sample data ("File ▸ Open Sample ▸ Spatial Impute")."""

from __future__ import annotations


def osmfish_sample():
    """osmFISH cortex cells (Codeluppi et al. 2018) with the paired Allen SSp reference in metadata."""
    from .datasets import load_osmfish_sample
    from .layers import cells_points_layer

    spatial, reference = load_osmfish_sample()
    data, kwargs, kind = cells_points_layer(spatial, "osmFISH cells", metadata={"reference": reference})
    kwargs["metadata"]["source"] = "osmFISH + Allen SSp (bundled sample; see PROVENANCE.md)"
    return [(data, kwargs, kind)]
