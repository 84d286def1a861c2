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

from .cells import layer_cell_ids
from .colour_by import Colouring, LibrarySizes, colouring, counts_matrix, legend_rows, paired_genes
from .paint import (
    LEGEND_POSITION,
    PAINT_KWARGS,
    PaintMask,
    categories_rgba,
    category_colors,
    paint_geometry,
    paint_rgba,
    paint_values,
    prepare_mask,
    show_title,
    values_rgba,
)

LEGEND_KEY = "napari_spatial_impute_legend_"  # viewer.canvas.overlays keys of the category lines
LEGEND_ROWS = 12


def show_um_scale_bar(viewer) -> None:
    """Show the scale bar. napari ≥ 0.6 takes its unit from the layers, and the plugin places its layers in µm;
    other layers keep their units (an H&E in pixels stays in pixels: its pixel size is read from them)."""
    if not any(hasattr(ly, "units") for ly in viewer.layers):  # napari < 0.6: no layer units
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




def find_paint_layer(viewer, labels_name: str, key, rgb: bool = False):
    """The value-image layer painted from ``labels_name`` of sample ``key`` (``rgb``: the categories one)."""
    for ly in viewer.layers:
        md = ly.metadata
        if (type(ly).__name__ == "Image" and md.get("painted_from") == labels_name and md.get("sample") == key
                and bool(ly.rgb) == rgb):
            return ly
    return None


def paint_layer_steps(viewer, cells_layer, cmap: str = "magma") -> list:
    """Steps (callables, each one short GUI-thread turn) that create the hidden value-image layer of every
    label mask of ``cells_layer``'s sample before any result exists: napari builds a layer's controls, vispy
    node and colorbar when the layer is added (~0.15–0.25 s of GUI thread), so doing it here (when the sample is
    chosen) keeps a run's display to swapping ``data`` and contrast limits. The image is a zero-stride
    broadcast of one pixel with the final shape, scale and translate (no memory; nothing is uploaded while
    hidden)."""
    key = sample_key(cells_layer)
    steps = []
    for labels in find_labels(viewer, cells_layer):
        if find_paint_layer(viewer, labels.name, key) is not None:
            continue

        def add(labels=labels):
            if labels not in viewer.layers or find_paint_layer(viewer, labels.name, key) is not None:
                return
            g = paint_geometry(labels.data, len(labels.metadata["label_ids"]), scale=tuple(labels.scale)[-2:],
                               translate=tuple(labels.translate)[-2:])
            selected = viewer.layers.selection.active
            layer = viewer.add_image(np.broadcast_to(np.zeros(1, np.float32), g.shape), name=f"{labels.name}: "
                                     "colour by", scale=g.scale, translate=g.translate, colormap=cmap,
                                     contrast_limits=(0.0, 1.0), visible=False,
                                     metadata={"painted_from": labels.name, "sample": key, "colour_by": None,
                                               "unit": ""}, **PAINT_KWARGS)
            _move_above(viewer, layer, labels.name)
            if selected is not None and selected in viewer.layers:
                viewer.layers.selection.active = selected  # adding a layer selects it: keep the user's choice

        def colorbar(labels=labels):
            layer = find_paint_layer(viewer, labels.name, key)
            if layer is not None:
                layer.colorbar.position = LEGEND_POSITION  # under the title (gene, unit)
                layer.colorbar.visible = True  # shown with the layer; created now, not during a run

        steps += [add, colorbar]
    return steps


def _move_above(viewer, layer, labels_name: str) -> None:
    """Move a painted layer just above its Labels layer (below transcripts and cells)."""
    layers = viewer.layers
    if labels_name in layers and layer in layers:
        src, dst = layers.index(layer), layers.index(layers[labels_name])
        dst += 1 if src > dst else 0
        if src != dst:
            layers.move(src, dst)


class SampleView:
    """The cells layer of a sample, its label masks prepared for painting, and the attached result."""

    def __init__(self, viewer, cells_layer, masks: list[PaintMask] | None = None):
        self.viewer = viewer
        self.cells = cells_layer
        self.adata = cells_layer.metadata["adata"]
        self.truth = cells_layer.metadata.get("truth")
        self.masks = list(masks or [])
        self.painted: dict[str, object] = {}  # labels layer name → its value-image layer now shown
        self._layers: dict[tuple[str, bool], object] = {}  # (labels name, categorical) → value-image layer
        self.result = None
        self.current: Colouring | None = None
        self.cmap = "magma"
        self.clim: tuple[float, float] | None = None
        self._library: LibrarySizes | None = None
        self._truth_counts = None  # (truth, (its counts matrix, gene names)): found once, not per gene picked
        self._library_held: list[str] = []
        self.grid_hidden: list = []  # layers the measured-vs-imputed grid hid (see .sample_grid)
        self._pending_cells = None  # (colouring, rgba) waiting for the hidden cells layer to be shown
        self._watching_visible = False
        self._cells_hidden_once = False  # the cells' dots hidden once, when a segmentation is first painted
        self.timings: dict[str, float] = {}
        #: runs a display step later (the widgets pass a Qt single-shot timer, so adding a layer and creating
        #: its colorbar happen in separate event-loop turns); default: at once
        self.defer = lambda f: f()

    # ---- data -------------------------------------------------------------------------------------
    @property
    def cell_ids(self) -> np.ndarray:
        return layer_cell_ids(self.cells)

    @property
    def cell_xy(self) -> np.ndarray:
        return np.asarray(self.adata.obsm["spatial"], np.float64)[:, :2]

    def library(self) -> LibrarySizes:
        # measured genes the attached result imputed were held out of its inputs and of their library sizes
        held = sorted(set(map(str, self.result.genes)) & set(map(str, self.adata.var_names))) \
            if self.result is not None else []
        if self._library is None or self._library_held != held:
            self._library, self._library_held = LibrarySizes(self.adata, held), held
        return self._library

    def attach(self, result) -> list[str]:
        """Make ``result`` (a :class:`~.results.SampleResult`) part of the sample: its genes become features of
        the cells layer and of its segmentation Labels layers (rows matched by ``cell_id``; every gene when
        small, else the shown one), so the Labels writer's per-cell table carries them; returns the genes. A
        new view of a cells layer that already carries ``result`` (the Colour dock re-attaching) reuses it."""
        again = self.cells.metadata.get("result") is result
        self.result = result
        self.cells.metadata["result"] = result
        if again:
            return list(result.genes)
        feats = result.features()
        if feats is not None:
            import pandas as pd

            base = self.cells.features
            base = base.drop(columns=[c for c in feats.columns if c in base.columns])
            self.cells.features = pd.concat([base.reset_index(drop=True), feats], axis=1)
            self.defer(lambda: self._add_to_labels(feats))
        elif hasattr(getattr(self.cells, "events", None), "features"):
            self.cells.events.features()  # too large to copy: other docks still hear that a result came
        return list(result.genes)

    def _label_rows(self, ly) -> np.ndarray:
        """The cell row of each row of a Labels layer's features (-1: no cell): from the label → cell lookup its
        :class:`~.paint.PaintMask` already holds (built in a worker), else by matching cell ids."""
        import pandas as pd

        pm = next((m for m in self.masks if m.name == ly.name), None)
        ids = ly.metadata.get("label_ids")
        if pm is not None and ids is not None and len(ids) == len(ly.features):
            ids = np.asarray(ids, np.int64)
            ok = (ids >= 0) & (ids < len(pm.rows))
            return np.where(ok, pm.rows[np.where(ok, ids, 0)], -1)
        return pd.Index(self.cell_ids).get_indexer(ly.features["cell_id"].astype(str))

    def _add_to_labels(self, genes) -> None:
        """Columns aligned with the sample's cells (imputed genes) as features of its Labels layers, whose rows
        are label ids with their ``cell_id`` (NaN for a label without a cell in the result)."""
        import pandas as pd

        values = np.asarray(genes.to_numpy(), dtype=np.float32)
        for ly in find_labels(self.viewer, self.cells):
            base = ly.features
            if "cell_id" not in base.columns:
                continue
            pos = self._label_rows(ly)
            block = np.full((len(pos), values.shape[1]), np.nan, np.float32)
            block[pos >= 0] = values[pos[pos >= 0]]
            keep = [c for c in base.columns if c not in set(genes.columns) or c in ("index", "cell_id")]
            ly.features = pd.concat([base[keep].reset_index(drop=True),
                                     pd.DataFrame(block, columns=list(genes.columns))], axis=1)

    def truth_counts(self):
        """(matrix, gene names) of the held-out genes' measured counts (``self.truth``), found once per truth."""
        if self.truth is None:
            return None
        if self._truth_counts is None or self._truth_counts[0] is not self.truth:
            self._truth_counts = (self.truth, counts_matrix(self.truth))
        return self._truth_counts[1]

    def colouring(self, key: str) -> Colouring:
        kind = key.partition(":")[0]
        measured = kind == "measured"
        return colouring(key, self.adata, self.result, self.library() if measured else None, self.truth,
                         truth_counts=self.truth_counts() if measured else None)

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
        # one short GUI-thread turn each (napari's Points colouring and an image swap take ~30–60 ms apiece at
        # 18k cells on 2 shared cores); a step whose colouring was replaced meanwhile is skipped
        self.defer(lambda: self._colour_cells(c, rgba))
        for pm in self.masks:
            self.defer(lambda pm=pm: self._paint(pm, c, rgba))
        show_um_scale_bar(self.viewer)
        show_title(self.viewer, c.title)
        self.defer(lambda: self.legend(c))

    def legend(self, c: Colouring) -> None:
        """The on-canvas legend under the title (name, unit): the colorbar of the cells Points when they are the
        per-cell rendering (no segmentation: its value image has its own colorbar), or one coloured line per
        category (the most frequent :data:`LEGEND_ROWS`), as napari's colorbars are continuous only."""
        if c is not self.current:
            return
        texts = []
        if c.kind == "categorical":
            rows, left_out = legend_rows(c, LEGEND_ROWS)
            colors = category_colors(len(c.categories))
            texts = [(f"■ {name} ({count:,})", tuple(float(v) for v in colors[code])) for name, code, count in rows]
            if left_out:
                texts.append((f"… and {left_out:,} more categories", None))
        overlays = getattr(getattr(self.viewer, "canvas", None), "overlays", None)  # napari ≥ 0.9
        if overlays is not None:
            for i, (text, color) in enumerate(texts):
                ov = overlays.get(f"{LEGEND_KEY}{i}")
                if ov is None:
                    from napari.components.overlays import TextOverlay

                    ov = TextOverlay(position=LEGEND_POSITION, font_size=10)
                    overlays[f"{LEGEND_KEY}{i}"] = ov
                ov.text, ov.color, ov.visible = text, color, True
            _hide_legend_rows(overlays, len(texts))
        bar = c.kind == "continuous" and not self.masks
        colorbar = getattr(self.cells, "face_colorbar", None)  # napari ≥ 0.6
        if colorbar is not None and (bar or colorbar.visible):
            if bar:  # the colours are given as RGBA (fast); the colormap and limits only feed the colorbar
                self.cells.face_colormap = self.cmap
                self.cells.face_contrast_limits = tuple(float(v) for v in self.clim)
                colorbar.position = LEGEND_POSITION
            colorbar.visible = bar

    def _colour_cells(self, c: Colouring, rgba: np.ndarray) -> None:
        if c is not self.current:
            return
        self.cells.metadata["colour_by"] = c.key
        if not self.cells.visible:  # hidden (e.g. the segmentation is shown): recoloured when shown again
            self._pending_cells = (c, rgba)
            if not self._watching_visible:
                self.cells.events.visible.connect(self._on_cells_visible)
                self._watching_visible = True
        else:
            self._pending_cells = None
            # napari redoes the whole vispy markers update for both of the events a face_color assignment
            # emits; the layer's own face_color event has no other listener, so it is blocked (half the time)
            with self.cells.events.face_color.blocker():
                self.cells.face_color = rgba
        if c.kind == "continuous" and c.key.startswith("imputed:") and c.name not in self.cells.features:
            import pandas as pd

            feats = self.cells.features.copy()
            feats[c.name] = c.values
            self.cells.features = feats
            # the shown gene, when not all genes fit: on the Labels too, in a GUI turn of its own
            self.defer(lambda: self._add_to_labels(pd.DataFrame({c.name: c.values})))

    def _on_cells_visible(self, _event=None) -> None:
        pending = self._pending_cells
        if pending is not None and self.cells.visible:
            self._pending_cells = None
            with self.cells.events.face_color.blocker():
                self.cells.face_color = pending[1]

    def set_clim(self, clim: tuple[float, float]) -> None:
        if self.current is not None and self.current.kind == "continuous":
            self.apply(self.current, self.cmap, clim)

    def _cell_rgba(self, c: Colouring) -> np.ndarray:
        if c.kind == "categorical":
            return categories_rgba(c.values, len(c.categories))
        return values_rgba(c.values, self.cmap, self.clim)

    def _paint(self, pm: PaintMask, c: Colouring, rgba: np.ndarray) -> None:
        """Show ``c`` on the value image of ``pm``: reuse its layer (made hidden beforehand by
        :func:`paint_layer_steps`, or here the first time) and swap data / colormap / contrast only."""
        if c is not self.current:
            return
        categorical = c.kind == "categorical"
        data = paint_rgba(pm, rgba) if categorical else paint_values(pm, c.values)
        key = sample_key(self.cells)
        other = self._layers.get((pm.name, not categorical))
        if other is not None and other in self.viewer.layers:
            other.visible = False  # the other kind (values ↔ categories) keeps its layer, hidden
        layer = self._layers.get((pm.name, categorical))
        if layer is None or layer not in self.viewer.layers:
            layer = find_paint_layer(self.viewer, pm.name, key, rgb=categorical)
        meta = {"painted_from": pm.name, "colour_by": c.key, "unit": c.unit, "sample": key}
        if layer is None:
            kwargs = {"name": f"{pm.name}: {c.name}", "scale": pm.scale, "translate": pm.translate,
                      "metadata": meta, **PAINT_KWARGS}
            if categorical:
                layer = self.viewer.add_image(data, rgb=True, **kwargs)
            else:
                layer = self.viewer.add_image(data, colormap=self.cmap, contrast_limits=self.clim, **kwargs)
                layer.colorbar.position = LEGEND_POSITION
                self.defer(lambda ly=layer: setattr(ly.colorbar, "visible", True))
            _move_above(self.viewer, layer, pm.name)
        else:
            layer.metadata.update(meta)
            if not categorical:  # colormap and contrast first: on the old (or placeholder) image they are cheap
                if layer.colormap.name != self.cmap:
                    layer.colormap = self.cmap
                layer.contrast_limits = self.clim
            if tuple(layer.scale)[-2:] != tuple(pm.scale) or tuple(layer.translate)[-2:] != tuple(pm.translate):
                layer.scale, layer.translate = pm.scale, pm.translate
            layer.data = data
            self.defer(lambda ly=layer, n=f"{pm.name}: {c.name}": self._reveal(ly, n, c))
        self._layers[(pm.name, categorical)] = layer
        self.painted[pm.name] = layer
        if not self._cells_hidden_once:  # each cell is painted on its segmentation: the dots on top hid it
            self._cells_hidden_once, self.cells.visible = True, False  # (ticking them on shows them, coloured)

    def _reveal(self, layer, name: str, c: Colouring) -> None:
        if c is self.current and layer in self.viewer.layers:
            layer.visible = True
            layer.name = name

    def grid(self, gene: str | None) -> list:
        """Measured vs imputed side by side (see :func:`.sample_grid.show_grid`); ``None`` restores the view."""
        from .sample_grid import show_grid

        return show_grid(self, gene)

    def legend_rows_off(self) -> None:
        _hide_legend_rows(getattr(getattr(self.viewer, "canvas", None), "overlays", None) or {}, 0)


def _hide_legend_rows(overlays, start: int) -> None:
    """Hide the category legend's canvas rows from row ``start`` on."""
    for key, ov in list(overlays.items()):
        if key.startswith(LEGEND_KEY) and int(key[len(LEGEND_KEY):]) >= start and ov.visible:
            ov.visible = False
