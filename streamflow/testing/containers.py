"""Kafka (KRaft) and Apicurio Registry as containers, for the integration tests.

The testcontainers path of :func:`streamflow.testing.cluster.acquire_cluster`. Both containers
run on the host's network (``network_mode=host``) on free loopback ports, so every connection
stays on 127.0.0.1 and no port mapping (nor a Docker bridge) is needed.

Images: ``STREAMFLOW_TEST_KAFKA_IMAGE`` / ``STREAMFLOW_TEST_REGISTRY_IMAGE``, else the images
``make images`` builds here (``streamflow/kafka:local``, ``streamflow/apicurio-registry:local``)
when the engine has them, else the official ``apache/kafka`` and ``apicurio/apicurio-registry``
images. All of them take the same settings: ``KAFKA_*`` variables (the apache/kafka convention)
and Quarkus' ``QUARKUS_*`` / ``APICURIO_*`` variables.

testcontainers' Ryuk reaper is off unless ``TESTCONTAINERS_RYUK_DISABLED`` says otherwise (its
image comes from Docker Hub); the returned teardown removes both containers, and every container
carries the label ``dev.streamflow.test=1`` for a sweep after a crash.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import Any

from streamflow.testing.cluster import (
    Cluster,
    ClusterUnavailable,
    Teardown,
    ensure_global_compatibility,
    registry_ready,
)

__all__ = [
    "LABEL",
    "free_port",
    "kafka_environment",
    "registry_environment",
    "testcontainers_cluster",
]

ENV_KAFKA_IMAGE = "STREAMFLOW_TEST_KAFKA_IMAGE"
ENV_REGISTRY_IMAGE = "STREAMFLOW_TEST_REGISTRY_IMAGE"
LOCAL_KAFKA_IMAGE = "streamflow/kafka:local"
LOCAL_REGISTRY_IMAGE = "streamflow/apicurio-registry:local"
OFFICIAL_KAFKA_IMAGE = "apache/kafka:4.3.1"
OFFICIAL_REGISTRY_IMAGE = "apicurio/apicurio-registry:3.3.3"
LABEL = "dev.streamflow.test"
START_TIMEOUT_S = 120.0


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kafka_environment(port: int, controller_port: int) -> dict[str, str]:
    """A single-node KRaft broker on 127.0.0.1:``port``, configured as the local stack is."""
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{controller_port}",
        "KAFKA_NUM_PARTITIONS": "1",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_LOG_RETENTION_MS": "-1",
    }


def registry_environment(port: int, management_port: int) -> dict[str, str]:
    """Apicurio Registry on 127.0.0.1:``port`` with the global BACKWARD rule."""
    return {
        "QUARKUS_HTTP_HOST": "127.0.0.1",
        "QUARKUS_HTTP_PORT": str(port),
        "QUARKUS_MANAGEMENT_HOST": "127.0.0.1",
        "QUARKUS_MANAGEMENT_PORT": str(management_port),
        "APICURIO_RULES_GLOBAL_COMPATIBILITY": "BACKWARD",
    }


def _choose_image(client: Any, variable: str, local: str, official: str) -> str:
    named = os.environ.get(variable, "").strip()
    if named:
        return named
    try:
        client.images.get(local)
    except Exception:
        return official
    return local


def _wait(container: Any, what: str, ready: Any, timeout: float) -> None:
    """Poll ``ready()`` until true; fail early with the container's log when it exits."""
    deadline = time.monotonic() + timeout
    wrapped = container.get_wrapped_container()
    while not ready():
        wrapped.reload()
        exited = wrapped.status in {"exited", "dead"}
        if exited or time.monotonic() >= deadline:
            logs = wrapped.logs(tail=30).decode("utf-8", "replace")
            state = "exited" if exited else f"not ready after {timeout:.0f}s"
            msg = f"{what} container ({wrapped.image.tags or wrapped.image.id}) {state}:\n{logs}"
            raise ClusterUnavailable(msg)
        time.sleep(0.5)


def _kafka_ready(bootstrap: str) -> bool:
    from streamflow.testing.admin import TopicAdmin

    try:
        TopicAdmin(bootstrap).ping(timeout=3.0)
    except Exception:
        return False
    return True


def testcontainers_cluster() -> tuple[Cluster, Teardown]:
    """Start Kafka and the registry as host-network containers; return them and a teardown."""
    try:
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.docker_client import DockerClient
    except ImportError as exc:
        msg = f"testcontainers is not installed: {exc}"
        raise ClusterUnavailable(msg) from exc
    if "TESTCONTAINERS_RYUK_DISABLED" not in os.environ:
        testcontainers_config.ryuk_disabled = True

    client = DockerClient().client
    kafka_image = _choose_image(client, ENV_KAFKA_IMAGE, LOCAL_KAFKA_IMAGE, OFFICIAL_KAFKA_IMAGE)
    registry_image = _choose_image(
        client, ENV_REGISTRY_IMAGE, LOCAL_REGISTRY_IMAGE, OFFICIAL_REGISTRY_IMAGE
    )
    kafka_port, controller_port, registry_port, management_port = (free_port() for _ in range(4))
    labels = {LABEL: "1"}
    kafka: Any = DockerContainer(kafka_image).with_kwargs(network_mode="host", labels=labels)
    for key, value in kafka_environment(kafka_port, controller_port).items():
        kafka.with_env(key, value)
    registry: Any = DockerContainer(registry_image).with_kwargs(network_mode="host", labels=labels)
    for key, value in registry_environment(registry_port, management_port).items():
        registry.with_env(key, value)
    started: list[Any] = []

    def teardown() -> None:
        for container in reversed(started):
            with contextlib.suppress(Exception):  # best effort: the label sweep catches the rest
                container.stop()

    bootstrap = f"127.0.0.1:{kafka_port}"
    url = f"http://127.0.0.1:{registry_port}/apis/ccompat/v7"
    began = time.monotonic()
    try:
        started.append(registry.start())  # the slower one first: both start in parallel
        started.append(kafka.start())
        _wait(kafka, "kafka", lambda: _kafka_ready(bootstrap), START_TIMEOUT_S)
        _wait(registry, "registry", lambda: registry_ready(url, timeout=2.0), START_TIMEOUT_S)
        ensure_global_compatibility(url)
    except BaseException:
        teardown()
        raise
    detail = f"{kafka_image}, {registry_image}, started in {time.monotonic() - began:.1f}s"
    return Cluster(bootstrap, url, "testcontainers", detail), teardown
