"""Worker decisions that need no broker: client settings, how consumer errors are
classified, and a taken health port."""

from __future__ import annotations

import socket
from typing import Any

import pytest

import streamflow as sf
from streamflow.config import Config, ConfigError
from streamflow.kafka import client
from streamflow.runtime.worker import ConsumerFatal, Worker
from streamflow.testing import TopologyTestDriver


def _topology(guarantee: str) -> sf.Topology:
    topology = sf.Topology("unit")
    src = topology.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = topology.topic("out", key=sf.String(), value=sf.Json())
    topology.processor("p", guarantee=guarantee).stream(src).to(out)
    return topology


class _ErrorEvent:
    """A consumer error event, as the consumer hands them out among records."""

    def __init__(self, err: Any) -> None:
        self._err = err

    def error(self) -> Any:
        return self._err


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_fatal_consumer_error_stops_the_worker_as_consumer_fatal(guarantee: str) -> None:
    """Under exactly-once a KafkaException from produce restarts the transaction; a fatal
    consumer error must not be mistaken for one: it is a ConsumerFatal and stops the loop."""
    with TopologyTestDriver(_topology(guarantee)) as driver:
        engine = driver.engines["p"][0]
        fatal = client.KafkaError(client.KafkaError._FATAL, "gone", fatal=True)
        with pytest.raises(ConsumerFatal):
            engine.process([_ErrorEvent(fatal)])


def test_a_non_fatal_consumer_error_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    with TopologyTestDriver(_topology("exactly_once")) as driver:
        driver.engines["p"][0].process(
            [_ErrorEvent(client.KafkaError(client.KafkaError._TRANSPORT, "blip"))])
        assert "blip" in caplog.text
        driver.input("in").send({"n": 1}, key="k")
        assert driver.output("out").read_values() == [{"n": 1}]


def test_exactly_once_clients_disable_nagle_and_retry_transactions_soon() -> None:
    p = _topology("exactly_once").processors["p"]
    w = Worker(p, Config(instance_id="w3"))
    assert w.producer_conf["socket.nagle.disable"] is True
    assert w.consumer_conf["socket.nagle.disable"] is True
    assert w.producer_conf["retry.backoff.ms"] == 20
    assert w.producer_conf["transactional.id"] == "unit.p-w3"
    user = Worker(p, Config(producer={"retry.backoff.ms": 7}))
    assert user.producer_conf["retry.backoff.ms"] == 7  # the user's setting wins


def test_at_least_once_producers_are_not_transactional() -> None:
    w = Worker(_topology("at_least_once").processors["p"], Config())
    assert "transactional.id" not in w.producer_conf
    assert w.consumer_conf["partition.assignment.strategy"] == "cooperative-sticky"


def test_a_taken_health_port_is_a_configuration_error_naming_the_setting() -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        w = Worker(_topology("at_least_once").processors["p"], Config(health_port=port))
        with pytest.raises(ConfigError, match=f"health_port {port}"):
            w.start()
        w.close()


def test_a_stop_while_the_broker_does_not_answer_ends_the_start_up_wait(
        tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    """SIGTERM during the start-up wait: the worker exits, not after ``startup_timeout_s``."""
    import threading
    import time

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config = Config(bootstrap_servers=f"127.0.0.1:{port}", startup_timeout_s=60,
                    health_port=0, state_dir=str(tmp_path))
    w = Worker(_topology("at_least_once").processors["p"], config)
    threading.Timer(1.0, w.stop).start()
    began = time.monotonic()
    with caplog.at_level("INFO", logger="streamflow"):
        w.run(install_signals=False)
    assert time.monotonic() - began < 20  # far below the 60 s start-up timeout
    assert not w.stopped_cleanly  # never joined: a static member must not leave
    assert "stopped before it started" in caplog.text
