"""The package's import graph has no cycles (read with ``ast``; nothing is imported).

Every ``import`` / ``from ... import`` statement counts, at module level or inside a function, except those
under ``if TYPE_CHECKING:``. Dynamic imports (``importlib.import_module`` in the lazy top-level facade and the
model registry) are not statements and do not count. ``from pkg import name`` is an edge to ``pkg.name`` when
that is a module of the package, else to ``pkg`` (its ``__init__``). A package's ``__init__`` importing its
submodules is an edge like any other, so ``x/__init__.py`` → ``x/sub.py`` → ``x`` is a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import napari_spatial_impute

PACKAGE = "napari_spatial_impute"
ROOT = Path(napari_spatial_impute.__file__).resolve().parent


def _modules() -> dict[str, tuple[Path, bool]]:
    """module name → (file, is a package ``__init__``)."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join([PACKAGE, *parts])] = (path, is_pkg)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Import statements anywhere in the tree, skipping ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _resolve(name: str, modules: dict) -> str | None:
    """The longest module of the package that ``name`` (a dotted module path) starts with."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph() -> dict[str, set[str]]:
    """module → the package modules it imports."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, (path, is_pkg) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = module if is_pkg else module.rpartition(".")[0]
        for node in _import_nodes(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == PACKAGE]
            else:
                if node.level:
                    base = package.split(".")
                    if node.level > 1:
                        base = base[: -(node.level - 1)]
                    base_name = ".".join(base + ([node.module] if node.module else []))
                elif node.module and node.module.split(".")[0] == PACKAGE:
                    base_name = node.module
                else:
                    continue
                for alias in node.names:
                    sub = f"{base_name}.{alias.name}"
                    targets.append(sub if sub in modules else base_name)
            for target in targets:
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != module:
                    graph[module].add(resolved)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a closed path) per strongly connected component with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:  # Tarjan; the graph is small, recursion is fine
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return [_cycle_in(graph, set(comp)) for comp in components]


def _cycle_in(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A shortest closed path through the component's first module (breadth-first)."""
    start = min(comp)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & comp):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return sorted(comp)


def test_graph_sees_relative_absolute_and_function_level_imports():
    graph = import_graph()
    assert f"{PACKAGE}.errors" in graph[f"{PACKAGE}.io.cosmx"]  # module-level relative, two dots
    assert f"{PACKAGE}.layers.cells" in graph[f"{PACKAGE}.layers"]  # package __init__ → submodule
    assert f"{PACKAGE}.layers" in graph[f"{PACKAGE}._sample_data"]  # function-level relative import
    assert f"{PACKAGE}.datasets" in graph[f"{PACKAGE}._sample_data"]


def test_cycle_finder_reports_a_closed_path():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"x": {"x.sub"}, "x.sub": set()}) == []


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)
