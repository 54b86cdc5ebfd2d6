"""Benchmark scenarios: seeded input, expected output, one implementation per framework.

A scenario is a small object (see :class:`Scenario`) registered in :data:`SCENARIOS`. To add
one (say ``count_by_key``):

1. write ``bench/scenarios/count_by_key.py`` with a ``Scenario`` whose ``records()`` yields the
   seeded input and whose ``expectation()`` computes what the output must contain (count and a
   content checker);
2. write the implementations, e.g. ``bench/impls/count_by_key/raw_confluent.py``,
   ``quix_app.py``, ``faust_app.py`` and ``streamflow_topology.py`` (plus an ``__init__.py``),
   reading the same BENCH_* environment variables as the stateless ones (a raw loop is a
   per-batch hook on :class:`bench.impls.raw_loop.RawLoop`);
3. map framework name -> implementation in ``Scenario.impls`` and add it to ``SCENARIOS`` below.

The harness (bench/run.py, bench/harness/) does the rest: produce once, run each framework
alternately in its own process and virtualenv, time until the output topic holds
``expected_count`` records, verify the content, tabulate.

A scenario with more than one input topic (the joins) names the extra ones in ``inputs``
(e.g. ``("table",)``): the harness creates ``<input>-table`` beside ``<input>``, sends the
records whose ``side`` is ``"table"`` there, and passes its name to the implementations as
``BENCH_INPUT_TABLE``. ``--records`` counts the records of all input topics together.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One seeded input record: bytes as produced, plus the decoded value for expectations."""

    key: bytes
    value: bytes
    timestamp_ms: int
    obj: Any
    side: str = ""  # "": the input topic; else one of the scenario's extra ``inputs``


class RecordErrors:
    """What a checker found wrong with single output records: the first ``MAX_REPORTED`` in
    full, the rest counted (a broken run must not print a million lines)."""

    MAX_REPORTED = 5

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.error_count = 0

    def _error(self, msg: str) -> None:
        self.error_count += 1
        if len(self.errors) < self.MAX_REPORTED:
            self.errors.append(msg)

    def reported(self) -> list[str]:
        """The errors kept, plus a line saying how many more there were."""
        out = list(self.errors)
        if self.error_count > len(self.errors):
            out.append(f"... {self.error_count - len(self.errors)} more record errors")
        return out


class Checker(Protocol):
    """Consumes the output topic's records (after a run) and reports what is wrong."""

    def add_output(self, key: bytes | None, value: bytes | None) -> None: ...

    def problems(self) -> list[str]: ...


class Expectation(Protocol):
    """Built while the input is generated; knows the exact expected output."""

    def add_input(self, record: InputRecord) -> None: ...

    @property
    def expected_count(self) -> int:
        """How many records the output topic must hold when the run is complete."""
        ...

    def checker(self) -> Checker: ...


class Scenario(Protocol):
    name: str
    description: str
    # framework name -> implementation, relative to bench/impls/: a file
    # ("stateless/raw_confluent.py") for script frameworks, a module path
    # ("stateless/streamflow_topology") for streamflow.
    impls: Mapping[str, str]

    def records(self, n: int, seed: int) -> Iterator[InputRecord]: ...

    def expectation(self) -> Expectation: ...

    # Optional: ``env() -> dict[str, str]``, extra environment for the implementations'
    # processes (the avro scenario passes the schema registry URL this way).
    # Optional: ``inputs: tuple[str, ...]``, the extra input topics' suffixes (see above).


def extra_inputs(scenario: Scenario, input_topic: str) -> dict[str, str]:
    """The scenario's extra input topics: side -> topic name (empty for one input topic)."""
    return {side: f"{input_topic}-{side}" for side in getattr(scenario, "inputs", ())}


def input_env(scenario: Scenario, input_topic: str) -> dict[str, str]:
    """``BENCH_INPUT_<SIDE>`` for each extra input topic."""
    return {f"BENCH_INPUT_{side.upper()}": topic
            for side, topic in extra_inputs(scenario, input_topic).items()}


def _registry() -> dict[str, Scenario]:
    from bench.scenarios.async_io import AsyncIOScenario
    from bench.scenarios.avro import AvroScenario
    from bench.scenarios.count_by_key import CountByKeyScenario
    from bench.scenarios.joins import JoinTableScenario, JoinWindowScenario
    from bench.scenarios.stateless import StatelessScenario
    from bench.scenarios.windows import WindowScenario

    scenarios: list[Scenario] = [
        StatelessScenario(),
        AvroScenario(),
        AsyncIOScenario(),
        CountByKeyScenario("count_by_key", 100_000),
        CountByKeyScenario("count_distinct", None),
        *(
            WindowScenario(kind)
            for kind in ("tumbling", "hopping", "sliding", "sliding_ks", "session")
        ),
        JoinTableScenario(),
        JoinWindowScenario(),
    ]
    return {s.name: s for s in scenarios}


SCENARIOS: dict[str, Scenario] = _registry()
