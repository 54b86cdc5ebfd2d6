"""The example topologies against the real broker: ``streamflow topics`` creates, describes
(without drift) and deletes their topics, and the orders pipeline runs end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.integration.kafka_helpers import ROOT, StreamflowProcess, produce, read_all

pytestmark = pytest.mark.integration

EXAMPLES = ["topologies.orders", "topologies.clickstream", "topologies.payments"]


def _env(bootstrap: str, registry: str, tmp: Path) -> dict[str, str]:
    return {**os.environ, "STREAMFLOW_BOOTSTRAP_SERVERS": bootstrap,
            "STREAMFLOW_SCHEMA_REGISTRY_URL": registry, "STREAMFLOW_STATE_DIR": str(tmp),
            "PYTHONPATH": str(ROOT)}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamflow", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("module", EXAMPLES)
def test_topics_create_describe_delete(module: str, kafka_bootstrap: str,
                                       schema_registry_url: str, tmp_path: Path) -> None:
    env = _env(kafka_bootstrap, schema_registry_url, tmp_path)
    _cli(env, "topics", "delete", module, "--yes", "--include-external")
    created = _cli(env, "topics", "create", module)
    assert created.returncode == 0, created.stdout + created.stderr
    described = _cli(env, "topics", "describe", module)
    assert described.returncode == 0, described.stdout + described.stderr
    assert "DRIFT" not in described.stdout and "MISSING" not in described.stdout
    refused = _cli(env, "topics", "delete", module)
    assert refused.returncode == 2  # nothing deleted without --yes
    deleted = _cli(env, "topics", "delete", module, "--yes", "--include-external")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    gone = _cli(env, "topics", "describe", module)
    assert gone.returncode == 1 and "MISSING" in gone.stdout


def test_orders_pipeline_end_to_end(kafka_bootstrap: str, schema_registry_url: str,
                                    tmp_path: Path) -> None:
    env = _env(kafka_bootstrap, schema_registry_url, tmp_path)
    _cli(env, "topics", "delete", "topologies.orders", "--yes", "--include-external")
    assert _cli(env, "topics", "create", "topologies.orders").returncode == 0
    orders = []
    for i in range(200):
        lines = [{"sku": f"s{j}", "qty": 1 + (i + j) % 3, "unit_price": 10.0 * (1 + i % 40)}
                 for j in range(1 + i % 3)]
        orders.append({"id": f"o{i}", "customer": f"c{i % 7}", "country": ["DE", "US"][i % 2],
                       "status": "cancelled" if i % 10 == 0 else "new", "lines": lines})
    records = [(o["customer"].encode(), orjson.dumps(o)) for o in orders]
    records.append((b"c0", b'{"id": "broken", "lines": [oops'))
    produce(kafka_bootstrap, "orders", records)
    app = StreamflowProcess(["run", "topologies.orders"], ROOT, env, tmp_path / "run.log")
    try:
        kept = [o for o in orders if o["status"] != "cancelled"]
        large = read_all(kafka_bootstrap, "orders.large", expect=1, timeout=90, settle=3)
        small = read_all(kafka_bootstrap, "orders.small", expect=1, timeout=90, settle=3)
        dead = read_all(kafka_bootstrap, "orders.enrich.dlq", expect=1, timeout=60, settle=1)
    finally:
        assert app.terminate() == 0, app.output()[-3000:]
    from topologies.orders import price

    priced = {o["id"]: price(o) for o in kept}
    got = [orjson.loads(m.value()) for m in large + small]
    assert sorted(v["id"] for v in got) == sorted(priced)
    for m in large:
        assert orjson.loads(m.value())["gross"] >= 500
    for m in small:
        assert orjson.loads(m.value())["gross"] < 500
    assert [m.value() for m in dead] == [b'{"id": "broken", "lines": [oops']
    _cli(env, "topics", "delete", "topologies.orders", "--yes", "--include-external")
