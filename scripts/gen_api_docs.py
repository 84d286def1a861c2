"""Write docs/api.md: the API reference of the top-level public names (``napari_spatial_impute.__all__``).

Each name is documented where it is defined (resolved at run time, so the page follows refactors); the names
are grouped by the module the package's lazy table points at. ``make docs-site`` runs this before mkdocs;
``--check`` fails when the committed page is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

GROUPS = [  # (prefix of the lazy table's module, section title, what it is)
    (".api", "Imputation and H&E prediction", "AnnData in, AnnData out; `*_steps` are generators of "
     "`Progress` events (how the widgets show progress and cancel)."),
    (".datasets", "Bundled samples", "Small real data sets shipped in the package."),
    (".io", "Reading data", "Instrument folders and AnnData files to a `SpatialSample` or AnnData."),
    (".layers", "napari layers", "A sample as napari layer data (no napari import needed)."),
    (".models", "Models", "Every method has `fit` / `predict` / `save` / `load`, a seed and `device=\"auto\"`."),
    (".distributed", "Scale", "Chunked prediction over a Dask cluster (`[dask]` extra)."),
    ("", "Errors and devices", ""),
]


def page() -> str:
    import napari_spatial_impute as nsi

    lines = ["# API reference", "",
             "Everything below is importable from the top-level package:", "",
             "```python", "import napari_spatial_impute as nsi", "", "nsi.impute(spatial, reference, method=\"knn\")",
             "```", "",
             "The package imports its heavy modules (torch, anndata) on first use of a name, so "
             "`import napari_spatial_impute` is instant. This page is generated from the docstrings by "
             "`scripts/gen_api_docs.py`; each entry is documented in the module that defines it.", ""]
    table = nsi._LAZY
    placed: set[str] = set()
    for prefix, title, blurb in GROUPS:
        names = [n for n, mod in table.items() if n not in placed and (mod == prefix or mod.startswith(prefix + ".")
                                                                      or prefix == "")]
        if not names:
            continue
        lines += [f"## {title}", ""] + ([blurb, ""] if blurb else [])
        for name in names:
            placed.add(name)
            obj = getattr(nsi, name)
            module = getattr(obj, "__module__", None) or f"napari_spatial_impute{table[name]}"
            qual = getattr(obj, "__qualname__", name)
            lines += [f"::: {module}.{qual}", ""]
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "api.md"))
    ap.add_argument("--check", action="store_true", help="fail when the file differs from what would be written")
    args = ap.parse_args()
    text, out = page(), Path(args.out)
    if args.check:
        if not out.exists() or out.read_text() != text:
            print(f"{out} is stale: run python scripts/gen_api_docs.py", file=sys.stderr)
            return 1
        return 0
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
