"""Windowed count + sum as a streamflow topology (tumbling, hopping, sliding or session).

``group_by_key().window(spec).aggregate((count, sum)).final()``, each closed window flattened
to ``{"start", "end", "count", "sum"}`` keyed by the user. The aggregate is a tuple
(immutable: sliding windows then never deep-copy it). State: the default RocksDB window store
with its changelog (at_least_once). Environment: BENCH_WINDOW (tumbling|hopping|sliding|session),
BENCH_WINDOW_SIZE, BENCH_WINDOW_ADVANCE, BENCH_WINDOW_GRACE (ms), BENCH_WINDOW_EMIT
(``record-ended``: sliding windows only those that end at a record, as Quix emits; ``all``),
BENCH_INPUT, BENCH_OUTPUT, BENCH_APP, STREAMFLOW_BOOTSTRAP_SERVERS.
"""

import os

import streamflow as sf

kind = os.environ.get("BENCH_WINDOW", "tumbling")
size = int(os.environ.get("BENCH_WINDOW_SIZE", "60000"))
advance = int(os.environ.get("BENCH_WINDOW_ADVANCE", "0"))
grace = int(os.environ.get("BENCH_WINDOW_GRACE", "0"))
spec = {
    "tumbling": lambda: sf.Tumbling(size, grace=grace),
    "hopping": lambda: sf.Hopping(size, advance, grace=grace),
    "sliding": lambda: sf.Sliding(size, grace=grace),
    "session": lambda: sf.Session(size, grace=grace),
}[kind]()


def add(agg, v):
    return (agg[0] + 1, agg[1] + v["amount"])


def merge(a, b):
    return (a[0] + b[0], a[1] + b[1])


def flatten(r):
    w, (count, total) = r.key, r.value
    return r.with_key(w.key).with_value(
        {"start": w.start, "end": w.end, "count": count, "sum": total}
    )


topology = sf.Topology(os.environ.get("BENCH_APP", "bench"))
src = topology.topic(os.environ["BENCH_INPUT"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["BENCH_OUTPUT"], key=sf.String(), value=sf.Json())

final = (
    topology.processor("windows")
    .stream(src)
    .group_by_key()
    .window(spec)
    .aggregate(lambda: (0, 0), add, merger=merge, name="agg")
    .final()
)
if kind == "sliding" and os.environ.get("BENCH_WINDOW_EMIT", "record-ended") != "all":
    # the windows [t - size, t] (their largest event time is their end), as Quix emits
    final = final.filter_record(lambda r: r.timestamp == r.key.end)
final.map_record(flatten).to(out)
