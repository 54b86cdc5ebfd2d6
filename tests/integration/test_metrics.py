"""Metrics and probes of a real ``streamflow run`` on the real broker: /metrics against what
was sent, readiness through a broker freeze (SIGSTOP), one endpoint for a supervisor's
workers."""

from __future__ import annotations

import os
import signal
import socket
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.kafka_helpers import (
    ROOT,
    StreamflowProcess,
    produce,
    read_all,
    wait_for,
    write_module,
)

pytestmark = pytest.mark.integration

MODULE = """
import os
import streamflow as sf

topology = sf.Topology(os.environ["T_APP"])
src = topology.topic(os.environ["T_IN"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["T_OUT"], key=sf.String(), value=sf.Json())
p = topology.processor("p", on_error="dead_letter")
p.stream(src).map(lambda v: {"n": v["n"], "sq": v["n"] * v["n"]}, name="square").to(out)
"""

HOST = socket.gethostname()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""  # not listening (yet)


def scrape(port: int) -> dict[str, Any]:
    code, body = get(port, "/metrics")
    assert code == 200, body
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def value(fams: dict[str, Any], name: str, suffix: str = "_total", **labels: str) -> float:
    return sum(s.value for s in fams[name].samples if s.name == name + suffix
               and all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.fixture
def app(tmp_path: Path, kafka_bootstrap: str, new_topic: Any) -> dict[str, Any]:
    name = write_module(tmp_path, "metrics_topology", MODULE)
    env = {
        "T_APP": f"met-{uuid.uuid4().hex[:8]}",
        "T_IN": new_topic(partitions=4),
        "T_OUT": new_topic(partitions=4),
        "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMFLOW_COMMIT_INTERVAL_MS": "200",
        "STREAMFLOW_STATISTICS_INTERVAL_MS": "500",
        "STREAMFLOW_HEALTH_PORT": str(free_port()),
    }
    return {"module": name, "env": env, "tmp": tmp_path, "bootstrap": kafka_bootstrap,
            "port": int(env["STREAMFLOW_HEALTH_PORT"])}


def start(app: dict[str, Any], *extra: str, env: dict[str, str] | None = None
          ) -> StreamflowProcess:
    return StreamflowProcess(["run", app["module"], *extra], app["tmp"],
                             {**app["env"], **(env or {})}, app["tmp"] / "run.log")


def test_metrics_count_what_was_sent_produced_and_dead_lettered(app: dict[str, Any]) -> None:
    good, poison = 3000, 7
    records = [(f"k{i % 41}".encode(), orjson.dumps({"n": i})) for i in range(good)]
    records += [(b"bad", b"{not json") for _ in range(poison)]
    produce(app["bootstrap"], app["env"]["T_IN"], records)
    proc = start(app)
    port = app["port"]
    try:
        read_all(app["bootstrap"], app["env"]["T_OUT"], expect=good)

        def settled() -> bool:
            fams = scrape(port)
            lag = fams.get("streamflow_consumer_lag_records")
            return (value(fams, "streamflow_records_consumed") == good + poison
                    and lag is not None and len(lag.samples) == 4
                    and value(fams, "streamflow_consumer_lag_records", "") == 0)

        wait_for("consumed == sent and lag 0 on every partition", settled, 30)
        fams = scrape(port)
    finally:
        assert proc.terminate() == 0, proc.output()
    t_out, t_in = app["env"]["T_OUT"], app["env"]["T_IN"]
    assert value(fams, "streamflow_records_consumed") == good + poison
    assert {s.labels["partition"] for s in fams["streamflow_records_consumed"].samples} == \
        {"0", "1", "2", "3"}
    assert value(fams, "streamflow_records_produced", topic=t_out) == good
    assert value(fams, "streamflow_records_dead_lettered") == poison
    errors = [s for s in fams["streamflow_errors"].samples if s.name == "streamflow_errors_total"]
    assert len(errors) == 1 and errors[0].value == poison
    assert errors[0].labels["step"].endswith(":deserialize")
    assert errors[0].labels["exception"] == "SerdeError"
    assert value(fams, "streamflow_record_e2e_latency_seconds", "_count") == good
    assert value(fams, "streamflow_bytes_consumed", topic=t_in) > 0
    assert value(fams, "streamflow_bytes_produced", topic=t_out) > 0
    assert value(fams, "streamflow_commits") > 0
    assert value(fams, "streamflow_assigned_partitions", "") == 4
    labels = fams["streamflow_records_consumed"].samples[0].labels
    assert labels["topology"] == app["env"]["T_APP"] and labels["processor"] == "p"
    assert labels["instance"] == f"{HOST}-0"  # the worker's instance id (no POD_NAME here)


def broker_pid(bootstrap: str) -> int:
    """The pid of the local broker: the stack's pid file, else whoever listens on its port."""
    port = int(bootstrap.split(",")[0].rsplit(":", 1)[1])
    run_dir = os.environ.get("STREAMFLOW_STACK_RUN_DIR")
    for d in [Path(run_dir)] if run_dir else [ROOT / "deploy/local/.run",
                                                Path("/work/main/deploy/local/.run")]:
        f = d / "kafka.pid"
        if f.exists():
            pid = int(f.read_text().split()[0])
            if _listens(pid, port):
                return pid
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _listens(int(entry.name), port):
            return int(entry.name)
    pytest.fail(f"no local process listens on {bootstrap}: the stall test freezes the broker "
                "with SIGSTOP, so it needs the broker running on this machine")


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def _listens(pid: int, port: int) -> bool:
    wanted = {f"socket:[{i}]" for i in _listening_inodes(port)}
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) in wanted:
                return True
        except OSError:
            continue
    return False


def test_readiness_turns_503_while_the_broker_is_frozen_and_back_after(
    app: dict[str, Any],
) -> None:
    produce(app["bootstrap"], app["env"]["T_IN"],
            [(b"k", orjson.dumps({"n": i})) for i in range(100)])
    threshold = 3.0
    proc = start(app, env={"STREAMFLOW_BROKER_TIMEOUT_S": str(threshold)})
    port = app["port"]
    try:
        read_all(app["bootstrap"], app["env"]["T_OUT"], expect=100)
        wait_for("ready before the freeze", lambda: get(port, "/readyz")[0] == 200, 30)
        pid = broker_pid(app["bootstrap"])
        os.kill(pid, signal.SIGSTOP)
        try:
            # statistics every 0.5 s, probed every 0.2 s: 503 at most ~1 s after the threshold
            took = wait_for("503 while frozen", lambda: get(port, "/readyz")[0] == 503,
                            threshold + 5)
            code, body = get(port, "/readyz")
            alive = get(port, "/healthz")[0]
        finally:
            os.kill(pid, signal.SIGCONT)
        assert threshold - 0.5 <= took <= threshold + 2.0, took
        assert code == 503 and b"no answer from the brokers" in body, body
        assert alive == 200  # the loop still turns: liveness stays up
        wait_for("ready after SIGCONT", lambda: get(port, "/readyz")[0] == 200, 30)
    finally:
        assert proc.terminate() == 0, proc.output()


def test_a_supervisor_serves_one_endpoint_for_all_its_workers(app: dict[str, Any]) -> None:
    n = 2000
    produce(app["bootstrap"], app["env"]["T_IN"],
            [(f"k{i % 53}".encode(), orjson.dumps({"n": i})) for i in range(n)])
    proc = start(app, "--workers", "2")
    port = app["port"]
    try:
        read_all(app["bootstrap"], app["env"]["T_OUT"], expect=n)

        def both_counted() -> bool:
            code, body = get(port, "/metrics")
            if code != 200:
                return False
            fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
            samples = fams.get("streamflow_records_consumed")
            return (samples is not None and value(fams, "streamflow_records_consumed") == n
                    and {s.labels["instance"] for s in samples.samples}
                    == {f"{HOST}-0", f"{HOST}-1"})

        wait_for("the supervisor's /metrics counts both workers", both_counted, 60)
        wait_for("ready when both workers are", lambda: get(port, "/readyz")[0] == 200, 60)
        fams = scrape(port)
        code, body = get(port, "/status")
    finally:
        assert proc.terminate() == 0, proc.output()
    up = {s.labels["instance"]: s.value for s in fams["streamflow_worker_up"].samples}
    assert up == {f"{HOST}-0": 1.0, f"{HOST}-1": 1.0}
    assigned = {s.labels["instance"]: s.value
                for s in fams["streamflow_assigned_partitions"].samples}
    assert sum(assigned.values()) == 4 and set(assigned) == {f"{HOST}-0", f"{HOST}-1"}
    assert code == 200 and len(orjson.loads(body)["workers"]) == 2
