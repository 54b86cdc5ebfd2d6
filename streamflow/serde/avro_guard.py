r"""Guarding fastavro's decoder against hostile input.

fastavro's decoder trusts counts and recurses in C. Two inputs break it: a huge block
count for an array whose items take no bytes (array<null>: allocates forever), and a very
deep value of a recursive schema (overflows the C stack: a crash, not an exception). For
schemas that allow either, a Python walker checks the payload first. Other schemas
(nearly all) take no extra work: :func:`payload_guard` returns None for them.

>>> import fastavro
>>> payload_guard(fastavro.parse_schema({"type": "array", "items": "long"})) is None
True
>>> check = payload_guard(fastavro.parse_schema({"type": "array", "items": "null"}))
>>> check(b"\x00\x00\x00\x00\x01" + b"\x80\x92\xf4\x01")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
streamflow.serde.base.SerdeError: rejected payload: more than 1000000 items of a zero-size type ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from streamflow.serde.avro_messages import preview
from streamflow.serde.base import SerdeError

__all__ = ["MAX_NESTING", "MAX_ZERO_WIDTH_ITEMS", "payload_guard"]

#: deepest nesting of complex values accepted when decoding recursive schemas (fastavro's
#: C decoder recurses per level and would overflow the C stack on hostile input)
MAX_NESTING = 400
#: most items accepted per payload in arrays whose items take no bytes (e.g. array<null>)
MAX_ZERO_WIDTH_ITEMS = 1_000_000


def payload_guard(parsed: Any) -> Callable[[Any], None] | None:
    """A check that rejects payloads fastavro must not decode, or None when none can hurt."""
    named: dict[str, Any] = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    info = _Shape(named)
    info.visit(parsed)
    if not info.zero_width_arrays and not info.recursive:
        return None
    threshold = MAX_NESTING // max(1, info.complex_nodes)
    always = info.zero_width_arrays

    def check(data: Any) -> None:
        if always or len(data) - 5 > threshold:
            _Walker(named, bytes(data)).run(parsed)

    return check


class _Shape:
    """Finds zero-width-item arrays and recursion in a parsed schema."""

    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.zero_width_arrays = False
        self.recursive = False
        self.complex_nodes = 0
        self._stack: list[str] = []
        self._done: set[str] = set()

    def visit(self, s: Any) -> None:
        if isinstance(s, str):
            if s in self.named:
                if s in self._stack:
                    self.recursive = True
                elif s not in self._done:
                    self.visit(self.named[s])
            return
        if isinstance(s, list):
            self.complex_nodes += 1
            for b in s:
                self.visit(b)
            return
        t = s.get("type")
        if isinstance(t, (dict, list)):
            self.visit(t)
            return
        if t in ("record", "error", "enum", "fixed"):
            self._stack.append(s["name"])
            if t in ("record", "error"):
                self.complex_nodes += 1
                for f in s.get("fields", ()):
                    self.visit(f["type"])
            self._stack.pop()
            self._done.add(s["name"])
        elif t == "array":
            self.complex_nodes += 1
            if _zero_width(s["items"], self.named, set()):
                self.zero_width_arrays = True
            self.visit(s["items"])
        elif t == "map":
            self.complex_nodes += 1
            self.visit(s["values"])
        elif isinstance(t, str) and t in self.named:
            self.visit(t)


def _zero_width(s: Any, named: dict[str, Any], seen: set[str]) -> bool:
    if isinstance(s, str):
        if s == "null":
            return True
        if s in named and s not in seen:
            return _zero_width(named[s], named, seen | {s})
        return False
    if isinstance(s, list):
        return False  # the branch index takes a byte
    t = s.get("type")
    if isinstance(t, (dict, list)):
        return _zero_width(t, named, seen)
    if t == "null":
        return True
    if t == "fixed":
        return int(s.get("size", 1)) == 0
    if t in ("record", "error"):
        name = s.get("name", "")
        return name not in seen and all(
            _zero_width(f["type"], named, seen | {name}) for f in s.get("fields", ())
        )
    if isinstance(t, str) and t in named:
        return _zero_width(t, named, seen)
    return False


class _Walker:
    """Skips over an Avro payload, enforcing MAX_NESTING and MAX_ZERO_WIDTH_ITEMS."""

    _SIZES = {"null": 0, "boolean": 1, "float": 4, "double": 8}

    def __init__(self, named: dict[str, Any], data: bytes) -> None:
        self.named = named
        self.data = data
        self.pos = 5
        self.zero_items = 0

    def run(self, schema: Any) -> None:
        self.skip(schema, 0)

    def fail(self, why: str) -> NoReturn:
        """Reject the payload: raise :class:`SerdeError` saying why and where."""
        msg = f"rejected payload: {why} (at byte {self.pos}): {preview(self.data)}"
        raise SerdeError(msg)

    def long(self) -> int:
        data, pos, shift, acc = self.data, self.pos, 0, 0
        while True:
            if pos >= len(data):
                self.fail("payload truncated inside a number")
            b = data[pos]
            pos += 1
            acc |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 63:
                self.fail("malformed variable-length number")
        self.pos = pos
        return (acc >> 1) ^ -(acc & 1)

    def advance(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            self.fail(f"length {n} exceeds the payload")
        self.pos += n

    def skip(self, s: Any, depth: int) -> None:
        if depth > MAX_NESTING:
            self.fail(f"value nested deeper than {MAX_NESTING} levels")
        if isinstance(s, list):
            index = self.long()
            if not 0 <= index < len(s):
                self.fail(f"union branch {index} out of range")
            self.skip(s[index], depth + 1)
            return
        t = s.get("type") if isinstance(s, dict) else s
        if isinstance(t, (dict, list)):
            self.skip(t, depth)
            return
        if t in self._SIZES:
            self.advance(self._SIZES[t])
        elif t in ("int", "long", "enum"):
            self.long()
        elif t in ("bytes", "string"):
            self.advance(self.long())
        elif t == "fixed":
            self.advance(int(s["size"]))
        elif t in ("record", "error"):
            for f in s.get("fields", ()):
                self.skip(f["type"], depth + 1)
        elif t in ("array", "map"):
            self.blocks(s, t, depth)
        elif t in self.named:
            self.skip(self.named[t], depth)
        else:
            self.fail(f"unknown type {t!r}")

    def blocks(self, s: Any, t: str, depth: int) -> None:
        inner = s["items"] if t == "array" else s["values"]
        zero = t == "array" and _zero_width(inner, self.named, set())
        while True:
            count = self.long()
            if count == 0:
                return
            if count < 0:
                count = -count
                self.long()  # block size in bytes
            if zero:
                self.zero_items += count
                if self.zero_items > MAX_ZERO_WIDTH_ITEMS:
                    self.fail(f"more than {MAX_ZERO_WIDTH_ITEMS} items of a zero-size type")
                continue
            if count > len(self.data) - self.pos:
                self.fail(f"block of {count} items exceeds the payload")
            for _ in range(count):
                if t == "map":
                    self.advance(self.long())
                self.skip(inner, depth + 1)
