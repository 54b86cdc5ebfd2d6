"""Stream-table join as a streamflow topology: ``stream.join(table, enrich)``.

The table is ``topology.table(<input>-table)``, materialized per task in the default RocksDB
store; the task takes its two input partitions in timestamp order, so the rows (stamped before
the payments) are in the store before the payments meet it. ``BENCH_JOIN_GLOBAL=1`` joins a
``topology.global_table`` instead (every worker loads the whole topic before it starts).
Launched as ``python -m streamflow run bench.impls.join_table.streamflow_topology`` with
STREAMFLOW_BOOTSTRAP_SERVERS, BENCH_INPUT, BENCH_INPUT_TABLE, BENCH_OUTPUT, BENCH_APP.
"""

import os

import streamflow as sf
from bench.scenarios.joins import enrich

topology = sf.Topology(os.environ.get("BENCH_APP", "bench"))
payments = topology.topic(os.environ["BENCH_INPUT"], key=sf.String(), value=sf.Json(),
                          external=True)
users = topology.topic(os.environ.get("BENCH_INPUT_TABLE", "probe-in-table"), key=sf.String(),
                       value=sf.Json(), external=True)
out = topology.topic(os.environ["BENCH_OUTPUT"], key=sf.String(), value=sf.Json())

p = topology.processor("enrich")
if os.environ.get("BENCH_JOIN_GLOBAL") == "1":
    p.stream(payments).join(topology.global_table(users), enrich, key=lambda k, _v: k).to(out)
else:
    p.stream(payments).join(topology.table(users, name="users"), enrich).to(out)
