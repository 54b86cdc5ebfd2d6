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
def kafka_streams_run() -> kstreams.Results:
    """Every scenario through Kafka Streams, the pending ones too (one JVM run)."""
    kstreams.build()
    scenarios = [SCENARIOS[n] for n in NAMES] + [s for s, _ in PENDING.values()]
    return kstreams.run([s.for_java() for s in scenarios])


@pytest.fixture(scope="module")
def kafka_streams(kafka_streams_run: kstreams.Results) -> dict[str, list[Output]]:
    """Every scenario's outputs from Kafka Streams."""
    return kafka_streams_run.outputs


def run_streamflow(s: Scenario, *, crash: bool = False) -> list[Output]:
    """The scenario's outputs from streamflow's TopologyTestDriver, one topic after another.

    With ``crash``, the processor is killed halfway (every record so far committed) and its
    state restored from the changelogs, which must change nothing.
    """
    records = s.records()
    with TopologyTestDriver(topology(s)) as driver:
        for i, r in enumerate(records):
            if crash and i == len(records) // 2:
                driver.crash(keep_state=False)
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


@pytest.mark.parametrize("restored", [False, True], ids=["straight", "restored-halfway"])
@pytest.mark.parametrize("name", NAMES)
def test_streamflow_matches_kafka_streams(name: str, restored: bool,
                                          kafka_streams: dict[str, list[Output]]) -> None:
    theirs = kafka_streams[name]
    assert theirs, f"Kafka Streams produced nothing for {name}: the scenario tests nothing"
    ours = run_streamflow(SCENARIOS[name], crash=restored)
    known = KNOWN.get(name)
    if known is None:
        assert ours == theirs, _mismatch(ours, theirs)
        return
    assert ours != theirs, (
        f"{name} no longer differs from Kafka Streams: remove its entry from "
        f"tests/conformance/differences.py and docs/conformance.md ({known.reason})"
    )
    erased_ours = known.erase(ours)
    erased_theirs = known.erase(theirs)
    assert erased_ours == erased_theirs, (
        f"{name} differs beyond its known difference ({known.reason}):\n"
        + _mismatch(erased_ours, erased_theirs)
    )


def test_pending_scenarios_run_in_kafka_streams(kafka_streams: dict[str, list[Output]]) -> None:
    """Their inputs and Java side work, ready for streamflow's side when a feature lands.

    One test over all of them (none pending is no reason to skip anything).
    """
    silent = [f"{name} (waiting for {what})" for name, (_, what) in sorted(PENDING.items())
              if not kafka_streams[name]]
    assert not silent, f"Kafka Streams produced nothing for {silent}"


def test_every_kafka_streams_scenario_has_a_streamflow_side_or_is_pending(
        kafka_streams_run: kstreams.Results) -> None:
    java = set(kafka_streams_run.defined)
    assert java == set(SCENARIOS) | set(PENDING), (
        f"only in Scenarios.java: {sorted(java - set(SCENARIOS) - set(PENDING))}; "
        f"only in scenarios.py: {sorted(set(SCENARIOS) | set(PENDING) - java)}"
    )


def test_known_differences_name_existing_scenarios() -> None:
    assert set(KNOWN) <= set(SCENARIOS), sorted(set(KNOWN) - set(SCENARIOS))
