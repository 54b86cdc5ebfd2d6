"""Log set-up: JSON lines, and librdkafka's repeated lines rate-limited per facility and broker."""

from __future__ import annotations

import json
import logging
import time

import pytest
from confluent_kafka import Consumer

from streamflow.config import ConfigError, load_config
from streamflow.observability.logs import (
    CLIENT_LOGGER,
    ClientLogLimiter,
    JsonFormatter,
    client_log_conf,
    line_key,
    setup_logging,
)

REFUSED = ("[thrd:127.0.0.1:9/bootstrap]: 127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 "
           "failed: Connection refused (after 0ms in state CONNECT)")


def client_line(facility: str, message: str, level: int = logging.ERROR) -> logging.LogRecord:
    # what confluent-kafka's `logger` setting passes: "%s [%s] %s" % (fac, client name, text)
    return logging.LogRecord(CLIENT_LOGGER, level, "", 0, "%s [%s] %s",
                             (facility, "rdkafka#consumer-1", message), None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_limiter_lets_one_line_per_interval_through_and_counts_the_rest() -> None:
    clock = Clock()
    limiter = ClientLogLimiter(10.0, clock)
    passed = []
    for _ in range(700):  # ~700 FAIL lines in 15 s of broker outage, as the issue saw
        rec = client_line("FAIL", REFUSED)
        if limiter.filter(rec):
            passed.append(rec.getMessage())
        clock.now += 15.0 / 700
    assert len(passed) == 2
    assert passed[0] == f"FAIL [rdkafka#consumer-1] {REFUSED}"
    held = 10.0 // (15.0 / 700)  # the lines of the first 10 s after the first
    assert passed[1].endswith(f"({int(held)} more like this in the last 10s)")


def test_limiter_keys_by_facility_and_broker() -> None:
    clock = Clock()
    limiter = ClientLogLimiter(10.0, clock)
    other_broker = REFUSED.replace("127.0.0.1:9", "127.0.0.1:10")
    assert limiter.filter(client_line("FAIL", REFUSED))
    assert limiter.filter(client_line("FAIL", other_broker))  # another broker
    assert limiter.filter(client_line("ERROR", REFUSED))  # another facility
    assert not limiter.filter(client_line("FAIL", REFUSED))
    assert not limiter.filter(client_line("FAIL", other_broker))
    assert limiter.filter(client_line("FAIL", REFUSED, logging.CRITICAL))  # never held back
    assert limiter.filter(client_line("FAIL", REFUSED, logging.DEBUG))  # asked for by `debug`
    clock.now += 10.0
    rec = client_line("FAIL", other_broker)
    assert limiter.filter(rec)
    assert rec.getMessage().endswith("(1 more like this in the last 10s)")


def test_line_key_names_facility_and_broker() -> None:
    assert line_key(client_line("FAIL", REFUSED)) == ("FAIL", "127.0.0.1:9/bootstrap")
    assert line_key(client_line("_ALL_BROKERS_DOWN", "1/1 brokers are down")) == (
        "_ALL_BROKERS_DOWN", "")
    plain = logging.LogRecord(CLIENT_LOGGER, logging.INFO, "", 0, "hello world", None, None)
    assert line_key(plain) == ("", "")


def test_json_lines_carry_time_level_logger_message_and_context() -> None:
    fmt = JsonFormatter(processor="enrich", instance="2")
    rec = logging.LogRecord("streamflow.errors", logging.WARNING, "", 0, "skipped %s",
                            ("orders[1]@5",), None)
    rec.topic, rec.partition, rec.offset = "orders", 1, 5
    doc = json.loads(fmt.format(rec))
    assert doc.pop("time").endswith("Z")
    assert doc == {"level": "WARNING", "logger": "streamflow.errors",
                   "message": "skipped orders[1]@5", "processor": "enrich", "instance": "2",
                   "topic": "orders", "partition": 1, "offset": 5}
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.LogRecord("x", logging.ERROR, "", 0, "failed", None, sys.exc_info())
    doc = json.loads(JsonFormatter().format(rec))
    assert "ValueError: boom" in doc["exception"]
    assert "processor" not in doc and "instance" not in doc


def test_setup_logging_json_writes_one_object_per_line(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    setup_logging("INFO", "t/p#0", fmt="json", processor="p", instance="0")
    try:
        logging.getLogger("streamflow.test").info("hello %s", "there")
        logging.getLogger("streamflow.errors").warning(
            "dead-lettered", extra={"topic": "in", "partition": 3, "offset": 9, "step": "m"})
    finally:
        logging.getLogger().handlers.clear()
    lines = capsys.readouterr().err.splitlines()
    docs = [json.loads(line) for line in lines]
    assert [d["message"] for d in docs] == ["hello there", "dead-lettered"]
    assert docs[1]["partition"] == 3 and docs[1]["step"] == "m"
    assert all(d["processor"] == "p" and d["instance"] == "0" for d in docs)


def test_setup_logging_text_keeps_the_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("INFO", "t/p#0")
    try:
        logging.getLogger("streamflow.test").info("hello")
    finally:
        logging.getLogger().handlers.clear()
    assert "INFO    [t/p#0] streamflow.test: hello" in capsys.readouterr().err


def test_log_format_setting_accepts_text_and_json_only() -> None:
    assert load_config(env={"STREAMFLOW_LOG_FORMAT": "json"}).log_format == "json"
    assert load_config(env={}).log_format == "text"
    with pytest.raises(ConfigError, match=r"log_format.*one of text, json, got 'xml'"):
        load_config(env={"STREAMFLOW_LOG_FORMAT": "xml"})
    with pytest.raises(ValueError, match="log format"):
        setup_logging("INFO", "x", fmt="xml")


def test_worker_clients_log_through_the_rate_limited_logger() -> None:
    import streamflow as sf
    from streamflow.runtime.clients import consumer_conf, kafka_ports, producer_conf

    topology = sf.Topology("logs")
    topology.processor("p").stream(topology.topic("in", external=True)).to(
        topology.topic("out"))
    config = load_config(env={"STREAMFLOW_CLIENT_LOG_INTERVAL_S": "5"})
    p = topology.processors["p"]
    restore = kafka_ports(config, {}, {}).changelogs._conf  # type: ignore[attr-defined]
    for conf in (consumer_conf(p, config, "0"), producer_conf(p, config, "0"), restore):
        assert conf["logger"] is logging.getLogger(CLIENT_LOGGER)
        assert callable(conf["error_cb"])
    limiters = [f for f in logging.getLogger(CLIENT_LOGGER).filters
                if isinstance(f, ClientLogLimiter)]
    assert [f.interval_s for f in limiters] == [5.0]


def test_a_client_at_a_closed_port_logs_a_few_lines_with_counts(
        caplog: pytest.LogCaptureFixture) -> None:
    # real librdkafka, no broker: the port refuses every connection attempt
    caplog.set_level(logging.INFO, logger=CLIENT_LOGGER)
    consumer = Consumer({"bootstrap.servers": "127.0.0.1:9", "group.id": "streamflow-logs-test",
                         "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 20,
                         **client_log_conf(1.0)})
    try:
        consumer.subscribe(["nowhere"])
        end = time.monotonic() + 3.5
        while time.monotonic() < end:
            consumer.consume(10, 0.1)
    finally:
        consumer.close()
    fail = [r.getMessage() for r in caplog.records
            if r.name == CLIENT_LOGGER and r.getMessage().startswith("FAIL ")]
    assert 2 <= len(fail) <= 6, fail  # one per second, not one per attempt
    held = [int(m.rsplit("(", 1)[1].split()[0]) for m in fail if "more like this" in m]
    assert held and sum(held) >= 20, fail  # librdkafka retried every ~20 ms meanwhile
    errors = [r for r in caplog.records if r.getMessage().startswith("_TRANSPORT [error]")]
    assert errors and all(r.levelno == logging.WARNING for r in errors)


def test_clients_made_without_a_logger_send_librdkafka_lines_to_the_client_logger(
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    """The clients the commands make (``streamflow acls``, ``tail``, ``reset``...) log through
    ``streamflow.librdkafka`` too: raw ``%3|...|FAIL|...`` lines on stderr would land in the
    middle of a command's output (a CI run once saw ``%6|...|BGQUEUE|...`` after
    ``acls --check``'s verdict)."""
    from streamflow.kafka import client

    assert client.CLIENT_LOGGER == CLIENT_LOGGER
    caplog.set_level(logging.DEBUG, logger=CLIENT_LOGGER)
    producer = client.make_producer({"bootstrap.servers": "127.0.0.1:9",
                                     "reconnect.backoff.ms": 10,
                                     "reconnect.backoff.max.ms": 20})
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        producer.poll(0.1)
    del producer
    fail = [r for r in caplog.records
            if r.name == CLIENT_LOGGER and r.getMessage().startswith("FAIL ")]
    assert fail, [r.getMessage() for r in caplog.records]
    assert "|FAIL|" not in capfd.readouterr().err
    mine = logging.getLogger("mine")
    assert client.logged({"logger": mine})["logger"] is mine  # a logger of its own is kept
