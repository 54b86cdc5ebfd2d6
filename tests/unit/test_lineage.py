"""OpenLineage events of a processor: datasets and schema facets, the run events a worker
emits, a backend that is down, and `streamflow lineage`."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.serde import Serde

import streamflow as sf
from streamflow.cli import main
from streamflow.config import Config, ConfigError
from streamflow.observability.lineage import (
    LineageEmitter,
    ProcessorLineage,
    Topics,
    avro_fields,
    kafka_namespace,
    start_lineage,
    with_provenance,
)
from tests.unit.lineage_events import check_event

ROOT = Path(__file__).resolve().parents[2]
PAYMENT = {"type": "record", "name": "Payment", "namespace": "t", "fields": [
    {"name": "id", "type": "string"},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "extra", "type": {"type": "map", "values": "long"}},
    {"name": "card", "type": {"type": "record", "name": "Card", "fields": [
        {"name": "number", "type": "string"}, {"name": "expires", "type": {
            "type": "int", "logicalType": "date"}}]}},
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
    {"name": "note", "type": ["null", "string"], "default": None},
]}


def topology() -> sf.Topology:
    t = sf.Topology("shop")
    payments = t.topic("payments", key=sf.String(), value=sf.Avro(PAYMENT), external=True)
    users = t.topic("users", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("enriched", key=sf.String(), value=sf.Json())
    counts = t.topic("counts", key=sf.String(), value=sf.Long())
    p = t.processor("enrich", on_error="dead_letter")
    s = p.stream(payments)
    s.join(t.table(users), lambda v, u: v, name="with-user").to(out)
    s.group_by(lambda v: v["kind"], name="by-kind").count(name="per-kind").to_stream().to(counts)
    t.processor("plain").stream(out).to(t.topic("copy", key=sf.String(), value=sf.Json()))
    return t


CONFIG = Config(bootstrap_servers="PLAINTEXT://broker-1:9093,broker-2:9093")


def test_kafka_datasets_are_named_by_the_openlineage_naming_spec() -> None:
    assert kafka_namespace("127.0.0.1:9092") == "kafka://127.0.0.1:9092"
    assert kafka_namespace(" SSL://b:9094 , c:9094") == "kafka://b:9094"
    assert kafka_namespace("broker") == "kafka://broker:9092"


def test_a_processor_reads_its_sources_and_writes_sinks_changelogs_and_dead_letters() -> None:
    t = topology()
    topics = Topics.of(t.processors["enrich"])
    assert topics.inputs == ("payments", "users", "shop-enrich-by-kind-repartition")
    assert topics.outputs == ("enriched", "shop-enrich-by-kind-repartition", "counts",
                              "shop-enrich-table-users-changelog",
                              "shop-enrich-per-kind-changelog", "shop.enrich.dlq")
    plain = Topics.of(t.processors["plain"])
    assert plain == Topics(("enriched",), ("copy",))  # on_error="fail": no dead letters


def test_avro_contracts_become_schema_fields() -> None:
    assert avro_fields(PAYMENT) == [
        ("id", "string", ()),
        ("tags", "array<string>", ()),
        ("extra", "map<long>", ()),
        ("card", "record", (("number", "string", ()), ("expires", "date", ()))),
        ("kind", "enum", ()),
        ("note", "union<null,string>", ()),
    ]
    assert avro_fields("long") == []


def test_run_events_carry_job_datasets_and_schema_facet() -> None:
    lineage = ProcessorLineage(topology().processors["enrich"], CONFIG)
    doc = Serde.to_dict(lineage.run_event("START", "0190a7a4-6f6c-7a3e-9f2b-3c1d2e4f5a6b"))
    check_event(doc)
    assert doc["eventType"] == "START"
    assert doc["job"]["namespace"] == "streamflow" and doc["job"]["name"] == "shop.enrich"
    assert doc["job"]["facets"]["jobType"]["processingType"] == "STREAMING"
    assert {d["namespace"] for d in doc["inputs"] + doc["outputs"]} == {"kafka://broker-1:9093"}
    payments = doc["inputs"][0]
    assert payments["name"] == "payments"
    fields = payments["facets"]["schema"]["fields"]
    assert [(f["name"], f["type"]) for f in fields][:2] == [("id", "string"),
                                                            ("tags", "array<string>")]
    assert [f["name"] for f in fields[3]["fields"]] == ["number", "expires"]
    assert "schema" not in doc["inputs"][1].get("facets", {})  # users: Json, no contract


def test_fail_events_carry_the_error() -> None:
    lineage = ProcessorLineage(topology().processors["plain"],
                               CONFIG.with_overrides(lineage_namespace="prod"))
    try:
        raise RuntimeError("broker gone")
    except RuntimeError as e:
        error = e
    doc = Serde.to_dict(lineage.run_event("FAIL", "0190a7a4-6f6c-7a3e-9f2b-3c1d2e4f5a6b", error))
    check_event(doc)
    assert doc["job"]["namespace"] == "prod"
    facet = doc["run"]["facets"]["errorMessage"]
    assert facet["message"] == "RuntimeError: broker gone"
    assert "raise RuntimeError" in facet["stackTrace"]


def test_job_events_are_the_static_lineage() -> None:
    doc = Serde.to_dict(ProcessorLineage(topology().processors["plain"], CONFIG).job_event())
    check_event(doc)
    assert "run" not in doc and "eventType" not in doc


class Capture:
    """An OpenLineage client that keeps what it is given, failing while ``down``."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.down = False
        self.closed = False
        self.attempts = 0

    def emit(self, event: Any) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionError("connection refused")
        self.events.append(Serde.to_dict(event))

    def close(self, timeout: float) -> bool:
        self.closed = True
        return True


def wait_for(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_worker_run_is_start_running_then_complete() -> None:
    client = Capture()
    config = CONFIG.with_overrides(lineage=True, lineage_interval_s=0.05)
    emitter = start_lineage(topology().processors["enrich"], config, client)
    assert emitter is not None
    wait_for(lambda: len(client.events) >= 3)
    emitter.stop()
    states = [e["eventType"] for e in client.events]
    assert states[0] == "START" and states[-1] == "COMPLETE"
    assert set(states[1:-1]) == {"RUNNING"}
    assert {e["run"]["runId"] for e in client.events} == {emitter.run_id}
    assert client.closed
    for e in client.events:
        check_event(e)


def test_a_failed_worker_run_ends_with_fail() -> None:
    client = Capture()
    emitter = start_lineage(topology().processors["plain"],
                            CONFIG.with_overrides(lineage=True), client)
    assert emitter is not None
    emitter.stop(ValueError("bad record"))
    assert [e["eventType"] for e in client.events] == ["START", "FAIL"]
    assert client.events[-1]["run"]["facets"]["errorMessage"]["message"] == (
        "ValueError: bad record")


def test_lineage_off_starts_nothing() -> None:
    before = threading.active_count()
    assert start_lineage(topology().processors["plain"], CONFIG, Capture()) is None
    assert threading.active_count() == before


def test_a_backend_that_is_down_is_logged_once_per_interval_and_never_raises(
        caplog: pytest.LogCaptureFixture) -> None:
    client = Capture()
    client.down = True
    lineage = ProcessorLineage(topology().processors["plain"], CONFIG)
    clock = [0.0]
    emitter = LineageEmitter(lineage, client, interval_s=60.0, clock=lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="streamflow.lineage"):
        for _ in range(30):  # events failing faster than the interval
            assert emitter.emit("RUNNING") is False
            clock[0] += 5.0
    warnings = [r.getMessage() for r in caplog.records if r.name == "streamflow.lineage"]
    assert len(warnings) == 3  # at 0 s, 60 s and 120 s of the 150 s
    assert "(1 failed since the last report)" in warnings[0]
    assert "(12 failed since the last report)" in warnings[1]
    assert "connection refused" in warnings[0] and "processing goes on" in warnings[0]
    client.down = False
    assert emitter.emit("RUNNING") is True
    assert emitter.failed == 30 and emitter.sent == 1


def test_an_http_backend_that_refuses_connections_never_holds_the_caller(
        caplog: pytest.LogCaptureFixture) -> None:
    # the real client and HTTP transport, pointed at a port nothing listens on
    client = OpenLineageClient(config={"transport": {
        "type": "http", "url": "http://127.0.0.1:9", "timeout": 1,
        "retry": {"total": 0}}})
    config = CONFIG.with_overrides(lineage=True, lineage_interval_s=0.1)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="streamflow.lineage"):
        emitter = start_lineage(topology().processors["plain"], config, client)
        assert emitter is not None
        assert time.monotonic() - started < 1.0  # emitting happens in the background
        wait_for(lambda: emitter.failed >= 3)
        emitter.stop()
    assert emitter.sent == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "streamflow.lineage"]
    assert warnings and len(warnings) <= emitter.failed
    assert "through the http transport" in warnings[0]


def test_missing_openlineage_client_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "openlineage.client", None)
    with pytest.raises(ConfigError, match=r"pip install 'streamflow\[lineage\]'"):
        start_lineage(topology().processors["plain"], CONFIG.with_overrides(lineage=True))
    monkeypatch.setitem(sys.modules, "openlineage.client.serde", None)
    monkeypatch.chdir(ROOT)
    assert main(["lineage", "topologies.payments"]) == 3


# -- streamflow lineage -----------------------------------------------------------------


def test_cli_prints_one_job_event_per_processor(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("STREAMFLOW_BOOTSTRAP_SERVERS", "kafka-0:9092")
    assert main(["lineage", "topologies.payments"]) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["job"]["name"] for d in docs] == ["payments.detect", "payments.flag"]
    for d in docs:
        check_event(d)
        assert {x["namespace"] for x in d["inputs"] + d["outputs"]} == {"kafka://kafka-0:9092"}
    schema = docs[0]["inputs"][0]["facets"]["schema"]
    assert [f["name"] for f in schema["fields"]] == ["id", "card_id", "amount", "currency", "ts"]


def test_cli_prints_one_processor_and_refuses_an_unknown_one(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["lineage", "topologies.payments", "-p", "flag"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["job"]["name"] == "payments.flag"
    assert main(["lineage", "topologies.payments", "-p", "nope"]) == 3
    assert "has no processor 'nope'" in capsys.readouterr().err
    assert main(["lineage", "no.such.module"]) == 3


# -- provenance headers -----------------------------------------------------------------


class Consumed:
    """A consumed message, as confluent-kafka's ``Message`` offers it."""

    def __init__(self, topic: str, partition: int, offset: int,
                 headers: list[tuple[str, bytes]] | None, error: Any = None) -> None:
        self._where = (topic, partition, offset)
        self._headers = headers
        self._error = error

    def topic(self) -> str:
        return self._where[0]

    def partition(self) -> int:
        return self._where[1]

    def offset(self) -> int:
        return self._where[2]

    def error(self) -> Any:
        return self._error

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def set_headers(self, headers: list[tuple[str, bytes]]) -> None:
        self._headers = headers


def test_provenance_off_leaves_the_process_function_as_it_is() -> None:
    def process(msgs: list[Any]) -> None:
        pass

    assert with_provenance(process, enabled=False) is process


def test_provenance_headers_name_each_input_and_replace_upstream_ones() -> None:
    seen: list[list[Any]] = []
    upstream = [("traceparent", b"tp"), ("streamflow.source.topic", b"raw"),
                ("streamflow.source.partition", b"9"), ("streamflow.source.offset", b"99")]
    msgs = [Consumed("orders", 2, 41, None), Consumed("orders", 3, 7, list(upstream)),
            Consumed("orders", 0, -1, None, error="partition EOF")]
    with_provenance(lambda batch: seen.append([m.headers() for m in batch]),
                    enabled=True)(msgs)
    assert seen == [[
        [("streamflow.source.topic", b"orders"), ("streamflow.source.partition", b"2"),
         ("streamflow.source.offset", b"41")],
        [("traceparent", b"tp"), ("streamflow.source.topic", b"orders"),
         ("streamflow.source.partition", b"3"), ("streamflow.source.offset", b"7")],
        None,  # error events are left alone
    ]]
