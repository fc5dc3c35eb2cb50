"""The package's imports, read from its source with :mod:`ast`, and the rules
its layers keep: no cycle, no import from a higher layer into a lower one or
across peers, no private name of another module, and games that use only the
public API.

Every import counts: at module level, inside functions, and under
``TYPE_CHECKING`` (a cycle hidden in a function is still a cycle). The checker
knows nothing of the package beyond :data:`LAYERS`, so it runs as well on a
tree made up by a test as on the real one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import attrs

#: The layers, lowest first: each group of modules by the name they start with
#: (the longest that fits), and its rank. A module may import from its own group
#: or from a group of lower rank; groups of the same rank are peers, which may
#: not import each other.
LAYERS: dict[str, tuple[str, int]] = {
    "jetforce_sesh.errors": ("base", 0),
    "jetforce_sesh.options": ("base", 0),
    "jetforce_sesh.identity": ("base", 0),
    "jetforce_sesh.keys": ("base", 0),
    "jetforce_sesh.names": ("base", 0),
    "jetforce_sesh.version": ("base", 0),
    "jetforce_sesh.moved": ("base", 0),
    "jetforce_sesh.records": ("records", 1),
    "jetforce_sesh.stores": ("stores", 1),
    "jetforce_sesh.session": ("session", 2),
    "jetforce_sesh.accounts": ("accounts", 3),
    "jetforce_sesh.bridge": ("bridge", 3),
    "jetforce_sesh.server": ("server", 3),
    "jetforce_sesh.ops": ("ops", 4),
    "jetforce_sesh.cli": ("cli", 5),
    "jetforce_sesh.__main__": ("cli", 5),
    "jetforce_sesh.testing": ("testing", 5),
    "jetforce_sesh": ("root", 6),
    "jetforce_sesh.games": ("games", 7),
    "jetforce_sesh.demo": ("demo", 8),
}

#: Where games may import from, in the package: the public API, and each other.
GAME_IMPORTS = ("jetforce_sesh", "jetforce_sesh.games")

#: The imports that break a rule on purpose, each with why and until when.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("jetforce_sesh", "jetforce_sesh.demo"): (
        "the root's lazy `app` attribute, so that `--app jetforce_sesh:app`"
        " names the demo capsule; loaded only when asked for"
    ),
    ("jetforce_sesh.session.application", "jetforce_sesh.accounts"): (
        "the deprecated SessionApplication.use_accounts() pass-through; removed in 0.4"
    ),
}


@attrs.frozen
class Import:
    """One name (or module) that ``importer`` imports from ``module``."""

    importer: str
    module: str
    name: str | None
    line: int


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package whose directory is ``root``, by name."""
    return {module_name(root, path): path for path in sorted(root.rglob("*.py"))}


def imports(root: Path) -> Iterator[Import]:
    """Every import of the package's own modules, anywhere in each module."""
    package = root.name
    known = modules(root)
    for importer, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == package:
                        yield Import(importer, alias.name, None, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, importer, is_package)
                if base.split(".")[0] != package:
                    continue
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    if submodule in known:
                        yield Import(importer, submodule, None, node.lineno)
                    else:
                        yield Import(importer, base, alias.name, node.lineno)


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = importer.split(".")
    if not is_package:
        parts.pop()
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def layer(module: str) -> tuple[str, int]:
    """The group and rank of ``module``, by the longest name in :data:`LAYERS`
    that it is or starts with (the package itself only as itself); ("", -1)
    for a module in no layer."""
    found = [
        prefix
        for prefix in LAYERS
        if module == prefix or ("." in prefix and module.startswith(prefix + "."))
    ]
    if not found:
        return ("", -1)
    return LAYERS[max(found, key=len)]


def layer_violations(found: list[Import]) -> list[str]:
    """Imports from a higher layer, or from a peer of the same rank."""
    problems: list[str] = []
    for each in found:
        if (each.importer, each.module) in EXCEPTIONS:
            continue
        (mine, my_rank), (theirs, their_rank) = layer(each.importer), layer(each.module)
        if not mine or not theirs or mine == theirs or their_rank < my_rank:
            continue
        kind = "a peer" if their_rank == my_rank else "a higher layer"
        problems.append(f"{each.importer}:{each.line} imports {each.module} ({kind})")
    return problems


def cycles(found: list[Import]) -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop
    (Tarjan's strongly connected components of more than one module)."""
    graph: dict[str, set[str]] = {}
    for each in found:
        if (each.importer, each.module) in EXCEPTIONS or each.importer == each.module:
            continue
        graph.setdefault(each.importer, set()).add(each.module)
        graph.setdefault(each.module, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for following in sorted(graph[node]):
            if following not in index:
                visit(following)
                low[node] = min(low[node], low[following])
            elif following in on_stack:
                low[node] = min(low[node], index[following])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def private_imports(found: list[Import]) -> list[str]:
    """``from module import _name`` of another module's private name."""
    return [
        f"{each.importer}:{each.line} imports {each.module}.{each.name}"
        for each in found
        if each.name is not None
        and each.name.startswith("_")
        and not each.name.startswith("__")
        and each.module != each.importer
    ]


def private_reaches(root: Path) -> list[str]:
    """``thing._name`` where ``_name`` is a private attribute that only other
    modules of the package define: reaching into another module's object."""
    known = modules(root)
    defined: dict[str, set[str]] = {}
    trees = {name: ast.parse(path.read_text()) for name, path in known.items()}
    for name, tree in trees.items():
        mine = defined.setdefault(name, set())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                mine.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                mine.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                mine.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                mine.add(node.target.id)
    problems = []
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            attr = node.attr
            if not attr.startswith("_") or attr.startswith("__"):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if attr in defined[name]:
                continue
            owners = sorted(other for other, names in defined.items() if attr in names)
            if owners:
                problems.append(
                    f"{name}:{node.lineno} uses {attr}, private to {', '.join(owners)}"
                )
    return problems


def game_violations(found: list[Import]) -> list[str]:
    """Games importing anything of the package but its public API."""
    return sorted(
        {
            f"{each.importer}:{each.line} imports {each.module}"
            for each in found
            if layer(each.importer)[0] == "games"
            and each.module not in GAME_IMPORTS
            and not each.module.startswith("jetforce_sesh.games.")
        }
    )


def report(root: Path) -> list[str]:
    """Every broken rule in the package at ``root``, one line each."""
    found = list(imports(root))
    found = sorted(set(found), key=lambda each: (each.importer, each.line))
    lines = [f"cycle: {' <-> '.join(cycle)}" for cycle in cycles(found)]
    lines += [
        f"layer: {name} is in no layer of LAYERS"
        for name in modules(root)
        if not layer(name)[0]
    ]
    lines += [f"layer: {problem}" for problem in layer_violations(found)]
    lines += [f"private: {problem}" for problem in private_imports(found)]
    lines += [f"private: {problem}" for problem in private_reaches(root)]
    lines += [f"game: {problem}" for problem in game_violations(found)]
    return list(dict.fromkeys(lines))


if __name__ == "__main__":
    import sys

    problems = report(Path(sys.argv[1] if len(sys.argv) > 1 else "jetforce_sesh"))
    print("\n".join(problems) or "no problems")
    raise SystemExit(1 if problems else 0)
