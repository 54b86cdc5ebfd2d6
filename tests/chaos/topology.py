"""The chaos topology: a map, a repartition with a running sum per user, and a tumbling-window
count per user with final results.

The harness copies this file into each run's work directory as ``chaos_topology.py`` and the
workers run it with ``python -m streamflow run chaos_topology --processor chaos``. Topics and
the guarantee come from the environment (``CHAOS_APP``, ``CHAOS_IN``, ``CHAOS_MAP``,
``CHAOS_SUMS``, ``CHAOS_GUARANTEE``, ``CHAOS_WINDOWS``, ``CHAOS_WINDOWS_TOPIC``,
``CHAOS_WINDOW_MS``, ``CHAOS_GRACE_MS``), so importing it without them fails.
"""

from __future__ import annotations

import os
from typing import Any

import streamflow as sf

E = os.environ
topology = sf.Topology(E["CHAOS_APP"])
source = topology.topic(E["CHAOS_IN"], key=sf.String(), value=sf.Json(), external=True)
mapped = topology.topic(E["CHAOS_MAP"], key=sf.String(), value=sf.Json())
sums = topology.topic(E["CHAOS_SUMS"], key=sf.String(), value=sf.Json())
chaos = topology.processor("chaos", guarantee=E["CHAOS_GUARANTEE"])

stream = chaos.stream(source, name="in")

# 1. stateless: one output record per input record
stream.map(lambda v: {"id": v["id"], "user": v["user"], "double": 2 * v["amount"]},
           name="double").to(mapped)

# 2. repartition by user, running sum; every update carries the id that produced it
by_user = stream.group_by(lambda v: v["user"], name="by-user", key_serde=sf.String())


def add(agg: dict[str, Any], v: dict[str, Any]) -> dict[str, Any]:
    """One more record in the user's running sum."""
    return {"n": agg["n"] + 1, "sum": agg["sum"] + v["amount"], "last": v["id"]}


(by_user.aggregate(lambda: {"n": 0, "sum": 0, "last": -1}, add, name="sum")
 .to_stream().to(sums))

# 3. tumbling-window count per user, final results only
WINDOWED = E.get("CHAOS_WINDOWS") == "1" and hasattr(sf, "Tumbling")
if WINDOWED:
    windows = topology.topic(E["CHAOS_WINDOWS_TOPIC"], key=sf.String(), value=sf.Json())

    def plain(r: sf.Record) -> sf.Record:
        """A window's final count as plain JSON keyed ``user@start``."""
        w = r.key
        user = getattr(w, "key", None)
        start = getattr(w, "start", None)
        end = getattr(w, "end", None)
        return (r.with_key(f"{user}@{start}")
                .with_value({"user": user, "start": start, "end": end, "count": r.value}))

    (by_user.window(sf.Tumbling(int(E["CHAOS_WINDOW_MS"]), grace=int(E["CHAOS_GRACE_MS"])))
     .count(name="per-window").final()
     .map_record(plain, name="plain").to(windows))
