"""Stream-stream join as a streamflow topology: orders ``join`` payments within 0..5 s.

``sf.JoinWindows(before=0, after=5 s, grace=1 s)``: both sides in RocksDB window stores with
changelogs (the default store), the task taking its two input partitions in timestamp order.
Launched as ``python -m streamflow run bench.impls.join_window.streamflow_topology`` with
STREAMFLOW_BOOTSTRAP_SERVERS, BENCH_INPUT, BENCH_INPUT_RIGHT, BENCH_OUTPUT, BENCH_APP.
"""

import os

import streamflow as sf
from bench.scenarios.joins import WINDOW_AFTER_MS, match

topology = sf.Topology(os.environ.get("BENCH_APP", "bench"))
orders = topology.topic(os.environ["BENCH_INPUT"], key=sf.String(), value=sf.Json(),
                        external=True)
payments = topology.topic(os.environ.get("BENCH_INPUT_RIGHT", "probe-in-right"),
                          key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["BENCH_OUTPUT"], key=sf.String(), value=sf.Json())

p = topology.processor("match")
window = sf.JoinWindows(before=0, after=WINDOW_AFTER_MS, grace=sf.seconds(1))
p.stream(orders).join(p.stream(payments), match, window=window, name="paid").to(out)
