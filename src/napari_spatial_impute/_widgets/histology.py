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
    ProgressBar,
    PushButton,
    SpinBox,
)

from ._worker import RunsInWorker
from .fields import fill_devices

if TYPE_CHECKING:
    import napari

WHOLE_SLIDE = "(whole slide: tile the tissue)"
LOAD, TRAIN = "Load model bundle", "Train on sections"


def _job(model_dir, sections, train_params, save_dir, image, pixel_size, spots_xy, tile_um, device):
    """Generator run in the worker: (train or load) → predict; yields Progress, returns (model, prediction)."""
    from ..api.histology import as_histology_model, predict_histology_steps, train_histology_steps
    from ..io.legacy_st import read_st_section
    from ..progress import Progress

    if sections:
        secs = [read_st_section(*s) for s in sections]
        model = yield from train_histology_steps(secs, device=device, **train_params)
        if save_dir:
            model.save(save_dir, overwrite=True)
    else:
        yield Progress(0, 1, "loading model", "load")
        model = as_histology_model(model_dir, device=device)
    prediction = yield from predict_histology_steps(model, image, pixel_size, spots_xy=spots_xy, tile_um=tile_um)
    return model, prediction


class HistologyWidget(RunsInWorker, Container):
    """Predict gene expression from an H&E image with an STco model."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self._worker = None
        self.model = None
        self.result = None
        self.output_layer = None
        self.sections: list[tuple[str, str, str]] = []

        self.mode = ComboBox(label="Model", choices=[LOAD, TRAIN], value=LOAD)
        self.model_dir = FileEdit(label="Model bundle", mode="d",
                                  tooltip="Folder written by 'napari-spatial-impute histology train'.")
        self.counts_file = FileEdit(label="Counts TSV", mode="r", visible=False)
        self.spots_file = FileEdit(label="Spots TSV", mode="r", visible=False)
        self.image_file = FileEdit(label="H&E image", mode="r", visible=False)
        self.add_section_button = PushButton(text="Add section", visible=False)
        self.sections_label = Label(label="Sections", value="none", visible=False)
        self.epochs = SpinBox(label="Epochs", value=30, min=1, max=10_000, visible=False)
        self.save_dir = FileEdit(label="Save bundle to", mode="d", visible=False)
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
        self.status = Label(label="Status", value="ready")
        self._genes: list[str] = []
        self.gene_select = ComboBox(label="Show gene", choices=self._gene_choices,
                                    tooltip="Gene shown by the result layer; with [expected r]: the Pearson r the "
                                            "bundle's genes reached on training sections held out at training "
                                            "time (most reliable first; optimistic for another patient or lab)")
        self.extend([self.mode, self.model_dir, self.counts_file, self.spots_file, self.image_file,
                     self.add_section_button, self.sections_label, self.epochs, self.save_dir, self.image_layer,
                     self.spots_layer, self.pixel_size, self.tile_um, self.device, self.run_button, self.cancel_button,
                     self.progress_bar, self.status, self.gene_select])
        self.mode.changed.connect(self._on_mode)
        self.add_section_button.changed.connect(self._add_section)
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

    def _on_mode(self, _value=None) -> None:
        train = self.mode.value == TRAIN
        self.model_dir.visible = not train
        for w in (self.counts_file, self.spots_file, self.image_file, self.add_section_button,
                  self.sections_label, self.epochs, self.save_dir):
            w.visible = train

    def _add_section(self, _value=None) -> None:
        files = [str(w.value) for w in (self.counts_file, self.spots_file, self.image_file)]
        if not all(f and Path(f).is_file() for f in files):
            self.status.value = "pick the counts, spots and image files of a section first"
            return
        self.sections.append(tuple(files))
        self.sections_label.value = ", ".join(Path(s[0]).name.split(".")[0] for s in self.sections)

    def _collect(self):
        from ..errors import InputError
        from ..layers.histology import points_in_image_px
        from ..models.stco.patches import check_rgb

        name = self.image_layer.value
        if not name or name not in self.viewer.layers:
            raise InputError("No H&E image layer chosen.", "open the H&E image (RGB) and pick it.")
        img_layer = self.viewer.layers[name]
        data = img_layer.data[0] if img_layer.multiscale else img_layer.data
        if isinstance(data, np.ndarray):
            image = check_rgb(data, f"layer {name!r}")
        else:  # dask / zarr (e.g. a pyramid's base level): read region by region, never whole
            from ..models.stco.slide import ArraySlide

            image = ArraySlide(data, f"layer {name!r}")
        spots_xy = None
        if self.spots_layer.value not in (None, WHOLE_SLIDE):
            spots_xy = points_in_image_px(self.viewer.layers[self.spots_layer.value], img_layer)
        if self.mode.value == TRAIN:
            if not self.sections:
                raise InputError("No training sections added.", "pick counts/spots/image files and press Add section.")
            model_dir = None
        else:
            model_dir = str(self.model_dir.value)
            if not model_dir or not (Path(model_dir) / "config.json").is_file():
                raise InputError(f"{model_dir!r} is not a model bundle folder.", "pick the folder written by "
                                 "'histology train', or switch to 'Train on sections'.")
        from ..layers.histology import layer_pixel_size_um

        pixel_size = float(self.pixel_size.value) or layer_pixel_size_um(img_layer)
        save = str(self.save_dir.value) if self.mode.value == TRAIN and str(self.save_dir.value) not in ("", ".") \
            else None
        return dict(model_dir=model_dir, sections=list(self.sections) if self.mode.value == TRAIN else [],
                    train_params={"epochs": int(self.epochs.value)}, save_dir=save, image=image,
                    pixel_size=pixel_size, spots_xy=spots_xy, tile_um=float(self.tile_um.value),
                    device=str(self.device.value)), img_layer

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
        self._start(_job, desc="Predicting genes from H&E", **kwargs)

    def _on_result(self, out) -> None:
        from ..layers.cells import default_gene
        from ..layers.histology import is_tiled, prediction_layer

        model, prediction = out
        self.model, self.result = model, prediction
        # the most reliable gene when the bundle was validated (as for imputation), else the most expressed one
        gene = default_gene(prediction) if "reliability" in prediction.var else \
            (model.top_genes[0] if model.top_genes else model.genes[0])
        data, kwargs, kind = prediction_layer(prediction, gene, image_affine=self._image_affine,
                                              image_units=self._image_units)
        self.output_layer = self.viewer.add_image(data, **kwargs) if kind == "image" else \
            self.viewer.add_points(data, **kwargs)
        # the gene's values: the heat map's colorbar, or the spot markers' (their colormap and limits)
        (self.output_layer.colorbar if kind == "image" else self.output_layer.face_colorbar).visible = True
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
