"""The four steps of a foreign-key join (see ``streamflow.dsl.foreign_key``).

Kafka Streams' ``SubscriptionWrapper`` and ``SubscriptionResponseWrapper`` become two small
byte layouts, the values of the internal topics (their keys are serialized with the tables'
key serdes, so they are partitioned like the tables):

- subscription: ``version | instruction | 16-byte hash of the left value | left key bytes``;
- response: ``version | 16-byte hash | (1 | right value bytes)``, or without the last part
  when there is no right row.

The hash is BLAKE2b-128 of the left value as sorted-key JSON. Instructions, as Kafka Streams':
``UNSUBSCRIBE`` (the left row moved to another foreign key, or was deleted: no answer),
``PROPAGATE`` (answer, with no value when the right row is missing: a left join, or an inner
join's updated row, so an earlier result is retracted) and ``PROPAGATE_IF_FOUND`` (an inner
join's new row, which has no result yet: answer only when the right row exists).

Deliberate differences from Kafka Streams:

- An inner join's update that keeps its foreign key asks for ``PROPAGATE``, where Kafka
  Streams asks for ``PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE``. A row that moved to a missing
  right row and was updated again before the answer came back would otherwise keep its old
  result: the move's answer (which retracts it) no longer matches the row and is dropped, and
  the update's gets no answer. The cost is a tombstone for a key without a result when an
  update keeps a missing right row. (Found by the property test of
  ``tests/unit/test_foreign_key_properties.py``.)
- A left delete, or a None foreign key, is resolved on the left side at once (Kafka Streams
  sends ``DELETE_KEY_AND_PROPAGATE`` and emits the tombstone or ``joiner(value, None)`` when
  the answer comes back); the responses still on their way then no longer match and are
  dropped, so the results are the same, only sooner.
- The answer is sent to the partition of the left key's bytes, where Kafka Streams names the
  left partition in the subscription (KIP-775, custom partitioners).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson

from streamflow.dsl.nodes import ForeignKeyJoin
from streamflow.plan.context import Step, StepError
from streamflow.plan.wiring import Wiring
from streamflow.record import Headers
from streamflow.serde import Json, SerdeUnavailable
from streamflow.state.keys import encode_key, prefix_end

VERSION = 0
UNSUBSCRIBE = 0
PROPAGATE = 1
PROPAGATE_IF_FOUND = 2
NO_HASH = bytes(16)


def value_hash(value: Any) -> bytes:
    """The 16-byte hash a subscription carries of its left value.

    >>> value_hash({"b": 1, "a": 2}) == value_hash({"a": 2, "b": 1})
    True
    """
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
                        default=repr)
    return hashlib.blake2b(data, digest_size=16).digest()


def subscription(instruction: int, digest: bytes, left_key: bytes) -> bytes:
    """A subscription record's value."""
    return bytes((VERSION, instruction)) + digest + left_key


def parse_subscription(data: bytes) -> tuple[int, bytes, bytes]:
    """``(instruction, hash, left key bytes)`` of a subscription record's value."""
    if len(data) < 18 or data[0] != VERSION or data[1] > PROPAGATE_IF_FOUND:
        msg = f"not a foreign-key subscription of version {VERSION}: {data[:18]!r}"
        raise ValueError(msg)
    return data[1], data[2:18], data[18:]


def response(digest: bytes, right_value: bytes | None) -> bytes:
    """A response record's value."""
    head = bytes((VERSION,)) + digest
    return head if right_value is None else head + b"\x01" + right_value


def parse_response(data: bytes) -> tuple[bytes, bytes | None]:
    """``(hash, right value bytes or None)`` of a response record's value."""
    if len(data) < 17 or data[0] != VERSION or (len(data) > 17 and data[17] != 1):
        msg = f"not a foreign-key response of version {VERSION}: {data[:18]!r}"
        raise ValueError(msg)
    return data[1:17], (data[18:] if len(data) > 17 else None)


def _subscriber_prefix(foreign_key: bytes) -> bytes:
    """The subscription store's keys are ``len(fk) | fk | left key bytes``, stored as bytes keys.

    ``foreign_key`` is the store encoding of the foreign key (``encode_key``); the whole key is
    ``encode_key`` of those bytes, so the store's ``items()`` reads it back as bytes.
    """
    return encode_key(len(foreign_key).to_bytes(4, "big") + foreign_key)


def _guarded(name: str, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``fn`` (a serializer) with its failures as produce-phase ``StepError``s."""

    def call(value: Any) -> Any:
        try:
            return fn(value)
        except SerdeUnavailable:
            raise  # an outage, not a bad record
        except Exception as e:
            raise StepError(name, e, "produce") from e

    return call


def _right_serde(w: Wiring, node: ForeignKeyJoin) -> tuple[Callable[[Any], Any],
                                                             Callable[[Any], Any]]:
    """How right values travel on the response topic: the right store's own serde."""
    spec = w.processor.stores[node.right_store]
    serde = spec.value_serde or Json()
    ctx = w.ctx.serde_ctx
    return (_guarded(node.name, serde.serializer(spec.changelog, False, ctx)),
            serde.deserializer(spec.changelog, False, ctx))


def _subscribe(w: Wiring, node: ForeignKeyJoin) -> Step:
    """Left-table updates: keep the left row, (un)subscribe, resolve deletes at once."""
    store = w.store(node.stores[0])
    get = store.get_raw_key
    put = store.put_raw_key
    fk_of = node.foreign_key
    joiner = node.joiner
    keep_unmatched = node.left
    name = node.name
    fk_bytes = _guarded(name, w.serializers_for(node.subscription_topic)[0])
    key_bytes = _guarded(name, w.serializers_for(node.response_topic)[0])
    topic = node.subscription_topic
    emit = w.ctx.emit
    result = w.downstream(w.processor.nodes[node.result])

    def subscribe(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        if k is None:
            return
        kb = encode_key(k)
        old = get(kb)
        try:
            old_fk = None if old is None else fk_of(old)  # type: ignore[misc]
            new_fk = None if v is None else fk_of(v)  # type: ignore[misc]
        except Exception as e:
            raise StepError(name, e) from e
        lkb = key_bytes(k)
        old_fkb = None if old_fk is None else fk_bytes(old_fk)
        new_fkb = None if new_fk is None else fk_bytes(new_fk)
        put(kb, v)  # None deletes
        moved = old_fkb is not None and old_fkb != new_fkb
        if moved:
            emit(topic, old_fkb, subscription(UNSUBSCRIBE, NO_HASH, lkb), ts, h)
        if new_fkb is not None:
            # an updated row may have a result to retract even when it kept its foreign key:
            # the answer to its move there may have been dropped as stale (see the docstring)
            how = PROPAGATE if keep_unmatched or old is not None else PROPAGATE_IF_FOUND
            emit(topic, new_fkb, subscription(how, value_hash(v), lkb), ts, h)
        elif v is not None and keep_unmatched:  # no foreign key: no right row
            try:
                out = joiner(v, None)  # type: ignore[misc]
            except Exception as e:
                raise StepError(name, e) from e
            result(k, out, ts, h)
        elif old is not None:  # deleted, or no foreign key in an inner join
            result(k, None, ts, h)

    return subscribe


def _lookup(w: Wiring, node: ForeignKeyJoin) -> Step:
    """Subscriptions: store or drop them, answer with the right row."""
    subs = w.store(node.stores[0])
    put = subs.put_raw_key
    right_get = w.store(node.right_store).get_raw_key
    right_bytes = _right_serde(w, node)[0]
    topic = node.response_topic
    emit = w.ctx.emit
    name = node.name

    def lookup(fk: Any, v: Any, ts: int, h: Headers | None) -> None:
        if fk is None or v is None:
            return
        try:
            how, digest, lkb = parse_subscription(v)
        except ValueError as e:
            raise StepError(name, e, "deserialize") from e
        efk = encode_key(fk)
        sub_key = _subscriber_prefix(efk) + lkb
        if how == UNSUBSCRIBE:
            put(sub_key, None)
            return
        put(sub_key, digest.hex())
        right = right_get(efk)
        if right is None and how == PROPAGATE_IF_FOUND:
            return
        emit(topic, lkb, response(digest, None if right is None else right_bytes(right)), ts, h)

    return lookup


def _update(w: Wiring, node: ForeignKeyJoin) -> Step:
    """Right-table updates and deletes: answer every left key subscribed to the row."""
    scan = w.store(node.stores[0]).scan_raw
    right_bytes = _right_serde(w, node)[0]
    topic = node.response_topic
    emit = w.ctx.emit

    def update(fk: Any, v: Any, ts: int, h: Headers | None) -> None:
        if fk is None:
            return
        prefix = _subscriber_prefix(encode_key(fk))
        rvb = None if v is None else right_bytes(v)
        cut = len(prefix)
        for sub_key, digest in list(scan(prefix, prefix_end(prefix))):
            emit(topic, sub_key[cut:], response(bytes.fromhex(digest), rvb), ts, h)

    return update


def _resolve(w: Wiring, node: ForeignKeyJoin) -> Step:
    """Responses: join those whose hash matches the current left value, drop the others."""
    get = w.store(node.stores[0]).get_raw_key
    right_value = _right_serde(w, node)[1]
    joiner = node.joiner
    keep_unmatched = node.left
    name = node.name
    metrics = w.ctx.metrics
    stale = f"{name}.stale_responses"
    nxt = w.downstream(node)

    def resolve(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        if k is None or v is None:
            return
        try:
            digest, rvb = parse_response(v)
            right = None if rvb is None else right_value(rvb)
        except SerdeUnavailable:
            raise
        except Exception as e:
            raise StepError(name, e, "deserialize") from e
        current = get(encode_key(k))
        if current is None or value_hash(current) != digest:
            metrics[stale] = metrics.get(stale, 0) + 1
            return
        if right is None and not keep_unmatched:
            nxt(k, None, ts, h)
            return
        try:
            out = joiner(current, right)  # type: ignore[misc]
        except Exception as e:
            raise StepError(name, e) from e
        nxt(k, out, ts, h)

    return resolve


_ROLES: dict[str, Callable[[Wiring, ForeignKeyJoin], Step]] = {
    "subscribe": _subscribe,
    "lookup": _lookup,
    "update": _update,
    "resolve": _resolve,
}


def build_foreign_key_join(w: Wiring, node: ForeignKeyJoin) -> Step:
    """The step of one of a foreign-key join's four roles (``node.role``)."""
    return _ROLES[node.role](w, node)
