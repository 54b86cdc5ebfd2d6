"""deploy/containers/: the Kafka image's entrypoint turns KAFKA_* variables into broker
properties (the apache/kafka convention the compose file and the testcontainers path rely on),
formats the storage once, and execs the broker. Run here with a stand-in ``java``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "containers" / "kafka" / "entrypoint.sh"


def _run(tmp_path: Path, **env: str) -> tuple[dict[str, str], list[list[str]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "java-calls"
    java = bin_dir / "java"
    java.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >>"{calls}"\n')
    java.chmod(0o755)
    (tmp_path / "config").mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    run_env = {**base, "PATH": f"{bin_dir}:{os.environ['PATH']}",
               "STREAMFLOW_BROKER_CONFIG_DIR": str(tmp_path / "config"),
               "KAFKA_LOG_DIRS": str(tmp_path / "data"), **env}
    subprocess.run(["bash", str(ENTRYPOINT)], env=run_env, check=True, timeout=30)
    props = {}
    for line in (tmp_path / "config" / "server.properties").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            props[key] = value
    return props, [line.split() for line in calls.read_text().splitlines()]


def test_kafka_variables_become_properties_over_single_node_defaults(tmp_path: Path) -> None:
    props, calls = _run(
        tmp_path,
        KAFKA_LISTENERS="PLAINTEXT://127.0.0.1:4001,CONTROLLER://127.0.0.1:4002",
        KAFKA_ADVERTISED_LISTENERS="PLAINTEXT://127.0.0.1:4001",
        KAFKA_LOG_RETENTION_MS="1000",
        KAFKA_SOME__UNDERSCORED_NAME="x",
        KAFKA_A___DASH="y",
        KAFKA_HEAP_OPTS="-Xmx64m",
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:4001,CONTROLLER://127.0.0.1:4002"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:4001"
    assert props["log.retention.ms"] == "1000"
    assert props["some_underscored.name"] == "x"
    assert props["a-dash"] == "y"
    assert props["process.roles"] == "broker,controller"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert "heap.opts" not in props
    # no voter list: a dynamic quorum on the controller listener, formatted --standalone
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:4002"
    format_call, broker_call = calls
    assert "kafka.tools.StorageTool" in format_call
    assert "--standalone" in format_call
    assert "-Xmx64m" in broker_call
    assert broker_call[-2:] == ["kafka.Kafka", str(tmp_path / "config" / "server.properties")]


def test_a_static_voter_list_is_formatted_without_standalone_and_only_once(
    tmp_path: Path,
) -> None:
    props, calls = _run(tmp_path, KAFKA_CONTROLLER_QUORUM_VOTERS="1@127.0.0.1:4002")
    assert props["controller.quorum.voters"] == "1@127.0.0.1:4002"
    assert "controller.quorum.bootstrap.servers" not in props
    assert "--standalone" not in calls[0]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.properties").write_text("formatted\n")
    (tmp_path / "java-calls").unlink()
    _, calls = _run(tmp_path, KAFKA_CONTROLLER_QUORUM_VOTERS="1@127.0.0.1:4002")
    assert len(calls) == 1
    assert "kafka.Kafka" in calls[0]
