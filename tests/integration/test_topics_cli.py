"""``streamflow topics create|describe|delete`` against a real broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamflow.cli import main
from streamflow.kafka import client
from tests.integration.kafka_helpers import write_module

pytestmark = pytest.mark.integration

MODULE = """
import os
import streamflow as sf

topology = sf.Topology(os.environ["T_APP"])
src = topology.topic(os.environ["T_IN"], key=sf.String(), value=sf.Json(), partitions=3,
                     external=True)
out = topology.topic(os.environ["T_OUT"], key=sf.String(), value=sf.Json(), partitions=2,
                     config={"cleanup.policy": "compact", "retention.ms": "3600000"})
p = topology.processor("p", on_error="dead_letter")
p.stream(src).process(lambda record, ctx: None, stores=["seen"]).to(out)
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        kafka_bootstrap: str) -> Iterator[dict[str, Any]]:
    tag = uuid.uuid4().hex[:8]
    names = {"T_APP": f"tc-{tag}", "T_IN": f"tc-{tag}-in", "T_OUT": f"tc-{tag}-out"}
    module = write_module(tmp_path, f"topics_app_{tag}", MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STREAMFLOW_CONFIG", raising=False)
    monkeypatch.setenv("STREAMFLOW_BOOTSTRAP_SERVERS", kafka_bootstrap)
    for k, v in names.items():
        monkeypatch.setenv(k, v)
    admin = client.make_admin({"bootstrap.servers": kafka_bootstrap})
    all_topics = [names["T_IN"], names["T_OUT"], f"{names['T_APP']}.p.dlq",
                  f"{names['T_APP']}-p-seen-changelog"]
    yield {"module": module, "admin": admin, "topics": all_topics, **names}
    client.delete_topics(admin, all_topics)


def _cluster(app: dict[str, Any]) -> dict[str, client.TopicState]:
    return client.describe_topics(app["admin"], app["topics"])


def test_create_makes_every_topic_as_declared_and_describe_then_reports_ok(
    app: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["topics", "describe", app["module"]]) == 1
    assert capsys.readouterr().out.count("MISSING") == 4

    assert main(["topics", "create", app["module"]]) == 0
    out = capsys.readouterr().out
    assert f"created {app['T_IN']} (partitions=3, replication=1)" in out  # external too
    assert f"created {app['T_OUT']} (partitions=2" in out and "cleanup.policy=compact" in out
    state = _cluster(app)
    assert set(state) == set(app["topics"])
    assert state[app["T_IN"]].partitions == 3
    assert state[app["T_OUT"]].partitions == 2
    assert state[app["T_OUT"]].config["cleanup.policy"] == "compact"
    assert state[app["T_OUT"]].config["retention.ms"] == "3600000"
    assert state[f"{app['T_APP']}.p.dlq"].partitions == 1
    changelog = state[f"{app['T_APP']}-p-seen-changelog"]
    assert changelog.partitions == 3  # the processor's input width, as the runtime wants
    assert changelog.config["cleanup.policy"] == "compact"

    assert main(["topics", "create", app["module"]]) == 0  # idempotent
    assert capsys.readouterr().out.count("exists  ") == 4

    assert main(["topics", "describe", app["module"]]) == 0
    out = capsys.readouterr().out
    assert "all 4 topic(s) match their declaration" in out
    assert "DRIFT" not in out and "MISSING" not in out


def test_the_runtime_accepts_the_topics_that_create_made(
    app: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from streamflow.cli import load_topology
    from streamflow.config import load_config
    from streamflow.runtime.topics import ensure_topics, processor_topics

    assert main(["topics", "create", app["module"]]) == 0
    processor = load_topology(app["module"]).processors["p"]
    config = load_config().with_overrides(create_topics=False)
    ensure_topics(app["admin"], processor_topics(processor), config,
                  sources=processor.source_topics())  # raises TopicMismatch on any difference


def test_describe_reports_drift_and_exits_1(
    app: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    client.create_topics(app["admin"], [(app["T_IN"], 3, 1, {}),
                                        (app["T_OUT"], 4, 1, {"cleanup.policy": "delete"})])
    assert main(["topics", "describe", app["module"]]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith(app["T_OUT"]))
    assert "2/4" in line
    assert "DRIFT: partitions declared 2, actual 4" in line
    assert "cleanup.policy declared compact, actual delete" in line
    assert "retention.ms declared 3600000" in line
    in_line = next(x for x in out.splitlines() if x.startswith(app["T_IN"]))
    assert in_line.endswith("ok") and "external" in in_line
    assert "MISSING" in next(x for x in out.splitlines() if ".p.dlq" in x)


def test_delete_needs_yes_and_keeps_external_topics(
    app: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["topics", "create", app["module"]]) == 0
    capsys.readouterr()
    assert main(["topics", "delete", app["module"]]) == 2
    assert set(_cluster(app)) == set(app["topics"])
    assert main(["topics", "delete", app["module"], "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"deleted {app['T_OUT']}" in out and app["T_IN"] not in out
    assert _wait_gone(app, {app["T_OUT"], f"{app['T_APP']}.p.dlq"})
    assert app["T_IN"] in _cluster(app)
    assert main(["topics", "delete", app["module"], "--yes", "--include-external"]) == 0
    assert f"deleted {app['T_IN']}" in capsys.readouterr().out


def test_describe_matches_a_topic_made_by_the_new_topic_fixture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str, new_topic: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = new_topic(partitions=2, compacted=True)
    module = write_module(tmp_path, f"topics_fixture_{uuid.uuid4().hex[:8]}", f"""
import streamflow as sf
topology = sf.Topology("fixture")
topology.topic({name!r}, partitions=2, config={{"cleanup.policy": "compact"}}, external=True)
""")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STREAMFLOW_CONFIG", raising=False)
    monkeypatch.setenv("STREAMFLOW_BOOTSTRAP_SERVERS", kafka_bootstrap)
    assert main(["topics", "describe", module]) == 0
    assert "all 1 topic(s) match" in capsys.readouterr().out


def _wait_gone(app: dict[str, Any], names: set[str], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not names & set(_cluster(app)):
            return True
        time.sleep(0.5)
    return False
