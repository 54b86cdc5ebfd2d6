"""Health endpoints (/healthz, /livez, /readyz, /status, /metrics) over real HTTP on loopback."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from streamflow.observability.health import HealthServer, worker_probe
from streamflow.observability.status import WorkerStatus


def _get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, Any] | None]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = resp.read()
            return resp.status, json.loads(body) if body else None
    except urllib.error.HTTPError as e:
        body = e.read()
        return e.code, json.loads(body) if body else None


def _text(port: int, path: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return resp.status, resp.headers["Content-Type"], resp.read().decode()


@pytest.fixture
def state() -> dict[str, Any]:
    return {"alive": True, "ready": False, "assigned": 0}


@pytest.fixture
def server(state: dict[str, Any]) -> Iterator[HealthServer]:
    srv = HealthServer(0, lambda: state, host="127.0.0.1",
                       metrics=lambda: b"# HELP x_total X.\n# TYPE x_total counter\nx_total 42.0\n"
                       ).start()
    yield srv
    srv.stop()


def test_healthz_is_200_while_alive_and_503_when_not(
    server: HealthServer, state: dict[str, Any]
) -> None:
    code, body = _get(server.port, "/healthz")
    assert code == 200 and body is not None and body["status"] == "ok"
    state["alive"] = False
    code, body = _get(server.port, "/healthz")
    assert code == 503 and body is not None and body["status"] == "unavailable"


def test_readyz_is_503_until_ready_and_says_why(
    server: HealthServer, state: dict[str, Any]
) -> None:
    code, body = _get(server.port, "/readyz")
    assert code == 503 and body is not None and body["assigned"] == 0
    state.update(ready=True, assigned=2)
    code, body = _get(server.port, "/readyz/")
    assert code == 200 and body is not None and body["assigned"] == 2


def test_livez_answers_like_healthz(server: HealthServer, state: dict[str, Any]) -> None:
    assert _get(server.port, "/livez")[0] == 200
    state["alive"] = False
    assert _get(server.port, "/livez")[0] == 503


def test_metrics_serves_the_prometheus_text_and_status_the_json(
    server: HealthServer, state: dict[str, Any]
) -> None:
    code, ctype, text = _text(server.port, "/metrics")
    assert code == 200 and ctype.startswith("text/plain; version=0.0.4")
    assert "x_total 42.0" in text
    assert _get(server.port, "/status") == (200, state)


def test_metrics_is_404_without_metrics() -> None:
    with HealthServer(0, lambda: {"alive": True}, host="127.0.0.1") as srv:
        code, body = _get(srv.port, "/metrics")
        assert code == 404 and body is not None and "/metrics" not in body["endpoints"]


def test_unknown_paths_are_404_and_head_has_no_body(server: HealthServer) -> None:
    code, body = _get(server.port, "/nope")
    assert code == 404 and body is not None and "/healthz" in body["endpoints"]
    assert _get(server.port, "/healthz", method="HEAD") == (200, None)


def test_a_failing_probe_answers_503_and_the_server_keeps_serving() -> None:
    calls = {"n": 0}

    def probe() -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return {"alive": True, "ready": True}

    with HealthServer(0, probe, host="127.0.0.1") as srv:
        code, body = _get(srv.port, "/healthz")
        assert code == 503 and body is not None and "boom" in body["error"]
        assert _get(srv.port, "/healthz")[0] == 200
        assert _get(srv.port, "/status") == (200, {"alive": True, "ready": True})


def test_stop_releases_the_port() -> None:
    srv = HealthServer(0, lambda: {"alive": True}, host="127.0.0.1").start()
    port = srv.port
    srv.stop()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # free again


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Worker:
    """Stands in for a worker: its current status, changed field by field."""

    def __init__(self, **fields: Any) -> None:
        self.status = WorkerStatus(**{"processor": "enrich", "worker_id": "0",
                                      "last_loop": None, **fields})

    def set(self, **changes: Any) -> None:
        self.status = replace(self.status, **changes)

    def __call__(self) -> WorkerStatus:
        return self.status


def test_worker_probe_is_alive_during_startup_grace_then_needs_loop_turns() -> None:
    clock = _Clock()
    worker = _Worker()
    probe = worker_probe(worker, stale_after_s=30, clock=clock)
    assert probe()["alive"] is True and probe()["ready"] is False
    clock.now += 31
    assert probe()["alive"] is False  # never turned the loop
    worker.set(last_loop=clock.now - 1)
    assert probe()["alive"] is True
    clock.now += 30.5
    assert probe()["alive"] is False  # the loop stalled


def test_worker_probe_is_ready_with_assigned_partitions_and_restored_state() -> None:
    clock = _Clock()
    worker = _Worker(last_loop=clock.now, assigned=(("orders", 0),), restoring=True,
                     ready=True, processed=7)
    probe = worker_probe(worker, stale_after_s=30, clock=clock)
    assert probe()["ready"] is False
    clock.now += 300  # a long restore does not make the worker look dead
    assert probe()["alive"] is True
    worker.set(restoring=False, last_loop=clock.now)
    state = probe()
    assert state["ready"] is True
    assert state["processor"] == "enrich" and state["processed"] == 7 and state["assigned"] == 1
    worker.set(assigned=())
    assert probe()["ready"] is False
    worker.set(assigned=(("orders", 0),), ready=False)
    assert probe()["ready"] is False  # assigned, but not yet opened


def test_serve_worker_health_follows_the_health_port_setting() -> None:
    from streamflow.observability.health import serve_worker_health

    assert serve_worker_health(_Worker(), 0, 30.0) is None
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError):
            serve_worker_health(_Worker(), port, 30.0)
    srv = serve_worker_health(_Worker(), port, 30.0)
    assert srv is not None
    try:
        assert _get(port, "/healthz")[0] == 200
        assert _get(port, "/readyz")[0] == 503
    finally:
        srv.stop()
