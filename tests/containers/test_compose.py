"""deploy/compose/docker-compose.yml and deploy/Dockerfile, run for real.

The compose file brings up Kafka, the registry and the orders example's two processors as
containers (host network, free ports, the images ``make images`` built). Orders go in; the priced
and routed orders come out; the processors run as a non-root user with their health probes
answering (to the image's HEALTHCHECK as well); a ``docker kill``ed processor is replaced and
its replacement picks up where it stopped, without losing a record. Everything is taken down
at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from streamflow.testing.containers import free_port
from tests.containers.conftest import ROOT, docker
from tests.integration.kafka_helpers import produce, read_all

pytestmark = pytest.mark.integration

COMPOSE = ROOT / "deploy" / "compose" / "docker-compose.yml"
ORDERS = 60  # per batch; every 5th is cancelled


class Compose:
    """docker-compose for one project."""

    def __init__(self, images: dict[str, str]) -> None:
        self.project = f"sf-compose-{uuid.uuid4().hex[:8]}"
        self.ports = {name: str(free_port()) for name in (
            "KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "REGISTRY_PORT", "REGISTRY_MANAGEMENT_PORT",
            "ENRICH_HEALTH_PORT", "ROUTE_HEALTH_PORT")}
        self.env = {**os.environ, **self.ports, "KAFKA_IMAGE": images["kafka"],
                    "REGISTRY_IMAGE": images["registry"], "STREAMFLOW_IMAGE": images["app"]}

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['KAFKA_PORT']}"

    def __call__(self, *args: str, timeout: float = 240.0) -> str:
        result = subprocess.run(
            ["docker-compose", "-p", self.project, "-f", str(COMPOSE), *args], env=self.env,
            capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            logs = subprocess.run(
                ["docker-compose", "-p", self.project, "-f", str(COMPOSE), "logs", "--tail=30"],
                env=self.env, capture_output=True, text=True, timeout=60, check=False).stdout
            msg = f"docker-compose {' '.join(args)}: {result.stderr.strip()}\n{logs}"
            raise AssertionError(msg)
        return result.stdout

    def container(self, service: str) -> str:
        return self("ps", "-q", service).strip()


def _order(i: int, batch: str) -> dict[str, Any]:
    return {"id": f"{batch}-{i}", "customer": f"c{i % 7}", "country": "DE",
            "status": "cancelled" if i % 5 == 0 else "paid",
            "lines": [{"qty": 1 + i % 3, "unit_price": 100.0 + i * 3}]}


def _produce(bootstrap: str, batch: str) -> set[str]:
    orders = [_order(i, batch) for i in range(ORDERS)]
    produce(bootstrap, "orders", [(o["id"].encode(), json.dumps(o).encode()) for o in orders])
    return {o["id"] for o in orders if o["status"] != "cancelled"}


def _routed(bootstrap: str) -> list[str]:
    """The order ids in both of route's outputs (read_committed, from the start)."""
    ids: list[str] = []
    for topic in ("orders.large", "orders.small"):
        msgs = read_all(bootstrap, topic, expect=0, timeout=5.0, settle=0.5)
        ids += [json.loads(m.value())["id"] for m in msgs]
    return ids


def _wait_routed(bootstrap: str, expected: set[str], timeout: float = 120.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        ids = _routed(bootstrap)
        if expected <= set(ids) or time.monotonic() >= deadline:
            return ids
        time.sleep(1.0)


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status)
    except OSError:
        return 0


def _wait_http(url: str, timeout: float = 90.0) -> int:
    deadline = time.monotonic() + timeout
    status = _get(url)
    while status != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        status = _get(url)
    return status


@pytest.fixture
def stack(images: dict[str, str]) -> Iterator[Compose]:
    compose = Compose(images)
    try:
        compose("up", "-d", "--no-build")
        yield compose
    finally:
        compose("down", "-v", "--remove-orphans", "--timeout", "10")
        project = f"label=com.docker.compose.project={compose.project}"
        left = docker("ps", "-aq", "--filter", project)
        assert not left.strip(), f"containers left behind: {left}"


def test_compose_runs_the_orders_example_and_a_killed_processor_is_replaced_without_loss(
    stack: Compose,
) -> None:
    # the application image: `streamflow run` as a non-root user, probes answering
    for service in ("enrich", "route"):
        user = docker("inspect", "--format", "{{.Config.User}}", stack.container(service))
        assert user.strip() == "10001:10001", service
        uid = docker("exec", stack.container(service), "id", "-u")
        assert uid.strip() == "10001", service
        port = stack.ports[f"{service.upper()}_HEALTH_PORT"]
        assert _wait_http(f"http://127.0.0.1:{port}/healthz") == 200, service
        assert _wait_http(f"http://127.0.0.1:{port}/readyz") == 200, service

    first = _produce(stack.bootstrap, "a")
    ids = _wait_routed(stack.bootstrap, first)
    assert set(ids) == first

    # kill enrich mid-pipeline: input arriving meanwhile waits for its replacement
    killed = stack.container("enrich")
    docker("kill", killed)
    second = _produce(stack.bootstrap, "b")
    stack("up", "-d", "--no-build", "--no-deps", "enrich")
    replacement = stack.container("enrich")
    state = docker("inspect", "--format", "{{.State.Running}} {{.RestartCount}}", replacement)
    assert state.split()[0] == "true"

    ids = _wait_routed(stack.bootstrap, first | second)
    assert set(ids) == first | second  # nothing lost, nothing invented
    enrich_port = stack.ports["ENRICH_HEALTH_PORT"]
    assert _wait_http(f"http://127.0.0.1:{enrich_port}/readyz") == 200
    # the image's own HEALTHCHECK (every 10 s) reaches the probe too
    route = stack.container("route")
    deadline = time.monotonic() + 60.0
    health = ""
    while health != "healthy" and time.monotonic() < deadline:
        health = docker("inspect", "--format", "{{.State.Health.Status}}", route).strip()
        time.sleep(1.0)
    assert health == "healthy"
