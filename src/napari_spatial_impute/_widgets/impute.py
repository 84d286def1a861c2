"""The "Impute genes" dock widget: a thin shell over :func:`napari_spatial_impute.api.impute_steps`.

It collects parameters, runs the generator in a napari thread worker (progress bar + Cancel), and adds
the result as a Points layer in the main thread. A gene selector recolours without recomputing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
    Table,
)

from ._worker import RunsInWorker

if TYPE_CHECKING:
    import napari

FROM_FILE = "(from file)"


class ImputeWidget(RunsInWorker, Container):
    """Impute unmeasured genes from a scRNA-seq reference and paint them over the tissue."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        from ..models import available_methods

        self.viewer = napari_viewer
        self._worker = None
        self._progress = None
        self.result = None  # last imputed AnnData
        self.output_layer = None

        self.spatial_layer = ComboBox(label="Spatial cells", choices=self._spatial_choices,
                                      tooltip="A Points layer carrying an AnnData (e.g. the sample, or a reader's "
                                              "cells layer), or a file below.")
        self.spatial_file = FileEdit(label="Spatial .h5ad", mode="r", filter="*.h5ad", visible=False)
        self.reference_file = FileEdit(label="Reference .h5ad", mode="r", filter="*.h5ad",
                                       tooltip="scRNA-seq reference with raw counts (cells × genes).")
        self.method = ComboBox(label="Method", choices=available_methods(), value="knn",
                               tooltip="knn: fast baseline · stimpute: gene-graph GNN with reliability · "
                                       "spaim: style transfer (trains per slide, slower)")
        self.genes = LineEdit(label="Genes", tooltip="Comma-separated genes to impute; empty = every reference "
                                                     "gene the spatial data does not measure.")
        self.k = SpinBox(label="Neighbours k", value=30, min=1, max=1000,
                         tooltip="Reference neighbours per cell (knn, stimpute)")
        self.seed = SpinBox(label="Seed", value=0, min=0, max=2**31 - 1)
        self.extra_params = LineEdit(label="Parameters", tooltip="More method parameters as key=value, comma-"
                                                                  "separated, e.g. 'ae_epochs=10, rounds=1'")
        self.device_label = Label(label="Device", value=self._device_text())
        self.run_button = PushButton(text="Impute")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress_bar = ProgressBar(label="Progress", min=0, max=100, value=0)
        self.status = Label(label="Status", value="ready")
        self.gene_select = ComboBox(label="Show gene", choices=[], tooltip="Recolour the result by this gene")
        self.min_reliability = FloatSpinBox(label="Min reliability", value=-1.0, min=-1.0, max=1.0, step=0.05,
                                            tooltip="Only list genes whose predicted reliability is at least this")
        self.gene_table = Table(label="Genes", value={"gene": [], "reliability": []}, visible=False,
                                tooltip="Imputed genes and their predicted reliability; click a header to sort, "
                                        "a row to show the gene")
        self.gene_table.native.setSortingEnabled(True)
        self.gene_table.native.cellClicked.connect(self._on_table_click)
        self.colormap = ComboBox(label="Colormap", choices=["viridis", "magma", "inferno", "plasma", "turbo"],
                                 value="viridis")
        self.extend([self.spatial_layer, self.spatial_file, self.reference_file, self.method, self.genes, self.k,
                     self.seed, self.extra_params, self.device_label, self.run_button, self.cancel_button,
                     self.progress_bar, self.status, self.gene_select, self.min_reliability, self.gene_table,
                     self.colormap])

        self.spatial_layer.changed.connect(self._on_spatial_changed)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.gene_select.changed.connect(self._recolor)
        self.colormap.changed.connect(self._recolor)
        self.min_reliability.changed.connect(self._refresh_gene_list)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._on_spatial_changed()

    # ---- inputs ----------------------------------------------------------------------------------
    def _spatial_choices(self, _widget=None) -> list:
        from napari.layers import Points

        names = [ly.name for ly in self.viewer.layers
                 if isinstance(ly, Points) and ly.metadata.get("adata") is not None
                 and ly is not self.output_layer and "genes" not in ly.metadata]
        return names + [FROM_FILE]

    def _refresh_layers(self, _event=None) -> None:
        self.spatial_layer.reset_choices()
        layers = [c for c in self.spatial_layer.choices if c != FROM_FILE]
        if self.spatial_layer.value == FROM_FILE and layers:
            self.spatial_layer.value = layers[-1]  # the newest cells layer

    def _device_text(self) -> str:
        from ..device import describe_device, resolve_device

        return describe_device(resolve_device("auto"))

    def _on_spatial_changed(self, _value=None) -> None:
        from_file = self.spatial_layer.value == FROM_FILE
        self.spatial_file.visible = from_file
        layer = self._source_layer()
        has_ref = layer is not None and layer.metadata.get("reference") is not None
        self.reference_file.tooltip = ("Leave empty to use the layer's paired reference." if has_ref
                                       else "scRNA-seq reference with raw counts (cells × genes).")

    def _source_layer(self):
        name = self.spatial_layer.value
        if name in (None, FROM_FILE) or name not in self.viewer.layers:
            return None
        return self.viewer.layers[name]

    def _collect(self):
        """Read the inputs (cheap; files are read here so errors show before any work starts)."""
        from ..errors import InputError
        from ..io.anndata_io import read_reference, read_spatial
        from ..params import parse_key_values

        layer = self._source_layer()
        if layer is not None:
            spatial = layer.metadata["adata"]
        else:
            path = Path(str(self.spatial_file.value))
            if not str(self.spatial_file.value) or not path.is_file():
                raise InputError("No spatial data chosen.", "pick a cells layer or an .h5ad file.")
            spatial = read_spatial(path)
        ref_path = str(self.reference_file.value)
        if ref_path and Path(ref_path).is_file():
            reference = read_reference(ref_path)
        elif layer is not None and layer.metadata.get("reference") is not None:
            reference = layer.metadata["reference"]
        else:
            raise InputError("No reference chosen.", "pick a scRNA-seq reference .h5ad file.")
        genes = [g.strip() for g in self.genes.value.split(",") if g.strip()] or None
        params = parse_key_values(self.extra_params.value.split(","), "ae_epochs=10, rounds=1")
        if self.method.value in ("knn", "stimpute"):
            params.setdefault("k", int(self.k.value))
        return spatial, reference, genes, params, layer

    # ---- running ---------------------------------------------------------------------------------
    def run(self) -> None:
        """Start imputation in a thread worker (no-op while one is running)."""
        from .. import api
        from ..errors import InputError

        if self._worker is not None:
            return
        try:
            spatial, reference, genes, params, layer = self._collect()
        except InputError as err:
            self._fail(err)
            return
        self._layer_transform = ((tuple(layer.scale), tuple(layer.translate)) if layer is not None
                                 else ((1.0, 1.0), (0.0, 0.0)))
        self._start(api.impute_steps, spatial, reference, self.method.value, genes, seed=int(self.seed.value),
                    device="auto", desc=f"Imputing ({self.method.value})", **params)

    def _on_result(self, imputed) -> None:
        from ..layers import MAX_POINTS, binned_image_layer, cells_points_layer

        self.result = imputed
        scale, translate = self._layer_transform
        if imputed.n_obs > MAX_POINTS:  # millions of markers recolour slowly: show a binned image instead
            data, kwargs, _ = binned_image_layer(imputed, colormap=self.colormap.value)
            self.output_layer = self.viewer.add_image(data, **kwargs)
        else:
            data, kwargs, _ = cells_points_layer(imputed, features="genes", cmap=self.colormap.value,
                                                 scale=scale, translate=translate)
            self.output_layer = self.viewer.add_points(data, **kwargs)
        self._refresh_gene_list()
        self.gene_select.value = kwargs["metadata"]["gene"]
        info = imputed.uns["napari_spatial_impute"]
        self.status.value = (f"{imputed.n_vars} genes × {imputed.n_obs} cells in {info['seconds']:.1f} s "
                             f"on {info['device']}")
        self.progress_bar.value = 100

    # ---- display ---------------------------------------------------------------------------------
    def _refresh_gene_list(self, _value=None) -> None:
        from ..layers import genes_by_reliability

        if self.output_layer is None:
            return
        meta = self.output_layer.metadata
        threshold = None if self.min_reliability.value <= -1.0 else float(self.min_reliability.value)
        genes = genes_by_reliability(meta["genes"], meta.get("reliability"), threshold)
        current = self.gene_select.value
        self.gene_select.choices = genes
        if current in genes:
            self.gene_select.value = current
        reliability = meta.get("reliability")
        self.gene_table.visible = bool(reliability)
        if reliability:
            table = self.gene_table.native
            table.setSortingEnabled(False)
            self.gene_table.value = {"gene": genes, "reliability": [f"{reliability[g]:.3f}" for g in genes]}
            table.setSortingEnabled(True)

    def _on_table_click(self, row: int, _column: int) -> None:
        item = self.gene_table.native.item(row, 0)
        if item is not None and item.text() in self.gene_select.choices:
            self.gene_select.value = item.text()

    def _recolor(self, _value=None) -> None:
        """Colour the result layer by the selected gene (features already hold every gene)."""
        from ..layers import contrast_limits, show_gene_on_points

        layer = self.output_layer
        gene = self.gene_select.value
        if layer is None or layer not in self.viewer.layers or not gene:
            return
        if "grid" in layer.metadata:  # binned image view
            values = np.asarray(self.result[:, gene].X).ravel()
            layer.data = layer.metadata["grid"].raster(values)
            layer.colormap = self.colormap.value
            layer.contrast_limits = contrast_limits(values)
            layer.metadata["gene"] = gene
            return
        show_gene_on_points(layer, gene, self.colormap.value)
