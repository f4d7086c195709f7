"""Which module imports which, read from the source (no code runs): for the import-circle
test and for the benchmark's per-module memory table."""

import ast
from pathlib import Path


def modules(root: Path, prefix: str = "") -> dict[str, tuple[Path, bool]]:
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


def _statements(tree: ast.Module, top_level: bool):
    """Every node, or only those that run when the module is imported (not in a def)."""
    if not top_level:
        yield from ast.walk(tree)
        return
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            pending.extend(ast.iter_child_nodes(node))


def imported(name: str, path: Path, package: bool, top_level: bool = False) -> set[str]:
    """Every dotted name an import statement in the module may refer to."""
    here = name if package else name.rpartition(".")[0]
    names = set()
    for node in _statements(ast.parse(path.read_text()), top_level):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(module + "." + alias.name for alias in node.names)
    return names


def graph(root: Path, prefix: str = "", top_level: bool = False) -> dict[str, set[str]]:
    """Module -> the modules of the tree it imports (all imports, or those at import time;
    importing a submodule imports its package too)."""
    known = modules(root, prefix)
    edges = {}
    for name, (path, package) in known.items():
        targets = set()
        for dotted in imported(name, path, package, top_level):
            parts = dotted.split(".")
            for end in range(len(parts), 0, -1):  # the module, or else the package it is in
                candidate = ".".join(parts[:end])
                if candidate in known:
                    targets.add(candidate)
                    break
        parent = name.rpartition(".")[0]
        if parent in known:
            targets.add(parent)
        edges[name] = targets - {name}
    return edges


def load_order(edges: dict[str, set[str]], roots) -> list[str]:
    """The modules that importing `roots` loads, each after everything it imports."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(node: str) -> None:
        if node in seen:
            return
        seen.add(node)
        for target in sorted(edges.get(node, ())):
            visit(target)
        order.append(node)

    for root in roots:
        visit(root)
    return order
