"""Device choice: ``"auto"`` picks cuda → mps → cpu; only devices that exist are offered."""

from __future__ import annotations

from .errors import InputError


def available_devices() -> list[str]:
    """Devices that exist on this machine, best first (``"auto"`` not included)."""
    import torch

    devices = []
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" if i else "cuda" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    devices.append("cpu")
    return devices


def resolve_device(device: str | None = "auto") -> str:
    """Turn ``"auto"``/None/an explicit name into a device torch can use, or raise a clear error."""
    import torch

    if device is None or str(device).lower() == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    name = str(device).lower()
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"Device {device!r} was asked for but CUDA is not available here.",
                         "use --device auto or --device cpu.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("Device 'mps' was asked for but Apple MPS is not available here.",
                         "use --device auto or --device cpu.")
    try:
        torch.device(name)
    except RuntimeError as err:
        raise InputError(f"Unknown device {device!r}.", "use auto, cpu, cuda, cuda:N or mps.") from err
    return name


def describe_device(device: str) -> str:
    """A resolved device for people: ``"cuda (NVIDIA H200)"``, ``"mps"``, ``"cpu (2 threads)"``."""
    import torch

    if device.startswith("cuda"):
        try:
            return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
        except (RuntimeError, AssertionError):
            return device
    if device == "cpu":
        n = torch.get_num_threads()
        return f"cpu ({n} thread{'s' if n != 1 else ''})"
    return device


def torch_device(device: str | None = "auto"):
    """:func:`resolve_device` as a ``torch.device``."""
    import torch

    return torch.device(resolve_device(device))


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocation failure (CUDA / MPS / CPU) that smaller chunks might avoid."""
    if isinstance(err, MemoryError):
        return True
    try:
        import torch

        if isinstance(err, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover
        pass
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "not enough memory" in text
                                              or "can't allocate memory" in text)


def _free_cache(device: str) -> None:
    try:
        import torch

        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        elif device == "mps":
            torch.mps.empty_cache()
    except Exception:  # noqa: BLE001 - best effort
        pass


def chunks_with_fallback(n: int, chunk: int, device: str, step, *, what: str = "this step",
                         min_chunk: int = 1):
    """Run ``step(start, stop, device)`` over rows ``[0, n)`` in chunks, yielding ``(start, stop, result)``.

    On an out-of-memory error the chunk is halved and retried (down to ``min_chunk`` rows); when even that fails
    on an accelerator, the remaining chunks run on the CPU (at the starting chunk size again: host memory is not
    the accelerator's), with a warning. Other errors propagate.
    """
    import warnings

    chunk, start = max(1, int(chunk)), 0
    first = chunk
    while start < n:
        stop = min(n, start + chunk)
        try:
            result = step(start, stop, device)
        except Exception as err:  # noqa: BLE001 - only memory errors are handled, the rest re-raised
            if not is_out_of_memory(err):
                raise
            _free_cache(device)
            if chunk > min_chunk:
                chunk = max(min_chunk, chunk // 2)
                continue
            if device == "cpu":
                raise InputError(f"Out of memory in {what}, even {chunk} rows at a time.",
                                 "free memory, or impute fewer genes / cells at once.") from err
            warnings.warn(f"Out of {device} memory in {what} even with {chunk} rows at a time; continuing on the "
                          "CPU (slower).", RuntimeWarning, stacklevel=2)
            device, chunk = "cpu", first
            continue
        yield start, stop, result
        start = stop


class StickyChunks:
    """:func:`chunks_with_fallback` whose outcome holds for the loops after it (a prediction made of several):
    once on the CPU the prediction stays there, and a chunk size that had to shrink (per kind of step) is the
    size later loops start from, so a full GPU is not asked again for what it could not hold."""

    def __init__(self, device: str):
        self.device = device
        self._chunks: dict[str, int] = {}

    def __call__(self, kind: str, n: int, chunk: int, step, what: str):
        chunk = min(int(chunk), self._chunks.get(kind, int(chunk)))

        def tracked(start: int, stop: int, device: str):
            out = step(start, stop, device)
            self.device = device
            if stop < n:  # a whole chunk: the size now in use
                self._chunks[kind] = stop - start
            return out

        return chunks_with_fallback(n, chunk, self.device, tracked, what=what)
