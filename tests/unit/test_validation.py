"""Data-quality rules: ``stream.validate({...}, on_invalid=...)`` through the test driver."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

import streamflow as sf
from streamflow.dsl.topology import TopologyError
from streamflow.observability.metrics import StatusCollector, exposition
from streamflow.runtime.counters import worker_status
from streamflow.runtime.errors import ProcessingFailed
from streamflow.testing import TopologyTestDriver

DLQ = "shop.clean.dlq"
CURRENCIES = {"EUR", "USD"}
RULES = {
    "positive amount": lambda v: v["amount"] > 0,
    "known currency": lambda v: v["currency"] in CURRENCIES,
}


def shop(**validate: Any) -> sf.Topology:
    t = sf.Topology("shop")
    src = t.topic("payments", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("clean", key=sf.String(), value=sf.Json())
    (t.processor("clean").stream(src)
     .validate(RULES, name="quality", **validate)
     .map(lambda v: {**v, "cents": int(v["amount"] * 100)}, name="cents")
     .to(out))
    return t


GOOD = {"amount": 2.5, "currency": "EUR"}
NEGATIVE = {"amount": -1, "currency": "EUR"}
BOTH = {"amount": 0, "currency": "XYZ"}
NO_CURRENCY = {"amount": 3}  # the currency rule raises KeyError


def send(driver: TopologyTestDriver, *values: Any) -> None:
    for i, v in enumerate(values):
        driver.input("payments").send(v, key=f"k{i}")


def headers(record: Any) -> dict[str, bytes]:
    return dict(record.headers or [])


def test_valid_records_pass_unchanged_and_invalid_ones_are_dead_lettered_naming_the_rules(
) -> None:
    with TopologyTestDriver(shop()) as driver:
        send(driver, GOOD, NEGATIVE, BOTH, NO_CURRENCY, GOOD)
        assert driver.output("clean").read_values() == [{**GOOD, "cents": 250}] * 2
        dead = driver.output(DLQ).read_records()
        assert [orjson.loads(r.value) for r in dead] == [NEGATIVE, BOTH, NO_CURRENCY]
        h = [headers(r) for r in dead]
        assert {x["streamflow.error.step"] for x in h} == {b"quality"}
        assert {x["streamflow.error.type"] for x in h} == {b"InvalidRecord"}
        assert [x["streamflow.error.message"] for x in h] == [
            b"failed rule positive amount",
            b"failed rules positive amount, known currency",
            b"failed rule known currency (known currency: KeyError: 'currency')",
        ]
        assert driver.metrics() == {"quality.invalid:positive amount": 2,
                                    "quality.invalid:known currency": 2}


def test_on_invalid_skip_drops_them_and_fail_stops_the_processor() -> None:
    with TopologyTestDriver(shop(on_invalid="skip")) as driver:
        send(driver, NEGATIVE, GOOD)
        assert driver.output("clean").read_values() == [{**GOOD, "cents": 250}]
        assert driver.engines["clean"][0].policy.skipped == 1
    with TopologyTestDriver(shop(on_invalid="fail")) as driver:
        send(driver, GOOD)
        with pytest.raises(ProcessingFailed, match="failed in step 'quality': InvalidRecord: "
                                                   "failed rule positive amount"):
            send(driver, NEGATIVE)


def test_an_on_invalid_function_sees_the_failed_rules() -> None:
    seen: list[tuple[str, ...]] = []

    def decide(ctx: sf.ErrorContext) -> sf.ErrorAction:
        assert isinstance(ctx.exception, sf.InvalidRecord)
        seen.append(ctx.exception.rules)
        return "skip"

    with TopologyTestDriver(shop(on_invalid=decide)) as driver:
        send(driver, BOTH, GOOD)
        assert driver.output("clean").read_values() == [{**GOOD, "cents": 250}]
    assert seen == [("positive amount", "known currency")]


def test_failures_per_rule_are_prometheus_counters() -> None:
    with TopologyTestDriver(shop()) as driver:
        send(driver, NEGATIVE, BOTH, GOOD)
        text = exposition(StatusCollector(
            lambda: worker_status(driver.engines["clean"][0], "0", time.monotonic()))).decode()
    fam = {f.name: f for f in text_string_to_metric_families(text)}["streamflow_records_invalid"]
    got = {s.labels["rule"]: s.value for s in fam.samples if s.name.endswith("_total")}
    assert got == {"positive amount": 2.0, "known currency": 1.0}
    assert {s.labels["step"] for s in fam.samples} == {"quality"}


def test_the_counts_survive_nothing_but_the_data_does_after_a_crash() -> None:
    with TopologyTestDriver(shop()) as driver:
        send(driver, NEGATIVE)
        driver.crash()
        send(driver, GOOD, BOTH)
        assert driver.output("clean").read_values() == [{**GOOD, "cents": 250}]
        assert [orjson.loads(r.value) for r in driver.output(DLQ).read_records()] == [
            NEGATIVE, BOTH]


@pytest.mark.parametrize(("rules", "error"), [
    ({}, TypeError),
    ([("a", bool)], TypeError),
    ({"ok": "not callable"}, TypeError),
    ({"bad{label}": bool}, ValueError),
    ({"": bool}, ValueError),
])
def test_bad_rules_are_refused_when_the_topology_is_described(rules: Any, error: type) -> None:
    t = sf.Topology("t")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    with pytest.raises(error, match="validate"):
        t.processor("p").stream(src).validate(rules)


def test_a_bad_on_invalid_is_refused() -> None:
    t = sf.Topology("t")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    with pytest.raises(TopologyError, match="on_error"):
        t.processor("p").stream(src).validate(RULES, on_invalid="ignore")  # type: ignore[arg-type]


def test_describe_names_the_rules() -> None:
    node = shop().processors["clean"].nodes["quality"]
    assert node.label() == "validate(rules[positive amount, known currency])"
