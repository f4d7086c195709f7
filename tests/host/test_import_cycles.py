"""No import circle among the host tools' modules, nor among the firmware's.

Every import counts, also one inside a function: a circle that works only because one
side imports late is still a circle. Modules outside the tree (stdlib, packages) are left out.
"""

from pathlib import Path

import pytest

from host_tools.common.imports import graph

REPO = Path(__file__).resolve().parents[2]


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
