"""Order-preserving byte encodings of store keys, so range and prefix scans work.

``str`` keys sort as their UTF-8 bytes, ``int`` keys (64-bit) numerically, ``bytes`` as is;
anything else (tuples, floats, None, dicts) is JSON-encoded and sorts among itself.
"""

from __future__ import annotations

from typing import Any

import orjson

_INT_BIAS = 1 << 63


def encode_key(key: Any) -> bytes:
    """Encode a key to bytes whose order matches the key's order within one type."""
    if isinstance(key, str):
        return b"s" + key.encode()
    if isinstance(key, bool):
        return b"j" + orjson.dumps(key)
    if isinstance(key, int) and -_INT_BIAS <= key < _INT_BIAS:
        return b"i" + (key + _INT_BIAS).to_bytes(8, "big")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return b"b" + bytes(key)
    return b"j" + orjson.dumps(key, option=orjson.OPT_SORT_KEYS)


def decode_key(data: bytes) -> Any:
    """Inverse of ``encode_key`` (JSON-encoded tuples come back as lists)."""
    tag, body = data[:1], data[1:]
    if tag == b"s":
        return body.decode()
    if tag == b"i":
        return int.from_bytes(body, "big") - _INT_BIAS
    if tag == b"b":
        return bytes(body)
    return orjson.loads(body)


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with ``prefix``."""
    p = bytearray(prefix)
    while p:
        if p[-1] < 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return None
