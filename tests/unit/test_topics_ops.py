"""``streamflow topics`` without a broker: what would be created, drift rendering, and the
exit code when Kafka cannot be reached. The real round trip is in
tests/integration/test_topics_cli.py."""

from __future__ import annotations

import importlib
import time
from typing import Any

import pytest

import streamflow as sf
from streamflow.cli import main
from streamflow.config import Config
from streamflow.kafka.client import TopicState
from streamflow.ops import topics as ops_topics


def _shop() -> sf.Topology:
    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), partitions=3, external=True)
    priced = t.topic("priced", partitions=3, replication=1,
                     config={"cleanup.policy": "compact", "retention.ms": "3600000"})
    p = t.processor("enrich", on_error="dead_letter")
    p.stream(orders).process(lambda r, ctx: None, stores=["seen"]).to(priced)
    return t


def test_create_specs_cover_external_internal_and_dead_letter_topics_with_defaults() -> None:
    specs = {s.name: s for s in ops_topics.create_specs(
        _shop(), Config(default_partitions=2, default_replication=3))}
    assert set(specs) == {"orders", "priced", "shop-enrich-seen-changelog", "shop.enrich.dlq"}
    assert (specs["orders"].partitions, specs["orders"].replication) == (3, 3)
    assert (specs["priced"].partitions, specs["priced"].replication) == (3, 1)
    assert specs["priced"].config == {"cleanup.policy": "compact", "retention.ms": "3600000"}
    assert specs["shop-enrich-seen-changelog"].config == {"cleanup.policy": "compact"}
    # internal topics follow the processor's widest input, as the runtime expects
    assert specs["shop-enrich-seen-changelog"].partitions == 3
    assert (specs["shop.enrich.dlq"].partitions, specs["shop.enrich.dlq"].replication) == (2, 3)


def test_internal_topics_follow_the_actual_partitions_of_existing_inputs() -> None:
    specs = {s.name: s for s in ops_topics.create_specs(_shop(), Config(), {"orders": 8})}
    assert specs["shop-enrich-seen-changelog"].partitions == 8
    t = sf.Topology("undeclared")
    src = t.topic("in", external=True)
    t.processor("p").stream(src).process(lambda r, ctx: None, stores=["s"]).to(t.topic("out"))
    specs = {s.name: s for s in ops_topics.create_specs(t, Config(default_partitions=5))}
    assert specs["undeclared-p-s-changelog"].partitions == 5


def test_delete_keeps_external_topics_unless_asked() -> None:
    assert "orders" not in ops_topics.deletable(_shop())
    assert "orders" in ops_topics.deletable(_shop(), include_external=True)


def test_describe_marks_missing_topics_and_each_kind_of_drift(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = {
        "orders": TopicState("orders", 3, 1, {"cleanup.policy": "delete"}),
        "priced": TopicState("priced", 6, 2, {"cleanup.policy": "delete,compact",
                                              "retention.ms": "604800000"}),
        "shop-enrich-seen-changelog": TopicState("shop-enrich-seen-changelog", 3, 1,
                                                 {"cleanup.policy": "compact"}),
    }

    def fake_describe(admin: Any, names: Any, timeout: float = 0,
                      with_config: bool = True) -> dict[str, TopicState]:
        return {n: cluster[n] for n in names if n in cluster}

    monkeypatch.setattr("streamflow.kafka.client.describe_topics", fake_describe)
    rows = {r.name: r for r in ops_topics.describe(object(), _shop(), Config())}
    assert rows["orders"].status == "ok" and rows["orders"].kind == "external"
    assert rows["shop-enrich-seen-changelog"].status == "ok"
    assert rows["shop-enrich-seen-changelog"].declared_partitions == 3
    cluster["shop-enrich-seen-changelog"] = TopicState("shop-enrich-seen-changelog", 1, 1,
                                                       {"cleanup.policy": "compact"})
    drifted = {r.name: r for r in ops_topics.describe(object(), _shop(), Config())}
    assert drifted["shop-enrich-seen-changelog"].drift == ("partitions declared 3, actual 1",)
    assert rows["shop.enrich.dlq"].status == "MISSING"
    assert rows["shop.enrich.dlq"].kind == "dead-letter"
    assert rows["priced"].drift == (
        "partitions declared 3, actual 6",
        "replication declared 1, actual 2",
        "cleanup.policy declared compact, actual delete,compact",
        "retention.ms declared 3600000, actual 604800000",
    )
    table = ops_topics.format_table(list(rows.values()))
    header, *lines = table.splitlines()
    assert header.split() == ["TOPIC", "KIND", "PARTITIONS", "REPLICATION", "CONFIG", "STATUS"]
    priced = next(line for line in lines if line.startswith("priced "))
    assert "3/6" in priced and "1/2" in priced and "DRIFT: partitions declared 3" in priced
    dlq = next(line for line in lines if line.startswith("shop.enrich.dlq"))
    assert dlq.endswith("MISSING") and "-/-" in dlq


def test_topics_commands_exit_4_when_kafka_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STREAMFLOW_CONFIG", raising=False)
    monkeypatch.setenv("STREAMFLOW_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    monkeypatch.setenv("STREAMFLOW_STARTUP_TIMEOUT_S", "1")
    started = time.monotonic()
    assert main(["topics", "describe", "topologies.orders"]) == 4
    assert time.monotonic() - started < 20
    assert "cannot reach Kafka at 127.0.0.1:9" in capsys.readouterr().err


def test_delete_without_yes_lists_and_deletes_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr("streamflow.kafka.security.connect", lambda conf, timeout: None)
    monkeypatch.setattr("streamflow.kafka.client.delete_topics",
                        lambda *a, **k: calls.append(a))
    assert main(["topics", "delete", "topologies.orders"]) == 2
    out = capsys.readouterr()
    assert "would delete orders.priced" in out.out and "would delete orders\n" not in out.out
    assert "add --yes" in out.err
    assert out.err.rstrip().endswith(": streamflow topics delete topologies.orders --yes")
    assert calls == []


def test_topics_help_says_create_makes_external_topics_too(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["topics", "create", "--help"])
    assert "EXTERNAL ONES TOO" in capsys.readouterr().out


def test_orders_example_module_is_importable() -> None:
    assert importlib.import_module("topologies.orders").topology.name == "orders"
