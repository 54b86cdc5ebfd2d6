"""Serdes: how topics turn bytes into values and back."""

from streamflow.serde.avro import Avro
from streamflow.serde.base import (
    Deserializer,
    Serde,
    SerdeContext,
    SerdeError,
    SerdeUnavailable,
    Serializer,
)
from streamflow.serde.simple import Bytes, Double, Int, Json, Long, String

__all__ = [
    "Avro",
    "Bytes",
    "Deserializer",
    "Double",
    "Int",
    "Json",
    "Long",
    "Serde",
    "SerdeContext",
    "SerdeError",
    "SerdeUnavailable",
    "Serializer",
    "String",
]
