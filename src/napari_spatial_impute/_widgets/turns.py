"""Short GUI-thread steps, one per event-loop turn, so timers, input and repaints run between any two of them."""

from __future__ import annotations

from ._worker import deleted_widget


def _later(func) -> None:
    """Run ``func`` in a later event-loop turn (keeps each GUI-thread step short). A 1 ms timer, not 0: Qt runs
    0 ms single shots as posted events ahead of every timer, so a chain of them would starve other timers."""
    from qtpy.QtCore import QTimer

    QTimer.singleShot(1, func)


class Turns:
    """Runs queued callables one per event-loop turn, each scheduled only once the previous one has run, so
    timers, input and repaints get their turn between any two steps (a :class:`SampleView`'s ``defer``)."""

    def __init__(self):
        from collections import deque

        self._queue = deque()
        self._busy = False

    def __call__(self, func) -> None:
        self._queue.append(func)
        if not self._busy:
            self._busy = True
            _later(self._next)

    def clear(self, *_args) -> None:
        """Drop the steps not run yet (the dock is closing: its widgets are going away)."""
        self._queue.clear()

    def _next(self) -> None:
        try:
            if self._queue:
                self._queue.popleft()()
        except RuntimeError as err:  # a step touched a Qt widget deleted meanwhile (dock closed): stop quietly
            if not deleted_widget(err):
                raise
            self._queue.clear()
        finally:
            if self._queue:
                _later(self._next)
            else:
                self._busy = False
