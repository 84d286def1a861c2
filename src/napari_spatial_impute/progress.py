"""Progress events yielded by long-running generators (models, cross-validation, tiling).

Every long loop in the core is a generator that yields :class:`Progress`; a widget forwards them to a
napari progress bar (and can quit the worker between two yields), the CLI shows them with tqdm, and
plain Python callers use :func:`run_to_end`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """One step of a long run: ``step`` of ``total`` done, with a short human message."""

    step: int
    total: int
    message: str = ""
    stage: str = ""

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.step / self.total)


ProgressGen = Generator[Progress, None, T]


def run_to_end(gen: Generator[Progress, Any, T], callback: Callable[[Progress], Any] | None = None) -> T:
    """Exhaust a progress generator and return its return value."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if callback is not None:
            callback(event)


def relay(gen: Generator[Progress, Any, T], stage: str, offset: int, total: int, *, span: int = 100,
          prefix: str = "") -> Generator[Progress, None, T]:
    """Re-yield a sub-generator's progress mapped into ``[offset, offset + span]`` of ``total`` (``stage``
    replaces the events' stage when given; ``prefix`` goes before their messages)."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        sub = event.fraction
        yield Progress(offset + round(sub * span), total, prefix + event.message, stage or event.stage)


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters in the middle ("validation: sect…heads: epoch 4/30"), so a
    message's counts at its end stay readable."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def tqdm_callback(desc: str = "") -> tuple[Callable[[Progress], None], Callable[[], None]]:
    """A (callback, close) pair that shows progress events on a tqdm bar (stderr)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=100, desc=desc, unit="%", leave=False)

    def cb(event: Progress) -> None:
        # one redraw at most every tqdm ``mininterval`` (0.1 s): a log file gets a line per redraw, not two per event
        bar.set_postfix_str(shorten(event.message, 60), refresh=False)
        n = int(100 * event.fraction)
        if n >= bar.n:
            bar.update(n - bar.n)
        else:  # a stage that starts again (never in a single run's events)
            bar.n = n
            bar.refresh()

    def close() -> None:
        bar.n = 100
        bar.refresh()
        bar.close()

    return cb, close


def iter_chunks(n: int, size: int) -> Iterator[slice]:
    """Slices ``[0, n)`` in chunks of ``size``."""
    size = max(1, int(size))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


class Ticker:
    """Tells a long inner loop when to yield a heartbeat, so a Cancel is answered within ``interval`` seconds
    (``if tick.due(): yield Progress(...)``); cheap enough to call on every batch."""

    def __init__(self, interval: float = 0.25):
        import time

        self._clock = time.perf_counter
        self.interval = float(interval)
        self._last = self._clock()

    def due(self) -> bool:
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False


def wait_for(fn: Callable[[], T], progress: Progress, interval: float = 0.1) -> Generator[Progress, None, T]:
    """Run ``fn()`` (one long library call that cannot yield, e.g. a first ``import scanpy`` or a Leiden
    clustering) on a daemon thread and yield ``progress`` every ``interval`` seconds until it is done; returns
    its value (or raises its exception here). Closing the generator abandons the wait: the call finishes in
    the background and its result is dropped. Only for calls that release the GIL often (Python code, numpy,
    BLAS): a C call holding the GIL still delays the heartbeat by its own length."""
    import threading

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="nsi-wait-for", daemon=True)
    thread.start()
    while True:
        thread.join(interval)
        if not thread.is_alive():
            break
        yield progress
    if "error" in box:
        raise box["error"]
    return box["value"]
