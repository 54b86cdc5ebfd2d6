"""Avro scenario: Avro decode -> map (+amount_cents) -> Avro encode, with the schema registry.

Input: ``com.example.Payment`` records (``schemas/payment.avsc``: id, card_id, amount,
currency, ts as timestamp-millis) in Confluent wire format — magic byte 0, the 4-byte
schema id, Avro binary — keyed by card id. The input schema is registered once per
invocation (under ``bench-avro-input-value``; ids are global, so any subject works for
readers). Output: every record, plus ``amount_cents = int(amount * 100)``, as
``com.example.bench.PaymentCents`` in Confluent wire format, its schema registered by the
implementation (``<output topic>-value``), keyed by the same card id.

The registry URL comes from ``$BENCH_SCHEMA_REGISTRY_URL``, else
``$STREAMFLOW_SCHEMA_REGISTRY_URL``, else ``deploy/local/.run/stack.env``. Implementations
get it through :meth:`AvroScenario.env` (``BENCH_SCHEMA_REGISTRY_URL`` and, for streamflow,
``STREAMFLOW_SCHEMA_REGISTRY_URL``). Peers: raw (fastavro + Confluent header), streamflow,
quix (its ``AvroSerializer``/``AvroDeserializer`` with ``schema_registry_client_config``);
there is no faust implementation (faust has no registry Avro codec of its own), so run with
``--only raw,streamflow,quix``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import struct
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import fastavro

from bench.impls.avro.schemas import PAYMENT, PAYMENT_CENTS
from bench.scenarios import InputRecord, RecordErrors

ROOT = Path(__file__).resolve().parents[2]
STACK_ENV = ROOT / "deploy" / "local" / ".run" / "stack.env"
BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
CARDS = 10_000
CURRENCIES = ("EUR", "USD", "GBP", "CHF")
INPUT_SUBJECT = "bench-avro-input-value"


def registry_url() -> str:
    """The schema registry: environment, else the local stack's stack.env."""
    url = os.environ.get("BENCH_SCHEMA_REGISTRY_URL") or os.environ.get(
        "STREAMFLOW_SCHEMA_REGISTRY_URL"
    )
    if not url and STACK_ENV.exists():
        for line in STACK_ENV.read_text().splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and key == "STREAMFLOW_SCHEMA_REGISTRY_URL":
                url = value.strip().strip("'\"")
    if not url:
        raise SystemExit(
            "avro scenario: no schema registry; set BENCH_SCHEMA_REGISTRY_URL (or "
            "STREAMFLOW_SCHEMA_REGISTRY_URL), or start the local stack (deploy/local/stack up)"
        )
    return url


def _client() -> Any:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient({"url": registry_url()})


def _canonical(schema: Any) -> str:
    return str(fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(schema)))


class AvroScenario:
    name = "avro"
    description = (
        "Avro decode (Confluent wire format, schema registry) -> map (+amount_cents) -> "
        "Avro encode, registry-registered output schema"
    )
    impls = {
        "raw": "avro/raw_confluent.py",
        "streamflow": "avro/streamflow_topology",
        "quix": "avro/quix_app.py",
    }

    def env(self) -> dict[str, str]:
        """Extra environment for the implementations' processes."""
        url = registry_url()
        return {"BENCH_SCHEMA_REGISTRY_URL": url, "STREAMFLOW_SCHEMA_REGISTRY_URL": url}

    def records(self, n: int, seed: int) -> Iterator[InputRecord]:
        from confluent_kafka.schema_registry import Schema

        schema_id = _client().register_schema(INPUT_SUBJECT, Schema(json.dumps(PAYMENT), "AVRO"))
        header = struct.pack(">bI", 0, schema_id)
        parsed = fastavro.parse_schema(PAYMENT)
        write = fastavro.schemaless_writer
        rng = random.Random(seed)
        for i in range(n):
            card = f"c{rng.randrange(CARDS):05d}"
            v = {
                "id": f"p{i:09d}",
                "card_id": card,
                "amount": round(rng.uniform(0.0, 100.0), 2),
                "currency": CURRENCIES[i % len(CURRENCIES)],
                "ts": BASE + dt.timedelta(milliseconds=i),
            }
            buf = BytesIO()
            buf.write(header)
            write(buf, parsed, v)
            ts_ms = int(v["ts"].timestamp() * 1000)
            yield InputRecord(card.encode(), buf.getvalue(), ts_ms, v)

    def expectation(self) -> AvroExpectation:
        return AvroExpectation()


class AvroExpectation:
    def __init__(self) -> None:
        self.expected: dict[str, tuple[int, str]] = {}  # id -> (amount_cents, card_id)

    def add_input(self, record: InputRecord) -> None:
        v = record.obj
        self.expected[v["id"]] = (int(v["amount"] * 100), v["card_id"])

    @property
    def expected_count(self) -> int:
        return len(self.expected)

    def checker(self) -> AvroChecker:
        return AvroChecker(self.expected)


class AvroChecker(RecordErrors):
    """Decodes every output record with the schema its id names in the registry; that
    schema must be the scenario's output contract (PaymentCents)."""

    def __init__(self, expected: dict[str, tuple[int, str]]) -> None:
        super().__init__()
        self.expected = expected
        self.seen: set[str] = set()
        self.count = 0
        self.registry = _client()
        self.schemas: dict[int, Any] = {}
        self.contract = _canonical(PAYMENT_CENTS)

    def _schema(self, schema_id: int) -> Any:
        if schema_id not in self.schemas:
            schema = json.loads(self.registry.get_schema(schema_id).schema_str)
            if _canonical(schema) != self.contract:
                self._error(f"output written with schema id {schema_id}, which is not the "
                            f"PaymentCents contract: {json.dumps(schema)[:200]}")
            self.schemas[schema_id] = fastavro.parse_schema(schema)
        return self.schemas[schema_id]

    def add_output(self, key: bytes | None, value: bytes | None) -> None:
        self.count += 1
        data = value or b""
        if len(data) < 5 or data[0] != 0:
            self._error(f"output value is not Confluent wire format: {data[:16]!r}")
            return
        buf = BytesIO(data)
        buf.seek(5)
        try:
            v = fastavro.schemaless_reader(buf, self._schema(struct.unpack_from(">I", data, 1)[0]),
                                           None)
        except Exception as e:
            self._error(f"undecodable output value {data[:24]!r}: {type(e).__name__}: {e}")
            return
        i = v.get("id")
        if i in self.seen:
            self._error(f"duplicate output id {i}")
            return
        self.seen.add(i)
        want = self.expected.get(i)
        if want is None:
            self._error(f"unexpected output id {i}")
            return
        cents, card = want
        if v.get("amount_cents") != cents:
            self._error(f"id {i}: amount_cents {v.get('amount_cents')!r}, expected {cents}")
        if key is None or key.decode(errors="replace") != card or v.get("card_id") != card:
            self._error(f"id {i}: key {key!r} / card_id {v.get('card_id')!r}, expected {card}")

    def problems(self) -> list[str]:
        out = self.reported()
        missing = len(self.expected) - len(self.seen & self.expected.keys())
        if missing:
            out.append(f"{missing} expected records missing from the output")
        if self.count != len(self.expected):
            out.append(f"output holds {self.count} records, expected {len(self.expected)}")
        return out
