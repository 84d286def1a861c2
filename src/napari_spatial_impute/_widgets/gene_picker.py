"""A searchable gene picker: most variable genes (default), every gene the panel lacks, or chosen genes."""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, Label, LineEdit
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem

from ..api.plan import DEFAULT_N_TOP_GENES
from ..errors import InputError

MODES = {f"{DEFAULT_N_TOP_GENES:,} most variable the panel lacks": "top",
         "all genes the panel lacks": "all", "chosen genes": "chosen"}


class GenePicker(Container):
    """``mode`` + a filterable multi-select list of reference genes; :meth:`genes` gives the API's ``genes``."""

    def __init__(self):
        super().__init__(labels=True)
        self.mode = ComboBox(label="Genes", choices=list(MODES), value=next(iter(MODES)),
                             tooltip="Which genes to impute. Chosen genes that the panel measures are held out "
                                     "from the input and predicted, so they can be compared with the measurement.")
        self.search = LineEdit(label="Search", tooltip="Filter the list (part of a gene name)")
        self.note = Label(value="")
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        self.list.setMinimumHeight(120)
        self.extend([self.mode, self.search, self.note])
        self.native.layout().addWidget(self.list)
        self.search.changed.connect(self._filter)
        self.list.itemSelectionChanged.connect(self._on_selection)
        self.missing: list[str] = []
        self.measured: list[str] = []
        self.suggested: list[str] = []  # measured genes to hold out when the reference adds none (a sample's)

    def set_genes(self, missing: list[str], measured: list[str], suggested: list[str] | None = None) -> None:
        """Fill the list: genes the panel lacks, then measured ones (marked); pre-select ``suggested``."""
        self.missing, self.measured = list(missing), list(measured)
        self.suggested = [g for g in (suggested or []) if g in set(self.measured)] if not self.missing else []
        self.list.clear()
        self.list.addItems(self.missing)  # one call: 30,000 names in milliseconds
        for g in self.measured:
            item = QListWidgetItem(f"{g} (measured: held out)")
            item.setData(Qt.ItemDataRole.UserRole, g)
            self.list.addItem(item)
        if suggested:
            self.select(suggested)
        if not self.missing and self.suggested:
            self.note.value = (f"The reference has no gene the panel lacks: measured genes are predicted held out "
                               f"(from the other genes) and compared with their measurement. With no gene chosen, "
                               f"the sample's {len(self.suggested)} held-out genes ({', '.join(self.suggested[:4])}"
                               f"{', …' if len(self.suggested) > 4 else ''}); or choose others, or use Evaluate on "
                               "my panel.")
        elif not self.missing:
            self.note.value = "The reference has no gene the panel lacks: choose measured genes to predict them " \
                              "held out (compared with the measurement), or use Evaluate on my panel."
        else:
            self.note.value = f"{len(self.missing):,} reference genes the panel lacks; {len(self.measured):,} shared."
        self._filter()

    def select(self, genes: list[str]) -> None:
        wanted = {g.upper() for g in genes}
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setSelected(self._name(item).upper() in wanted)
        self.mode.value = "chosen genes"

    @staticmethod
    def _name(item) -> str:
        return item.data(Qt.ItemDataRole.UserRole) or item.text()

    def chosen(self) -> list[str]:
        return [self._name(it) for it in self.list.selectedItems()]

    def mode_key(self) -> str:
        return MODES[self.mode.value]

    def genes(self) -> tuple[list[str] | None, bool]:
        """(``genes``, ``all_genes``) for :func:`~napari_spatial_impute.api.impute_steps`. When the reference
        has no gene the panel lacks and nothing is chosen, the suggested held-out genes (e.g. the osmFISH
        sample's) rather than an error that every gene is already measured."""
        mode, chosen = self.mode_key(), self.chosen()
        if mode == "chosen" and chosen:
            return chosen, False
        if not self.missing and self.suggested:
            return list(self.suggested), False
        if mode == "chosen" and not self.missing:
            return None, False  # the API says why: the reference adds no gene to the panel
        if mode == "chosen":
            raise InputError("'chosen genes' is selected but no gene is chosen.",
                             "select genes in the list (Ctrl/Shift-click for several), or pick "
                             f"'{next(iter(MODES))}'.")
        return None, mode == "all"

    def n_targets(self) -> int | None:
        """How many genes a run would impute when known here (chosen / held-out), else None (the reference's);
        0 in "chosen" mode with nothing chosen (a run is refused)."""
        try:
            genes, _ = self.genes()
        except InputError:
            return 0
        return len(genes) if genes is not None else None

    def _filter(self, _value=None) -> None:
        text = str(self.search.value).strip().upper()
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setHidden(bool(text) and text not in item.text().upper())

    def _on_selection(self) -> None:
        if self.list.selectedItems() and self.mode_key() != "chosen":
            self.mode.value = "chosen genes"
