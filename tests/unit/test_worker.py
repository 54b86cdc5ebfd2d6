"""Worker decisions that need no broker: how consumer errors are classified."""

from __future__ import annotations

import pytest

import streamflow as sf
from streamflow.config import Config
from streamflow.kafka import client
from streamflow.runtime.worker import ConsumerFatal, Worker


def _worker(guarantee: str) -> Worker:
    topology = sf.Topology("unit")
    src = topology.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = topology.topic("out", key=sf.String(), value=sf.Json())
    p = topology.processor("p", guarantee=guarantee)
    p.stream(src).to(out)
    return Worker(p, Config())


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_fatal_consumer_error_stops_the_worker_as_consumer_fatal(guarantee: str) -> None:
    """Under exactly-once a KafkaException from produce restarts the transaction; a fatal
    consumer error must not be mistaken for one: it is a ConsumerFatal and stops the loop."""
    w = _worker(guarantee)
    with pytest.raises(ConsumerFatal):
        w._consumer_error(client.KafkaError(client.KafkaError._FATAL, "gone", fatal=True))


def test_a_non_fatal_consumer_error_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    w = _worker("exactly_once")
    w._consumer_error(client.KafkaError(client.KafkaError._TRANSPORT, "blip"))
    assert "blip" in caplog.text


def test_exactly_once_clients_disable_nagle_and_retry_transactions_soon() -> None:
    w = _worker("exactly_once")
    assert w._producer_conf["socket.nagle.disable"] is True
    assert w._consumer_conf["socket.nagle.disable"] is True
    assert w._producer_conf["retry.backoff.ms"] == 20
    user = Worker(w.processor, Config(producer={"retry.backoff.ms": 7}))
    assert user._producer_conf["retry.backoff.ms"] == 7  # the user's setting wins
