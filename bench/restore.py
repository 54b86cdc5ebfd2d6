"""Restore benchmark: how long streamflow takes to rebuild a store from 1M changelog records.

Produces N changelog records (distinct keys, JSON values, the source-offset header) into a
fresh single-partition changelog topic, then times ``restore_store`` into an empty RocksDB
(the path a worker takes after losing its disk), and once more from a checkpoint at the end
(nothing to replay). ``restore_store`` runs the engine's chunked restore (``Restorer.step``,
``--chunk`` records per step, the worker's ``restore_chunk_records``) back to back, through
the one long-lived restore consumer. Run: ``.venv/bin/python bench/restore.py --records 1000000``.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from confluent_kafka import Producer

import streamflow as sf
from streamflow.config import Config
from streamflow.kafka.ports import KafkaChangelogs
from streamflow.runtime.restore import restore_store
from streamflow.serde import SerdeContext
from streamflow.state.keys import encode_key
from streamflow.state.task_state import SOURCE_HEADER, TaskState, encode_positions
from streamflow.testing.admin import TopicAdmin, discover_bootstrap


def _bootstrap() -> str:
    found = discover_bootstrap(Path(__file__).resolve().parents[1])
    if not found:
        sys.exit("set STREAMFLOW_BOOTSTRAP_SERVERS or run deploy/local/stack up")
    return found


def _cpu_s() -> float:
    """CPU seconds of this process, every thread (librdkafka's too): fair on a busy machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=1_000_000, help="distinct keys")
    ap.add_argument("--chunk", type=int, default=Config().restore_chunk_records,
                    help="changelog records per restore step")
    args = ap.parse_args()
    bootstrap = _bootstrap()
    name = f"restore-bench-{uuid.uuid4().hex[:6]}"
    topology = sf.Topology(name)
    topology.topic("in", key=sf.String(), value=sf.Json(), external=True)
    p = topology.processor("p")
    p.stream("in").group_by_key().count(name="counts")
    changelog = p.stores["counts"].changelog
    admin = TopicAdmin(bootstrap)
    admin.create_topic(changelog, 1, {"cleanup.policy": "compact"}, replication_factor=1)
    prod = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                     "compression.type": "lz4"})
    header = [(SOURCE_HEADER, encode_positions({"in": 1}))]
    t0 = time.perf_counter()
    for i in range(args.records):
        key = encode_key(f"user-{i % args.keys}")
        while True:
            try:
                prod.produce(changelog, orjson.dumps(i), key, partition=0, headers=header)
                break
            except BufferError:
                prod.poll(0.05)
    prod.flush(120)
    produce_s = time.perf_counter() - t0
    state_dir = Path(tempfile.mkdtemp(prefix="restore-bench-"))
    try:
        state = TaskState(p.stores, 0, state_dir, "rocksdb", SerdeContext())
        changelogs = KafkaChangelogs({"bootstrap.servers": bootstrap})
        cpu0 = _cpu_s()
        res = restore_store(state, "counts", changelogs, {"in": 1}, chunk=args.chunk)
        cpu = _cpu_s() - cpu0
        again = restore_store(state, "counts", changelogs, {"in": 1}, chunk=args.chunk)
        changelogs.close()
        rows = sum(1 for _ in state.stores["counts"].backend.scan(None, None))
        state.close()
        print("| records | keys | produce s | restore s | records/s | restore CPU s | rows "
              "| from checkpoint s |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {args.records:,} | {args.keys:,} | {produce_s:.1f} | {res.seconds:.2f} | "
              f"{res.applied / res.seconds:,.0f} | {cpu:.2f} | {rows:,} | {again.seconds:.3f} |")
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
        admin.delete_topics([changelog])


if __name__ == "__main__":
    main()
