""""Evaluate on my panel": cross-validation of chosen methods over the measured genes, as a table and a plot.

Each fold hides some measured genes from the input and predicts them from the rest (api.cross_validate), so the
per-gene Pearson correlation says how far to trust each method on this panel and reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar, PushButton, Select, SpinBox, Table

from . import settings
from ._steps import evaluate_steps
from ._worker import RunsInWorker
from .fields import PAIRED_REFERENCE, Scrolls, fill_devices, path_or_none, placeholder

if TYPE_CHECKING:
    import napari


class EvaluateWidget(Scrolls, RunsInWorker, Container):
    """Cross-validate methods on the open sample's measured genes; per-gene table + plot."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=True, scrollable=True)  # scrolls on a small screen instead of growing the window
        from ..models import available_methods

        self.viewer = napari_viewer
        self.results: dict = {}
        self.spatial_layer = ComboBox(label="Spatial cells", choices=self._choices)
        self.reference_file = FileEdit(label="Reference", mode="r", filter="*.h5ad *.h5 *.mtx.gz *.mtx", value=None,
                                       tooltip="An .h5ad, or Cell Ranger's filtered_feature_bc_matrix.h5 or a file "
                                               "of its filtered_feature_bc_matrix/ folder. Empty: the sample's paired "
                                               "reference")
        placeholder(self.reference_file, PAIRED_REFERENCE)
        methods = available_methods()
        self.methods = Select(label="Methods", choices=methods, value=[m for m in methods if m == "knn"] or methods[:1])
        self.folds = SpinBox(label="Folds", value=5, min=2, max=50)
        self.device = ComboBox(label="Device", choices=["auto"], tooltip="Only devices that exist here")
        self._device_worker = fill_devices(self.device, settings.load()["device"])  # torch off the GUI thread
        self.seed = SpinBox(label="Seed", value=0, min=0, max=2**31 - 1, tooltip="Folds and the methods' seed")
        self.run_button = PushButton(text="Evaluate")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress_bar = ProgressBar(label="Progress", min=0, max=100, value=0)
        self.status = Label(label="Status", value="ready")
        self.table = Table(label="Per gene", value={"gene": []})
        self.table.native.setSortingEnabled(True)
        self.extend([self.spatial_layer, self.reference_file, self.methods, self.folds, self.device, self.seed,
                     self.run_button,
                     self.cancel_button, self.progress_bar, self.status, self.table])
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(4, 3), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(220)
        self.inner.layout().addWidget(self.canvas)
        self.fit_width()
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.viewer.layers.events.inserted.connect(lambda _e: self.spatial_layer.reset_choices())
        self.viewer.layers.events.removed.connect(lambda _e: self.spatial_layer.reset_choices())

    def _choices(self, _w=None) -> list[str]:
        from ..layers.cells import cells_layer_names

        return cells_layer_names(self.viewer)

    def run(self) -> None:
        from ..errors import InputError

        if self._worker is not None:
            return
        name = self.spatial_layer.value
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        path = path_or_none(self.reference_file)
        reference = path if path is not None and path.is_file() else (
            layer.metadata.get("reference") if layer is not None else None)
        if layer is None or reference is None or not self.methods.value:
            self._fail(InputError("Choose a cells layer, a reference and at least one method.",
                                  "open a sample or an instrument folder first."))
            return
        self._start(evaluate_steps, layer.metadata["adata"], reference, list(self.methods.value),
                    int(self.folds.value), int(self.seed.value), str(self.device.value),
                    desc="Evaluating on the panel")

    def _on_result(self, out) -> None:
        self.results = out["cv"]
        per_gene = {m: cv.per_gene() for m, cv in self.results.items()}
        genes = list(next(iter(per_gene.values())).index)
        table = {"gene": genes}
        for m, df in per_gene.items():  # numbers, not text: a sorted column puts -0.5 before -0.05
            table[f"PCC {m}"] = [round(float(v), 3) for v in df.reindex(genes)["pcc"].astype(float)]
        self.table.native.setSortingEnabled(False)
        self.table.value = table
        self.table.native.setSortingEnabled(True)
        self._plot(per_gene)
        med = ", ".join(f"{m} {np.nanmedian(df['pcc'].astype(float)):.3f}" for m, df in per_gene.items())
        self.status.value = f"median per-gene PCC over {len(genes)} measured genes: {med}"
        self.progress_bar.value = 100

    def _plot(self, per_gene: dict) -> None:
        self.figure.clear()
        ax = self.figure.add_subplot(111)
        data = [df["pcc"].astype(float).dropna().to_numpy() for df in per_gene.values()]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(data) + 1), list(per_gene))
        for i, d in enumerate(data, start=1):
            ax.scatter(np.full(len(d), i) + np.random.default_rng(0).uniform(-0.15, 0.15, len(d)), d, s=6,
                       alpha=0.6)
        ax.set_ylabel("per-gene Pearson r (held out)")
        ax.set_title("Cross-validation on the measured panel", fontsize=9)
        self.canvas.draw_idle()
