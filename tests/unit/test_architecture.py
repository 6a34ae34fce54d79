"""The import graph of streamproc/, read from the source: no cycles, every import points down.

The layers are the table in ``docs/architecture.md``; :data:`LAYERS` is the same table,
and a test fails when the two differ. A *component* is a first-level package or module of
``streamproc`` (``clay``, ``settings``); ``__init__`` is the package's own
``streamproc/__init__.py``. A component may import its own modules and components of lower
layers, never one of its own layer or above.

Every import statement counts, wherever it stands: at module level, inside a function (the
CLI's lazy imports), and under ``if TYPE_CHECKING:``. A type-only import is still a
dependency: the module cannot be read, or type-checked, without the one it names, and an
upward type-only import is how a cycle starts.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "streamproc"
DOCS = ROOT / "docs" / "architecture.md"

#: Bottom first. Kept equal to the table in docs/architecture.md (a test checks it).
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"errors", "logs", "timestamps", "signals", "fieldpaths", "completion"}),
    frozenset({"settings", "records"}),
    frozenset({"redact", "settings_doc", "__init__", "tracing"}),
    frozenset({"kafka", "provider", "ops", "resilience", "registry", "waterfall"}),
    frozenset({"state"}),
    frozenset({"processing"}),
    frozenset({"clay", "replay"}),
    frozenset({"app", "console", "sample", "simulators", "trial"}),
    frozenset({"cli"}),
    frozenset({"__main__"}),
)
LAYER_OF = {name: level for level, names in enumerate(LAYERS) for name in names}

#: Pure modules whose imports put them below ``processing``, and which sit there
#: (docs/architecture.md): the state fold and what it folds. Moved back up into
#: ``processing``, the replayer and the console would import the pipeline to read the state.
BELOW_PROCESSING = (
    "streamproc.resilience.cache",
    "streamproc.resilience.receipts",
    "streamproc.state.group_state",
)


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module, dotted (a package's __init__ is the package)
    where: str  # path:line, for the failure message


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports() -> list[Import]:
    modules = _modules()

    def resolve(name: str) -> str:
        # ``from streamproc.clay import service`` names a module; ``import ClayService``
        # names something in one: the longest prefix that is a module.
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    found = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = module.split(".") if is_package else module.split(".")[:-1]
                    kept = here[: len(here) - node.level + 1]
                    base = ".".join([*kept, base] if base else kept)
                names = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            for name in names:
                if name == "streamproc" or name.startswith("streamproc."):
                    target = resolve(name)
                    if target != module:
                        found.append(Import(module, target, where))
    return found


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
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
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_the_source() -> None:
    """The reader sees the imports it must judge: module-level, lazy and type-only alike."""
    found = _imports()
    imports = {(i.source, i.target) for i in found}
    assert ("streamproc.cli", "streamproc.app") in imports  # inside a function
    cli = PACKAGE / "cli.py"
    type_only = {
        f"{cli.relative_to(ROOT)}:{node.lineno}"
        for block in ast.parse(cli.read_text()).body
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in block.body
        if isinstance(node, ast.ImportFrom)
    }
    assert type_only and type_only <= {i.where for i in found}  # TYPE_CHECKING
    assert ("streamproc.clay", "streamproc.clay.service") in imports  # a package's __init__


def test_every_component_has_a_layer() -> None:
    """A new package or top-level module must be placed in the table before it is used."""
    components = {_component(module) for module in _modules()}
    assert components - LAYER_OF.keys() == set(), "add it to LAYERS and docs/architecture.md"
    assert LAYER_OF.keys() - components == set(), "remove it from LAYERS and the docs"


def test_every_import_points_to_a_lower_layer() -> None:
    """A component imports its own modules and lower layers only, never sideways or up."""
    wrong = [
        f"{i.where}: {i.source} imports {i.target} "
        f"(layer {LAYER_OF[_component(i.source)]} -> {LAYER_OF[_component(i.target)]})"
        for i in _imports()
        if _component(i.source) != _component(i.target)
        and LAYER_OF[_component(i.target)] >= LAYER_OF[_component(i.source)]
    ]
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_package_imports_another_that_imports_it_back() -> None:
    """The graph of components has no cycle."""
    edges: dict[str, set[str]] = defaultdict(set)
    for i in _imports():
        if _component(i.source) != _component(i.target):
            edges[_component(i.source)].add(_component(i.target))
    cycles = _cycles(edges)
    assert not cycles, f"packages in a cycle: {cycles}"


def test_no_module_imports_another_that_imports_it_back() -> None:
    """Inside packages too, the graph of modules has no cycle."""
    edges: dict[str, set[str]] = defaultdict(set)
    for i in _imports():
        edges[i.source].add(i.target)
    cycles = _cycles(edges)
    assert not cycles, f"modules in a cycle: {cycles}"


def test_only_the_cli_imports_the_simulators() -> None:
    """The simulators are test equipment: no product module may depend on them."""
    users = {
        _component(i.source)
        for i in _imports()
        if _component(i.target) == "simulators" and _component(i.source) != "simulators"
    }
    assert users <= {"cli"}, f"simulators imported by {sorted(users - {'cli'})}"


def test_the_state_fold_and_its_parts_sit_below_the_pipeline() -> None:
    """The cache, the receipts and the group's state fold live below ``processing``; the
    replayer reads the group's state without importing the pipeline, and the console
    imports it only to change the spending (``spending_control``)."""
    modules = _modules()
    for name in BELOW_PROCESSING:
        assert name in modules, f"{name} is gone: docs/architecture.md says where it lives"
        assert LAYER_OF[_component(name)] < LAYER_OF["processing"], name
    uses = {
        (_component(i.source), i.target, i.where)
        for i in _imports()
        if _component(i.target) == "processing"
    }
    replay = sorted(where for source, _, where in uses if source == "replay")
    assert not replay, f"replay imports processing: {replay}"
    console = sorted(
        where
        for source, target, where in uses
        if source == "console" and target != "streamproc.processing.spending_control"
    )
    assert not console, f"console imports processing to read the state: {console}"


def test_the_layers_are_the_table_in_the_docs() -> None:
    """docs/architecture.md shows the same layers as this test enforces."""
    rows = re.findall(r"^\|\s*(\d+)\s*\|([^|]*)\|", DOCS.read_text(), flags=re.MULTILINE)
    documented = {int(level): frozenset(re.findall(r"`([^`]+)`", names)) for level, names in rows}
    assert documented == dict(enumerate(LAYERS))


def test_a_cycle_is_found() -> None:
    """The cycle finder reports a three-node loop and ignores a chain."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}}) == []
