"""Path fields that may be empty: magicgui's ``FileEdit`` turns ``""`` into the current folder when set, so an
empty choice (e.g. "the sample's paired reference") is written to its line edit directly and explained by a
placeholder."""

from __future__ import annotations

from pathlib import Path

from ._worker import unless_deleted

PAIRED_REFERENCE = "(paired reference of the sample)"
NO_OUTPUT = "(optional: a .zarr folder)"


def path_or_none(field) -> Path | None:
    """The field's path, or None when it is empty."""
    text = str(field.line_edit.value).strip()
    return Path(text) if text not in ("", ".") else None


def set_path(field, value) -> None:
    """Set ``field`` to ``value``; ``None`` / ``""`` / ``"."`` leave it empty (its placeholder shows)."""
    text = "" if value is None else str(value).strip()
    if text in ("", "."):
        field.line_edit.value = ""
    else:
        field.value = text


def placeholder(field, text: str) -> None:
    field.line_edit.native.setPlaceholderText(text)


def fill_devices(combo, remembered: str | None = None, job=None, start: bool = True):
    """Offer ``auto`` and ``cpu`` in ``combo`` at once and add the other devices (cuda, mps) from a worker:
    listing them imports torch, seconds that must not block the dock. ``remembered`` is selected once it is
    known to exist, unless the user picked something meanwhile. ``job``: what the worker runs (default
    :func:`~napari_spatial_impute.device.available_devices`; it returns the device list), e.g. a warm-up that
    imports a run's modules first. Returns the worker (keep a reference), started unless ``start`` is False."""
    from napari.qt.threading import create_worker

    from ..device import available_devices

    known = ["auto", "cpu"]  # a callable, so napari's reset_choices keeps what the worker found
    combo.choices = lambda _widget=None: list(known)
    if remembered in combo.choices:
        combo.value = remembered

    def _fill(devices: list[str]) -> None:
        untouched = combo.value in ("auto", remembered)
        known[:] = ["auto", *devices]
        combo.reset_choices()
        if untouched and remembered in combo.choices:
            combo.value = remembered

    worker = create_worker(job or available_devices)
    worker.returned.connect(unless_deleted(_fill))  # the widget may be closed before the worker returns
    if start:
        worker.start()
    return worker


class Scrolls:
    """Mixin for a ``scrollable=True`` magicgui Container docked in napari: napari docks a widget's ``.native``,
    which for a scrollable Container is the widget inside the scroll area, so the scroll bars were lost and a
    tall dock grew the window past the screen (1,071 px for Impute alone). ``.native`` is the scroll area here."""

    @property
    def native(self):
        return self.root_native_widget

    @property
    def inner(self):
        """The widget inside the scroll area (its layout holds the dock's widgets)."""
        return self._widget._mgui_get_native_widget()

    def fit_width(self, max_px: int | None = None) -> None:
        """Scroll up and down, never sideways: the scroll area is as wide as what it holds needs (plus its bar,
        followed as the content changes) or, with ``max_px``, exactly that wide inside (long paths / status lines
        must not squeeze the canvas). Call at the end of ``__init__``."""
        from qtpy.QtCore import QEvent, QObject, Qt

        area, inner = self.native, self.inner
        layout = inner.layout()
        if hasattr(layout, "addStretch"):  # napari's stretch goes to the docked widget, now the scroll area: rows
            layout.addStretch(1)  # packed at the top, not spread over a tall dock
        bar = area.verticalScrollBar().sizeHint().width() + 2 * area.frameWidth()
        area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        if max_px is not None:  # a fixed width: nothing to follow
            inner.setMaximumWidth(max_px)
            area.setFixedWidth(max_px + bar)
            return

        class Follow(QObject):  # the content's minimum width, each time its layout changes
            def eventFilter(self, obj, event):  # noqa: N802  (Qt's name)
                if event.type() == QEvent.Type.LayoutRequest:
                    area.setMinimumWidth(inner.minimumSizeHint().width() + bar)
                return False

        self._width_follower = Follow(area)
        inner.installEventFilter(self._width_follower)
        area.setMinimumWidth(inner.minimumSizeHint().width() + bar)
