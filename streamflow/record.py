"""The immutable record that user functions see."""

from __future__ import annotations

from typing import Any

Headers = list[tuple[str, bytes]]


class Record:
    """One Kafka record: key, value, event timestamp (ms), headers and where it came from.

    Records are immutable; change one with ``with_value()`` and friends, which return a copy::

        >>> r = Record("k", 1, 1000)
        >>> r.with_value(2).value
        2
    """

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    key: Any
    value: Any
    timestamp: int
    headers: Headers | None
    topic: str | None
    partition: int | None
    offset: int | None

    def __init__(
        self,
        key: Any,
        value: Any,
        timestamp: int = 0,
        headers: Headers | None = None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        s = object.__setattr__
        s(self, "key", key)
        s(self, "value", value)
        s(self, "timestamp", timestamp)
        s(self, "headers", headers)
        s(self, "topic", topic)
        s(self, "partition", partition)
        s(self, "offset", offset)

    def __setattr__(self, name: str, value: Any) -> None:
        hint = f"; use with_{name}() to make a changed copy" if name in _CHANGEABLE else ""
        msg = f"Record is immutable{hint}"
        raise AttributeError(msg)

    def __delattr__(self, name: str) -> None:
        msg = "Record is immutable"
        raise AttributeError(msg)

    def __reduce__(self) -> tuple[type[Record], tuple[Any, ...]]:
        # copy, deepcopy and pickle rebuild through __init__ (the default sets slots one by one)
        return (Record, tuple(getattr(self, n) for n in _FIELDS))

    # the copies call the constructor directly (they are on the per-record path of user
    # functions that change one field)
    def with_key(self, key: Any) -> Record:
        """Return a copy with another key."""
        return Record(key, self.value, self.timestamp, self.headers, self.topic,
                      self.partition, self.offset)

    def with_value(self, value: Any) -> Record:
        """Return a copy with another value."""
        return Record(self.key, value, self.timestamp, self.headers, self.topic,
                      self.partition, self.offset)

    def with_timestamp(self, timestamp: int) -> Record:
        """Return a copy with another event timestamp (milliseconds since the epoch)."""
        return Record(self.key, self.value, timestamp, self.headers, self.topic,
                      self.partition, self.offset)

    def with_headers(self, headers: Headers | None) -> Record:
        """Return a copy with other headers (a list of ``(name, bytes)`` pairs)."""
        return Record(self.key, self.value, self.timestamp, headers, self.topic,
                      self.partition, self.offset)

    def header(self, name: str) -> bytes | None:
        """Return the last header called ``name``, or None."""
        found = None
        for k, v in self.headers or ():
            if k == name:
                found = v
        return found

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _FIELDS)

    def __hash__(self) -> int:
        return hash((self.key, self.timestamp, self.topic, self.partition, self.offset))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in _FIELDS)
        return f"Record({inner})"


_FIELDS = ("key", "value", "timestamp", "headers", "topic", "partition", "offset")
_CHANGEABLE = frozenset(("key", "value", "timestamp", "headers"))
