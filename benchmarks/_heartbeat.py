"""Main-thread stalls of a Qt app under test: a 10 ms QTimer records the gap between its beats."""

from __future__ import annotations

import time


class Heartbeat:
    """Start it, drive the GUI, read ``gaps`` (seconds between beats; a gap ≫ 10 ms is the GUI thread blocked)."""

    def __init__(self, interval_ms: int = 10):
        from qtpy.QtCore import QTimer

        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.timeout.connect(self._beat)
        self._timer.start(interval_ms)

    def _beat(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def stop(self) -> None:
        self._timer.stop()
