"""Where streamflow deliberately (or knowingly, for now) differs from Kafka Streams.

The allow-list of the conformance suite. Each entry names a scenario, says why its outputs
differ and gives ``erase``, which removes exactly that difference from an output record. The
suite then checks both ways:

- the outputs still differ (else the difference is gone: the entry must be removed);
- with ``erase`` applied to both sides they are equal (so nothing else differs).

docs/conformance.md explains every entry for users; keep the two in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from tests.conformance.kstreams import Output


@dataclass(frozen=True)
class Difference:
    """A known difference in one scenario's outputs."""

    reason: str
    erase: Callable[[Output], Output]


def _no_timestamp(o: Output) -> Output:
    return replace(o, timestamp=0)


AGGREGATE_TIMESTAMP = (
    "non-windowed count/reduce/aggregate results carry the timestamp of the record that "
    "changed them; Kafka Streams gives the largest timestamp of the records that contributed "
    "(issue 14 item 6; needs a timestamped store format; the 'tables' branch fixes it)"
)

KNOWN: dict[str, Difference] = {
    "count-by-key": Difference(AGGREGATE_TIMESTAMP, _no_timestamp),
    "reduce-sum-by-key": Difference(AGGREGATE_TIMESTAMP, _no_timestamp),
    "aggregate-concat-by-key": Difference(AGGREGATE_TIMESTAMP, _no_timestamp),
    "group-by-repartition-count": Difference(AGGREGATE_TIMESTAMP, _no_timestamp),
}
