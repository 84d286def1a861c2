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
    """A short human label, e.g. ``"cuda (NVIDIA H100)"`` or ``"cpu (2 threads)"``."""
    import torch

    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    if device == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device
