"""Restoring a topic table's store from its source topic (``table(topic, changelog="source")``).

Kafka Streams' source-topic changelogs (``reuse.ktable.source.topics``; see
:mod:`streamflow.dsl.source_reuse`). The :class:`~streamflow.runtime.restore.Restorer` reads
the source topic partition from the local checkpoint (or its beginning) up to the group's
committed offset of that partition, not to its end: the records after it are input the task
processes once it runs (time-aligned with its streams, ``runtime/alignment.py``).

A source record is not a row yet: it is turned into exactly what the table's update step
(``plan.stateful.materialize``) would have kept for it: the key decoded with the topic's key
serde and encoded as a store key, the value decoded with the topic's value serde and kept with
the store's (a timestamp, then ``StoredAs``' marked bytes); a null key (or one decoding to
None) is ignored and a null value deletes the row, as the update step does.

A record whose key or value cannot be decoded was handled by the processor's
``on_deserialize_error`` policy when it was first processed (it is below the committed
offset): under ``skip``, ``dead_letter`` and a policy function it is skipped here too (not
dead-lettered twice, no function called again: as global tables do); under ``fail`` the
restore fails with the record's position, as processing it would.
"""

from __future__ import annotations

import logging
from typing import Any

from streamflow.runtime.errors import ProcessingFailed, where
from streamflow.serde import SerdeContext, SerdeUnavailable
from streamflow.state.keys import encode_key
from streamflow.state.store import TimestampedStore

log = logging.getLogger("streamflow.restore")

__all__ = ["SourceRows"]

Batch = list[tuple[bytes, "bytes | None"]]


class SourceRows:
    """Turns records of a table's source topic into its store's rows (see the module docstring).

    ``serdes`` are the topic's key and value serdes; ``fail``: the processor's
    ``on_deserialize_error`` is ``"fail"``.
    """

    def __init__(self, store: TimestampedStore, topic: str, serdes: tuple[Any, Any],
                 serde_ctx: SerdeContext, fail: bool) -> None:
        key_serde, value_serde = serdes
        self.store = store.name
        self._kd = key_serde.deserializer(topic, True, serde_ctx)
        self._vd = value_serde.deserializer(topic, False, serde_ctx)
        self._encode = store.encode_row
        self._fail = fail
        self.skipped = 0  # records that could not be decoded (skipped under the policy)

    def rows(self, msgs: list[Any]) -> Batch:
        """The rows written (or deleted: None) by ``msgs``, in order."""
        batch: Batch = []
        kd, vd, encode = self._kd, self._vd, self._encode
        for m in msgs:
            kb = m.key()
            if kb is None:
                continue
            try:
                k = kd(kb)
                v = vd(m.value())
            except SerdeUnavailable:
                raise  # an outage, not a bad record
            except Exception as e:
                self._bad(m, e)
                continue
            if k is None:
                continue
            batch.append((encode_key(k), None if v is None else encode(v, m.timestamp()[1])))
        return batch

    def _bad(self, m: Any, e: BaseException) -> None:
        at = where(m.topic(), m.partition(), m.offset())
        if self._fail:
            msg = (f"the restore of table store {self.store!r} from its source topic cannot "
                   f"decode record {at}: {e}; fix or delete the record (a tombstone for its "
                   "key), or set on_deserialize_error to 'skip' to leave it out of the table")
            raise ProcessingFailed(msg) from e
        self.skipped += 1
        log.warning("restore of store %s: record %s skipped, it cannot be decoded: %s",
                    self.store, at, e)

