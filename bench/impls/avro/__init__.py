"""The ``avro`` scenario's implementations: Avro (Confluent wire format, schema registry)
decode -> map (+amount_cents) -> Avro encode, one file per framework."""
