"""``Record``: the immutable record user functions see."""

from __future__ import annotations

import copy
import pickle

import pytest

from streamflow import Record


def full_record() -> Record:
    return Record("k", {"n": 1}, 1000, [("h", b"1")], "orders", 2, 42)


def test_record_fields_default_to_no_timestamp_headers_or_position() -> None:
    r = Record("k", "v")
    assert (r.key, r.value, r.timestamp, r.headers) == ("k", "v", 0, None)
    assert (r.topic, r.partition, r.offset) == (None, None, None)


@pytest.mark.parametrize("field", ["key", "value", "timestamp", "headers"])
def test_setting_a_changeable_field_raises_and_names_the_with_method(field: str) -> None:
    r = full_record()
    with pytest.raises(AttributeError, match=rf"immutable; use with_{field}\(\)"):
        setattr(r, field, "changed")
    assert hasattr(r, f"with_{field}")
    assert r == full_record()


@pytest.mark.parametrize("field", ["topic", "partition", "offset"])
def test_setting_a_position_field_raises_without_suggesting_a_missing_method(field: str) -> None:
    r = full_record()
    with pytest.raises(AttributeError, match="immutable") as e:
        setattr(r, field, "changed")
    assert "with_" not in str(e.value)
    assert r == full_record()


def test_new_attributes_and_deletion_are_refused() -> None:
    r = full_record()
    with pytest.raises(AttributeError, match="immutable"):
        r.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="immutable"):
        del r.key


def test_with_key_returns_changed_copy_and_leaves_original() -> None:
    r = full_record()
    r2 = r.with_key("other")
    assert r2.key == "other"
    assert r.key == "k"
    assert r2 is not r
    assert r2 == Record("other", {"n": 1}, 1000, [("h", b"1")], "orders", 2, 42)


def test_with_value_returns_changed_copy_and_leaves_original() -> None:
    r = full_record()
    r2 = r.with_value({"n": 2})
    assert r2.value == {"n": 2}
    assert r.value == {"n": 1}
    assert (r2.key, r2.timestamp, r2.headers, r2.topic, r2.partition, r2.offset) == (
        "k", 1000, [("h", b"1")], "orders", 2, 42,
    )


def test_with_timestamp_returns_changed_copy_and_leaves_original() -> None:
    r = full_record()
    r2 = r.with_timestamp(2000)
    assert (r.timestamp, r2.timestamp) == (1000, 2000)
    assert r2.with_timestamp(1000) == r


def test_with_headers_returns_changed_copy_and_leaves_original() -> None:
    r = full_record()
    r2 = r.with_headers([("x", b"2")])
    assert r2.headers == [("x", b"2")]
    assert r.headers == [("h", b"1")]
    assert r.with_headers(None).headers is None


def test_header_returns_last_value_of_a_name_or_none() -> None:
    r = Record("k", "v", headers=[("a", b"1"), ("b", b"2"), ("a", b"3")])
    assert r.header("a") == b"3"
    assert r.header("b") == b"2"
    assert r.header("missing") is None
    assert Record("k", "v").header("a") is None


def test_records_with_equal_fields_are_equal_and_hash_alike() -> None:
    a, b = full_record(), full_record()
    assert a == b
    assert hash(a) == hash(b)
    assert len({Record("k", 1, 5), Record("k", 1, 5)}) == 1


@pytest.mark.parametrize(
    "other",
    [
        Record("x", {"n": 1}, 1000, [("h", b"1")], "orders", 2, 42),
        Record("k", {"n": 2}, 1000, [("h", b"1")], "orders", 2, 42),
        Record("k", {"n": 1}, 1001, [("h", b"1")], "orders", 2, 42),
        Record("k", {"n": 1}, 1000, None, "orders", 2, 42),
        Record("k", {"n": 1}, 1000, [("h", b"1")], "other", 2, 42),
        Record("k", {"n": 1}, 1000, [("h", b"1")], "orders", 3, 42),
        Record("k", {"n": 1}, 1000, [("h", b"1")], "orders", 2, 43),
    ],
    ids=["key", "value", "timestamp", "headers", "topic", "partition", "offset"],
)
def test_records_differing_in_any_field_are_not_equal(other: Record) -> None:
    assert full_record() != other


def test_record_is_not_equal_to_a_tuple_of_its_fields() -> None:
    assert Record("k", "v") != ("k", "v")


def test_repr_shows_every_field() -> None:
    text = repr(Record("k", 1, 5, None, "t", 0, 7))
    assert text == (
        "Record(key='k', value=1, timestamp=5, headers=None, topic='t', partition=0, offset=7)"
    )


@pytest.mark.parametrize(
    "clone",
    [copy.copy, copy.deepcopy, lambda r: pickle.loads(pickle.dumps(r))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_record_can_be_copied_and_pickled(clone) -> None:  # type: ignore[no-untyped-def]
    r = full_record()
    assert clone(r) == r
