"""Avro scenario on Quix Streams with its own schema-registry Avro serializers.

``quixstreams.models.serializers.avro.AvroDeserializer`` / ``AvroSerializer`` configured with
``schema_registry_client_config`` (they delegate to confluent-kafka's registry serializers,
Confluent wire format; the output schema is auto-registered under ``<output>-value``).
Run with bench/.venvs/quix/bin/python. Environment: BENCH_BOOTSTRAP, BENCH_INPUT,
BENCH_OUTPUT, BENCH_GROUP, BENCH_STATE_DIR, BENCH_SCHEMA_REGISTRY_URL.
"""

from __future__ import annotations

import os

from quixstreams import Application
from quixstreams.models import SchemaRegistryClientConfig
from quixstreams.models.serializers.avro import AvroDeserializer, AvroSerializer

from bench.impls.avro.schemas import PAYMENT_CENTS


def main() -> None:
    registry = SchemaRegistryClientConfig(url=os.environ["BENCH_SCHEMA_REGISTRY_URL"])
    app = Application(
        broker_address=os.environ["BENCH_BOOTSTRAP"],
        consumer_group=os.environ["BENCH_GROUP"],
        auto_offset_reset="earliest",
        state_dir=os.environ.get("BENCH_STATE_DIR", "state"),
        loglevel="WARNING",
        # Topics are created by the harness; don't let Quix create or reconfigure them.
        auto_create_topics=False,
        use_changelog_topics=False,
    )
    src = app.topic(
        os.environ["BENCH_INPUT"],
        key_deserializer="str",
        value_deserializer=AvroDeserializer(schema_registry_client_config=registry),
    )
    out = app.topic(
        os.environ["BENCH_OUTPUT"],
        key_serializer="str",
        value_serializer=AvroSerializer(PAYMENT_CENTS, schema_registry_client_config=registry),
    )

    sdf = app.dataframe(src)
    sdf = sdf.apply(lambda v: {**v, "amount_cents": int(v["amount"] * 100)})
    sdf.to_topic(out)
    app.run()


if __name__ == "__main__":
    main()
