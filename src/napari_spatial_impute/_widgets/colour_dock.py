"""The "Colour cells by" dock: colour any opened sample's cells and segmentation without imputing first
(measured genes, cell types and other obs columns); the Impute widget embeds the same panel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, Container, Label

from ._worker import unless_deleted
from .colour_by import ColourBy
from .fields import Scrolls

if TYPE_CHECKING:
    import napari


class ColourDock(Scrolls, Container):
    """Pick a cells layer; its label masks are prepared in a worker, then :class:`ColourBy` colours them."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=True, scrollable=True)  # scrolls on a small screen instead of growing the window
        self.viewer = napari_viewer
        self.cells = ComboBox(label="Cells", choices=self._choices)
        self.status = Label(label="Status", value="")
        self.colour = ColourBy(napari_viewer)
        self.extend([self.cells, self.status, self.colour])
        self.fit_width()
        self.cells.changed.connect(self._attach)
        self.viewer.layers.events.inserted.connect(self._refresh)
        self.viewer.layers.events.removed.connect(self._refresh)
        self.worker = None
        self._attach()

    def _choices(self, _w=None) -> list[str]:
        from ..layers.cells import cells_layer_names

        return cells_layer_names(self.viewer, saved_results=True)

    def _refresh(self, _e=None) -> None:
        before = self.cells.value
        self.cells.reset_choices()
        if self.cells.value != before or (self.colour.view is None and self.cells.value):
            self._attach()

    def _attach(self, _v=None) -> None:
        from napari.qt.threading import create_worker

        from ..layers.cells import layer_cell_ids
        from ..layers.sample_view import SampleView, find_labels, mask_jobs, prepare_masks

        name = self.cells.value
        if not name or name not in self.viewer.layers:
            return
        layer = self.viewer.layers[name]
        result = layer.metadata.get("result")
        ids = layer_cell_ids(layer)
        jobs = [dict(j, cell_ids=ids) for j in mask_jobs(find_labels(self.viewer, layer))]

        def done(masks, layer=layer):
            if layer not in self.viewer.layers or self.cells.value != layer.name:
                return  # removed meanwhile (e.g. the viewer is closing), or another layer chosen since
            view = SampleView(self.viewer, layer, masks)
            if result is not None:
                view.attach(result)
            self.colour.set_view(view)
            self.status.value = f"{len(ids):,} cells; {len(masks)} segmentation mask(s)"
            self._follow(layer)

        self.status.value = "preparing the segmentation…"
        self.worker = create_worker(prepare_masks, jobs)
        self.worker.returned.connect(unless_deleted(done))  # the dock may be closed before the worker returns
        self.worker.start()

    def _follow(self, layer) -> None:
        """Hear when a result is attached to ``layer`` elsewhere (the Impute dock: its genes become the layer's
        features, and ``SampleView.attach`` says so), so its imputed genes are listed here at once."""
        old = getattr(self, "_followed", None)
        if old is not None and old is not layer:
            old.events.features.disconnect(self._on_features)
        if old is not layer:
            layer.events.features.connect(self._on_features)
        self._followed = layer

    def _on_features(self, _event=None) -> None:
        view = self.colour.view
        layer = getattr(self, "_followed", None)
        if view is None or layer is None or view.cells is not layer:
            return
        result = layer.metadata.get("result")
        if result is not None and result is not view.result:
            view.attach(result)  # the same result object: reused, nothing recomputed
            self.colour.refresh()
