"""The exactly-once bench scenario as a streamflow topology: ``group_by`` (a repartition
topic) then ``count`` per user, every update to the output topic (``bench/eos.py``).

Launched as ``python -m streamflow run bench.impls.eos.streamflow_topology`` with
STREAMFLOW_BOOTSTRAP_SERVERS, BENCH_APP, BENCH_INPUT, BENCH_OUTPUT and BENCH_GUARANTEE.
"""

import os

import streamflow as sf

topology = sf.Topology(os.environ["BENCH_APP"])
src = topology.topic(os.environ["BENCH_INPUT"], key=sf.String(), value=sf.Json(), external=True)
out = topology.topic(os.environ["BENCH_OUTPUT"], key=sf.String(), value=sf.Long())

(
    topology.processor("count", guarantee=os.environ["BENCH_GUARANTEE"])
    .stream(src)
    .group_by(lambda v: v["user"], name="by-user", key_serde=sf.String())
    .count(name="n")
    .to_stream()
    .to(out)
)
