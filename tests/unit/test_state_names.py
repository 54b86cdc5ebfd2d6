"""Stable state names: which stateful steps were named, ``check`` warnings, ``--strict``,
and the comparison with the cluster's internal topics (``--against-cluster``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import streamflow as sf
from streamflow.cli import main
from streamflow.ops.state_names import orphan_fix, state_diff, unnamed_state
from tests.unit import state_names_fixture as fx

UNNAMED = "tests.unit.state_names_fixture:unnamed"


@pytest.fixture(autouse=True)
def _no_env_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("STREAMFLOW_CONFIG", "STREAMFLOW_SCHEMA_REGISTRY_URL"):
        monkeypatch.delenv(var, raising=False)


def test_nodes_record_whether_the_user_named_them_and_derived_names_do_not_change() -> None:
    nodes = fx.unnamed.processors["totals"].nodes
    assert not nodes["count-1"].named
    assert not nodes["window-reduce-1"].named
    assert not nodes["group-by-1.from-repartition"].named
    assert nodes["dedupe"].named
    assert not nodes["table-customers"].named  # named after its topic
    assert {"shop-totals-group-by-1-repartition", "shop-totals-count-1-changelog",
            "shop-totals-window-reduce-1-changelog"} <= set(fx.unnamed.topics)
    named = fx.v1.processors["count"].nodes
    assert named["per-user"].named and named["by-user.from-repartition"].named


def test_unnamed_state_lists_position_named_stores_and_repartitions_with_the_fix() -> None:
    found = {s.step: s for s in unnamed_state(fx.unnamed)}
    assert sorted(found) == ["count-1", "group-by-1", "window-reduce-1"]
    assert found["count-1"].fix == '.count(name="count-1")'
    assert found["count-1"].topic == "shop-totals-count-1-changelog"
    assert found["group-by-1"].fix == '.group_by(..., name="group-by-1")'
    assert found["group-by-1"].topic == "shop-totals-group-by-1-repartition"
    assert found["window-reduce-1"].fix == '.window(...).reduce(..., name="window-reduce-1")'
    assert unnamed_state(fx.v1) == []


def test_group_by_key_and_aggregate_fixes_name_their_operator() -> None:
    t = sf.Topology("t")
    src = t.topic("a", external=True)
    p = t.processor("p")
    p.stream(src).key_by(lambda v: v).group_by_key().aggregate(lambda: 0, lambda a, v: a)
    assert [s.fix for s in unnamed_state(t)] == [
        '.group_by_key(name="group-by-key-1")', '.aggregate(..., name="aggregate-1")']


def test_check_warns_about_unnamed_state_and_still_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", UNNAMED]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3
    assert ("warning: [unnamed-state] processor 'totals': step 'count-1' has no explicit name, "
            "so its store and changelog topic 'shop-totals-count-1-changelog' is named by "
            "position") in out
    assert '.count(name="count-1") keeps today\'s state' in out
    assert "OK: topology 'shop'" in out and "3 warning(s); --strict" in out


def test_check_strict_makes_unnamed_state_a_problem_with_exit_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", UNNAMED, "--strict"]) == 3
    out = capsys.readouterr().out
    assert sum(line.startswith("problem: [unnamed-state]") for line in out.splitlines()) == 3
    assert "warning:" not in out
    assert main(["check", "tests.unit.state_names_fixture:v1", "--strict"]) == 0


def test_state_diff_finds_orphaned_created_and_kept_internal_topics() -> None:
    v1_changelog = f"{fx.NAME}-count-per-user-changelog"
    v2_changelog = f"{fx.NAME}-count-per-customer-changelog"
    repartition = f"{fx.NAME}-count-by-user-repartition"
    cluster = [v1_changelog, repartition, f"{fx.NAME}.clicks", "other-count-x-changelog",
               f"{fx.NAME}-gone-old-repartition"]
    diff = state_diff(fx.v2, cluster)
    assert diff.orphaned == [v1_changelog, f"{fx.NAME}-gone-old-repartition"]
    assert diff.to_create == [v2_changelog]
    assert diff.kept == [repartition]
    assert state_diff(fx.v1, cluster).orphaned == [f"{fx.NAME}-gone-old-repartition"]
    assert "name='per-user'" in orphan_fix(fx.v2, v1_changelog)
    assert "no processor of this version" in orphan_fix(fx.v2, f"{fx.NAME}-gone-old-repartition")


def test_against_cluster_exits_4_when_kafka_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMFLOW_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    monkeypatch.setenv("STREAMFLOW_STARTUP_TIMEOUT_S", "1")
    started = time.monotonic()
    assert main(["check", "tests.unit.state_names_fixture:v2", "--against-cluster"]) == 4
    assert time.monotonic() - started < 20
    assert ("streamflow: error: --against-cluster: cannot reach Kafka at 127.0.0.1:9"
            in capsys.readouterr().err)


@pytest.mark.parametrize("supervised", [False, True])
def test_run_logs_each_unnamed_step_once_unless_a_supervisor_did(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    supervised: bool,
) -> None:
    monkeypatch.setenv("STREAMFLOW_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    monkeypatch.setenv("STREAMFLOW_STARTUP_TIMEOUT_S", "1")
    monkeypatch.setenv("STREAMFLOW_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("STREAMFLOW_HEALTH_PORT", "0")
    argv = ["run", UNNAMED, "-p", "totals", *(["--worker-id", "0"] if supervised else [])]
    assert main(argv) == 4  # no broker: the worker stops, after the warnings
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "has no explicit name" in line]
    assert "cannot reach Kafka at 127.0.0.1:9" in err
    if supervised:
        assert warnings == []
    else:
        assert len(warnings) == 3
        assert all("WARNING" in w and "streamflow.cli" in w for w in warnings)
        assert any('.count(name="count-1") keeps today\'s state' in w for w in warnings)
