"""The testing kit from an installed wheel, in a project outside this repository.

A temporary folder holds a user's topology and its test file; streamflow is installed from a
freshly built wheel into a fresh virtualenv. Its pytest run finds no cluster in the
environment, so the plugin starts the local stack shipped in the package (state in the
project's ``.streamflow/stack``), and the test runs the topology with ``streamflow_app`` and
checks its output, beside a ``TopologyTestDriver`` test of the same topology.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

TOPOLOGY = '''
import streamflow as sf

topology = sf.Topology("kit-{uid}")
readings = topology.topic("kit-readings-{uid}", key=sf.String(), value=sf.Json(), partitions=2)
alerts = topology.topic("kit-alerts-{uid}", key=sf.String(), value=sf.Json())
(topology.processor("alert").stream(readings)
    .filter(lambda r: r["celsius"] > 30, name="hot")
    .to(alerts))
'''

TEST = '''
import orjson
from confluent_kafka import Consumer, Producer

from streamflow.testing import TopologyTestDriver
from mytopology import topology

UID = "{uid}"


def test_the_topology_without_a_broker():
    with TopologyTestDriver(topology) as driver:
        driver.input(f"kit-readings-{{UID}}").send({{"celsius": 35}}, key="d1")
        driver.input(f"kit-readings-{{UID}}").send({{"celsius": 5}}, key="d2")
        assert driver.output(f"kit-alerts-{{UID}}").read_values() == [{{"celsius": 35}}]


def test_the_topology_as_a_process(streamflow_cluster, streamflow_app, kafka_bootstrap):
    assert streamflow_cluster.source == "local-stack (started)", streamflow_cluster.describe()
    app = streamflow_app("mytopology", "alert")
    producer = Producer({{"bootstrap.servers": kafka_bootstrap}})
    for i in range(20):
        producer.produce(f"kit-readings-{{UID}}", orjson.dumps({{"celsius": i * 3}}), f"d{{i}}")
    assert producer.flush(30) == 0
    consumer = Consumer({{"bootstrap.servers": kafka_bootstrap, "group.id": "kit-reader",
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"}})
    consumer.subscribe([f"kit-alerts-{{UID}}"])
    seen = []
    for _ in range(60):
        seen += [orjson.loads(m.value()) for m in consumer.consume(100, 1.0) if not m.error()]
        if len(seen) >= 9:
            break
    consumer.close()
    assert sorted(r["celsius"] for r in seen) == [33, 36, 39, 42, 45, 48, 51, 54, 57]
    assert app.stop() == 0
    assert "stopped cleanly" in app.logs()
'''


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)}:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    return proc


def test_an_installed_wheel_runs_the_fixtures_and_the_process_helper_outside_the_repo(
        tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
        tmp_path)
    (wheel,) = dist.glob("streamflow-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    run([str(venv / "bin" / "pip"), "install", "-q", str(wheel), "pytest"], tmp_path)

    project = tmp_path / "project"  # not under the repository: no deploy/local to find
    project.mkdir()
    uid = uuid.uuid4().hex[:8]
    (project / "mytopology.py").write_text(textwrap.dedent(TOPOLOGY.format(uid=uid)))
    (project / "test_mytopology.py").write_text(textwrap.dedent(TEST.format(uid=uid)))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STREAMFLOW_", "PYTHON", "VIRTUAL_ENV"))}
    env.update({"STREAMFLOW_TEST_CLUSTER": "local", "PATH": f"{venv / 'bin'}:{env['PATH']}"})
    proc = run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "-rA"], project, env, timeout=900)
    assert "2 passed" in proc.stdout, proc.stdout
    assert "local-stack (started)" in proc.stdout
    # the stack ran from the installed package with its state in the project, and the
    # plugin stopped it at the end of the session (`down` removes the env file)
    state = project / ".streamflow" / "stack"
    assert (state / "kafka" / "data" / "meta.properties").is_file()
    assert not (state / "stack.env").exists()
