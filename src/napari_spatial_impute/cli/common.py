"""Helpers every sub-command shares: output checks, JSON output, the progress bar."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError


def check_outputs(paths, overwrite: bool) -> None:
    """Refuse to replace an existing file (or non-empty folder) unless ``--overwrite``."""
    for path in paths:
        if not path:
            continue
        p = Path(path)
        if p.exists() and not overwrite and (p.is_file() or any(p.iterdir())):
            raise InputError(f"{p} already exists.", "choose another path or pass --overwrite.")


def write_json(obj: dict, path: str | Path) -> None:
    """Write ``obj`` as JSON atomically (``<name>.partial``, then renamed); NaN is refused."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(obj, indent=2, allow_nan=False))
    tmp.replace(path)


def progress_bar(quiet: bool, desc: str) -> tuple[Callable | None, Callable[[], None]]:
    """(callback, close) showing progress on a tqdm bar, or (None, no-op) with ``--quiet``."""
    if quiet:
        return None, lambda: None
    from ..progress import tqdm_callback

    return tqdm_callback(desc)



def read_gene_list(path) -> list[str]:
    """Genes from a text file: one per line (commas and spaces also separate; '#' starts a comment)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"The gene list {p} does not exist.", "give a text file with one gene per line.")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"Could not read the gene list {p}: {err}.", "give a plain text file.") from err
    genes = [g for line in text.splitlines() for g in line.split("#", 1)[0].replace(",", " ").split()]
    if not genes:
        raise InputError(f"The gene list {p} is empty.", "write one gene symbol per line.")
    return genes
