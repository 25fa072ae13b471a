"""The package layering, checked on the source: each layer imports only the layers below it,

    lanewatch.trackers  <-  lanewatch.sinks  <-  lanewatch.stream

and no two modules import each other, directly or round a longer cycle. Inside `stream`, the
sub-packages are layered too, in the order a frame meets them (STREAM_ORDER). Every import
counts, at module level or inside a function; only imports under `if TYPE_CHECKING:` (names
for annotations, never executed) are left out of the cycle check, not of the layering.
Also: every package is listed in pyproject.toml, and no module is over MAX_LINES lines.
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO

LAYERS = ("trackers", "sinks", "stream")  # each may import only the ones before it
# stream's sub-packages (and its top-level modules), lowest first: each may import only the
# ones before it. Sources come first (a frame starts there; the config embeds their settings),
# cli is the top: it wires the rest.
STREAM_ORDER = ("sources", "config", "detect", "pipeline", "cluster", "serve", "bench",
                "validation", "tune", "cli")
MAX_LINES = 400


@dataclass(frozen=True)
class Import:
    """One `import` of a lanewatch module: who imports what, where, and whether it runs."""

    importer: str  # dotted module name, e.g. lanewatch.stream.pipeline.runner
    imported: str  # the lanewatch module it names (a package's __init__ for package names)
    line: int
    type_checking_only: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return "lanewatch." + ".".join(parts)


def source_modules() -> dict[str, Path]:
    """Every module of the three packages, by dotted name."""
    return {module_name(p): p for layer in LAYERS for p in sorted((REPO / layer).rglob("*.py"))}


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                and node.test.id == "TYPE_CHECKING"):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(name: str, source: str, known: set[str]) -> list[Import]:
    """The lanewatch imports in one module's source. `from package import module` names the
    module; `from module import name` the module."""
    tree = ast.parse(source)
    guarded = _type_checking_lines(tree)
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known
                       else node.module for a in node.names]
        for target in dict.fromkeys(targets):
            if target.startswith("lanewatch."):
                found.append(Import(name, target, node.lineno, node.lineno in guarded))
    return found


def all_imports() -> list[Import]:
    modules = source_modules()
    return [imp for name, path in modules.items()
            for imp in imports_of(name, path.read_text(), set(modules))]


def _rank(module: str) -> tuple[int, int]:
    """(layer, stream sub-package) of a module; lower may not import higher."""
    parts = module.split(".")
    layer = LAYERS.index(parts[1])
    if parts[1] != "stream" or len(parts) < 3:
        return layer, -1
    return layer, STREAM_ORDER.index(parts[2]) if parts[2] in STREAM_ORDER else -1


def layering_violations(imports: list[Import]) -> list[str]:
    """Each import of a higher layer (or a later stream sub-package), as one line."""
    out = []
    for imp in imports:
        if _rank(imp.imported) > _rank(imp.importer):
            out.append(f"{imp.importer} (line {imp.line}) imports {imp.imported}")
    return out


def import_cycles(imports: list[Import]) -> list[list[str]]:
    """Cycles among the modules' executed imports (Tarjan's strongly connected components)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if not imp.type_checking_only and imp.imported != imp.importer:
            graph.setdefault(imp.importer, set()).add(imp.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_each_layer_imports_only_the_layers_below_it():
    violations = layering_violations(all_imports())
    assert not violations, "imports against the layering:\n" + "\n".join(violations)


def test_no_import_cycles_between_modules():
    cycles = import_cycles(all_imports())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


# The checks themselves, on imports written to break them: an inverted import and a cycle
# must be reported, with the file's line.
INVERTED = {
    "lanewatch.trackers.analytics.counts": "from lanewatch.sinks.store import CountStore\n",
    "lanewatch.sinks.store": "import lanewatch.stream.pipeline.runner\n",
    "lanewatch.stream.config.schema": "from lanewatch.stream.serve import api\n",
    "lanewatch.stream.detect.detector": (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from lanewatch.stream.pipeline.processor import StreamProcessor\n"),
}


@pytest.mark.parametrize("importer", list(INVERTED))
def test_an_inverted_import_is_reported(importer):
    known = set(source_modules())
    found = imports_of(importer, INVERTED[importer], known)
    violations = layering_violations(found)
    assert len(violations) == 1 and violations[0].startswith(importer + " (line "), violations


def test_a_cycle_is_reported_and_type_checking_imports_are_not_cycles():
    known = set(source_modules()) | {"lanewatch.trackers.a", "lanewatch.trackers.b"}
    a = imports_of("lanewatch.trackers.a", "from lanewatch.trackers.b import x\n", known)
    b = imports_of("lanewatch.trackers.b", "def f():\n    import lanewatch.trackers.a\n", known)
    assert import_cycles(a + b) == [["lanewatch.trackers.a", "lanewatch.trackers.b"]]
    guarded = imports_of("lanewatch.trackers.b", "from typing import TYPE_CHECKING\n"
                         "if TYPE_CHECKING:\n    import lanewatch.trackers.a\n", known)
    assert import_cycles(a + guarded) == []


def test_every_package_is_installed():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    packages = {module_name(p.parent / "__init__.py") for layer in LAYERS
                for p in (REPO / layer).rglob("__init__.py")}
    assert packages == listed, f"pyproject.toml packages: missing {sorted(packages - listed)}, " \
                               f"stale {sorted(listed - packages)}"


def test_no_module_is_over_the_line_limit():
    long = {name: n for name, path in source_modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by concept): {long}"
