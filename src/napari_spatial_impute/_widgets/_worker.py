"""What every dock widget shares: run a progress generator in a napari thread worker.

The widget supplies ``run_button``, ``cancel_button``, ``progress_bar``, ``status`` and ``_on_result``;
this mixin starts the worker, forwards :class:`~napari_spatial_impute.progress.Progress` to the widget's
bar and napari's activity dock, lets Cancel stop at the next step, and reports bad input as a message
instead of a worker crash. Layers are only added in ``_on_result``, i.e. in the main thread.
"""

from __future__ import annotations

from ..progress import shorten


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


class Failure:
    """Returned by :func:`guarded` instead of raising: bad input is reported, not a worker crash."""

    def __init__(self, error: Exception):
        self.error = error


def guarded(steps, *args, **kwargs):
    """Run a progress generator; an :class:`InputError` becomes a returned :class:`Failure`."""
    from ..errors import InputError

    try:
        return (yield from steps(*args, **kwargs))
    except InputError as err:
        return Failure(err)


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
        else:
            self._on_result(value)

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
