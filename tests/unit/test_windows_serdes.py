"""Windowed-key serdes: exactly Kafka Streams' bytes; and the window store's own layout.

Kafka's ``TimeWindowedSerializer`` writes ``inner(key) + start`` (``WindowKeySchema.toBinary``:
``buf.put(keyBytes); buf.putLong(window.start())``) and ``SessionWindowedSerializer`` writes
``inner(key) + end + start`` (``SessionKeySchema.toBinary``: ``putLong(endTime)`` then
``putLong(startTime)``), all longs big-endian. The expected bytes below are built by hand.
"""

from __future__ import annotations

from typing import Any

import pytest

import streamflow as sf
from streamflow.serde import SerdeContext, SerdeError
from streamflow.serde.windowed import StreamTime, WindowCell, WindowValueSerde
from streamflow.state.keys import encode_key
from streamflow.state.window_store import META_STREAM_TIME, window_prefix

CTX = SerdeContext()


def _pair(serde: Any) -> tuple[Any, Any]:
    return serde.serializer("t", True, CTX), serde.deserializer("t", True, CTX)


def test_time_windowed_string_key_is_key_bytes_then_start() -> None:
    ser, de = _pair(sf.TimeWindowedSerde(sf.String(), window_size=60_000))
    expected = b"alice" + bytes([0, 0, 0, 0, 0, 0, 0xEA, 0x60])  # 60000 = 0xEA60
    assert ser(sf.Windowed("alice", 60_000, 120_000)) == expected
    assert de(expected) == sf.Windowed("alice", 60_000, 120_000)


def test_time_windowed_uses_the_inner_serde_bytes() -> None:
    ser, de = _pair(sf.TimeWindowedSerde(sf.Int(), window_size=10))
    # IntegerSerializer: 4 bytes big-endian; start 1_700_000_000_000 = 0x18BCFE56800
    expected = bytes([0, 0, 0, 7]) + bytes([0, 0, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x00])
    assert ser(sf.Windowed(7, 1_700_000_000_000, 1_700_000_000_010)) == expected
    assert de(expected) == sf.Windowed(7, 1_700_000_000_000, 1_700_000_000_010)


def test_time_windowed_end_comes_from_the_window_size_and_is_capped() -> None:
    _, de = _pair(sf.TimeWindowedSerde(sf.String(), window_size=100))
    top = (1 << 63) - 50
    assert de(b"k" + top.to_bytes(8, "big")) == sf.Windowed("k", top, (1 << 63) - 1)


def test_time_windowed_negative_start_is_twos_complement() -> None:
    ser, de = _pair(sf.TimeWindowedSerde(sf.String(), window_size=10))
    assert ser(sf.Windowed("k", -10, 0)) == b"k" + b"\xff" * 7 + b"\xf6"
    assert de(b"k" + b"\xff" * 7 + b"\xf6") == sf.Windowed("k", -10, 0)


def test_session_windowed_is_key_bytes_then_end_then_start() -> None:
    ser, de = _pair(sf.SessionWindowedSerde(sf.String()))
    expected = b"bob" + (2000).to_bytes(8, "big") + (1000).to_bytes(8, "big")
    assert expected == b"bob" + bytes([0] * 6 + [0x07, 0xD0]) + bytes([0] * 6 + [0x03, 0xE8])
    assert ser(sf.Windowed("bob", 1000, 2000)) == expected
    assert de(expected) == sf.Windowed("bob", 1000, 2000)


def test_windowed_serdes_pass_tombstones_and_reject_other_keys() -> None:
    for serde in (sf.TimeWindowedSerde(sf.String(), window_size=1),
                  sf.SessionWindowedSerde(sf.String())):
        ser, de = _pair(serde)
        assert ser(None) is None and de(None) is None
        with pytest.raises(SerdeError, match="serializes Windowed keys"):
            ser("plain")
    _, de = _pair(sf.SessionWindowedSerde(sf.String()))
    with pytest.raises(SerdeError, match="at least 16 bytes"):
        de(b"short")


def test_windowed_serdes_describe_and_compare() -> None:
    a = sf.TimeWindowedSerde(sf.String(), window_size=10)
    assert a == sf.TimeWindowedSerde(sf.String(), window_size=10)
    assert a != sf.TimeWindowedSerde(sf.String(), window_size=11)
    assert a.describe() == "TimeWindowed(String, size=10ms)"
    assert sf.SessionWindowedSerde(sf.Long()).describe() == "SessionWindowed(Long)"


# -- the window store's layout ---------------------------------------------------------------
def test_window_store_keys_are_one_per_key_in_length_then_bytes_order() -> None:
    # the length prefix orders keys by (length, bytes): windows closing together are
    # emitted in this order, before and after a restart
    keys = ["a", "b", "ab", "zz", "abc"]
    encoded = [window_prefix(encode_key(k)) for k in keys]
    assert sorted(encoded) == encoded
    # 4-byte length, key bytes
    assert window_prefix(b"sa") == b"\x00\x00\x00\x02sa"
    assert not META_STREAM_TIME.startswith(window_prefix(encode_key("x"))[:4])


def _cells(value: dict[int, WindowCell]) -> list[tuple[int, object, int]]:
    return [(s, c.agg, c.max_ts) for s, c in value.items()]


def test_window_values_hold_a_keys_windows_in_start_order() -> None:
    serde = WindowValueSerde(None)
    ser, de = serde.serializer("c", False, CTX), serde.deserializer("c", False, CTX)
    wins = {60: WindowCell({"n": 1}, 42, windowed=None), -5: WindowCell(None, -3)}
    assert ser(wins) == b"\x02\x01" + b'[60,42,{"n":1},-5,-3,null]'
    assert _cells(de(ser(wins))) == [(-5, None, -3), (60, {"n": 1}, 42)]
    assert de(ser(StreamTime(-7))).time == -7
    long_serde = WindowValueSerde(sf.Long())
    lser = long_serde.serializer("c", False, CTX)
    lde = long_serde.deserializer("c", False, CTX)
    assert lser({3: WindowCell(9, 1)}) == (
        b"\x02\x02" + (3).to_bytes(8, "big") + (1).to_bytes(8, "big") + (8).to_bytes(4, "big")
        + (9).to_bytes(8, "big"))
    got = lde(lser({3: WindowCell(9, 1), 1: WindowCell(None, 2)}))
    assert _cells(got) == [(1, None, 2), (3, 9, 1)]
    with pytest.raises(SerdeError, match="not JSON-serializable"):
        ser({0: WindowCell(object(), 1)})


def test_an_old_format_window_value_says_how_to_reset_the_store() -> None:
    de = WindowValueSerde(None).deserializer("app-p-w-changelog", False, CTX)
    old = b"\x01" + (42).to_bytes(8, "big") + b'{"n":1}'  # one window per entry
    with pytest.raises(SerdeError, match=r"old layout.*delete the changelog topic "
                                         r"'app-p-w-changelog'"):
        de(old)
    with pytest.raises(SerdeError, match="not a window store value"):
        de(b"\x07garbage")
