"""Stores keep ``auto_register=False`` Avro values under subjects ``schemas register`` registers.

The production practice: CI runs ``streamflow schemas register``, workers only read the
registry. A topic table and a ``reduce`` of such a topic keep its values as Avro (a decimal
stays a ``Decimal``) under their changelogs' own subjects. Before the command ran, the worker
refuses to start (exit 3) naming the missing subject and the command; after it, the worker
runs, and after its local state is wiped it restores both stores from their changelogs. The
topology runs with a name suffix, so the subjects carry it too.
"""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from streamflow.kafka.registry import make_registry_client
from streamflow.serde import Avro, SerdeContext
from tests.integration.kafka_helpers import StreamflowProcess, read_all, wait_for, write_module

pytestmark = pytest.mark.integration

PRICE = {"type": "record", "name": "KeptPrice", "fields": [
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 8,
                                "scale": 2}}]}

MODULE = f"""
from decimal import Decimal
import streamflow as sf

PRICE = sf.Avro({PRICE!r}, auto_register=False)
topology = sf.Topology("kept-reg")
prices = topology.topic("prices", key=sf.String(), value=PRICE, external=True)
sales = topology.topic("sales", key=sf.String(), value=PRICE, external=True)
events = topology.topic("events", key=sf.String(), value=sf.Json(), external=True)
p = topology.processor("p")


def priced(event, row):
    assert isinstance(row["amount"], Decimal), row  # kept as Avro, restored as Avro
    return {{"event": event, "amount": str(row["amount"])}}


def larger(a, b):
    assert isinstance(a["amount"], Decimal), a
    return b if b["amount"] > a["amount"] else a


p.stream(events).join(topology.table(prices, name="prices"), priced, name="price").to(
    topology.topic("priced", key=sf.String(), value=sf.Json()))
(p.stream(sales).group_by_key(name="same").reduce(larger, name="top").to_stream()
    .map(lambda v: str(v["amount"]), name="text")
    .to(topology.topic("top", key=sf.String(), value=sf.Json())))
"""

T0 = 1_700_000_000_000


def _send(bootstrap: str, topic: str, encode: Any, records: list[tuple[str, Any, int]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value, ts in records:
        producer.produce(topic, encode(value), key.encode(), timestamp=ts)
    assert producer.flush(30) == 0


def _run(args: list[str], tmp_path: Path, env: dict[str, str], log: str) -> StreamflowProcess:
    return StreamflowProcess(args, tmp_path, env, tmp_path / log)


def _exit_code(proc: StreamflowProcess, timeout: float = 30) -> int:
    wait_for(f"{proc.args} to exit", lambda: proc.poll() is not None, timeout)
    return proc.terminate()


def test_schemas_register_lets_auto_register_false_stores_keep_avro_and_restore(
        tmp_path: Path, kafka_bootstrap: str, schema_registry_url: str, kafka_admin: Any,
        name_suffix: str) -> None:
    sfx = name_suffix
    for name in ("prices", "sales", "events"):
        kafka_admin.create_topic(name + sfx, 1, {})
    env = {
        "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "STREAMFLOW_SCHEMA_REGISTRY_URL": schema_registry_url,
        "STREAMFLOW_NAME_SUFFIX": sfx,
        "STREAMFLOW_STATE_DIR": str(tmp_path / "state"),
        "STREAMFLOW_COMMIT_INTERVAL_MS": "200",
    }
    module = write_module(tmp_path, "kept_registered", MODULE)
    store_subject = f"kept-reg-p-prices-changelog{sfx}-value"

    refused = _run(["run", module], tmp_path, env, "refused.log")
    assert _exit_code(refused) == 3, refused.output()
    out = refused.output()
    assert f"not registered under subject {store_subject!r}" in out, out
    assert f"not registered under subject 'kept-reg-p-top-changelog{sfx}-value'" in out
    assert f"register it with `streamflow schemas register {module}`" in out

    registered = _run(["schemas", "register", module, "--include-external"], tmp_path, env,
                      "register.log")
    assert _exit_code(registered) == 0, registered.output()
    assert f"REGISTERED {store_subject} (store 'prices' of processor 'p'" in registered.output()

    ctx = SerdeContext(registry_factory=lambda: make_registry_client({"url": schema_registry_url}))
    encode = Avro(PRICE, auto_register=False).serializer("prices" + sfx, False, ctx)
    as_json = orjson.dumps
    _send(kafka_bootstrap, "prices" + sfx, encode,
          [("k1", {"amount": Decimal("9.99")}, T0), ("k2", {"amount": Decimal("1.50")}, T0)])
    _send(kafka_bootstrap, "sales" + sfx, encode,
          [("s", {"amount": Decimal(a)}, T0 + i) for i, a in enumerate(("3.10", "7.25", "5.00"))])
    _send(kafka_bootstrap, "events" + sfx, as_json,
          [("k1", 1, T0 + 1_000), ("k2", 2, T0 + 1_000)])

    worker = _run(["run", module], tmp_path, env, "run1.log")
    try:
        priced = read_all(kafka_bootstrap, "priced" + sfx, expect=2, timeout=30, settle=0)
        top = read_all(kafka_bootstrap, "top" + sfx, expect=3, timeout=30, settle=0)
    finally:
        assert worker.terminate() == 0, worker.output()
    assert sorted(orjson.loads(m.value())["amount"] for m in priced) == ["1.50", "9.99"]
    assert [orjson.loads(m.value()) for m in top] == ["3.10", "7.25", "7.25"]

    shutil.rmtree(tmp_path / "state")  # both stores come back from their changelogs
    _send(kafka_bootstrap, "sales" + sfx, encode, [("s", {"amount": Decimal("6.00")}, T0 + 9)])
    _send(kafka_bootstrap, "events" + sfx, as_json, [("k1", 3, T0 + 2_000)])
    worker = _run(["run", module], tmp_path, env, "run2.log")
    try:
        priced = read_all(kafka_bootstrap, "priced" + sfx, expect=3, timeout=30, settle=0)
        top = read_all(kafka_bootstrap, "top" + sfx, expect=4, timeout=30, settle=0)
    finally:
        assert worker.terminate() == 0, worker.output()
    assert "restored" in worker.output(), worker.output()
    assert orjson.loads(priced[-1].value()) == {"event": 3, "amount": "9.99"}
    assert orjson.loads(top[-1].value()) == "7.25"  # the restored maximum, not 6.00
