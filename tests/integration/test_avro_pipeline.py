"""Avro end to end through Kafka and the real schema registry, with ``streamflow run``.

- records written by confluent-kafka's own ``AvroSerializer`` (schema v1, then v2 which adds
  a field with a default) are processed in one run; the output is read by confluent's
  ``AvroDeserializer`` and is byte for byte what its ``AvroSerializer`` writes;
- poison records (wrong magic byte, unknown schema id, truncated payload) go to the
  dead-letter topic with their original bytes;
- a registry outage is not a bad record: the worker exits 4 without committing or
  dead-lettering, and once the registry is back every record is processed;
- the start-up contract check refuses (exit 3) a processor whose declared schema cannot
  read what is registered.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streamflow.kafka.registry import make_registry_client
from streamflow.serde.avro import Avro
from tests.integration.kafka_helpers import (
    StreamflowProcess,
    confluent_registry,
    confluent_serializer,
    produce,
    read_all,
    write_module,
)

pytestmark = pytest.mark.integration


def rec(name: str, *fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "it.pipeline", "fields": list(fields)}


def f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


V1 = rec("Reading", f("sensor", "string"), f("seq", "long"), f("value", "double"))
V2 = rec("Reading", f("sensor", "string"), f("seq", "long"), f("value", "double"),
         f("unit", "string", default="C"))
OUT = rec("Celsius", f("sensor", "string"), f("seq", "long"), f("celsius", "double"),
          f("source_unit", "string"))

MODULE = """
import json
import os

import streamflow as sf
from streamflow.serde.avro import Avro

READER = json.loads(os.environ["T_READER"])
OUT = json.loads(os.environ["T_OUT_SCHEMA"])


def to_celsius(r):
    unit = r.get("unit", "C")
    value = r["value"] if unit == "C" else round((r["value"] - 32) * 5 / 9, 6)
    return {"sensor": r["sensor"], "seq": r["seq"], "celsius": value, "source_unit": unit}


topology = sf.Topology(os.environ["T_APP"])
src = topology.topic(os.environ["T_IN"], key=sf.String(), value=Avro(READER), external=True)
out = topology.topic(os.environ["T_OUT"], key=sf.String(), value=Avro(OUT))
topology.processor("p", on_error="dead_letter").stream(src).map(to_celsius).to(out)
"""


def celsius(value: float, unit: str) -> float:
    return value if unit == "C" else round((value - 32) * 5 / 9, 6)


def reading(seq: int, version: int) -> dict[str, Any]:
    r: dict[str, Any] = {"sensor": f"s{seq % 5}", "seq": seq, "value": 10.0 + seq}
    if version == 2:
        r["unit"] = "F" if seq % 2 else "C"
    return r


class Pipeline:
    """Topics, subjects and environment of one test, with confluent serdes for them."""

    def __init__(self, tmp: Path, bootstrap: str, registry_url: str, in_topic: str,
                 out_topic: str, reader: dict[str, Any] = V2) -> None:
        self.tmp, self.bootstrap, self.registry_url = tmp, bootstrap, registry_url
        self.in_topic, self.out_topic = in_topic, out_topic
        self.app = f"avro-{uuid.uuid4().hex[:8]}"
        self.dlq = f"{self.app}.p.dlq"
        self.module = write_module(tmp, f"avro_app_{self.app.replace('-', '_')}", MODULE)
        self.env = {
            "T_APP": self.app, "T_IN": in_topic, "T_OUT": out_topic,
            "T_READER": json.dumps(reader), "T_OUT_SCHEMA": json.dumps(OUT),
            "STREAMFLOW_BOOTSTRAP_SERVERS": bootstrap,
            "STREAMFLOW_SCHEMA_REGISTRY_URL": registry_url,
            "STREAMFLOW_SCHEMA_REGISTRY_MAX_RETRIES": "2",
            "STREAMFLOW_SCHEMA_REGISTRY_RETRIES_WAIT_MS": "100",
            "STREAMFLOW_COMMIT_INTERVAL_MS": "200",
        }
        self.sr = confluent_registry(registry_url)
        self.sctx_in = SerializationContext(in_topic, MessageField.VALUE)
        self.sctx_out = SerializationContext(out_topic, MessageField.VALUE)
        self.runs = 0

    def serialize(self, schema: dict[str, Any], value: dict[str, Any]) -> bytes:
        data = confluent_serializer(self.sr, json.dumps(schema))(value, self.sctx_in)
        assert data is not None
        return data

    def produce(self, version: int, seqs: range, extra: list[bytes] | None = None) -> None:
        ser = confluent_serializer(self.sr, json.dumps(V1 if version == 1 else V2))
        records: list[tuple[bytes, bytes]] = []
        for s in seqs:
            data = ser(reading(s, version), self.sctx_in)
            assert data is not None
            records.append((f"s{s % 5}".encode(), data))
        records += [(b"poison", e) for e in extra or ()]
        produce(self.bootstrap, self.in_topic, records)

    def start(self, *args: str, env: dict[str, str] | None = None) -> StreamflowProcess:
        self.runs += 1
        return StreamflowProcess(["run", self.module, *args], self.tmp,
                                 {**self.env, **(env or {})}, self.tmp / f"run{self.runs}.log")

    def outputs(self, expect: int, timeout: float = 120.0) -> list[dict[str, Any]]:
        reader = AvroDeserializer(self.sr)
        msgs = read_all(self.bootstrap, self.out_topic, expect=expect, timeout=timeout)
        return [reader(m.value(), self.sctx_out) for m in msgs]

    def committed(self, partitions: int) -> int:
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"{self.app}.p",
                      "enable.auto.commit": False})
        try:
            tps = c.committed([TopicPartition(self.in_topic, p) for p in range(partitions)],
                              timeout=15)
        finally:
            c.close()
        return sum(tp.offset for tp in tps if tp.offset >= 0)

    def cleanup(self) -> None:
        client = make_registry_client({"url": self.registry_url})
        try:
            for subject in (f"{self.in_topic}-value", f"{self.out_topic}-value"):
                client.delete_subject(subject, permanent=True)
        finally:
            client.close()


@pytest.fixture
def pipeline(tmp_path: Path, kafka_bootstrap: str, schema_registry_url: str,
             new_topic: Any) -> Iterator[Pipeline]:
    p = Pipeline(tmp_path, kafka_bootstrap, schema_registry_url, new_topic(partitions=3),
                 new_topic(partitions=3))
    yield p
    p.cleanup()


def expected(seqs: range, version: int) -> list[dict[str, Any]]:
    out = []
    for s in seqs:
        r = reading(s, version)
        unit = r.get("unit", "C")  # v1 records read with the v2 reader get the default
        out.append({"sensor": r["sensor"], "seq": s, "celsius": celsius(r["value"], unit),
                    "source_unit": unit})
    return out


def by_seq(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(values, key=lambda v: v["seq"])


# -- end to end ---------------------------------------------------------------------------------


def test_confluent_avro_in_evolving_schema_out_to_confluent_reader_with_poison_to_dlq(
    pipeline: Pipeline,
) -> None:
    good = pipeline.serialize(V1, reading(999, 1))
    poison = [
        b"\x01" + good[1:],  # wrong magic byte
        b"\x00" + struct.pack(">I", 2**31 - 7) + good[5:],  # unknown schema id
        good[:-4],  # truncated: ends inside the double
    ]
    pipeline.produce(1, range(0, 150), extra=poison)
    proc = pipeline.start()
    try:
        first = pipeline.outputs(expect=150)
        assert len(first) == 150, proc.output()
        # the producer evolves its schema compatibly while the processor runs
        pipeline.produce(2, range(150, 300))
        out = pipeline.outputs(expect=300)
        dlq = read_all(pipeline.bootstrap, pipeline.dlq, expect=3, timeout=30)
    finally:
        rc = proc.terminate()
    assert rc == 0, proc.output()
    assert by_seq(out) == by_seq(expected(range(0, 150), 1) + expected(range(150, 300), 2))
    assert {v["source_unit"] for v in out if v["seq"] >= 150} == {"C", "F"}

    registry = make_registry_client({"url": pipeline.registry_url})
    try:
        versions = registry.versions(f"{pipeline.in_topic}-value")
    finally:
        registry.close()
    assert len(versions) == 2, "v2 was not registered next to v1"

    # dead letters: the original bytes, and why
    assert sorted(m.value() for m in dlq) == sorted(poison), proc.output()
    reasons = {m.value(): dict(m.headers() or [])[("streamflow.error.message")] for m in dlq}
    assert b"expected magic byte 0x00" in reasons[poison[0]]
    assert b"unknown schema id" in reasons[poison[1]]
    assert b"truncated" in reasons[poison[2]]
    assert all(dict(m.headers() or [])["streamflow.error.type"] == b"SerdeError" for m in dlq)

    # same wire bytes: confluent's serializer writes exactly what streamflow wrote
    ours = read_all(pipeline.bootstrap, pipeline.out_topic, expect=300)
    reader = AvroDeserializer(pipeline.sr)
    theirs = confluent_serializer(pipeline.sr, Avro(OUT).schema_str())
    for m in ours[:20]:
        value = reader(m.value(), pipeline.sctx_out)
        assert theirs(value, pipeline.sctx_out) == m.value()


# -- registry outages ---------------------------------------------------------------------------


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target``; ``stop()`` makes the port refuse."""

    def __init__(self, target: tuple[str, int], port: int = 0) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.port = self.server.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def url(self, registry_url: str) -> str:
        parts = urlsplit(registry_url)
        return urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port}"))

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):  # wakes accept(); close() alone would not
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        with self._lock:
            for s in self._conns:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


def _target(registry_url: str) -> tuple[str, int]:
    parts = urlsplit(registry_url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_registry_at_startup_exits_4_and_a_restart_processes_everything(
    pipeline: Pipeline,
) -> None:
    pipeline.produce(1, range(0, 100))
    down = "http://127.0.0.1:1"
    proc = pipeline.start(env={"STREAMFLOW_SCHEMA_REGISTRY_URL": down})
    rc = proc.proc.wait(60)
    proc.terminate()
    log = proc.output()
    assert rc == 4, log
    assert f"schema registry at {down} unreachable" in log
    assert "stopped without committing" in log
    assert pipeline.committed(3) == 0

    proc = pipeline.start()
    try:
        out = pipeline.outputs(expect=100)
    finally:
        assert proc.terminate() == 0, proc.output()
    assert by_seq(out) == by_seq(expected(range(0, 100), 1))


def test_registry_outage_mid_run_stops_without_committing_or_dead_lettering(
    pipeline: Pipeline,
) -> None:
    proxy = TcpProxy(_target(pipeline.registry_url))
    pipeline.produce(1, range(0, 100))
    proc = pipeline.start(env={"STREAMFLOW_SCHEMA_REGISTRY_URL": proxy.url(pipeline.registry_url)})
    try:
        assert len(pipeline.outputs(expect=100)) == 100, proc.output()
        deadline = time.monotonic() + 30
        while pipeline.committed(3) < 100 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert pipeline.committed(3) == 100
        proxy.stop()  # the registry goes away ...
        pipeline.produce(2, range(100, 200))  # ... and records with a new writer schema arrive
        rc = proc.proc.wait(90)
    finally:
        proxy.stop()
        proc.terminate()
    log = proc.output()
    assert rc == 4, log
    assert f"schema registry at {proxy.url(pipeline.registry_url)} unreachable" in log
    assert "writer schema (id" in log
    assert pipeline.committed(3) == 100, "offsets of unprocessed records were committed"
    assert read_all(pipeline.bootstrap, pipeline.dlq, expect=0, timeout=5, settle=1) == []

    proc = pipeline.start()
    try:
        out = pipeline.outputs(expect=200)
    finally:
        assert proc.terminate() == 0, proc.output()
    got = {v["seq"] for v in out}
    assert got == set(range(200)), f"missing {sorted(set(range(200)) - got)[:10]}"
    assert read_all(pipeline.bootstrap, pipeline.dlq, expect=0, timeout=5, settle=1) == []


def test_supervisor_restarts_workers_with_backoff_until_the_registry_is_back(
    pipeline: Pipeline,
) -> None:
    pipeline.produce(1, range(0, 100))
    port = _free_port()
    later = f"http://127.0.0.1:{port}" + (urlsplit(pipeline.registry_url).path or "")
    proc = pipeline.start("--workers", "2", env={"STREAMFLOW_SCHEMA_REGISTRY_URL": later})
    proxy = None
    try:
        deadline = time.monotonic() + 60
        while proc.output().count("exited with 4; restarting") < 3:  # backoff grows
            assert time.monotonic() < deadline, proc.output()
            time.sleep(0.2)
        proxy = TcpProxy(_target(pipeline.registry_url), port)
        out = pipeline.outputs(expect=100, timeout=120)
    finally:
        rc = proc.terminate()
        if proxy is not None:
            proxy.stop()
    assert rc == 0, proc.output()
    assert {v["seq"] for v in out} == set(range(100))


# -- start-up contract check --------------------------------------------------------------------


def test_processor_refuses_to_start_when_its_schema_cannot_read_the_registered_one(
    pipeline: Pipeline,
) -> None:
    # the producer's schema has no `seq`; our reader needs it and has no default for it
    writer = rec("Reading", f("sensor", "string"), f("value", "double"))
    data = pipeline.serialize(writer, {"sensor": "s1", "value": 1.0})
    produce(pipeline.bootstrap, pipeline.in_topic, [(b"s1", data)])
    proc = pipeline.start()
    rc = proc.proc.wait(60)
    proc.terminate()
    log = proc.output()
    assert rc == 3, log
    assert "processor 'p'" in log and "cannot start" in log
    assert f"topic {pipeline.in_topic!r} (value), subject '{pipeline.in_topic}-value'" in log
    assert "Reading.seq: reader field missing from the writer and has no default" in log
    assert "how to fix:" in log
    assert pipeline.committed(3) == 0
