"""A :class:`~napari_spatial_impute.io.spatial_sample.SpatialSample` → napari layer-data tuples, Qt-free.

Every layer's world coordinates are micrometres (napari order (y, x)), so images, label masks, transcripts,
boundaries and cells of one sample line up. Genes (measured or imputed) are switched on the cells Points layer
(``features`` + ``face_color``) and on Labels layers (a :class:`napari.utils.DirectLabelColormap` built from
a plain ``{label_id: rgba}`` dict up to :data:`MAX_DIRECT_COLORMAP_LABELS` cells; above that napari's dict
handling takes seconds to tens of seconds per switch, so :func:`gene_image_layer` shows ``lut[mask]`` as an
Image instead). Imputation results are shown per cell at any size: attached to the sample's cells
(:class:`~.results.SampleResult`, :class:`~.sample_view.SampleView`: features of its cells and Labels layers, each
label mask painted with the values), or as Points with every imputed gene in ``features``
(:func:`cells_points_layer` with ``features="genes"``); :class:`BinnedGrid` / :func:`binned_image_layer` remain
as an overview image (the widgets do not use it). Nothing here imports napari or Qt; helpers that act on live
layers only set attributes.

Modules: :mod:`.cells` (the one cells Points builder, features, gene colouring), :mod:`.labels` (label masks),
:mod:`.images` (stains / H&E, binned overview), :mod:`.instrument` (transcripts, boundaries,
:func:`sample_to_layers`), :mod:`.colors` (contrast and colormaps), :mod:`.histology` (H&E predictions; imported
from there, not re-exported here).
"""

from __future__ import annotations

from .cells import (
    LayerDataTuple,
    add_imputed_to_points,
    cell_features,
    cells_points_layer,
    default_gene,
    gene_values,
    genes_by_reliability,
    imputed_features,
    show_gene_on_points,
    typical_spacing,
)
from .colors import TRANSPARENT, contrast_limits, labels_colormap_for_gene, values_to_rgba
from .images import BinnedGrid, binned_image_layer, image_layer
from .instrument import (
    MAX_BOUNDARY_SHAPES,
    MAX_TRANSCRIPT_POINTS,
    boundaries_layer,
    sample_to_layers,
    transcript_density_layer,
    transcripts_layer,
)
from .labels import (
    MAX_DIRECT_COLORMAP_LABELS,
    gene_image_layer,
    labels_layer,
    labels_value_image,
    show_gene_on_labels,
    values_for_labels,
)

__all__ = [
    "MAX_BOUNDARY_SHAPES", "MAX_DIRECT_COLORMAP_LABELS", "MAX_TRANSCRIPT_POINTS", "TRANSPARENT",
    "BinnedGrid", "LayerDataTuple", "add_imputed_to_points", "binned_image_layer", "boundaries_layer",
    "cell_features", "cells_points_layer", "contrast_limits", "default_gene", "gene_image_layer", "gene_values",
    "genes_by_reliability", "image_layer", "imputed_features", "labels_colormap_for_gene", "labels_layer",
    "labels_value_image", "sample_to_layers", "show_gene_on_labels", "show_gene_on_points",
    "transcript_density_layer", "transcripts_layer", "typical_spacing", "values_for_labels", "values_to_rgba",
]
