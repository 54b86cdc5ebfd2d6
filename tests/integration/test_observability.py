"""Lineage events, JSON logs and trace context from a real `streamflow run` on the broker."""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from streamflow.observability.tracing import trace_id
from tests.integration.kafka_helpers import StreamflowProcess, read_all, write_module
from tests.unit.lineage_events import check_event

pytestmark = pytest.mark.integration

MODULE = """
import os
import streamflow as sf

if os.environ.get("T_SPANS"):  # an OpenTelemetry SDK, as `opentelemetry-instrument` would set
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(
        out=open(os.environ["T_SPANS"], "a"), formatter=lambda s: s.to_json(indent=None) + "\\n")))
    trace.set_tracer_provider(provider)

topology = sf.Topology(os.environ["T_APP"])
src = topology.topic(os.environ["T_IN"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["T_OUT"], key=sf.String(), value=sf.Json())
counts = topology.topic(os.environ["T_COUNTS"], key=sf.String(), value=sf.Long())
p = topology.processor("p", on_error="dead_letter")
s = p.stream(src)
s.map(lambda v: {**v, "inv": 1 // v["n"]}, name="invert").to(out)
s.group_by_key(name="by-key").count(name="per-key").to_stream().to(counts)
"""

TRACE_OK = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_POISON = "0af7651916cd43dd8448eb211c80319c"
TRACE_LATE = "5c1d7a2b9e8f40aa8d3c2b1a09f8e7d6"


def traceparent(trace_hex: str) -> list[tuple[str, bytes]]:
    return [("traceparent", f"00-{trace_hex}-00f067aa0ba902b7-01".encode())]


def produce_records(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for n in range(1, 21):
        producer.produce(topic, orjson.dumps({"n": n}), f"k{n % 3}".encode(),
                         headers=traceparent(TRACE_OK) if n == 5 else None)
    # the poison record: 1 // 0 fails in "invert" and is dead-lettered
    producer.produce(topic, orjson.dumps({"n": 0}), b"k0", headers=traceparent(TRACE_POISON))
    assert producer.flush(30) == 0


@pytest.fixture
def app(tmp_path: Path, kafka_bootstrap: str, new_topic: Any) -> dict[str, Any]:
    name = write_module(tmp_path, "obs_topology", MODULE)
    app_name = f"obs-{uuid.uuid4().hex[:8]}"
    env = {
        "T_APP": app_name,
        "T_IN": new_topic(partitions=2),
        "T_OUT": new_topic(partitions=2),
        "T_COUNTS": new_topic(partitions=2),
        "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMFLOW_COMMIT_INTERVAL_MS": "200",
        "STREAMFLOW_STATE_DIR": str(tmp_path / "state"),
        "STREAMFLOW_LINEAGE": "true",
        "STREAMFLOW_LINEAGE_INTERVAL_S": "1",
    }
    return {"module": name, "env": env, "tmp": tmp_path, "bootstrap": kafka_bootstrap,
            "dlq": f"{app_name}.p.dlq"}


def run(app: dict[str, Any], env: dict[str, str]) -> StreamflowProcess:
    return StreamflowProcess(["run", app["module"]], app["tmp"], {**app["env"], **env},
                             app["tmp"] / "run.log")


def test_a_run_emits_valid_lineage_json_logs_and_carries_trace_context_and_provenance(
        app: dict[str, Any]) -> None:
    events_file = app["tmp"] / "lineage.jsonl"
    spans_file = app["tmp"] / "spans.jsonl"
    produce_records(app["bootstrap"], app["env"]["T_IN"])
    proc = run(app, {
        # the OpenLineage client configures its transport itself: here from OPENLINEAGE__*
        "OPENLINEAGE__TRANSPORT__TYPE": "file",
        "OPENLINEAGE__TRANSPORT__LOG_FILE_PATH": str(events_file),
        "OPENLINEAGE__TRANSPORT__APPEND": "true",
        "STREAMFLOW_LOG_FORMAT": "json",
        "STREAMFLOW_TRACING": "true",
        "STREAMFLOW_PROVENANCE_HEADERS": "true",
        "T_SPANS": str(spans_file),
    })
    try:
        read_all(app["bootstrap"], app["env"]["T_OUT"], expect=20)
        dead = read_all(app["bootstrap"], app["dlq"], expect=1)
        # one more traced record, alone in its batch: the batch span is its trace's child
        producer = Producer({"bootstrap.servers": app["bootstrap"]})
        producer.produce(app["env"]["T_IN"], orjson.dumps({"n": 21}), b"k1",
                         headers=traceparent(TRACE_LATE))
        assert producer.flush(30) == 0
        outputs = read_all(app["bootstrap"], app["env"]["T_OUT"], expect=21)
        time.sleep(1.5)  # at least one RUNNING event
    finally:
        rc = proc.terminate()
    assert rc == 0, proc.output()

    # trace context: the traced input's output and the dead letter keep their trace ids
    assert len(outputs) == 21 and len(dead) == 1
    by_n = {orjson.loads(m.value())["n"]: m for m in outputs}
    assert trace_id(by_n[5].headers()) == TRACE_OK
    assert trace_id(by_n[21].headers()) == TRACE_LATE
    assert all(trace_id(m.headers()) is None for n, m in by_n.items() if n not in (5, 21))
    assert trace_id(dead[0].headers()) == TRACE_POISON

    # provenance: each output names the input record it came from
    inputs = {orjson.loads(m.value())["n"]: m
              for m in read_all(app["bootstrap"], app["env"]["T_IN"], expect=22, settle=0.5)}
    for n, m in by_n.items():
        h = dict(m.headers())
        src = inputs[n]
        assert (h["streamflow.source.topic"].decode(), int(h["streamflow.source.partition"]),
                int(h["streamflow.source.offset"])) == (src.topic(), src.partition(),
                                                        src.offset())
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    assert spans and all(s["name"] == "process p" for s in spans)
    related = {s["parent_id"] and s["context"]["trace_id"] for s in spans} | {
        link["context"]["trace_id"] for s in spans for link in s["links"]}
    assert {f"0x{TRACE_OK}", f"0x{TRACE_POISON}", f"0x{TRACE_LATE}"} <= related
    # the late record's output names its batch span as parent: the trace goes on through it
    late = next(s for s in spans if s["context"]["trace_id"] == f"0x{TRACE_LATE}")
    assert late["parent_id"] == "0x00f067aa0ba902b7"
    parent_span = dict(by_n[21].headers())["traceparent"].decode().split("-")[2]
    assert f"0x{parent_span}" == late["context"]["span_id"]

    # lineage: START, RUNNING, COMPLETE of one run, valid events naming every topic
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    for e in events:
        check_event(e)
    states = [e["eventType"] for e in events]
    assert states[0] == "START" and "RUNNING" in states and states[-1] == "COMPLETE", states
    assert len({e["run"]["runId"] for e in events}) == 1
    start = events[0]
    env = app["env"]
    assert start["job"] == {**start["job"], "namespace": "streamflow", "name": f"{env['T_APP']}.p"}
    namespace = f"kafka://{app['bootstrap'].split(',')[0]}"
    assert [(d["namespace"], d["name"]) for d in start["inputs"]] == [(namespace, env["T_IN"])]
    assert {d["name"] for d in start["outputs"]} == {
        env["T_OUT"], env["T_COUNTS"], f"{env['T_APP']}-p-per-key-changelog", app["dlq"]}

    # JSON logs: every line an object with the process's processor and instance id (no
    # POD_NAME or STREAMFLOW_INSTANCE_ID here: the host name and local index 0)
    lines = [json.loads(line) for line in proc.output().splitlines() if line.strip()]
    instance = f"{socket.gethostname()}-0"
    assert all(d["processor"] == "p" and d["instance"] == instance for d in lines)
    dead_line = next(d for d in lines if d["message"].startswith("dead-lettered"))
    assert dead_line["topic"] == env["T_IN"] and dead_line["step"] == "invert"
    assert {"partition", "offset", "time", "level", "logger"} <= set(dead_line)


def test_a_lineage_backend_that_is_down_never_stops_processing(app: dict[str, Any]) -> None:
    produce_records(app["bootstrap"], app["env"]["T_IN"])
    # the HTTP transport, at a port nothing listens on
    proc = run(app, {"OPENLINEAGE_URL": "http://127.0.0.1:9"})
    started = time.monotonic()
    try:
        outputs = read_all(app["bootstrap"], app["env"]["T_OUT"], expect=20)
        time.sleep(12.0)  # the HTTP transport gives an event up after ~9 s of retries
    finally:
        stopping = time.monotonic()
        rc = proc.terminate()
    stop_s = time.monotonic() - stopping
    ran_s = time.monotonic() - started
    assert rc == 0, proc.output()
    assert len(outputs) == 20
    text = proc.output()
    warnings = [line for line in text.splitlines() if "lineage: cannot send" in line]
    assert warnings, text
    assert len(warnings) <= ran_s + 2  # at most one per lineage_interval_s (1 s)
    assert "urllib3" not in text  # not a warning per retry of each event
    assert stop_s < 5.0, f"stopping took {stop_s:.1f}s"  # a down backend is not waited on
    assert "stopped cleanly" in text
