"""One sample on screen: its cells Points, its segmentation Labels and their per-cell colouring (no napari import).

:class:`SampleView` groups the layers the reader made for one sample (``metadata["sample"]`` links them), holds
the imputation result attached to those cells (:class:`~.results.SampleResult`) and colours everything by one
choice (:mod:`.colour_by`): the cells Points with one RGBA array, each label mask as a value image above its
Labels layer (:mod:`.paint`; napari's own colorbar shows on it). The viewer and layers are only touched through
their attributes, so the same code runs under the widgets and in the benchmarks.
"""

from __future__ import annotations

import time

import numpy as np

from .colors import contrast_limits
from .colour_by import Colouring, LibrarySizes, colouring, paired_genes
from .paint import PaintMask, categories_rgba, paint_rgba, paint_values, prepare_mask, values_rgba

UM = ("um", "um")


def show_um_scale_bar(viewer) -> None:
    """Show the scale bar in µm: napari ≥ 0.6 takes units from the layers, so 2-D layers in pixels get µm."""
    for ly in viewer.layers:
        try:
            if ly.ndim == 2 and all(str(u) == "pixel" for u in ly.units):
                ly.units = UM
        except (AttributeError, ValueError):  # napari < 0.6: no layer units
            viewer.scale_bar.unit = "um"
    viewer.scale_bar.visible = True


def sample_key(layer) -> str | None:
    return layer.metadata.get("sample") if layer is not None else None


def find_labels(viewer, cells_layer) -> list:
    """Labels layers of the same sample as ``cells_layer`` (same ``metadata["sample"]``)."""
    key = sample_key(cells_layer)
    if key is None:
        return []
    return [ly for ly in viewer.layers if ly is not cells_layer and type(ly).__name__ == "Labels"
            and ly.metadata.get("sample") == key and "label_ids" in ly.metadata]


def mask_jobs(labels_layers) -> list[dict]:
    """Arguments of :func:`~.paint.prepare_mask` per Labels layer but ``cell_ids`` (gathered in the main thread)."""
    return [{"mask": ly.data, "label_ids": ly.metadata["label_ids"], "label_obs": ly.metadata["label_obs"],
             "scale": tuple(ly.scale)[-2:], "translate": tuple(ly.translate)[-2:],
             "name": ly.name} for ly in labels_layers]


def prepare_masks(jobs: list[dict]) -> list[PaintMask]:
    """Run in a worker: stride every mask and build its label → cell lookup."""
    return [prepare_mask(**job) for job in jobs]


class SampleView:
    """The cells layer of a sample, its label masks prepared for painting, and the attached result."""

    def __init__(self, viewer, cells_layer, masks: list[PaintMask] | None = None):
        self.viewer = viewer
        self.cells = cells_layer
        self.adata = cells_layer.metadata["adata"]
        self.truth = cells_layer.metadata.get("truth")
        self.masks = list(masks or [])
        self.painted: dict[str, object] = {}  # labels layer name → its value-image layer
        self.result = None
        self.current: Colouring | None = None
        self.cmap = "magma"
        self.clim: tuple[float, float] | None = None
        self._library: LibrarySizes | None = None
        self._grid_hidden: list = []
        self.timings: dict[str, float] = {}
        #: runs a display step later (the widgets pass a Qt single-shot timer, so adding a layer and creating
        #: its colorbar happen in separate event-loop turns); default: at once
        self.defer = lambda f: f()

    # ---- data -------------------------------------------------------------------------------------
    @property
    def cell_ids(self) -> np.ndarray:
        feats = self.cells.features
        if "cell_id" in feats:
            return feats["cell_id"].astype(str).to_numpy()
        return np.asarray(self.adata.obs_names, dtype=str)

    @property
    def cell_xy(self) -> np.ndarray:
        return np.asarray(self.adata.obsm["spatial"], np.float64)[:, :2]

    def library(self) -> LibrarySizes:
        if self._library is None:
            self._library = LibrarySizes(self.adata)
        return self._library

    def attach(self, result) -> list[str]:
        """Make ``result`` (a :class:`~.results.SampleResult`) part of the sample: its genes become features of
        the cells layer (every gene when small, else the shown one); returns the imputed genes."""
        self.result = result
        self.cells.metadata["result"] = result
        feats = result.features()
        if feats is not None:
            import pandas as pd

            base = self.cells.features
            base = base.drop(columns=[c for c in feats.columns if c in base.columns])
            self.cells.features = pd.concat([base.reset_index(drop=True), feats], axis=1)
        return list(result.genes)

    def colouring(self, key: str) -> Colouring:
        kind = key.partition(":")[0]
        return colouring(key, self.adata, self.result, self.library() if kind == "measured" else None, self.truth)

    def paired(self) -> list[str]:
        return paired_genes(self.adata, self.result, self.truth)

    # ---- display ----------------------------------------------------------------------------------
    def show(self, key: str, cmap: str | None = None, clim: tuple[float, float] | None = None) -> Colouring:
        """Colour the cells and every label mask by ``key``; ``self.timings`` records our CPU seconds."""
        t0 = time.process_time()
        c = self.colouring(key)
        t1 = time.process_time()
        self.apply(c, cmap, clim)
        self.timings = {"values_s": t1 - t0, "apply_s": time.process_time() - t1}
        return c

    def apply(self, c: Colouring, cmap: str | None = None, clim: tuple[float, float] | None = None) -> None:
        self.cmap = cmap or self.cmap
        self.clim = tuple(clim) if clim is not None else c.clim
        self.current = c
        rgba = self._cell_rgba(c)
        self.cells.face_color = rgba
        self.cells.metadata["colour_by"] = c.key
        if c.kind == "continuous" and c.key.startswith("imputed:") and c.name not in self.cells.features:
            feats = self.cells.features.copy()
            feats[c.name] = c.values
            self.cells.features = feats
        for pm in self.masks:
            self.defer(lambda pm=pm: self._paint(pm, c, rgba))
        show_um_scale_bar(self.viewer)
        self.viewer.text_overlay.text = c.title
        self.viewer.text_overlay.visible = True
        self.viewer.text_overlay.position = "top_left"

    def set_clim(self, clim: tuple[float, float]) -> None:
        if self.current is not None and self.current.kind == "continuous":
            self.apply(self.current, self.cmap, clim)

    def _cell_rgba(self, c: Colouring) -> np.ndarray:
        if c.kind == "categorical":
            return categories_rgba(c.values, len(c.categories))
        return values_rgba(c.values, self.cmap, self.clim)

    def _paint(self, pm: PaintMask, c: Colouring, rgba: np.ndarray) -> None:
        categorical = c.kind == "categorical"
        data = paint_rgba(pm, rgba) if categorical else paint_values(pm, c.values)
        name = f"{pm.name}: {c.name}"
        layer = self.painted.get(pm.name)
        if layer is not None and (layer not in self.viewer.layers or layer.rgb != categorical):
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
            layer = None
        meta = {"painted_from": pm.name, "colour_by": c.key, "unit": c.unit, "sample": sample_key(self.cells)}
        if layer is None:
            kwargs = {"name": name, "scale": pm.scale, "translate": pm.translate, "metadata": meta, "units": UM,
                      "blending": "translucent", "opacity": 0.85}
            if categorical:
                layer = self.viewer.add_image(data, rgb=True, **kwargs)
            else:
                layer = self.viewer.add_image(data, colormap=self.cmap, contrast_limits=self.clim, **kwargs)
                self.defer(lambda ly=layer: setattr(ly.colorbar, "visible", True))
            self.painted[pm.name] = layer
            self._place_above(layer, pm.name)
        else:
            layer.metadata.update(meta)
            layer.data = data
            layer.name = name
            if not categorical:
                layer.colormap = self.cmap
                layer.contrast_limits = self.clim
                layer.colorbar.visible = True

    def _place_above(self, layer, labels_name: str) -> None:
        """Move a painted layer just above its Labels layer (below transcripts and cells)."""
        layers = self.viewer.layers
        if labels_name in layers:
            src, dst = layers.index(layer), layers.index(layers[labels_name]) + 1
            if src != dst:
                layers.move(src, dst)

    # ---- measured vs imputed ------------------------------------------------------------------------
    def grid(self, gene: str | None) -> list:
        """Side by side: ``gene`` measured | imputed (same colormap and contrast); ``None`` restores the view."""
        for ly in [ly for ly in self.viewer.layers if ly.metadata.get("grid_of") is not None]:
            self.viewer.layers.remove(ly)
        for ly in self._grid_hidden:
            if ly in self.viewer.layers:
                ly.visible = True
        self._grid_hidden = []
        self.viewer.grid.enabled = False
        if gene is None:
            return []
        measured, imputed = self.colouring(f"measured:{gene}"), self.colouring(f"imputed:{gene}")
        both = np.r_[measured.values, imputed.values]
        clim = contrast_limits(both)
        made = []
        for c in (measured, imputed):
            label = "measured" if c is measured else "imputed"
            if self.masks:
                for pm in self.masks:
                    ly = self.viewer.add_image(paint_values(pm, c.values), name=f"{gene} {label} ({pm.name})",
                                               scale=pm.scale, translate=pm.translate, colormap=self.cmap,
                                               contrast_limits=clim, metadata={"grid_of": gene, "unit": c.unit},
                                               units=UM)
                    ly.colorbar.visible = True
                    made.append(ly)
            else:
                ly = self.viewer.add_points(np.asarray(self.cells.data), name=f"{gene} {label}",
                                            size=np.array(self.cells.size), border_width=0,
                                            border_color="transparent",
                                            scale=tuple(self.cells.scale), translate=tuple(self.cells.translate),
                                            face_color=values_rgba(c.values, self.cmap, clim),
                                            metadata={"grid_of": gene, "unit": c.unit}, units=UM)
                made.append(ly)
        self._grid_hidden = [ly for ly in self.viewer.layers if ly.visible and ly not in made]
        for ly in self._grid_hidden:
            ly.visible = False
        self.viewer.grid.stride = max(1, len(self.masks))
        self.viewer.grid.enabled = True
        self.viewer.text_overlay.text = f"{gene}: measured | imputed\n{measured.unit.split(' (')[0]}"
        self.viewer.text_overlay.visible = True
        return made
