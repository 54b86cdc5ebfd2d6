"""Where streamflow deliberately (or knowingly, for now) differs from Kafka Streams.

The allow-list of the conformance suite. Each entry names a scenario, says why its outputs
differ and gives ``erase``, which removes exactly that difference from a list of outputs. The
suite then checks both ways:

- the outputs still differ (else the difference is gone: the entry must be removed);
- with ``erase`` applied to both sides they are equal (so nothing else differs).

docs/conformance.md explains every entry for users; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.conformance.kstreams import Output


@dataclass(frozen=True)
class Difference:
    """A known difference in one scenario's outputs."""

    reason: str
    erase: Callable[[list[Output]], list[Output]]


def _no_redundant_tombstones(outputs: list[Output]) -> list[Output]:
    """The outputs less each delete of a key that had no result at that point."""
    current: dict[tuple[str, str | None], Any] = {}
    kept = []
    for o in outputs:
        if o.value is None and current.get((o.topic, o.key)) is None:
            continue
        current[(o.topic, o.key)] = o.value
        kept.append(o)
    return kept


FOREIGN_KEY_TOMBSTONES = (
    "an inner foreign-key join asks the right side for an answer on every left update, so it "
    "may delete a key that has no result (a redundant tombstone); Kafka Streams answers an "
    "update that keeps the foreign key only when the right row exists, which leaves a stale "
    "result when a row moves to a missing right row and changes again before the answer "
    "(found by streamflow's property test; see streamflow.dsl.foreign_key)"
)

KNOWN: dict[str, Difference] = {
    "foreign-key-join": Difference(FOREIGN_KEY_TOMBSTONES, _no_redundant_tombstones),
}
