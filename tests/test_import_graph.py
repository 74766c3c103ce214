"""No module of ours imports one that imports it back, directly or through others.

The graph is built from the source with `ast` (nothing is imported), over the four packages:
webapp, worker, training and ringmodel. Every `import` counts wherever it is written: at module
level and inside functions alike, because an import moved into a function to dodge a cycle is still
the same cycle (two modules that need each other), only one that fails later and less clearly.

Imports under `if TYPE_CHECKING:` are left out: they never run, so they cannot make one module's
loading depend on another's; they only tell the type checker what an annotation names.

`from package import name` points at `package.name` when that is a module, else at the package's
`__init__`; `import a.b.c` at the nearest of those that is ours. (Loading a submodule loads its
packages' `__init__` first; those edges are not drawn, only the imports a module writes.)
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("webapp", "worker", "training", "ringmodel")


def _module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT).with_suffix("")
            parts = relative.parts
            if "migrations" in parts:
                continue  # generated, and they import nothing of ours that imports them
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, module: str, is_package: bool):
    """Yield every absolute dotted name `module` imports, outside TYPE_CHECKING blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if _is_type_checking_block(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                yield source, alias.name
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    modules = _module_files()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for source, imported in _imported_names(tree, name, path.name == "__init__.py"):
            candidates = [f"{source}.{imported}", source] if imported else [source]
            for candidate in candidates:
                # `import a.b.c` or a name inside a module: walk up to the nearest module of ours.
                while candidate and candidate not in modules:
                    candidate = candidate.rpartition(".")[0]
                if candidate:
                    break
            if candidate and candidate != name:
                graph[name].add(candidate)
    return graph


def knots(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted: the sets
    of modules that all reach each other through imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One concrete cycle per knot, so a failure names every knot once."""
    return [_cycle_through(graph, component) for component in knots(graph)]


def _cycle_through(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete cycle inside a strongly connected component, starting at its first module."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        next_frontier = []
        for node in frontier:
            for target in sorted(graph[node] & members):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if target not in parents:
                    parents[target] = node
                    next_frontier.append(target)
        frontier = next_frontier
    raise AssertionError(f"no cycle through {component}")


def test_the_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    # registry.tasks imports its services inside the task functions only.
    assert "webapp.registry.services" in graph["webapp.registry.tasks"]
    assert "webapp.celery" in graph["webapp"]


def test_cycle_finder_names_a_cycle_hidden_behind_a_third_module():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = import_graph()
    found = knots(graph)
    assert not found, "import cycles (module -> module it imports):\n" + "\n".join(
        f"{' -> '.join(_cycle_through(graph, knot))}   (knot: {', '.join(knot)})" for knot in found
    )
