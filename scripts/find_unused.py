"""List package functions / classes / methods that nothing in src/ uses (only tests, scripts, or nothing).

Run from the repository root: ``python scripts/find_unused.py``. A name that shows up is dead code, or a public
helper that needs a real caller (or a reason to stay: a documented API, a torch / napari / module hook).

Uses counted in src/: ``ast`` Name / Attribute nodes and identifier-like words inside non-docstring string
constants (the lazy facade and the model registry name their targets in strings) and napari.yaml. Import
statements and ``__all__`` do not count: a re-export is not a use.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path("src/napari_spatial_impute")
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _uses(text: str) -> Counter:
    tree = ast.parse(text)
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            skip.add(id(body[0].value))  # docstring
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            skip.update(id(sub) for sub in ast.walk(node.value))
    uses: Counter = Counter()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Name):
            uses[node.id] += 1
        elif isinstance(node, ast.Attribute):
            uses[node.attr] += 1
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            uses.update(WORD.findall(node.value))
    return uses


def _words(folders: list[str]) -> Counter:
    words: Counter = Counter()
    for folder in folders:
        for path in Path(folder).rglob("*.py"):
            words.update(WORD.findall(path.read_text(encoding="utf-8")))
    return words


def _definitions(tree: ast.Module) -> list[tuple[str, str]]:
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append((node.name, "top"))
        if isinstance(node, ast.ClassDef):
            out += [(f"{node.name}.{sub.name}", "method") for sub in node.body
                    if isinstance(sub, ast.FunctionDef) and not (sub.name.startswith("__") and sub.name.endswith("__"))]
    return out


def main() -> None:
    src: Counter = Counter()
    for path in ROOT.rglob("*.py"):
        src += _uses(path.read_text(encoding="utf-8"))
    for path in ROOT.rglob("*.yaml"):
        src.update(WORD.findall(path.read_text(encoding="utf-8")))
    tests, others = _words(["tests"]), _words(["scripts", "benchmarks"])
    for path in sorted(ROOT.rglob("*.py")):
        for name, kind in _definitions(ast.parse(path.read_text(encoding="utf-8"))):
            short = name.rsplit(".", 1)[-1]
            if src[short] == 0:
                where = [w for w, c in (("tests", tests), ("scripts/benchmarks", others)) if c[short]] or ["NOTHING"]
                print(f"{str(path.relative_to(ROOT)):34s} {name:42s} {kind:6s} used by: {', '.join(where)}")


if __name__ == "__main__":
    main()
