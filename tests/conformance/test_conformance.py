"""Conformance with Kafka Streams: the same inputs through Kafka Streams' TopologyTestDriver and
streamflow's, outputs compared record by record (topic, key, value, timestamp, order).

The Kafka Streams side (``java/Scenarios.java``) is built once (Maven Central, cached) and runs
every scenario in one JVM; ``scenarios.py`` holds the inputs and the streamflow side;
``differences.py`` lists the known differences, each of which must still occur.
"""

from __future__ import annotations

from typing import Any

import pytest

from streamflow.testing import TopologyTestDriver
from tests.conformance import kstreams
from tests.conformance.differences import KNOWN
from tests.conformance.kstreams import Output
from tests.conformance.scenarios import PENDING, SCENARIOS, Scenario, topology

NAMES = sorted(SCENARIOS)


@pytest.fixture(scope="module")
def kafka_streams() -> dict[str, list[Output]]:
    """Every scenario's outputs from Kafka Streams (one JVM run)."""
    kstreams.build()
    return kstreams.run([SCENARIOS[n].for_java() for n in NAMES])


def run_streamflow(s: Scenario) -> list[Output]:
    """The scenario's outputs from streamflow's TopologyTestDriver, one topic after another."""
    with TopologyTestDriver(topology(s)) as driver:
        for r in s.records():
            driver.input(r["topic"]).send(r["value"], key=r["key"], timestamp=r["timestamp"])
        return [Output(topic, rec.key, rec.value, rec.timestamp)
                for topic in s.outputs for rec in driver.output(topic).read_records()]


def _mismatch(ours: list[Output], theirs: list[Output]) -> str:
    """Where two output lists part, with a little context."""
    i = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
             min(len(ours), len(theirs)))
    lines = [f"{len(ours)} records from streamflow, {len(theirs)} from Kafka Streams; "
             f"first difference at #{i}:"]
    for j in range(max(0, i - 2), min(max(len(ours), len(theirs)), i + 3)):
        a: Any = ours[j] if j < len(ours) else "-"
        b: Any = theirs[j] if j < len(theirs) else "-"
        lines.append(f"  #{j} streamflow     {a}\n  #{j} Kafka Streams  {b}")
    return "\n".join(lines)


@pytest.mark.parametrize("name", NAMES)
def test_streamflow_matches_kafka_streams(name: str,
                                          kafka_streams: dict[str, list[Output]]) -> None:
    theirs = kafka_streams[name]
    assert theirs, f"Kafka Streams produced nothing for {name}: the scenario tests nothing"
    ours = run_streamflow(SCENARIOS[name])
    known = KNOWN.get(name)
    if known is None:
        assert ours == theirs, _mismatch(ours, theirs)
        return
    assert ours != theirs, (
        f"{name} no longer differs from Kafka Streams: remove its entry from "
        f"tests/conformance/differences.py and docs/conformance.md ({known.reason})"
    )
    erased_ours = [known.erase(o) for o in ours]
    erased_theirs = [known.erase(o) for o in theirs]
    assert erased_ours == erased_theirs, (
        f"{name} differs beyond its known difference ({known.reason}):\n"
        + _mismatch(erased_ours, erased_theirs)
    )


def test_every_kafka_streams_scenario_has_a_streamflow_side_or_is_pending() -> None:
    kstreams.build()
    java = set(kstreams.scenario_names())
    assert java == set(SCENARIOS) | set(PENDING), (
        f"only in Scenarios.java: {sorted(java - set(SCENARIOS) - set(PENDING))}; "
        f"only in scenarios.py: {sorted(set(SCENARIOS) | set(PENDING) - java)}"
    )


def test_known_differences_name_existing_scenarios() -> None:
    assert set(KNOWN) <= set(SCENARIOS), sorted(set(KNOWN) - set(SCENARIOS))
