"""A small colour legend: a colorbar with the gene name, unit and contrast range, or category swatches."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QImage, QPixmap
from qtpy.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from ..layers.colour_by import Colouring, legend_rows
from ..layers.paint import category_colors, colormap_lut


class Legend(QWidget):
    """Shows the current :class:`Colouring`: gradient + title + range, or the most frequent categories."""

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("")
        self.title.setWordWrap(True)
        self.bar = QLabel()
        self.range = QLabel("")
        self.items = QListWidget()
        self.items.setMaximumHeight(180)
        for w in (self.title, self.bar, self.range, self.items):
            layout.addWidget(w)
        self.items.hide()

    def show_colouring(self, c: Colouring | None, cmap: str = "magma", clim=(0.0, 1.0)) -> None:
        if c is None:
            self.title.setText("")
            self.bar.clear()
            self.range.setText("")
            self.items.hide()
            return
        self.title.setText(f"<b>{c.name}</b> — {c.unit}")
        if c.kind == "categorical":
            self.bar.hide()
            self.range.setText(f"{len(c.categories):,} categories")
            self._fill_categories(c)
            return
        self.items.hide()
        self.bar.show()
        lut = (colormap_lut(cmap)[:, :3] * 255).astype(np.uint8)
        strip = np.ascontiguousarray(np.repeat(lut[None], 14, axis=0))
        img = QImage(strip.data, strip.shape[1], strip.shape[0], 3 * strip.shape[1], QImage.Format.Format_RGB888)
        self.bar.setPixmap(QPixmap.fromImage(img.copy()).scaled(240, 14))
        self.range.setText(f"{clim[0]:.3g}  …  {clim[1]:.3g}")

    def _fill_categories(self, c: Colouring) -> None:
        rows, left_out = legend_rows(c)
        colors = category_colors(len(c.categories))
        self.items.clear()
        for name, code, count in rows:
            item = QListWidgetItem(f"■ {name} ({count:,})")
            r, g, b = (int(255 * v) for v in colors[code][:3])
            item.setForeground(QColor(r, g, b))
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsSelectable)
            self.items.addItem(item)
        if left_out:
            self.items.addItem(f"… and {left_out:,} more")
        self.items.show()
