"""``streamflow check``: each class of problem is caught in a dedicated broken topology."""

from __future__ import annotations

import importlib
import json
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

import streamflow as sf
from streamflow.cli import main
from streamflow.dsl.nodes import Node
from streamflow.kafka.registry import make_registry_client
from streamflow.ops.check import check_topology

BROKEN = "tests.unit.broken_topologies"


@pytest.fixture(autouse=True)
def _no_env_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make test` exports the local stack's registry URL; these tests choose their own."""
    for var in ("STREAMFLOW_CONFIG", "STREAMFLOW_SCHEMA_REGISTRY_URL"):
        monkeypatch.delenv(var, raising=False)


def _topology(module: str) -> sf.Topology:
    topology = importlib.import_module(f"{BROKEN}.{module}").topology
    assert isinstance(topology, sf.Topology)
    return topology


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize(
    ("module", "code", "expected"),
    [
        ("undeclared_source", "undeclared-source", "topic 'payments' is read by processor(s) "
                                                   "'detect' but no processor"),
        ("external_produced", "external-produced", "'priced' is declared external=True"),
        ("group_collision", "name-collision", "share the consumer group id 'shared'"),
        ("dlq_collision", "name-collision", "dead-letter topic 'priced'"),
        ("internal_collision", "name-collision", "internal topic 't-a-b-c-changelog'"),
        ("cycle", "cycle", "a -[pong]-> b -[ping]-> a"),
        ("self_loop", "cycle", "retry -[work]-> retry"),
        ("copartition", "co-partitioning", "'clicks' has 3 but 'users' has 6 partitions"),
        ("copartition_keys", "co-partitioning", "serialize keys differently"),
    ],
)
def test_check_reports_each_broken_topology_with_a_fix_and_exit_3(
    capsys: pytest.CaptureFixture[str], module: str, code: str, expected: str
) -> None:
    problems = check_topology(_topology(module)).problems
    assert [p.code for p in problems] == [code]
    assert expected in problems[0].message
    assert problems[0].fix

    rc, out = _run(capsys, "check", f"{BROKEN}.{module}")
    assert rc == 3
    lines = [line for line in out.splitlines() if line.startswith("problem: ")]
    assert len(lines) == 1
    assert f"[{code}]" in lines[0] and expected in lines[0] and ". Fix: " in lines[0]
    assert "1 problem(s)" in out


def test_check_reports_a_topology_that_fails_to_load_as_one_problem(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc, out = _run(capsys, "check", f"{BROKEN}.internal_declared_clash")
    assert rc == 3
    assert "problem: [invalid-topology]" in out
    assert "shop-count-totals-changelog" in out


@pytest.mark.parametrize("module", ["valid", "cycle_allowed"])
def test_check_passes_a_valid_topology_with_exit_0(
    capsys: pytest.CaptureFixture[str], module: str
) -> None:
    rc, out = _run(capsys, "check", f"{BROKEN}.{module}")
    assert rc == 0
    assert out.startswith("OK: topology ")
    assert "problem" not in out


def test_check_passes_the_orders_example(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _run(capsys, "check", "topologies.orders")
    assert rc == 0, out
    assert "OK: topology 'orders': 2 processor(s)" in out


def test_cycle_is_allowed_only_when_declared() -> None:
    assert check_topology(_topology("cycle_allowed")).ok
    t = _topology("cycle_allowed")
    t.allow_cycles = False
    assert [p.code for p in check_topology(t).problems] == ["cycle"]


def test_dynamic_routes_turn_undeclared_sources_into_a_note() -> None:
    t = sf.Topology("dyn")
    src = t.topic("in", external=True)
    loop = t.topic("maybe")
    t.topic("out")
    t.processor("router").stream(src).to(lambda r: "maybe")
    t.processor("reader").stream(loop).to("out")
    result = check_topology(t)
    assert result.ok
    assert any("'maybe'" in n and "to(function)" in n for n in result.notes)


@dataclass(frozen=True)
class _FakeJoin(Node):
    """A join that names no topics: check finds them by walking its parents."""

    kind: ClassVar[str] = "join"


def test_copartition_check_walks_parents_of_a_generic_join_node() -> None:
    t = sf.Topology("generic")
    left = t.topic("left", partitions=2, external=True)
    right = t.topic("right", partitions=5, external=True)
    p = t.processor("p")
    a = p.stream(left)
    b = p.stream(right)
    p.add(_FakeJoin("fake-join", (a.node.name, b.node.name)))
    problems = check_topology(t).problems
    assert [x.code for x in problems] == ["co-partitioning"]
    assert "'left' has 2 but 'right' has 5" in problems[0].message


def test_copartition_notes_topics_without_declared_partitions() -> None:
    t = sf.Topology("unknown")
    clicks = t.topic("clicks", key=sf.String(), external=True)
    users = t.topic("users", key=sf.String(), partitions=4, external=True)
    t.topic("out", key=sf.String())
    t.processor("p").stream(clicks).join(t.table(users), lambda c, u: c).to("out")
    result = check_topology(t)
    assert result.ok
    assert any("'clicks'" in n and "declare partitions" in n for n in result.notes)


# -- schemas against a registry ------------------------------------------------------------


def _registry() -> Any:
    return make_registry_client({"url": f"mock://check-{uuid.uuid4().hex}"})


def test_schema_check_reports_incompatible_declarations_against_the_registry() -> None:
    mod = importlib.import_module(f"{BROKEN}.schema_incompatible")
    registry = _registry()
    registry.register("payments-value", json.dumps(mod.PAYMENT_V1))
    registry.register("alerts-value", json.dumps(mod.ALERT_V1))
    problems = check_topology(mod.topology, registry).problems
    assert [p.code for p in problems] == ["schema", "schema"]
    reader, writer = problems
    assert "topic 'payments'" in reader.message and "currency" in reader.message
    assert "cannot read data written with the registered v1" in reader.message
    assert "topic 'alerts'" in writer.message and "BACKWARD" in writer.message
    assert "score" in writer.message and "'detect'" in writer.message


def test_schema_check_passes_compatible_declarations() -> None:
    mod = importlib.import_module(f"{BROKEN}.schema_incompatible")
    registry = _registry()
    registry.register("payments-value", json.dumps(mod.PAYMENT_DECLARED))
    registry.register("alerts-value", json.dumps(mod.ALERT_DECLARED))
    assert check_topology(mod.topology, registry).ok


def test_schema_check_respects_the_subject_compatibility_level() -> None:
    mod = importlib.import_module(f"{BROKEN}.schema_incompatible")
    registry = _registry()
    registry.register("payments-value", json.dumps(mod.PAYMENT_DECLARED))
    registry.register("alerts-value", json.dumps(mod.ALERT_V1))
    registry.set_compatibility("NONE", "alerts-value")
    assert check_topology(mod.topology, registry).ok


def test_schema_check_notes_unregistered_subjects_and_missing_registry() -> None:
    mod = importlib.import_module(f"{BROKEN}.schema_incompatible")
    result = check_topology(mod.topology, _registry())
    assert result.ok
    assert sum("no registered version yet" in n for n in result.notes) == 2
    without = check_topology(mod.topology)
    assert without.ok and any("no schema registry configured" in n for n in without.notes)


def test_check_cli_uses_the_configured_registry(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMFLOW_SCHEMA_REGISTRY_URL", f"mock://cli-{uuid.uuid4().hex}")
    rc, out = _run(capsys, "check", f"{BROKEN}.schema_incompatible")
    assert rc == 0
    assert "note: subject 'alerts-value' has no registered version yet" in out


def test_check_cli_exits_4_when_the_registry_is_unreachable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMFLOW_SCHEMA_REGISTRY_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("STREAMFLOW_SCHEMA_REGISTRY_MAX_RETRIES", "0")
    rc, out = _run(capsys, "check", f"{BROKEN}.schema_incompatible")
    assert rc == 4
    assert "schema registry at http://127.0.0.1:9 is unavailable" in out
