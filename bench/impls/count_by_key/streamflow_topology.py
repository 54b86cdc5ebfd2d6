"""Count by key as a streamflow topology: ``group_by_key().count()`` -> every update out.

State: the default RocksDB store with its changelog topic (at_least_once, default commit
interval). Launched as ``python -m streamflow run bench.impls.count_by_key.streamflow_topology``
with STREAMFLOW_BOOTSTRAP_SERVERS, BENCH_INPUT, BENCH_OUTPUT, BENCH_APP (unique per run).
"""

import os

import streamflow as sf

topology = sf.Topology(os.environ.get("BENCH_APP", "bench"))
src = topology.topic(os.environ["BENCH_INPUT"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["BENCH_OUTPUT"], key=sf.String(), value=sf.Json())

(
    topology.processor("count")
    .stream(src)
    .group_by_key()
    .count(name="counts")
    .to_stream()
    .to(out)
)
