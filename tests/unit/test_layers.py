"""The layers of ``streamflow/``: which package may import which, and no import cycles.

Every ``import`` in ``streamflow/`` (module level and inside functions, ``TYPE_CHECKING``
blocks included) is an edge between two *units*: a subpackage (``dsl``, ``plan``, ...) or a
top-level module (``record``, ``errors``, ...). ``LAYERS`` says which units each unit may
import; it is mirrored in docs/architecture.md. Imports inside one unit are not checked.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "streamflow"

SHARED_LEAVES = {"record", "errors", "config", "windows"}

# unit -> the units it may import (besides itself)
LAYERS: dict[str, set[str]] = {
    "record": {"errors"},
    "errors": set(),
    "config": {"errors"},
    "windows": {"record", "errors"},
    "dsl": {"record", "errors", "config", "windows", "serde"},
    "plan": {"dsl", "state", "serde", "record", "errors", "windows"},
    "runtime": {"plan", "dsl", "state", "serde", "kafka", "observability", "record", "errors",
                "config", "windows"},
    "kafka": {"errors", "config"},
    "serde": {"kafka", "record", "errors", "windows"},  # kafka: the registry client only
    "state": {"serde", "record", "errors", "windows"},
    # dsl and serde: lineage describes a processor's topics and their Avro contracts
    "observability": {"dsl", "serde", "errors", "config", "record"},
    "ops": {"dsl", "plan", "runtime", "kafka", "serde", "state", "errors", "config", "record",
            "windows"},
    # the dashboard: ops' status and tail, the graph describe draws, topic ends from kafka
    "dashboard": {"ops", "dsl", "kafka", "observability", "config", "errors"},
    # testing: `streamflow stack`
    "cli": {"dashboard", "ops", "dsl", "plan", "runtime", "kafka", "serde", "state",
            "observability", "errors", "config", "record", "windows", "testing"},
    "testing": {"dsl", "plan", "runtime", "state", "serde", "kafka", "record", "errors",
                "config", "windows"},
    # the package itself (streamflow/__init__.py: the public API) and ``python -m streamflow``
    "__init__": {"dsl", "record", "serde", "windows", "errors", "config"},
    "__main__": {"cli"},
}

# edges that break the table today, each with what removes it
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}

CONFLUENT_IMPORTERS = {"kafka", "testing"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every module ``path`` imports (absolute names), with its line."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "streamflow":  # from streamflow import errors, dsl, ...
                for alias in node.names:
                    yield f"streamflow.{alias.name}", node.lineno
            else:
                yield base, node.lineno


def _edges() -> dict[tuple[str, str], list[str]]:
    """(unit, imported unit or 'confluent_kafka') -> where ('streamflow/x.py:12 imports y')."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        src = _unit(_module_name(path))
        for target, line in _imports(path):
            top = target.split(".")[0]
            if top == "confluent_kafka":
                dst = "confluent_kafka"
            elif top == "streamflow" and target != "streamflow":
                dst = _unit(target)
            else:
                continue
            if dst != src:
                where = f"{path.relative_to(ROOT.parent)}:{line} imports {target}"
                edges.setdefault((src, dst), []).append(where)
    return edges


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_every_unit_is_in_the_layer_table() -> None:
    units = {_unit(_module_name(p)) for p in ROOT.rglob("*.py")}
    assert units - set(LAYERS) == set(), "add the new package or module to LAYERS (and docs)"


def test_every_import_follows_the_layer_table() -> None:
    bad = []
    for (src, dst), where in sorted(_edges().items()):
        if dst == "confluent_kafka" or dst in LAYERS[src] or (src, dst) in KNOWN_EXCEPTIONS:
            continue
        bad.append(f"{src} -> {dst} is not allowed by the layer table:\n    "
                   + "\n    ".join(where))
    assert not bad, "\n".join(bad)


def test_known_exceptions_still_exist() -> None:
    # an exception that no import needs any more is deleted from the table
    edges = _edges()
    stale = [f"{a} -> {b} ({why})" for (a, b), why in KNOWN_EXCEPTIONS.items()
             if (a, b) not in edges]
    assert not stale, f"delete from KNOWN_EXCEPTIONS: {stale}"


def test_shared_leaves_import_only_shared_leaves() -> None:
    for leaf in SHARED_LEAVES:
        assert LAYERS[leaf] <= SHARED_LEAVES, leaf


def test_no_import_cycle_between_units() -> None:
    graph: dict[str, set[str]] = {}
    for src, dst in _edges():
        if dst != "confluent_kafka":
            graph.setdefault(src, set()).add(dst)
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_layer_table_itself_has_no_cycle() -> None:
    cycle = _cycle({k: v for k, v in LAYERS.items()})
    assert cycle is None, "the layer table allows a cycle: " + " -> ".join(cycle or [])


def test_only_kafka_and_testing_import_confluent_kafka() -> None:
    where = [w for (src, dst), ws in _edges().items()
             if dst == "confluent_kafka" and src not in CONFLUENT_IMPORTERS for w in ws]
    assert not where, "confluent_kafka imported outside kafka/ and testing/:\n" + "\n".join(where)


def test_cycle_finder_names_the_path() -> None:
    assert _cycle({"dsl": {"plan"}, "plan": {"state"}, "state": {"dsl"}}) == [
        "dsl", "plan", "state", "dsl"]
    assert _cycle({"dsl": {"serde"}, "serde": set()}) is None


def test_the_table_is_mirrored_in_the_docs() -> None:
    doc = (ROOT.parent / "docs" / "architecture.md").read_text()
    for unit, allowed in LAYERS.items():
        if unit.startswith("__"):
            continue
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{unit}` |")),
                   None)
        assert row is not None, f"docs/architecture.md has no row for {unit}"
        listed = {w.strip("` ") for w in row.split("|")[2].split(",") if w.strip("` ")}
        assert listed == allowed, f"docs/architecture.md row for {unit}: {listed} != {allowed}"
