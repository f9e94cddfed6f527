"""The shape of the code: no import circles, and the product apart from the sandboxes.

Every import counts here, wherever it stands: module level, under
``TYPE_CHECKING`` and inside functions, because a circle that only closes at
run time or in the type checker is still a circle for the reader. The layering
rule itself (what may import what) is checked by import-linter in ``make lint``
(``[tool.importlinter]`` in pyproject.toml; see docs/architecture.md).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("connector", "segsync_sandbox")

# The only places the product may reach the sandboxes: the demo command
# imports the launcher; the CLI registers the ``sandbox`` command by name.
SANDBOX_IMPORTERS = frozenset({"connector.commands.demo"})
SANDBOX_REGISTRARS = frozenset({"connector.cli"})


def find_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` file of ``packages`` under ``root``."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _known(name: str, modules: Mapping[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of ``modules`` (None: outside them)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The modules among ``modules`` that ``module`` imports, anywhere in its source.

    ``from package import name`` depends on ``package.name`` when that is a
    module, else on ``package`` itself (a name its ``__init__`` defines).
    """
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, *([node.module] if node.module else [])])
            else:
                prefix = node.module or ""
            for alias in node.names:
                full = f"{prefix}.{alias.name}"
                targets.append(full if full in modules else prefix)
        for target in targets:
            known = _known(target, modules)
            if known is not None and known != module:
                found.add(known)
    return found


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, set[str]]:
    """Module → the modules it imports, for every module of ``packages``."""
    modules = find_modules(root, packages)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def circles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def cycle_path(graph: Mapping[str, set[str]], component: list[str]) -> list[str]:
    """One concrete circle through a component's first module: ``[a, b, …, a]``."""
    members = set(component)
    start = component[0]
    paths: dict[str, list[str]] = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node] & members):
            if target == start:
                return [*paths[node], start]
            if target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    raise AssertionError(f"no circle through {start}")  # a component always has one


def _describe(graph: Mapping[str, set[str]], found: list[list[str]]) -> str:
    return "; ".join(" -> ".join(cycle_path(graph, component)) for component in found)


def test_no_import_circles() -> None:
    graph = import_graph(ROOT, PACKAGES)
    assert len(graph) > 50  # the walk found the packages
    found = circles(graph)
    assert not found, f"import circles: {_describe(graph, found)}"


def test_the_product_reaches_the_sandboxes_only_from_the_demo_and_the_cli() -> None:
    modules = find_modules(ROOT, PACKAGES)
    graph = import_graph(ROOT, PACKAGES)
    importers = {
        module
        for module, targets in graph.items()
        if module.split(".")[0] == "connector"
        and any(t.split(".")[0] == "segsync_sandbox" for t in targets)
    }
    assert importers == SANDBOX_IMPORTERS
    # A dynamic import (importlib.import_module("segsync_sandbox…")) names the
    # package in a string: only the CLI's command registration (and the demo) may.
    naming = {
        module
        for module, path in modules.items()
        if module.split(".")[0] == "connector"
        and any(
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.split(".")[0] == "segsync_sandbox"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    }
    assert SANDBOX_REGISTRARS <= naming <= SANDBOX_REGISTRARS | SANDBOX_IMPORTERS


def test_the_sandboxes_import_nothing_from_the_product() -> None:
    graph = import_graph(ROOT, PACKAGES)
    reaching = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module.split(".")[0] == "segsync_sandbox"
        for target in targets
        if target.split(".")[0] == "connector"
    )
    assert reaching == []


# -- the checker checks ------------------------------------------------------------------


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    "b_source",
    [
        "from pkg import a\n",
        "from . import a\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n",
        "def late():\n    from .a import A\n    return A\n",
        "import pkg.a\n",
    ],
    ids=["absolute", "relative", "type-checking", "in-function", "plain-import"],
)
def test_a_circle_is_found_however_it_is_written(tmp_path: Path, b_source: str) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import B\nclass A: ...\n",
            "pkg/b.py": b_source + "class B: ...\n",
            "pkg/c.py": "from pkg.a import A\n",
        },
    )
    graph = import_graph(tmp_path, ["pkg"])
    found = circles(graph)
    assert found == [["pkg.a", "pkg.b"]]
    assert _describe(graph, found) == "pkg.a -> pkg.b -> pkg.a"


def test_a_package_reexporting_its_modules_is_no_circle(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import A\nfrom pkg.sub import B\n",
            "pkg/a.py": "from pkg.sub.b import B\nclass A: ...\n",
            "pkg/sub/__init__.py": "from .b import B\n",
            "pkg/sub/b.py": "from pkg import c\nclass B: ...\n",
            "pkg/c.py": "",
        },
    )
    graph = import_graph(tmp_path, ["pkg"])
    # ``from pkg import c`` depends on the module pkg.c, not on pkg's __init__.
    assert graph["pkg.sub.b"] == {"pkg.c"}
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert circles(graph) == []
