"""The local stack behaves like a cluster: ``restart`` keeps topics, records, committed offsets
and registered schemas; ``wipe`` removes them; nothing is created by a client's mere use.

A second stack runs in a temporary run directory on free ports, so the stack the other
integration tests use is left alone.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.integration

STACK = Path(__file__).resolve().parents[2] / "deploy" / "local" / "stack"
SCHEMA = {"type": "record", "name": "Kept", "fields": [{"name": "a", "type": "int"}]}


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Stack:
    def __init__(self, run_dir: Path) -> None:
        kafka, controller, registry, mgmt = _free_ports(4)
        self.env = {**os.environ, "STREAMFLOW_STACK_RUN_DIR": str(run_dir),
                    "STREAMFLOW_STACK_KAFKA_PORT": str(kafka),
                    "STREAMFLOW_STACK_KAFKA_CONTROLLER_PORT": str(controller),
                    "STREAMFLOW_STACK_REGISTRY_PORT": str(registry),
                    "STREAMFLOW_STACK_REGISTRY_MGMT_PORT": str(mgmt)}
        self.bootstrap = f"127.0.0.1:{kafka}"
        self.registry = f"http://127.0.0.1:{registry}/apis/ccompat/v7"
        self.run_dir = run_dir

    def __call__(self, *args: str) -> str:
        proc = subprocess.run([str(STACK), *args], env=self.env, capture_output=True, text=True,
                              timeout=300, check=False)
        assert proc.returncode == 0, f"stack {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
        return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("stack"))
    s("up")
    try:
        yield s
    finally:
        subprocess.run([str(STACK), "down"], env=s.env, capture_output=True, timeout=120,
                       check=False)


def _register(registry: str, subject: str) -> int:
    req = urllib.request.Request(
        f"{registry}/subjects/{subject}/versions",
        data=json.dumps({"schema": json.dumps(SCHEMA)}).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(json.loads(resp.read())["id"])


def _subjects(registry: str) -> list[str]:
    with urllib.request.urlopen(f"{registry}/subjects", timeout=10) as resp:
        return list(json.loads(resp.read()))


def test_restart_keeps_topics_records_offsets_and_schemas_and_wipe_removes_them(
        stack: Stack) -> None:
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    for f in admin.create_topics([NewTopic("kept", 3, 1, config={
            "cleanup.policy": "compact"})]).values():
        f.result(30)
    producer = Producer({"bootstrap.servers": stack.bootstrap})
    for i in range(5):
        producer.produce("kept", f"v{i}".encode(), f"k{i}".encode(), partition=i % 3)
    assert producer.flush(30) == 0
    schema_id = _register(stack.registry, "kept-value")
    group = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": "kept-group"})
    group.commit(offsets=[TopicPartition("kept", 0, 1)], asynchronous=False)
    group.close()

    stack("restart")

    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    topic = admin.list_topics(timeout=30).topics["kept"]
    assert len(topic.partitions) == 3
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": "reader",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["kept"])
    seen: set[bytes] = set()
    for _ in range(30):
        seen |= {m.value() for m in consumer.consume(10, 1.0) if m.error() is None}
        if len(seen) == 5:
            break
    assert seen == {f"v{i}".encode() for i in range(5)}
    consumer.close()
    group = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": "kept-group"})
    assert group.committed([TopicPartition("kept", 0)], timeout=30)[0].offset == 1
    group.close()
    assert _subjects(stack.registry) == ["kept-value"]
    assert _register(stack.registry, "kept-value") == schema_id  # the same schema, same id

    # nothing is auto-created by a producer or consumer that names a missing topic
    producer = Producer({"bootstrap.servers": stack.bootstrap, "message.timeout.ms": 3000})
    errors: list[KafkaError] = []
    producer.produce("never-created", b"x", on_delivery=lambda e, _m: errors.append(e))
    producer.flush(15)
    assert errors and errors[0] is not None
    assert "never-created" not in admin.list_topics(timeout=10).topics

    stack("wipe")
    stack("up")
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    assert "kept" not in admin.list_topics(timeout=30).topics
    assert _subjects(stack.registry) == []
