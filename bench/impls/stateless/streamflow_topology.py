"""Stateless scenario as a streamflow topology.

Launched by the harness as
``python -m streamflow run bench.impls.stateless.streamflow_topology`` with
STREAMFLOW_BOOTSTRAP_SERVERS, BENCH_INPUT, BENCH_OUTPUT and BENCH_APP (unique per run: the
consumer group derives from topology name + processor name, so a fresh name starts from the
earliest offset).
"""

import os

import streamflow as sf

topology = sf.Topology(os.environ.get("BENCH_APP", "bench"))
src = topology.topic(os.environ["BENCH_INPUT"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["BENCH_OUTPUT"], key=sf.String(), value=sf.Json())

p = topology.processor("stateless")
(
    p.stream(src)
    .filter(lambda v: v["amount"] > 10)
    .map(lambda v: {**v, "amount_cents": int(v["amount"] * 100)})
    .to(out)
)
