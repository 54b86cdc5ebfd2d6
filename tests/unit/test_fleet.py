"""The supervisor's single endpoint over its workers' own endpoints (real HTTP, loopback)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamflow.observability.fleet import FleetView, Member
from streamflow.observability.health import HealthServer, serve_worker_health
from streamflow.observability.status import PartitionStatus, WorkerStatus


class Worker:
    def __init__(self, instance: str, partition: int, consumed: int) -> None:
        self.s = WorkerStatus(processor="p", worker_id=instance, last_loop=None, topology="t",
                              assigned=(("in", partition),), ready=True,
                              partitions=(PartitionStatus("in", partition, consumed),))

    def __call__(self) -> WorkerStatus:
        return self.s


@pytest.fixture
def workers() -> Iterator[tuple[list[Worker], list[HealthServer]]]:
    ws = [Worker("0", 0, 40), Worker("1", 1, 60)]
    servers = [serve_worker_health(w, port, 30.0, host="127.0.0.1") for w, port in
               zip(ws, _ports(2), strict=True)]
    assert all(s is not None for s in servers)
    yield ws, [s for s in servers if s is not None]
    for s in servers:
        if s is not None:
            s.stop()


def _ports(n: int) -> list[int]:
    import socket

    out = []
    for _ in range(n):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            out.append(s.getsockname()[1])
    return out


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_one_endpoint_serves_the_metrics_and_readiness_of_every_worker(
    workers: tuple[list[Worker], list[HealthServer]],
) -> None:
    ws, servers = workers
    members = [Member("p", "0", servers[0].port), Member("p", "1", servers[1].port),
               Member("q", "0", None)]  # a worker being restarted
    view = FleetView(lambda: members)
    with HealthServer(0, view.probe, host="127.0.0.1", metrics=view.metrics) as front:
        code, body = _get(front.port, "/metrics")
        assert code == 200
        fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
        consumed = {s.labels["instance"]: s.value
                    for s in fams["streamflow_records_consumed"].samples}
        assert consumed == {"0": 40, "1": 60}
        up = {(s.labels["processor"], s.labels["instance"]): s.value
              for s in fams["streamflow_worker_up"].samples}
        assert up == {("p", "0"): 1, ("p", "1"): 1, ("q", "0"): 0}
        code, body = _get(front.port, "/readyz")
        assert code == 503 and b"q#0 is not running" in body
        assert _get(front.port, "/healthz")[0] == 200  # a restarting worker is not a dead pod
        members.pop()
        assert _get(front.port, "/readyz")[0] == 200
        ws[1].s = replace(ws[1].s, ready=False)
        code, body = _get(front.port, "/readyz")
        assert code == 503 and b"p#1 is not ready" in body
        doc = json.loads(_get(front.port, "/status")[1])
        assert [w["worker_id"] for w in doc["workers"]] == ["0", "1"]
        ws[1].s = replace(ws[1].s, ready=True, last_loop=-1e9)  # its loop is stuck
        assert _get(front.port, "/healthz")[0] == 503
