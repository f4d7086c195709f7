"""No import circle among the host tools' modules, nor among the firmware's.

Every import counts, also one inside a function: a circle that works only because one
side imports late is still a circle. Modules outside the tree (stdlib, packages) are left out.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def modules(root: Path, prefix: str) -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package) for every module under root."""
    found = {}
    for path in root.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(root).with_suffix("").parts)
        package = parts[-1] == "__init__"
        if package:
            parts.pop()
        found[".".join([prefix, *parts] if prefix else parts)] = (path, package)
    return found


def imported(name: str, path: Path, package: bool) -> set[str]:
    """Every dotted name an import statement in the module may refer to."""
    here = name if package else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names.add(module)
            names.update(module + "." + alias.name for alias in node.names)
    return names


def graph(root: Path, prefix: str) -> dict[str, set[str]]:
    known = modules(root, prefix)
    edges = {}
    for name, (path, package) in known.items():
        targets = set()
        for dotted in imported(name, path, package):
            parts = dotted.split(".")
            for end in range(len(parts), 0, -1):  # the module, or else the package it is in
                candidate = ".".join(parts[:end])
                if candidate in known:
                    targets.add(candidate)
                    break
        edges[name] = targets - {name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
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
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_finder_sees_a_circle(tmp_path):
    (tmp_path / "a.py").write_text("def f():\n    from b import g\n")
    (tmp_path / "b.py").write_text("import a\n")
    (tmp_path / "c.py").write_text("import a\n")
    assert cycles(graph(tmp_path, "")) == [["a", "b"]]


@pytest.mark.parametrize("tree, prefix", [("host_tools", "host_tools"), ("device", "")])
def test_no_import_circle(tree, prefix):
    edges = graph(REPO / tree, prefix)
    assert len(edges) > 10
    assert cycles(edges) == []
