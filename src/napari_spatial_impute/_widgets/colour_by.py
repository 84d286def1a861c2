"""The one "Colour by" control: imputed genes, measured genes and obs columns of a sample's cells, on its cells
Points and segmentation, with a legend / colorbar, contrast limits and a measured-vs-imputed grid."""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, PushButton
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QCompleter

from ..layers.colour_by import choices
from . import settings
from .legend import Legend

if TYPE_CHECKING:
    import napari

COLORMAPS = ["magma", "viridis", "inferno", "plasma", "turbo", "cividis"]
PROMPT = "(choose what colours the cells)"


def _label(key: str, reliability: dict | None = None) -> str:
    kind, _, name = key.partition(":")
    r = (reliability or {}).get(name) if kind == "imputed" else None
    return f"{name}  [{kind}, reliability {r:.2f}]" if r is not None and r == r else f"{name}  [{kind}]"


class ColourBy(Container):
    """Colour a sample's cells (and its label masks) by one choice; works on a :class:`SampleView`."""

    def __init__(self, napari_viewer: napari.viewer.Viewer | None = None, view=None):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.view = None
        self._keys: list[str] = []
        self.what = QComboBox()
        self.what.setEditable(True)  # type to search; matches anywhere in the name
        self.what.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.what.completer().setFilterMode(Qt.MatchFlag.MatchContains)
        self.what.completer().setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.what.setMaxVisibleItems(25)
        self.what_label = Label(value="Colour by")
        self.colormap = ComboBox(label="Colormap", choices=COLORMAPS,
                                 value=settings.load()["colormap"] if settings.load()["colormap"] in COLORMAPS
                                 else "magma")
        self.vmin = FloatSpinBox(label="Min", value=0.0, min=-1e9, max=1e9, step=0.1)
        self.vmax = FloatSpinBox(label="Max", value=1.0, min=-1e9, max=1e9, step=0.1)
        self.auto = PushButton(text="Auto contrast")
        self.grid_gene = ComboBox(label="Measured vs imputed", choices=self._paired_choices, nullable=True,
                                  tooltip="Genes both measured and imputed: shown side by side (grid)")
        self.grid_on = CheckBox(text="side by side", value=False)
        self.extend([self.what_label, self.colormap, self.vmin, self.vmax, self.auto, self.grid_gene, self.grid_on])
        self.native.layout().insertWidget(1, self.what)
        self.legend = Legend()
        self.native.layout().addWidget(self.legend)
        self.what.activated.connect(self._on_pick)
        self.colormap.changed.connect(self._on_cmap)
        self.vmin.changed.connect(self._on_clim)
        self.vmax.changed.connect(self._on_clim)
        self.auto.changed.connect(self._on_auto)
        self.grid_on.changed.connect(self._on_grid)
        self.grid_gene.changed.connect(self._on_grid)
        self._quiet = False
        self._grid_shown = None
        if view is not None:
            self.set_view(view)

    # ---- wiring -----------------------------------------------------------------------------------
    def set_view(self, view) -> None:
        """Work on ``view`` (a :class:`SampleView`) and list its choices."""
        self.view = view
        self.refresh()

    def refresh(self) -> None:
        v = self.view
        if v is None:
            return
        self._keys = choices(v.adata, v.result, v.truth)
        self._quiet = True
        self.what.clear()
        self.what.addItem(PROMPT)
        reliability = getattr(v.result, "reliability", None)  # stImpute: predicted Pearson r per gene
        self.what.addItems([_label(k, reliability) for k in self._keys])  # one call: fast for 10,000+ choices
        if v.current is not None and v.current.key in self._keys:
            self.what.setCurrentIndex(self._keys.index(v.current.key) + 1)
        self.grid_gene.reset_choices()
        self._quiet = False

    def _paired_choices(self, _w=None) -> list[str]:
        # a callable: napari re-evaluates dock widgets' choices whenever layers are added or removed
        return self.view.paired() if getattr(self, "view", None) is not None else []

    def _on_pick(self, index: int) -> None:
        if index >= 1:
            self.show(self._keys[index - 1])

    # ---- actions ----------------------------------------------------------------------------------
    def show(self, key: str) -> None:
        """Colour by ``key`` ("imputed:<gene>", "measured:<gene>" or "obs:<column>")."""
        if self.view is None:
            return
        try:
            c = self.view.show(key, self.colormap.value)
        except KeyError as err:
            from napari.utils.notifications import show_warning

            show_warning(str(err))
            return
        self._quiet = True
        if key in self._keys:
            self.what.setCurrentIndex(self._keys.index(key) + 1)
        if c.key.startswith("imputed:") and not self.grid_on.value and c.name in self.grid_gene.choices:
            self.grid_gene.value = c.name  # ready to be shown side by side with its measurement
        if c.kind == "continuous":
            self.vmin.value, self.vmax.value = self.view.clim
        self._quiet = False
        self.vmin.visible = self.vmax.visible = self.auto.visible = c.kind == "continuous"
        self.legend.show_colouring(c, self.colormap.value, self.view.clim)

    def _on_cmap(self, _value=None) -> None:
        settings.save(colormap=self.colormap.value)
        if self.view is not None and self.view.current is not None and not self._quiet:
            self.view.apply(self.view.current, self.colormap.value, self.view.clim)
            self.legend.show_colouring(self.view.current, self.colormap.value, self.view.clim)

    def _on_clim(self, _value=None) -> None:
        if self._quiet or self.view is None or self.vmax.value <= self.vmin.value:
            return
        self.view.set_clim((float(self.vmin.value), float(self.vmax.value)))
        self.legend.show_colouring(self.view.current, self.colormap.value, self.view.clim)

    def _on_auto(self, _value=None) -> None:
        if self.view is not None and self.view.current is not None:
            self.show(self.view.current.key)

    def _on_grid(self, _value=None) -> None:
        if self.view is None or self._quiet:
            return
        gene = self.grid_gene.value if self.grid_on.value else None
        if gene == self._grid_shown:  # napari re-emits choices while layers are added: nothing to redo
            return
        self._quiet = True
        try:
            self.view.grid(gene)
            self._grid_shown = gene
            if gene is not None and self.grid_gene.value != gene:
                self.grid_gene.value = gene  # napari resets dock widgets' choices while layers are added
        finally:
            self._quiet = False
