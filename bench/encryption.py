#!/usr/bin/env python
"""The cost of field-level encryption: streamflow's avro scenario with two encrypted fields
against none, runs alternating.

The same seeded payments are produced twice: as the avro scenario does (plain), and with
``id`` and ``card_id`` encrypted (``Avro(PAYMENT, encrypt=[...])`` under a fresh key file).
``streamflow`` runs the scenario on the plain input; ``streamflow_encrypted`` runs the same
topology with ``encrypt=[...]`` on its input and output and the key file
(``STREAMFLOW_ENCRYPTION_KEYS``): it decrypts two fields and encrypts two per record. Each run
is ``bench/harness/runner.run_once`` (a fresh output topic and group, completion observed from
outside, CPU from /proc); with ``--verify full`` every output record is decrypted and checked.
Prints a table of medians::

    .venv/bin/python bench/encryption.py --records 200000 --runs 3
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so `python bench/encryption.py` can import bench.*
    sys.path.insert(0, str(ROOT))

from bench.harness import RESULTS  # noqa: E402
from bench.harness.frameworks import FRAMEWORKS  # noqa: E402
from bench.harness.kafka import Kafka  # noqa: E402
from bench.harness.meter import local_broker_pid  # noqa: E402
from bench.harness.report import rate_and_cpu  # noqa: E402
from bench.harness.runner import RunResult, run_once  # noqa: E402
from bench.impls.avro.schemas import PAYMENT, PAYMENT_CENTS  # noqa: E402
from bench.run import parse_args as bench_args  # noqa: E402
from bench.scenarios import SCENARIOS, InputRecord  # noqa: E402
from bench.scenarios.avro import registry_url  # noqa: E402
from streamflow.kafka.registry import make_registry_client  # noqa: E402
from streamflow.serde import Avro, SerdeContext  # noqa: E402
from streamflow.serde.keyfile import LocalKeyFile, new_key_file  # noqa: E402
from streamflow.testing.admin import discover_bootstrap  # noqa: E402

FIELDS = ("id", "card_id")


def context(keys: Path) -> SerdeContext:
    registry = make_registry_client({"url": registry_url()})
    return SerdeContext(registry_factory=lambda: registry, keys=LocalKeyFile(keys))


class EncryptedInput:
    """The avro scenario's records with ``FIELDS`` encrypted (same keys, timestamps, objects)."""

    def __init__(self, scenario: Any, topic: str, keys: Path) -> None:
        self.scenario = scenario
        self.write = Avro(PAYMENT, encrypt=list(FIELDS)).serializer(topic, False, context(keys))

    def records(self, n: int, seed: int) -> Iterator[InputRecord]:
        for rec in self.scenario.records(n, seed):
            value = self.write(rec.obj)
            assert value is not None
            yield InputRecord(rec.key, value, rec.timestamp_ms, rec.obj)


class DecryptingChecker:
    """The avro scenario's content check on outputs decrypted with the key file."""

    def __init__(self, expected: dict[str, tuple[int, str]], topic: str, keys: Path) -> None:
        self.expected = expected
        self.read = Avro(PAYMENT_CENTS, encrypt=list(FIELDS)).deserializer(
            topic, False, context(keys))
        self.seen: set[str] = set()
        self.errors: list[str] = []

    def add_output(self, key: bytes | None, value: bytes | None) -> None:
        try:
            v = self.read(value)
        except Exception as e:
            self.errors.append(f"undecryptable output: {e}")
            return
        want = self.expected.get(v["id"])
        got = (v["amount_cents"], v["card_id"])
        if want != got or v["id"] in self.seen or key != v["card_id"].encode():
            self.errors.append(f"id {v['id']}: got {got}, key {key!r}, expected {want}")
        self.seen.add(v["id"])

    def problems(self) -> list[str]:
        missing = len(self.expected) - len(self.seen)
        return self.errors[:5] + ([f"{missing} records missing"] if missing else [])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/encryption.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--verify", choices=("full", "count"), default="full")
    p.add_argument("--quiet", type=float, default=0.0,
                   help="wait before each run until machine CPU use is below this fraction")
    ours = p.parse_args(argv)
    args = bench_args(["--records", str(ours.records), "--partitions", str(ours.partitions),
                       "--verify", ours.verify, "--quiet", str(ours.quiet)])
    bootstrap = discover_bootstrap(ROOT)
    if bootstrap is None:
        raise SystemExit("start the local stack first: deploy/local/stack up")
    kafka = Kafka(bootstrap)
    keys = Path(tempfile.mkdtemp(prefix="bench-keys-")) / "keys.json"
    new_key_file(keys)
    scenario = SCENARIOS["avro"]
    plain = FRAMEWORKS["streamflow"]
    encrypted = dataclasses.replace(plain, name="streamflow_encrypted", impl="streamflow", env={
        "BENCH_ENCRYPT": ",".join(FIELDS), "STREAMFLOW_ENCRYPTION_KEYS": str(keys)})
    versions, why = plain.probe(scenario)
    if versions is None:
        raise SystemExit(f"streamflow not runnable: {why}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prefix = f"bench-{stamp}-encryption"
    log_dir = RESULTS / "logs" / f"encryption-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    inputs = {plain.name: f"{prefix}-in", encrypted.name: f"{prefix}-in-enc"}
    sources = {plain.name: scenario,
               encrypted.name: EncryptedInput(scenario, inputs[encrypted.name], keys)}
    expectations: dict[str, Any] = {}
    sizes: dict[str, float] = {}
    results: dict[str, list[RunResult]] = {plain.name: [], encrypted.name: []}
    kafka.wait_ready(30)
    try:
        for name, topic in inputs.items():
            kafka.create_topic(topic, args.partitions)
            exp = expectations[name] = scenario.expectation()
            stats = kafka.produce_dataset(topic, sources[name], args.records, args.seed, exp)
            sizes[name] = stats["avg_value_bytes"]
        for run_no in range(1, ours.runs + 1):
            for fw in (plain, encrypted):
                exp = expectations[fw.name]
                if ours.verify == "count":
                    check = None
                elif fw is plain:
                    check = exp.checker
                else:
                    def check(exp: Any = exp, run_no: int = run_no) -> DecryptingChecker:
                        out = f"{prefix}-{encrypted.name}-{run_no}-out"
                        return DecryptingChecker(exp.expected, out, keys)
                args.broker_pid = local_broker_pid(kafka.bootstrap)
                r = run_once(kafka, fw, versions, scenario, args, prefix, inputs[fw.name],
                             exp.expected_count, run_no, check, log_dir)
                results[fw.name].append(r)
                print(f"bench: {fw.name} run {run_no}: "
                      + (f"{r.records_per_s:,.0f} rec/s, cpu {r.cpu_s:.2f}s"
                         if r.ok and r.records_per_s and r.cpu_s else
                         f"FAILED {'; '.join(r.problems)} ({r.log})"), file=sys.stderr)
    finally:
        kafka.delete_prefixed(prefix)
    print(f"avro scenario, streamflow, {args.records:,} records, {args.partitions} partitions, "
          f"median of {ours.runs} alternating runs, output verified: {ours.verify}\n")
    print("| variant | input bytes/record | records/s | CPU µs/rec | vs plain |")
    print("|---|---:|---:|---:|---:|")
    base = None
    for name, runs in results.items():
        medians = rate_and_cpu(runs, args.records)
        if medians is None:
            print(f"| {name} | {sizes[name]:.0f} | failed | | |")
            continue
        rate, cpu = medians
        base = base or rate
        print(f"| {name} | {sizes[name]:.0f} | {rate:,.0f} | {cpu:.1f} | {rate / base:.2f}x |")
    return 0 if all(r.ok for runs in results.values() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
