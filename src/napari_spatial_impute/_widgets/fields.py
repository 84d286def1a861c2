"""Path fields that may be empty: magicgui's ``FileEdit`` turns ``""`` into the current folder when set, so an
empty choice (e.g. "the sample's paired reference") is written to its line edit directly and explained by a
placeholder."""

from __future__ import annotations

from pathlib import Path

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
