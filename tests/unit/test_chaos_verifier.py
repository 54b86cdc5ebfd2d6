"""The chaos verifier on hand-made outputs, no broker: a correct run passes, and every planted
fault (a duplicate, a loss, a wrong value, records out of order, an open transaction) is
counted where it belongs and fails the run, or, under at-least-once, only the losses do."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from tests.chaos.inputs import ChaosConfig, Inputs
from tests.chaos.model import Output, model_outputs
from tests.chaos.verifier import Report, Verifier

APP = "chaos-unit"
TOPICS = {"app": APP, "in": f"{APP}.in", "map": f"{APP}.mapped", "sums": f"{APP}.sums",
          "windows": f"{APP}.windows", "repartition": f"{APP}-chaos-by-user-repartition"}
PARTITIONS = 3
T0 = 1_700_000_000_000


@dataclass(frozen=True)
class Message:
    """The part of ``confluent_kafka.Message`` the verifier uses."""

    _topic: str
    _partition: int
    _offset: int
    _key: bytes
    _value: bytes
    _timestamp: int

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)  # TIMESTAMP_CREATE_TIME


@dataclass
class FakeCluster:
    """Topics as lists of records per partition; ``open`` marks a partition whose last stable
    offset lags its high watermark (a transaction left open)."""

    partitions: dict[str, list[list[Message]]] = field(default_factory=dict)
    open: set[tuple[str, int]] = field(default_factory=set)

    def write(self, topic: str, partition: int, key: str, value: Any, ts: int) -> None:
        parts = self.partitions.setdefault(topic, [[] for _ in range(PARTITIONS)])
        log = parts[partition]
        log.append(Message(topic, partition, len(log), key.encode(), orjson.dumps(value), ts))

    def read_topic(self, topic: str, on_message: Callable[[Any], None]) -> int:
        """Like a read_committed consumer: up to the last stable offset."""
        n = 0
        ends = self.end_offsets(topic, committed_only=True) if topic in self.partitions else {}
        for p, log in enumerate(self.partitions.get(topic, [])):
            for m in log[:ends[p]]:
                on_message(m)
                n += 1
        return n

    def app_topics(self, app: str) -> list[str]:
        return sorted(t for t in self.partitions if t.startswith((f"{app}-", f"{app}.")))

    def end_offsets(self, topic: str, *, committed_only: bool = False) -> dict[int, int]:
        ends = {p: len(log) for p, log in enumerate(self.partitions[topic])}
        if committed_only:
            for p in ends:
                if (topic, p) in self.open:
                    ends[p] -= 1
        return ends


def by_key(key: str) -> int:
    """The partition of a keyed record (any stable hash will do)."""
    return zlib.crc32(key.encode()) % PARTITIONS


def config(guarantee: str = "exactly_once") -> ChaosConfig:
    return ChaosConfig(bootstrap="unused", seed=11, guarantee=guarantee, records=200, users=5,
                       partitions=PARTITIONS, rate=100.0, jitter_ms=100, window_ms=1000,
                       grace_ms=2000, log=lambda _: None)


@pytest.fixture
def inputs() -> Inputs:
    return Inputs(config(), T0)


@pytest.fixture
def outputs(inputs: Inputs) -> dict[str, list[Output]]:
    """A correct run's outputs, to plant faults in before :func:`verify`."""
    return model_outputs(inputs, config().window_ms)


def verify(inputs: Inputs, outputs: dict[str, list[Output]], guarantee: str = "exactly_once",
           open_txn: tuple[str, int] | None = None) -> Report:
    """Write the input (partition ``id % 3``) and ``outputs`` (partitioned by key) to a fake
    cluster and run the verifier over it."""
    cluster = FakeCluster()
    for i in range(inputs.total):
        v = inputs.value(i)
        cluster.write(TOPICS["in"], i % PARTITIONS, str(i), v, v["ts"])
    for name, records in outputs.items():
        for key, value, ts in records:
            cluster.write(TOPICS[name], by_key(key), key, value, ts)
    if open_txn is not None:
        topic, partition = open_txn
        cluster.write(topic, partition, "uncommitted", {}, T0)
        cluster.open.add(open_txn)
    report = Report(guarantee, 11, inputs.n, inputs.total - inputs.n, windows_checked=True)
    Verifier(config(guarantee), inputs, TOPICS, report, cluster).run()
    return report


def assert_clean(report: Report) -> None:
    text = report.details()
    assert report.ok, text
    assert not +report.duplicates and not +report.losses and not +report.wrong, text
    assert not report.open_transactions and report.late == 0, text


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_a_correct_run_verifies_clean(inputs: Inputs, outputs: dict[str, list[Output]],
                                      guarantee: str) -> None:
    report = verify(inputs, outputs, guarantee)
    assert_clean(report)
    assert report.checked["input records"] == inputs.total
    assert report.checked["map outputs"] == inputs.total
    assert report.checked["window results"] == len(outputs["windows"]) > 0
    assert "OK" in report.summary_line()


def test_a_duplicate_map_output_fails_exactly_once(inputs: Inputs,
                                                  outputs: dict[str, list[Output]]) -> None:
    outputs["map"].append(outputs["map"][5])
    report = verify(inputs, outputs)
    assert report.duplicates["map"] == 1
    assert not +report.losses
    assert any("map: 1 duplicate outputs" in p for p in report.problems), report.details()
    assert "FAILED" in report.summary_line()


def test_at_least_once_notes_a_duplicate_but_passes(inputs: Inputs,
                                                    outputs: dict[str, list[Output]]) -> None:
    outputs["map"].append(outputs["map"][5])
    report = verify(inputs, outputs, "at_least_once")
    assert report.duplicates["map"] == 1
    assert report.ok, report.details()
    assert any("duplicate" in n for n in report.notes)


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_a_lost_map_output_fails_both_guarantees(inputs: Inputs,
                                                 outputs: dict[str, list[Output]],
                                                 guarantee: str) -> None:
    del outputs["map"][11]
    report = verify(inputs, outputs, guarantee)
    assert report.losses["map"] == 1
    assert any("map: 1 inputs missing, e.g. ids [11]" in p for p in report.problems)


def test_a_wrong_map_value_is_reported(inputs: Inputs, outputs: dict[str, list[Output]]) -> None:
    key, value, ts = outputs["map"][3]
    outputs["map"][3] = (key, {**value, "double": value["double"] + 1}, ts)
    report = verify(inputs, outputs, "at_least_once")
    assert report.wrong["map"] == 1
    assert any("map: 1 wrong outputs" in p for p in report.problems)


def test_a_wrong_running_sum_is_reported(inputs: Inputs,
                                         outputs: dict[str, list[Output]]) -> None:
    key, value, ts = outputs["sums"][40]
    outputs["sums"][40] = (key, {**value, "sum": value["sum"] + 1}, ts)
    report = verify(inputs, outputs)
    assert report.wrong["agg-sequence"] == 1
    assert not +report.losses and not +report.duplicates
    assert any("1 updates differ from the running sums" in p for p in report.problems)


def test_a_lost_sum_update_is_a_loss_and_shifts_the_sequence(
        inputs: Inputs, outputs: dict[str, list[Output]]) -> None:
    lost = outputs["sums"][20][1]["last"]
    del outputs["sums"][20]
    report = verify(inputs, outputs, "at_least_once")
    assert report.losses["agg-no-update"] == 1
    assert any(f"e.g. [{lost}]" in p for p in report.problems), report.details()
    eos = verify(inputs, outputs)
    assert eos.wrong["agg-sequence"] > 0 and not eos.ok


def test_a_final_sum_counted_twice_is_an_overcount(inputs: Inputs,
                                                   outputs: dict[str, list[Output]]) -> None:
    key, value, ts = outputs["sums"][-1]
    outputs["sums"].append((key, {**value, "n": value["n"] + 1, "sum": value["sum"] + 7}, ts))
    report = verify(inputs, outputs, "at_least_once")
    assert report.duplicates["agg-updates"] == 1
    assert report.duplicates["agg-overcount"] == 1
    assert report.ok, report.details()  # at-least-once may count twice


def test_repartition_duplicates_losses_and_disorder(inputs: Inputs,
                                                    outputs: dict[str, list[Output]]) -> None:
    rep = outputs["repartition"]
    rep.append(rep[7])
    del rep[2]
    report = verify(inputs, outputs)
    assert report.duplicates["repartition"] == 1
    assert report.losses["repartition"] == 1
    # two records of one user from one input partition, swapped
    user = rep[0][0]
    same = [k for k, (key, v, _) in enumerate(rep)
            if key == user and v["id"] % PARTITIONS == rep[0][1]["id"] % PARTITIONS]
    a, b = same[0], same[1]
    rep[a], rep[b] = rep[b], rep[a]
    report = verify(inputs, outputs)
    assert any("out of their input partition's order" in p for p in report.problems)


def test_a_window_emitted_twice_and_one_never_emitted(inputs: Inputs,
                                                      outputs: dict[str, list[Output]]) -> None:
    outputs["windows"].append(outputs["windows"][0])
    missing = outputs["windows"].pop(3)
    report = verify(inputs, outputs)
    assert report.duplicates["windows-emitted-twice"] == 1
    assert report.losses["windows-missing"] == 1
    user, start = missing[1]["user"], missing[1]["start"]
    assert any(f"('{user}', {start})" in p for p in report.problems), report.details()


def test_a_window_counted_short_or_over(inputs: Inputs,
                                        outputs: dict[str, list[Output]]) -> None:
    for k, delta in ((0, -1), (1, +1)):
        key, value, ts = outputs["windows"][k]
        outputs["windows"][k] = (key, {**value, "count": value["count"] + delta}, ts)
    report = verify(inputs, outputs)
    assert report.losses["windows-undercount"] == 1
    assert report.duplicates["windows-overcount"] == 1


def test_an_open_transaction_fails_the_run(inputs: Inputs,
                                           outputs: dict[str, list[Output]]) -> None:
    report = verify(inputs, outputs, open_txn=(TOPICS["map"], 1))
    hw = sum(by_key(key) == 1 for key, _, _ in outputs["map"]) + 1  # + the uncommitted one
    assert report.open_transactions == [f"{TOPICS['map']}[1] LSO {hw - 1} < high watermark {hw}"]
    assert not report.ok
    assert not +report.duplicates and not +report.losses and not +report.wrong


def test_a_broken_input_topic_is_reported_as_the_harness_problem(
        inputs: Inputs, outputs: dict[str, list[Output]]) -> None:
    cluster = FakeCluster()
    for i in range(inputs.total - 1):  # the last sentinel never reached the input topic
        v = inputs.value(i)
        cluster.write(TOPICS["in"], i % PARTITIONS, str(i), v, v["ts"])
    report = Report("exactly_once", 11, inputs.n, inputs.total - inputs.n)
    verifier = Verifier(config(), inputs, TOPICS, report, cluster)
    verifier.check_input()
    assert report.problems == ["input topic: 0 duplicated and 1 missing records (harness "
                               "problem, not streamflow)"]
