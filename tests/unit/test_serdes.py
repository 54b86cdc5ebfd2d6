"""Serdes: round trips, byte compatibility with Kafka's Java serializers, tombstones, errors."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import streamflow as sf
from streamflow.serde import SerdeContext, SerdeError
from streamflow.testing import TopologyTestDriver

from .topologies_fixture import passthrough

CTX = SerdeContext()
ALL_SERDES = [sf.String(), sf.Bytes(), sf.Int(), sf.Long(), sf.Double(), sf.Json()]


def ser(serde: sf.Serde, value: Any, *, is_key: bool = False) -> bytes | None:
    return serde.serializer("t", is_key, CTX)(value)


def de(serde: sf.Serde, data: bytes | None, *, is_key: bool = False) -> Any:
    return serde.deserializer("t", is_key, CTX)(data)


def roundtrip(serde: sf.Serde, value: Any) -> Any:
    return de(serde, ser(serde, value))


# -- round trips (properties) --------------------------------------------------------------

@given(st.text())
def test_string_roundtrips_any_text(text: str) -> None:
    assert roundtrip(sf.String(), text) == text


@given(st.binary())
def test_bytes_roundtrips_any_bytes_unchanged(data: bytes) -> None:
    assert ser(sf.Bytes(), data) == data
    assert roundtrip(sf.Bytes(), data) == data


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_int_roundtrips_every_32_bit_integer(n: int) -> None:
    data = ser(sf.Int(), n)
    assert data == struct.pack(">i", n)
    assert de(sf.Int(), data) == n


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_long_roundtrips_every_64_bit_integer(n: int) -> None:
    data = ser(sf.Long(), n)
    assert data == struct.pack(">q", n)
    assert de(sf.Long(), data) == n


@given(st.floats(allow_nan=False))
def test_double_roundtrips_every_non_nan_float(x: float) -> None:
    assert roundtrip(sf.Double(), x) == x


def test_double_roundtrips_nan() -> None:
    assert math.isnan(roundtrip(sf.Double(), math.nan))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values.filter(lambda v: v is not None))
def test_json_roundtrips_json_values(value: Any) -> None:
    assert roundtrip(sf.Json(), value) == value


@given(key=st.text(), value=json_values, ts=st.integers(min_value=0, max_value=2**53))
def test_json_records_roundtrip_through_the_driver(key: str, value: Any, ts: int) -> None:
    with TopologyTestDriver(passthrough(value=sf.Json())) as driver:
        driver.input("in").send(value, key=key, timestamp=ts)
        (r,) = driver.output("out").read_records()
    assert (r.key, r.value, r.timestamp) == (key, value, ts)


@given(key=st.integers(min_value=-(2**31), max_value=2**31 - 1),
       value=st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_int_keys_and_long_values_roundtrip_through_the_driver(key: int, value: int) -> None:
    with TopologyTestDriver(passthrough(key=sf.Int(), value=sf.Long())) as driver:
        driver.input("in").send(value, key=key)
        assert driver.output("out").read_key_values() == [(key, value)]


@pytest.mark.parametrize("serde", ALL_SERDES, ids=lambda s: s.describe())
def test_keys_and_values_use_the_same_encoding(serde: sf.Serde) -> None:
    sample = {
        "String": "abc", "Bytes": b"abc", "Int": 7, "Long": 7, "Double": 7.5, "Json": {"a": [1]},
    }[serde.describe()]
    assert ser(serde, sample, is_key=True) == ser(serde, sample, is_key=False)
    assert de(serde, ser(serde, sample), is_key=True) == sample


# -- byte compatibility with Kafka's Java serializers --------------------------------------

@pytest.mark.parametrize(
    ("serde", "value", "expected"),
    [
        (sf.Int(), 1, b"\x00\x00\x00\x01"),
        (sf.Int(), -1, b"\xff\xff\xff\xff"),
        (sf.Int(), 2**31 - 1, b"\x7f\xff\xff\xff"),
        (sf.Int(), -(2**31), b"\x80\x00\x00\x00"),
        (sf.Long(), 2**40, b"\x00\x00\x01\x00\x00\x00\x00\x00"),
        (sf.Long(), -1, b"\xff" * 8),
        (sf.Long(), 1, b"\x00" * 7 + b"\x01"),
        (sf.Double(), 1.5, struct.pack(">d", 1.5)),
        (sf.Double(), 1.5, b"\x3f\xf8\x00\x00\x00\x00\x00\x00"),
        (sf.Double(), -0.0, b"\x80" + b"\x00" * 7),
        (sf.String(), "hé€", "hé€".encode()),
        (sf.String(), "", b""),
        (sf.Bytes(), b"\x00\xff", b"\x00\xff"),
        (sf.Json(), {"a": 1, "b": [True, None]}, b'{"a":1,"b":[true,null]}'),
    ],
)
def test_encoding_matches_kafka_java_serializers(
    serde: sf.Serde, value: Any, expected: bytes
) -> None:
    assert ser(serde, value) == expected
    assert de(serde, expected) == value


def test_double_accepts_an_int_and_encodes_it_as_a_float() -> None:
    assert ser(sf.Double(), 3) == struct.pack(">d", 3.0)
    assert de(sf.Double(), ser(sf.Double(), 3)) == 3.0


def test_string_with_another_encoding_uses_it() -> None:
    serde = sf.String("latin-1")
    assert ser(serde, "hé") == b"h\xe9"
    assert de(serde, b"h\xe9") == "hé"


@pytest.mark.parametrize("data", [bytearray(b"abc"), memoryview(b"abc")], ids=type)
def test_bytes_accepts_bytes_like_values_and_returns_bytes(data: Any) -> None:
    out = ser(sf.Bytes(), data)
    assert out == b"abc"
    assert type(out) is bytes


# -- tombstones ----------------------------------------------------------------------------

@pytest.mark.parametrize("serde", ALL_SERDES, ids=lambda s: s.describe())
@pytest.mark.parametrize("is_key", [False, True], ids=["value", "key"])
def test_none_is_a_tombstone_both_ways(serde: sf.Serde, is_key: bool) -> None:
    assert ser(serde, None, is_key=is_key) is None
    assert de(serde, None, is_key=is_key) is None


def test_json_null_bytes_deserialize_to_none() -> None:
    assert de(sf.Json(), b"null") is None


@pytest.mark.parametrize("serde", ALL_SERDES, ids=lambda s: s.describe())
def test_tombstone_passes_through_the_driver(serde: sf.Serde) -> None:
    t = passthrough(value=serde)
    with TopologyTestDriver(t) as driver:
        driver.input("in").send(None, key="k", timestamp=5)
        (rec,) = driver.output("out").read_records()
    assert (rec.key, rec.value, rec.timestamp) == ("k", None, 5)


def test_raw_tombstone_reaches_the_output_as_none_bytes() -> None:
    t = passthrough(value=sf.Json())
    with TopologyTestDriver(t) as driver:
        driver.input("in").send_raw(None, key=b"k")
        assert driver.output("out").read_key_values() == [("k", None)]


# -- wrong input types ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("serde", "value", "message"),
    [
        (sf.String(), 5, "String cannot serialize int"),
        (sf.String(), b"abc", "String cannot serialize bytes"),
        (sf.Bytes(), "abc", "Bytes cannot serialize str"),
        (sf.Bytes(), 5, "Bytes cannot serialize int"),
        (sf.Int(), "1", "Int cannot serialize str"),
        (sf.Int(), 1.0, "Int cannot serialize float"),
        (sf.Int(), True, "Int cannot serialize bool"),
        (sf.Long(), "1", "Long cannot serialize str"),
        (sf.Long(), 1.5, "Long cannot serialize float"),
        (sf.Long(), False, "Long cannot serialize bool"),
        (sf.Double(), "1.5", "Double cannot serialize str"),
        (sf.Double(), True, "Double cannot serialize bool"),
        (sf.Json(), {1, 2}, "Json cannot serialize"),
        (sf.Json(), object(), "Json cannot serialize"),
    ],
)
def test_wrong_input_type_raises_serde_error_naming_serde_and_type(
    serde: sf.Serde, value: Any, message: str
) -> None:
    with pytest.raises(SerdeError, match=message):
        ser(serde, value)


@pytest.mark.parametrize(
    ("serde", "value"),
    [(sf.Int(), 2**31), (sf.Int(), -(2**31) - 1), (sf.Long(), 2**63), (sf.Long(), -(2**63) - 1)],
)
def test_integer_out_of_range_raises_serde_error(serde: sf.Serde, value: int) -> None:
    with pytest.raises(SerdeError, match=f"{serde.describe()} cannot serialize {value}"):
        ser(serde, value)


def test_json_integer_beyond_64_bits_raises_serde_error() -> None:
    with pytest.raises(SerdeError, match="Json cannot serialize"):
        ser(sf.Json(), 2**70)


def test_string_that_cannot_be_encoded_raises_serde_error() -> None:
    with pytest.raises(SerdeError, match="String cannot serialize"):
        ser(sf.String("ascii"), "hé")


# -- bad bytes -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("serde", "data", "message"),
    [
        (sf.Int(), b"\x00\x00\x01", "Int expects 4 bytes, got 3"),
        (sf.Int(), b"\x00" * 8, "Int expects 4 bytes, got 8"),
        (sf.Int(), b"", "Int expects 4 bytes, got 0"),
        (sf.Long(), b"\x00" * 4, "Long expects 8 bytes, got 4"),
        (sf.Long(), b"\x00" * 9, "Long expects 8 bytes, got 9"),
        (sf.Double(), b"\x00" * 7, "Double expects 8 bytes, got 7"),
        (sf.Double(), b"\x00" * 4, "Double expects 8 bytes, got 4"),
    ],
)
def test_wrong_byte_length_raises_serde_error(serde: sf.Serde, data: bytes, message: str) -> None:
    with pytest.raises(SerdeError, match=message):
        de(serde, data)


@pytest.mark.parametrize("data", [b"{not json", b"", b'{"a":1', b"\xff\xfe"])
def test_invalid_json_raises_serde_error_quoting_the_bytes(data: bytes) -> None:
    with pytest.raises(SerdeError, match="Json cannot deserialize") as e:
        de(sf.Json(), data)
    assert repr(data) in str(e.value)


def test_invalid_utf8_raises_serde_error() -> None:
    with pytest.raises(SerdeError, match="String cannot deserialize"):
        de(sf.String(), b"\xff\xfe")


def test_long_garbage_is_quoted_shortened_in_the_message() -> None:
    with pytest.raises(SerdeError) as e:
        de(sf.Json(), b"x" * 10_000)
    assert len(str(e.value)) < 300


# -- the serde objects themselves ----------------------------------------------------------

@pytest.mark.parametrize("serde", ALL_SERDES, ids=lambda s: s.describe())
def test_serdes_implement_the_protocol_and_describe_themselves(serde: sf.Serde) -> None:
    assert isinstance(serde, sf.Serde)
    assert serde.describe() == type(serde).__name__
    assert repr(serde) == f"{type(serde).__name__}()"


def test_serdes_compare_by_type_and_settings() -> None:
    assert sf.String() == sf.String()
    assert hash(sf.Json()) == hash(sf.Json())
    assert sf.String() != sf.String("latin-1")
    assert sf.Int() != sf.Long()
    assert sf.Json() != "Json"


def test_serdes_are_immutable() -> None:
    with pytest.raises(AttributeError):
        sf.String().encoding = "ascii"  # type: ignore[misc]
