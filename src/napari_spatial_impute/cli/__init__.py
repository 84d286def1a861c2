"""Command line: ``napari-spatial-impute impute ...``, ``napari-spatial-impute histology train|evaluate|predict``
and ``napari-spatial-impute cache [--clear]``.

Errors on bad input print one clear line and exit with code 2; nothing is written. Importing this package does
not import torch: each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import InputError
from . import cache, histology, impute


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="napari-spatial-impute",
                                     description="Impute unmeasured genes in spatial transcriptomics.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    impute.add_parser(sub)
    histology.add_parser(sub)
    cache.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None:  # a command line (not a call from Python): tune the allocator of this process
        from .common import tune_malloc

        tune_malloc()
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing written", file=sys.stderr)
        return 130


__all__ = ["build_parser", "main"]
