"""What a correct chaos run writes, computed directly from the input: the verifier's tests
feed it (with planted faults) to :class:`tests.chaos.verifier.Verifier`."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.chaos.inputs import Inputs

Output = tuple[str, Any, int]
"""One output record: key, value (JSON-able), timestamp."""


def model_outputs(inputs: Inputs, window_ms: int) -> dict[str, list[Output]]:
    """Per output (``map``, ``repartition``, ``sums``, ``windows``), the records of a correct
    run in order: every input mapped once, repartitioned once, one running-sum update per
    input in input order, and one final count per window that closes (not the sentinels')."""
    out: dict[str, list[Output]] = {"map": [], "repartition": [], "sums": [], "windows": []}
    agg: dict[str, dict[str, int]] = {}
    counts: Counter[tuple[str, int]] = Counter()
    for i in range(inputs.total):
        v = inputs.value(i)
        out["map"].append((str(i), {"id": i, "user": v["user"], "double": 2 * v["amount"]},
                           v["ts"]))
        out["repartition"].append((v["user"], v, v["ts"]))
        a = agg.get(v["user"], {"n": 0, "sum": 0, "last": -1})
        agg[v["user"]] = a = {"n": a["n"] + 1, "sum": a["sum"] + v["amount"], "last": i}
        out["sums"].append((v["user"], a, v["ts"]))
        if not inputs.is_sentinel(i):
            counts[(v["user"], v["ts"] - v["ts"] % window_ms)] += 1
    for (user, start), n in counts.items():
        out["windows"].append((f"{user}@{start}", {"user": user, "start": start,
                                                   "end": start + window_ms, "count": n},
                               start))
    return out
