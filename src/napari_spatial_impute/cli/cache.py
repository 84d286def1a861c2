"""``napari-spatial-impute cache [--clear [KIND ...]]``: where the disk cache is, what it holds, emptying it."""

from __future__ import annotations

from ..errors import InputError


def add_parser(sub) -> None:
    """Add the ``cache`` sub-command to an argparse subparsers."""
    p = sub.add_parser("cache", help="show (or --clear) the disk cache of H&E patches, features, ESM-2 embeddings",
                       description="Show the cache folder, what each kind holds and the size cap; --clear empties "
                                   "the patches and features (or the kinds named: esm2 too). Folder: "
                                   "$NAPARI_SPATIAL_IMPUTE_CACHE, else the platform's user cache; cap: "
                                   "$NAPARI_SPATIAL_IMPUTE_CACHE_MAX_GB (default 5).")
    p.add_argument("--clear", nargs="*", metavar="KIND",
                   help="delete cached files: patches, features, esm2 (default: patches and features)")
    p.set_defaults(func=run)


def _gb(n: float) -> str:
    if n == float("inf"):
        return "no cap"
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def run(args) -> int:
    from .. import cache

    if args.clear is not None:
        unknown = sorted(set(args.clear) - set(cache.KINDS))
        if unknown:
            raise InputError(f"The cache has no kind {', '.join(unknown)}.",
                             f"name one of: {', '.join(cache.KINDS)}, or none for patches and features.")
        n, size = cache.clear(args.clear or None)
        print(f"removed {n} files ({_gb(size)}) from {cache.root()}")
        return 0
    use = cache.usage()
    print(f"cache folder: {cache.root()}")
    print(f"size cap of {', '.join(cache.PRUNED_KINDS)} together: {_gb(cache.max_bytes())} "
          f"(${cache.MAX_ENV}; least recently used files go first; esm2 is never pruned)")
    for kind, (n, size) in use.items():
        print(f"  {kind:<10} {n:>6} files  {_gb(size):>10}")
    if not use:
        print("  (empty)")
    return 0
