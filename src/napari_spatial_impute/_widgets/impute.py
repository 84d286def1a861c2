"""The "Impute genes" dock widget: a thin shell over :func:`napari_spatial_impute.api.impute_steps`.

It collects parameters (searchable gene picker, method, device, output), shows the run estimate, and runs
everything slow in a thread worker: reading the reference, imputing, preparing the label masks and aligning
the result with the sample's cells. In the main thread the result joins the sample (features of its cells layer,
a colouring of its segmentation) and the "Colour by" panel switches between imputed genes, measured genes and
obs columns. "Save results" writes AnnData (.h5ad / .zarr) in a worker; Cancel leaves no partial file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
)

from .. import UNS_KEY
from . import settings
from ._prepare import warm_up
from ._steps import load_reference_steps, run_steps
from ._worker import Failure, RunsInWorker, Warned, guarded, unless_deleted
from .colour_by import ColourBy
from .fields import NO_OUTPUT, PAIRED_REFERENCE, Scrolls, fill_devices, path_or_none, placeholder, set_path
from .gene_picker import GenePicker
from .turns import Turns

if TYPE_CHECKING:
    import napari

FROM_FILE = "(from file)"


class ImputeWidget(Scrolls, RunsInWorker, Container):
    """Impute unmeasured genes from a scRNA-seq reference and paint them over the tissue."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=True, scrollable=True)  # scrolls on a small screen instead of growing the window
        from ..models import available_methods

        self.viewer = napari_viewer
        self.result = None  # last imputed AnnData
        self.sample_result = None
        self.view = None  # SampleView of the imputed sample
        self.output_layer = None  # the cells layer the result was attached to
        self._ref_info = None
        self._ref_worker = None
        self._turns = Turns()  # short GUI-thread display steps, one per event-loop turn
        self.native.destroyed.connect(self._turns.clear)  # a closed dock runs no display step
        remembered = settings.load()
        methods = available_methods()

        self.spatial_layer = ComboBox(label="Spatial cells", choices=self._spatial_choices,
                                      tooltip="A cells layer from the reader or a sample, or a file below.")
        self.spatial_file = FileEdit(label="Spatial .h5ad", mode="r", filter="*.h5ad", visible=False)
        self.reference_file = FileEdit(label="Reference", mode="r", filter="*.h5ad *.h5 *.mtx.gz *.mtx",
                                       value=remembered["reference"] or None,
                                       tooltip="scRNA-seq reference: an .h5ad (counts in layers['counts'], .raw or "
                                               "X), or Cell Ranger's filtered_feature_bc_matrix.h5 or a file of its "
                                               "filtered_feature_bc_matrix/ folder. Empty: the sample's paired "
                                               "reference.")
        self.reference_values = ComboBox(
            label="Reference values", choices=["auto", "counts", "log1p"], value="auto",
            tooltip="What the reference's X holds. auto: raw counts are found in layers['counts'], .raw or X and "
                    "log-normalised data is refused · counts: X is counts · log1p: X is log-normalised (turned "
                    "back with expm1, never logged twice); for references without raw counts.")
        self.method = ComboBox(label="Method", choices=methods, value=settings.default_method(methods),
                               tooltip="auto: chosen per panel · knn: fast baseline · stimpute: gene-graph GNN with "
                                       "reliability · spaim: style transfer (trains per slide, slower)")
        self.picker = GenePicker()
        self.device = ComboBox(label="Device", choices=["auto"], tooltip="Only devices that exist here")
        # torch, matplotlib and a run's modules are imported off the GUI thread now, not during the first run;
        # started once the dock's own GUI-thread steps have run (a first import holds the GIL for long stretches)
        self.warmed_up = False
        self._device_worker = fill_devices(self.device, remembered["device"], job=warm_up, start=False)
        self._device_worker.finished.connect(lambda: setattr(self, "warmed_up", True))
        self.k = SpinBox(label="Neighbours k", value=30, min=1, max=1000,
                         tooltip="Reference neighbours per cell (knn, stimpute)")
        self.seed = SpinBox(label="Seed", value=0, min=0, max=2**31 - 1)
        self.extra_params = LineEdit(label="Parameters", tooltip="More method parameters as key=value, comma-"
                                                                  "separated, e.g. 'ae_epochs=10, rounds=1'")
        self.out_file = FileEdit(label="Write to", mode="w", filter="*.zarr", value=None,
                                 tooltip="Optional .zarr: results written chunk by chunk (for results larger than "
                                         "memory); values are then read one gene at a time.")
        self.estimate = Label(label="Estimate", value="")
        self.run_button = PushButton(text="Impute")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress_bar = ProgressBar(label="Progress", min=0, max=100, value=0)
        self.status = Label(label="Status", value="ready")
        self.save_button = PushButton(text="Save results…", enabled=False)
        self.load_button = PushButton(text="Load result…", tooltip="Colour this sample by a result saved before "
                                                                   "(.h5ad / .zarr), matched by cell id")
        self.evaluate_button = PushButton(text="Evaluate on my panel…")
        self.colour = ColourBy(self.viewer)
        self.extend([self.spatial_layer, self.spatial_file, self.reference_file, self.reference_values,
                     self.method, self.picker,
                     self.device, self.k, self.seed, self.extra_params, self.out_file, self.estimate,
                     self.run_button, self.cancel_button, self.progress_bar, self.status, self.save_button,
                     self.load_button, self.evaluate_button, self.colour])

        placeholder(self.reference_file, PAIRED_REFERENCE)
        placeholder(self.out_file, NO_OUTPUT)
        for label in (self.estimate, self.status):
            label.native.setWordWrap(True)
        self.fit_width(520)  # long paths / estimates must not squeeze the canvas
        self.spatial_layer.changed.connect(self._on_spatial_changed)
        self.reference_file.changed.connect(self._on_reference_changed)
        self.reference_values.changed.connect(self._on_reference_changed)  # the counts may sit elsewhere
        self.method.changed.connect(self._update_estimate)
        self.picker.mode.changed.connect(self._update_estimate)
        self.picker.list.itemSelectionChanged.connect(self._update_estimate)
        self.out_file.changed.connect(self._update_estimate)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.save_button.changed.connect(self._ask_save)
        self.load_button.changed.connect(self._ask_load)
        self.evaluate_button.changed.connect(self.open_evaluate)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self.viewer.scale_bar.visible = True
        self.viewer.text_overlay.visible = True  # created now, not in the middle of showing a result
        self._refresh_layers()
        self._on_spatial_changed()
        self._turns(self._device_worker.start)  # after the value-image layers queued above

    # ---- inputs ----------------------------------------------------------------------------------
    def _spatial_choices(self, _widget=None) -> list:
        from ..layers.cells import cells_layer_names

        return cells_layer_names(self.viewer) + [FROM_FILE]

    def _refresh_layers(self, _event=None) -> None:
        before = self.spatial_layer.value
        self.spatial_layer.reset_choices()
        layers = [c for c in self.spatial_layer.choices if c != FROM_FILE]
        if self.spatial_layer.value == FROM_FILE and layers:
            self.spatial_layer.value = layers[-1]  # the newest cells layer
        if self.spatial_layer.value != before:
            self._on_spatial_changed()

    def _source_layer(self):
        name = self.spatial_layer.value
        if name in (None, FROM_FILE) or name not in self.viewer.layers:
            return None
        return self.viewer.layers[name]

    def _reference_source(self):
        path = path_or_none(self.reference_file)
        if path is not None and path.is_file():
            return path
        layer = self._source_layer()
        return layer.metadata.get("reference") if layer is not None else None

    def _on_spatial_changed(self, _value=None) -> None:
        self.spatial_file.visible = self.spatial_layer.value == FROM_FILE
        layer = self._source_layer()
        if layer is not None and layer.metadata.get("reference") is not None:
            set_path(self.reference_file, None)  # the sample's paired reference (placeholder shown)
        if layer is not None:  # the value-image layers of its segmentation, made now (hidden), not during a run
            from ..layers.sample_view import paint_layer_steps

            for step in paint_layer_steps(self.viewer, layer, self.colour.colormap.value):
                self._turns(step)
        self._on_reference_changed()

    def _on_reference_changed(self, _value=None) -> None:
        """List the reference's genes (read in a worker: the file may be large)."""
        from napari.qt.threading import create_worker

        ref, layer = self._reference_source(), self._source_layer()
        if ref is None or layer is None:
            self._ref_worker, self._ref_info, self._refused = None, None, None  # a pending read is dropped
            self.picker.set_genes([], [])
            self.estimate.value = "choose a reference" if ref is None else ""
            return
        if isinstance(ref, Path):
            settings.save(reference=str(ref), last_folder=str(ref.parent))
        panel = list(map(str, layer.metadata["adata"].var_names))
        self._ref_info, self._refused = None, None  # nothing of the reference chosen before is kept
        # guarded: an unreadable file comes back as a Failure (said in the status), never as an exception in the
        # event loop with the Estimate left at "reading…"
        worker = create_worker(guarded, load_reference_steps, ref, panel, self.reference_values.value)
        worker.returned.connect(unless_deleted(lambda info, lay=layer, wk=worker:
                                               self._on_reference_info(info, lay, wk)))
        self._ref_worker = worker
        self.estimate.value = "reading the reference's genes…"
        worker.start()

    def _on_reference_error(self, err, worker=None) -> None:
        if worker is None or worker is self._ref_worker:  # a reference chosen since then is being read
            self.picker.set_genes([], [])
            self._fail(err)

    def _on_reference_info(self, info, layer, worker=None) -> None:
        if worker is not None and worker is not self._ref_worker:
            return  # superseded: another reference or sample was chosen while this one was read
        if isinstance(info, Failure):
            self.estimate.value = "the reference could not be read"
            self._on_reference_error(info.error, worker)
            return
        if isinstance(info, Warned):
            info = info.value
        self._ref_info = info
        self.picker.set_genes(info["missing"], info["shared"], layer.metadata.get("suggested_genes")
                              if not info["missing"] else None)
        self._update_estimate()

    def _update_estimate(self, _value=None) -> None:
        from ..layers.genes import estimate, target_count

        layer, info = self._source_layer(), self._ref_info
        if layer is None or info is None:
            return
        if not info["shared"]:  # nothing to impute from: said before Impute is pressed
            self.estimate.value = "the reference shares no gene with the panel: choose another reference"
            self.estimate.tooltip, self._refused = "", None
            return
        n_targets = self.picker.n_targets()  # chosen, or a sample's held-out genes when nothing is chosen
        if n_targets is None:
            n_targets = target_count(self.picker.mode_key(), len(info["missing"]), len(self.picker.chosen()))
        if n_targets == 0:  # "chosen genes" with none chosen: a run is refused, nothing to estimate
            self.estimate.value, self.estimate.tooltip = "no gene chosen: select genes in the list", ""
            self._refused = None
            return
        plan, refusal = estimate(layer.metadata["adata"].n_obs, info["n_obs"], len(info["shared"]), n_targets,
                                 self.method.value, self._out_path() is not None)
        self.estimate.value = refusal or plan.text()
        self.estimate.tooltip = plan.text()
        self._refused = refusal

    def _out_path(self) -> Path | None:
        out = path_or_none(self.out_file)
        from ..io.results import is_zarr_path

        return out if is_zarr_path(out) else None

    # ---- running ---------------------------------------------------------------------------------
    def run(self) -> None:
        """Start imputation in a thread worker (no-op while one is running)."""
        from ..errors import InputError
        from ..layers.cells import layer_cell_ids
        from ..layers.sample_view import find_labels, mask_jobs
        from ..params import parse_key_values

        if self._worker is not None:
            return
        try:
            layer = self._source_layer()
            if layer is None:
                path = Path(str(self.spatial_file.value))
                if not path.is_file():
                    raise InputError("No spatial data chosen.", "pick a cells layer or an .h5ad file.")
                spatial = path
            else:
                spatial = layer.metadata["adata"]
            reference = self._reference_source()
            if reference is None:
                raise InputError("No reference chosen.", "pick a scRNA-seq reference .h5ad file.")
            if getattr(self, "_refused", None) and self._out_path() is None:
                raise InputError(self._refused, "set 'Write to' to a .zarr path.")
            params = parse_key_values(self.extra_params.value.split(","), "ae_epochs=10, rounds=1")
            from ..models.params_spec import validate_params

            params = validate_params(self.method.value, params, seed=int(self.seed.value))  # before any work
            genes, all_genes = self.picker.genes()
        except InputError as err:
            self._fail(err)
            return
        if self.method.value in ("knn", "stimpute"):
            params.setdefault("k", int(self.k.value))
        settings.save(method=self.method.value, device=self.device.value)
        jobs = mask_jobs(find_labels(self.viewer, layer)) if layer is not None else []
        cells = layer_cell_ids(layer) if layer is not None else None
        self._target = layer
        self._start(run_steps, spatial, reference, self.method.value, genes, all_genes=all_genes,
                    device=self.device.value, seed=int(self.seed.value), out=self._out_path(), params=params,
                    jobs=jobs, cell_ids=cells, reference_values=self.reference_values.value,
                    desc=f"Imputing ({self.method.value})")

    def _on_result(self, out) -> None:
        from ..layers import cells_points_layer
        from ..layers.sample_view import SampleView

        if out.get("saved") is not None:
            self.status.value = f"saved {out['saved']}"
            self.progress_bar.value = 100
            return
        layer = self._target
        closed = layer is not None and layer not in self.viewer.layers
        if closed or (layer is None and out["spatial"] is None):  # a run on a layer never re-adds a bare one
            self.status.value = "the cells layer was closed while the job ran: nothing was coloured"
            self.progress_bar.value = 0
            return
        if layer is None or layer not in self.viewer.layers:  # spatial from a file: show its cells first
            data, kwargs, _ = cells_points_layer(out["spatial"], "cells", metadata={"sample": str(out["source"])})
            layer = self.viewer.add_points(data, **kwargs)
        self.result, self.sample_result = out["result"], out["aligned"]
        self.view = SampleView(self.viewer, layer, out["masks"])
        self.view.defer = self._turns
        self.view.attach(self.sample_result)
        self.output_layer = layer
        self.colour.set_view(self.view)
        view = self.view

        def first():  # unless the user coloured by something meanwhile
            if view.current is None:
                self.colour.show(f"imputed:{out['first_gene']}")

        self._turns(first)
        if out.get("loaded"):
            a = self.sample_result
            self.status.value = (f"loaded {Path(out['loaded']).name}: {len(a.genes)} genes, {a.n_matched:,} of "
                                 f"{a.n_cells:,} cells matched")
        else:
            info = self.result.uns.get(UNS_KEY, {})
            where = f" → {self.result.uns['_zarr_X']}" if "_zarr_X" in self.result.uns else ""
            device = info.get("device_detail", info.get("device", "?"))
            self.status.value = (f"{self.result.n_vars} genes × {self.result.n_obs} cells in "
                                 f"{info.get('seconds', 0):.1f} s on {device}{where}")
        self.progress_bar.value = 100
        self.save_button.enabled = True

    # ---- saving ----------------------------------------------------------------------------------
    def _ask_save(self, _value=None) -> None:
        from qtpy.QtWidgets import QFileDialog

        start = settings.load()["last_folder"] or str(Path.home())
        path, _ = QFileDialog.getSaveFileName(self.native, "Save imputed genes", start,
                                              "AnnData (*.h5ad);;AnnData zarr, any size (*.zarr)")
        if path:  # Qt's dialog has asked "replace?" for an existing file: a yes replaces it (a folder it never asks)
            self.save_results(path, overwrite=Path(path).is_file())

    def _ask_load(self, _value=None) -> None:
        from qtpy.QtWidgets import QFileDialog

        start = settings.load()["last_folder"] or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self.native, "Load a saved result", start,
                                              "AnnData (*.h5ad);;AnnData zarr: any file inside the .zarr folder "
                                              "(zarr.json .zattrs .zgroup);;All files (*)")
        if path:
            self.load_result(path)

    def load_result(self, path) -> None:
        """Read a saved result (.h5ad / .zarr) in a worker, match it with the chosen cells layer's cells by id and
        colour the sample by it; a result of other cells is refused with a message (nothing recoloured)."""
        from ..errors import InputError
        from ..layers.cells import layer_cell_ids
        from ..layers.sample_view import find_labels, mask_jobs
        from ._steps import load_result_steps

        if self._worker is not None:
            return
        layer = self._source_layer()
        if layer is None:
            self._fail(InputError("No cells layer chosen to load the result onto.",
                                  "open the sample the result was computed from and choose its cells layer."))
            return
        settings.save(last_folder=str(Path(path).parent))
        self._target = layer
        self._start(load_result_steps, Path(path), layer.metadata["adata"], layer_cell_ids(layer),
                    mask_jobs(find_labels(self.viewer, layer)),
                    desc="Loading a result")

    def save_results(self, path, overwrite: bool = False) -> None:
        """Write every imputed gene, reliability and provenance to ``path`` (.h5ad / .zarr) in a worker."""
        from ._steps import save_steps

        if self.sample_result is None or self._worker is not None:
            return
        settings.save(last_folder=str(Path(path).parent))
        self._saving = Path(path)
        layer = self.output_layer
        prov = {"sample": str(layer.metadata.get("sample") or layer.metadata.get("source") or layer.name)}
        self._start(save_steps, self.sample_result, Path(path), overwrite=overwrite, provenance=prov,
                    desc="Saving results")

    def _on_aborted(self) -> None:
        """A cancelled save leaves nothing behind: the partial file is removed."""
        from ..layers.results import remove_partial

        super()._on_aborted()
        if getattr(self, "_saving", None) is not None:
            remove_partial(self._saving)
            self.status.value = f"save cancelled; {self._saving.name} not written"

    def _on_finished(self) -> None:
        super()._on_finished()
        self._saving = None

    def open_evaluate(self, _value=None):
        """Dock the "Evaluate on my panel" widget with this widget's cells and reference."""
        _, w = self.viewer.window.add_plugin_dock_widget("napari-spatial-impute", "Evaluate on my panel")
        if self.spatial_layer.value in w.spatial_layer.choices:
            w.spatial_layer.value = self.spatial_layer.value
        set_path(w.reference_file, path_or_none(self.reference_file))
        w.seed.value = int(self.seed.value)  # the same seed and device as the runs here
        if self.device.value in w.device.choices:
            w.device.value = self.device.value
        return w
