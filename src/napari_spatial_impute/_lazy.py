"""Module-level ``__getattr__`` for packages whose names are imported on first use (PEP 562)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_getattr(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A ``__getattr__`` for ``package`` importing ``name`` from the module ``table[name]`` (relative to the
    package) on first access and keeping it in the package's namespace."""

    def __getattr__(name: str) -> Any:
        if name in table:
            value = getattr(import_module(table[name], package), name)
            setattr(import_module(package), name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
