"""The "Predict genes from H&E" dock widget: a thin shell over the histology API
(:func:`~napari_spatial_impute.train_histology`, :func:`~napari_spatial_impute.predict_histology`).

Load a model bundle (or train one on ST sections), pick an RGB image layer and optionally a Points layer of
spots; the work runs in a thread worker (progress + Cancel), layers are added in the main thread through
:mod:`napari_spatial_impute.layers.histology`: a heat-map Image layer aligned to the H&E, or Points per spot
with one feature column per predicted gene.
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
)

from ._worker import RunsInWorker
from .fields import Scrolls, fill_devices, path_or_none, placeholder
from .histology_sections import SectionPicker

if TYPE_CHECKING:
    import napari

WHOLE_SLIDE = "(whole slide: tile the tissue)"
LOAD, TRAIN = "Load model bundle", "Train on sections"


def _job(model_dir, sections, train_params, save_dir, image, pixel_size, spots_xy, tile_um, device, trained=None,
         image_name: str = "H&E layer"):
    """Generator run in the worker: (train, reuse ``trained`` or load) → predict; yields Progress, returns
    (model, prediction). A numpy H&E layer is checked (and converted when not 8-bit RGB) here, off the GUI
    thread."""
    from ..api.histology import as_histology_model, predict_histology_steps, train_histology_steps
    from ..progress import Progress
    from .histology_sections import read_picked

    if isinstance(image, np.ndarray):
        from ..models.stco.patches import as_rgb

        image = as_rgb(image, f"layer {image_name!r}")
    if trained is not None:
        model = trained
    elif sections:
        secs = []
        for i, spec in enumerate(sections):  # an event before each read: Cancel is heard from the first on
            yield Progress(i, len(sections) + 1, f"reading section {i + 1}/{len(sections)}", "read")
            secs.append(read_picked(spec))
        model = yield from train_histology_steps(secs, device=device, **train_params)
    else:
        yield Progress(0, 1, "loading model", "load")
        model = as_histology_model(model_dir, device=device)
    if save_dir:  # a trained model; checked before training: a new or empty folder, never replaced
        yield Progress(0, 1, f"saving the bundle to {save_dir}", "save")
        model.save(save_dir)
    prediction = yield from predict_histology_steps(model, image, pixel_size, spots_xy=spots_xy, tile_um=tile_um)
    return model, prediction


class HistologyWidget(Scrolls, RunsInWorker, Container):
    """Predict gene expression from an H&E image with an STco model."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=True, scrollable=True)  # scrolls on a small screen instead of growing the window
        self.viewer = napari_viewer
        self._worker = None
        self.model = None
        self._trained_on = None  # what self.model was trained on in this dock: reused while it is unchanged
        self._saved_to: set[Path] = set()  # where self.model was saved
        self.result = None
        self.output_layer = None
        self.status = Label(label="Status", value="ready")
        self.picker = SectionPicker(napari_viewer, self.status)  # the training sections
        (self.section_format, self.counts_file, self.spots_file, self.visium_path, self.open_spots, self.image_file,
         self.add_section_button, self.clear_sections_button, self.sections_label) = self.picker.widgets

        self.mode = ComboBox(label="Model", choices=[LOAD, TRAIN], value=LOAD)
        self.model_dir = FileEdit(label="Model bundle", mode="d",
                                  tooltip="Folder written by 'napari-spatial-impute histology train'.")
        self.epochs = SpinBox(label="Epochs", value=30, min=1, max=10_000, visible=False)
        self.train_params = LineEdit(label="Parameters", visible=False,
                                     tooltip="More STco parameters as key=value, comma-separated (e.g. n_genes=300, "
                                             "seed=1); see docs/histology.md.")
        self.save_dir = FileEdit(label="Save bundle to", mode="w", visible=False,
                                 tooltip="A new folder for the trained model bundle (optional); an existing "
                                         "folder is never replaced.")
        placeholder(self.save_dir, "(optional: a new folder)")
        self.image_layer = ComboBox(label="H&E layer", choices=self._image_choices,
                                    tooltip="An RGB image layer (full-resolution pixels).")
        self.spots_layer = ComboBox(label="Spots", choices=self._points_choices,
                                    tooltip="A Points layer of spot centres on the image, or the whole tissue.")
        self.pixel_size = FloatSpinBox(label="µm per pixel", value=0.0, min=0.0, max=100.0, step=0.01,
                                       tooltip="auto (0): the H&E layer's scale when its units are µm (the "
                                               "plugin's instrument readers), else the training sections' "
                                               "pixel size, with a warning")
        self.pixel_size.native.setSpecialValueText("auto")
        self.tile_um = FloatSpinBox(label="Tile (µm)", value=100.0, min=10.0, max=2000.0, step=10.0)
        self.device = ComboBox(label="Device", choices=["auto"], value="auto",
                               tooltip="auto picks a GPU when there is one")
        self._device_worker = fill_devices(self.device)  # torch is imported off the GUI thread
        self.run_button = PushButton(text="Predict")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress_bar = ProgressBar(label="Progress", min=0, max=100, value=0)
        self._genes: list[str] = []
        self.gene_select = ComboBox(label="Show gene", choices=self._gene_choices,
                                    tooltip="Gene shown by the result layer; with [expected r]: the Pearson r the "
                                            "bundle's genes reached on training sections held out at training "
                                            "time (most reliable first; optimistic for another patient or lab)")
        self.extend([self.mode, self.model_dir, *self.picker.widgets, self.epochs, self.train_params, self.save_dir,
                     self.image_layer, self.spots_layer, self.pixel_size, self.tile_um, self.device, self.run_button,
                     self.cancel_button, self.progress_bar, self.status, self.gene_select])
        self.fit_width(520)  # long paths / status lines must not squeeze the canvas (as Impute)
        self.mode.changed.connect(self._on_mode)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.gene_select.changed.connect(self._show_gene)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)

    # ---- inputs ----------------------------------------------------------------------------------
    def _image_choices(self, _w=None) -> list[str]:
        from napari.layers import Image

        return [ly.name for ly in self.viewer.layers if isinstance(ly, Image) and ly.rgb
                and ly is not self.output_layer]

    def _points_choices(self, _w=None) -> list[str]:
        from napari.layers import Points

        return [WHOLE_SLIDE] + [ly.name for ly in self.viewer.layers
                                if isinstance(ly, Points) and ly is not self.output_layer]

    def _gene_choices(self, _w=None) -> list:
        """The predicted genes; with the bundle's per-gene expected r, the most reliable first, r in the label."""
        from ..layers.cells import genes_by_reliability

        r = self._reliability()
        if not r:
            return list(self._genes)
        return [(f"{g}  [expected r {r[g]:.2f}]" if g in r else g, g) for g in genes_by_reliability(self._genes, r)]

    def _reliability(self) -> dict[str, float]:
        """{gene: expected r} of the shown prediction (its ``var["reliability"]``; empty without one)."""
        var = self.result.var if self.result is not None else None
        if var is None or "reliability" not in var:
            return {}
        return {str(g): float(v) for g, v in var["reliability"].items() if np.isfinite(v)}

    def _refresh_layers(self, _event=None) -> None:
        self.image_layer.reset_choices()
        self.spots_layer.reset_choices()
        self.open_spots.reset_choices()

    def _on_mode(self, _value=None) -> None:
        train = self.mode.value == TRAIN
        self.model_dir.visible = not train
        for w in (self.epochs, self.train_params, self.save_dir):
            w.visible = train
        self.picker.show(train)

    @property
    def sections(self) -> list[tuple]:
        """The training sections picked (see :class:`~.histology_sections.SectionPicker`)."""
        return self.picker.sections

    def _collect(self):
        from ..errors import InputError
        from ..layers.histology import points_in_image_px

        name = self.image_layer.value
        if not name or name not in self.viewer.layers:
            raise InputError("No H&E image layer chosen.", "open the H&E image (RGB) and pick it.")
        img_layer = self.viewer.layers[name]
        data = img_layer.data[0] if img_layer.multiscale else img_layer.data
        if isinstance(data, np.ndarray):
            image = data  # checked in the worker (a conversion of a large layer must not freeze the viewer)
        else:  # dask / zarr (e.g. a pyramid's base level): read region by region, never whole
            from ..models.stco.slide import ArraySlide

            image = ArraySlide(data, f"layer {name!r}")
        spots_xy = None
        if self.spots_layer.value not in (None, WHOLE_SLIDE):
            spots = self.viewer.layers[self.spots_layer.value]
            units = [tuple(map(str, getattr(ly, "units", ())))[-2:] for ly in (spots, img_layer)]
            if all(units) and units[0] != units[1]:  # one in µm, the other in pixels: not one world
                raise InputError(f"The spots layer {spots.name!r} is in {units[0][0]}s and the H&E layer "
                                 f"{img_layer.name!r} in {units[1][0]}s: they are not placed in one world, so the "
                                 "spots would land beside their tissue.",
                                 "open the H&E with the same reader as the spots (the plugin places both in µm), "
                                 "or pick the H&E layer the spots were opened with.")
            spots_xy = points_in_image_px(spots, img_layer)
        train = self.mode.value == TRAIN
        model_dir, save, trained, params = None, None, None, {}
        if train:
            if not self.sections:
                raise InputError("No training sections added.", "pick a section (legacy-ST files, a Visium outs/ "
                                 "folder or an open sample's spots layer) and press Add section.")
            params = self._training_params()
            if self.model is not None and self._trained_on == self._training_key(params):
                trained = self.model  # the same sections and settings: predict with the model trained before
            save = path_or_none(self.save_dir)
            if trained is not None and save in self._saved_to:
                save = None  # the reused model is in that folder already
            if save is not None:  # before training: a new or empty folder, never replaced
                from ..models.bundle import check_bundle_target

                check_bundle_target(save, fix=f"type a new folder name for 'Save bundle to' (e.g. {save.name}_2): "
                                              "the dock writes a bundle as a folder of its own, never over one.")
        else:
            folder = path_or_none(self.model_dir)
            if folder is None:
                raise InputError("No model bundle chosen.", "pick the folder written by 'histology train' "
                                 "(Model bundle), or switch to 'Train on sections'.")
            model_dir = str(folder)
            if not (folder / "config.json").is_file():
                raise InputError(f"{model_dir!r} is not a model bundle folder.", "pick the folder written by "
                                 "'histology train', or switch to 'Train on sections'.")
        from ..layers.histology import layer_pixel_size_um

        pixel_size = float(self.pixel_size.value) or layer_pixel_size_um(img_layer)
        return dict(model_dir=model_dir, sections=list(self.sections) if train and trained is None else [],
                    train_params=params, save_dir=save, image=image, pixel_size=pixel_size, spots_xy=spots_xy,
                    tile_um=float(self.tile_um.value), device=str(self.device.value), trained=trained,
                    image_name=name), img_layer

    def _training_params(self) -> dict:
        """The training settings: epochs and the Parameters field, checked before any work."""
        from ..models.params_spec import validate_params
        from ..params import parse_key_values

        params = parse_key_values(self.train_params.value.split(","), "n_genes=300, seed=1")
        params.setdefault("epochs", int(self.epochs.value))
        seed = params.pop("seed", 0)
        return {**validate_params("stco", params, seed=seed), "seed": seed}

    def _training_key(self, params: dict) -> tuple:
        return self.picker.key(), repr(sorted(params.items())), str(self.device.value)

    # ---- running ---------------------------------------------------------------------------------
    def run(self) -> None:
        """Start training/loading + prediction in a thread worker."""
        from ..errors import InputError

        if self._worker is not None:
            return
        try:
            kwargs, img_layer = self._collect()
        except InputError as err:
            self._fail(err)
            return
        from ..coords import layer_affine_xy

        # the heat map / spots follow the layer however it is placed, in its world units
        self._image_affine, self._image_units = layer_affine_xy(img_layer), tuple(img_layer.units)[-2:]
        self._image_source = img_layer
        train = self.mode.value == TRAIN
        self._pending_key = self._training_key(kwargs["train_params"]) if train else None
        self._pending_save = kwargs["save_dir"]
        self._start(_job, desc="Predicting genes from H&E", **kwargs)
        if kwargs["trained"] is not None:
            self.status.value = "predicting with the model trained before (same sections and settings)…"

    def _on_result(self, out) -> None:
        from ..layers.cells import default_gene
        from ..layers.histology import is_tiled, prediction_layer, value_colorbar
        from ..layers.paint import LEGEND_POSITION

        model, prediction = out
        if model is not self.model:
            self._saved_to = set()
        if self._pending_save is not None:
            self._saved_to.add(self._pending_save)
        self.model, self.result, self._trained_on = model, prediction, self._pending_key
        if getattr(self, "_image_source", None) not in self.viewer.layers:  # closed while the job ran
            self.status.value = (f"the H&E layer was closed while predicting: nothing drawn (the model is kept; "
                                 f"{prediction.n_obs} {'tiles' if is_tiled(prediction) else 'spots'} predicted)")
            self.progress_bar.value = 100
            return
        # the most reliable gene when the bundle was validated (as for imputation), else the most expressed one
        gene = default_gene(prediction) if "reliability" in prediction.var else \
            (model.top_genes[0] if model.top_genes else model.genes[0])
        data, kwargs, kind = prediction_layer(prediction, gene, image_affine=self._image_affine,
                                              image_units=self._image_units)
        previous = self.output_layer
        if previous is not None and previous in self.viewer.layers:  # kept, hidden: one result and colorbar shown
            previous.visible = value_colorbar(previous).visible = False
        self.output_layer = self.viewer.add_image(data, **kwargs) if kind == "image" else \
            self.viewer.add_points(data, **kwargs)
        bar = value_colorbar(self.output_layer)  # the heat map's, or the spot markers' colormap + limits
        bar.position, bar.visible = LEGEND_POSITION, True  # under the title, as the imputation side's: never under it
        self._genes = list(map(str, prediction.var_names))
        self.gene_select.reset_choices()
        self.gene_select.value = gene
        self._title(gene)
        what = "tiles" if is_tiled(prediction) else "spots"
        from .. import UNS_KEY
        from ..api.histology import describe_choice

        px = prediction.uns.get(UNS_KEY, {}).get("pixel_size_um")
        self.status.value = f"{len(self._genes)} genes predicted for {prediction.n_obs} {what}" + \
            (f" at {float(px):.3g} µm/px" if px else "")
        self.status.tooltip = describe_choice(model)
        if self._trained_on is not None:
            self.status.tooltip += "\nTrained in this dock; Predict reuses it until the sections or settings change."
        self.progress_bar.value = 100

    def _show_gene(self, _value=None) -> None:
        from ..layers.histology import show_gene

        layer, gene = self.output_layer, self.gene_select.value
        if layer is None or layer not in self.viewer.layers or not gene or self.result is None:
            return
        show_gene(layer, self.result, gene)
        self._title(gene)

    def _title(self, gene: str) -> None:
        """The gene and the unit on the canvas (top left; the heat map's colorbar shows its values)."""
        from ..layers.histology import title
        from ..layers.paint import show_title

        show_title(self.viewer, title(gene, self._reliability().get(gene)))
