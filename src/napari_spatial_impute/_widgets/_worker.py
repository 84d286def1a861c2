"""What every dock widget shares: run a progress generator in a napari thread worker.

The widget supplies ``run_button``, ``cancel_button``, ``progress_bar``, ``status`` and ``_on_result``;
this mixin starts the worker, forwards :class:`~napari_spatial_impute.progress.Progress` to the widget's
bar and napari's activity dock, lets Cancel stop at the next step, and reports bad input as a message
instead of a worker crash. Layers are only added in ``_on_result``, i.e. in the main thread.
"""

from __future__ import annotations

import sys
import threading

from ..progress import shorten

PACKAGE = __name__.split(".")[0]


def deleted_widget(err: RuntimeError) -> bool:
    """Whether ``err`` is Qt's "wrapped C/C++ object … has been deleted" (a closed dock's widget)."""
    return "has been deleted" in str(err)


def unless_deleted(func):
    """A worker callback that does nothing once the dock it updates was closed (its Qt widgets deleted while the
    worker ran): a late result is dropped instead of raising in the event loop."""
    import functools

    @functools.wraps(func)
    def call(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except RuntimeError as err:
            if not deleted_widget(err):
                raise
            return None

    return call


_SINKS = threading.local()  # the warnings of the job running in this thread (a list), when one is kept


def _install_warning_tap() -> None:
    """Wrap ``warnings.warn`` once so a job's warnings are also kept for its dock, per thread. napari's workers
    relay warnings by swapping the global ``warnings.showwarning`` inside ``catch_warnings``, which is not
    thread-safe: a helper worker ending during a job (the device list, a reference read) restores it and the job's
    warnings go to stderr. ``warnings.warn`` itself is never swapped back, so a tap there sees them all."""
    import warnings

    if getattr(warnings.warn, "_nsi_tap", False):
        return
    original = warnings.warn

    def warn(message, category=None, stacklevel=1, *args, **kwargs):
        sink = getattr(_SINKS, "warnings", None)
        # this package's own warnings about the user's data; libraries' deprecation notices are not kept
        if sink is not None and sys._getframe(1).f_globals.get("__name__", "").startswith(PACKAGE):
            text = str(message)
            if text not in sink:
                sink.append(text)
        return original(message, category, stacklevel + 1, *args, **kwargs)

    warn._nsi_tap = True
    warnings.warn = warn


class Failure:
    """Returned by :func:`guarded` instead of raising: bad input is reported, not a worker crash."""

    def __init__(self, error: Exception):
        self.error = error


class Warned:
    """Returned by :func:`guarded` around a job's result when the job warned: ``value`` and the ``warnings``."""

    def __init__(self, value, warnings: list[str]):
        self.value, self.warnings = value, warnings


def guarded(steps, *args, **kwargs):
    """Run a progress generator in a worker thread; an error becomes a returned :class:`Failure` (an
    :class:`InputError` says what to fix; any other is shown with its type and its traceback printed), and a result
    that came with warnings a :class:`Warned`. No exception leaves the job: superqt's worker swallows a
    ``RuntimeError`` (what torch raises, out-of-memory included) without emitting ``finished``, which left the dock
    busy for good."""
    from ..errors import InputError

    _install_warning_tap()
    _SINKS.warnings = kept = []
    try:
        value = yield from steps(*args, **kwargs)
    except InputError as err:
        return Failure(err)
    except Exception as err:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        return Failure(err)
    finally:
        _SINKS.warnings = None
    return Warned(value, kept) if kept else value


class RunsInWorker:
    """Mixin for magicgui Containers running one job at a time in a thread worker."""

    _worker = None
    _progress = None

    def _start(self, steps, *args, desc: str = "working", **kwargs) -> None:
        from napari.qt.threading import create_worker
        from napari.utils import progress

        self._progress = progress(total=100, desc=desc)
        worker = create_worker(guarded, steps, *args, **kwargs)
        worker.yielded.connect(unless_deleted(self._on_progress))
        worker.returned.connect(unless_deleted(self._on_returned))
        worker.errored.connect(unless_deleted(self._fail))
        worker.aborted.connect(unless_deleted(self._on_aborted))
        worker.finished.connect(unless_deleted(self._on_finished))
        self._worker = worker
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.status.value = "running…"
        worker.start()

    def cancel(self) -> None:
        """Ask the worker to stop at its next progress step; nothing is added."""
        if self._worker is not None:
            self.status.value = "cancelling…"
            self._worker.quit()

    def _on_progress(self, event) -> None:
        pct = int(100 * event.fraction)
        self.progress_bar.value = pct
        self.status.value = event.message or event.stage
        bar = self._progress
        if bar is not None:
            if pct != bar.n:  # update() emits napari's value event: setting n alone left the activity bar at 0 %
                bar.update(pct - bar.n)
            bar.set_description(shorten(event.message, 50) or "working")

    def _on_returned(self, value) -> None:
        if isinstance(value, Failure):
            self._fail(value.error)
            return
        warned = []
        if isinstance(value, Warned):  # a magnification the model was not trained at, spots off the tissue…
            value, warned = value.value, value.warnings
        self._on_result(value)
        if warned:  # in the status line too: napari's notifications fade
            n = len(warned)
            self.status.value = f"{self.status.value}\n⚠ {n} warning{'s' if n > 1 else ''}: hover here to read " \
                                f"{'them' if n > 1 else 'it'}"
            self.status.tooltip = "\n\n".join(filter(None, [*warned, self.status.tooltip]))

    def _on_result(self, value) -> None:  # pragma: no cover - implemented by widgets
        raise NotImplementedError

    def _fail(self, err) -> None:
        from napari.utils.notifications import show_error

        from ..errors import InputError

        msg = str(err) if isinstance(err, InputError) else f"{type(err).__name__}: {err}"
        self.status.value = "error: " + msg
        show_error(msg)

    def _on_aborted(self) -> None:
        self.status.value = "cancelled; nothing added"
        self.progress_bar.value = 0

    def _on_finished(self) -> None:
        self._worker = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        bar, self._progress = self._progress, None
        if bar is not None:
            bar.close()
