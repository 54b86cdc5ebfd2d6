"""The pure-Python Avro compatibility checker: resolution rules and levels, by hand cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamflow.serde.compat import Incompatibility, InvalidSchema, can_read, check, explain

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def rec(*fields: dict[str, Any], name: str = "Payment", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "com.example", "fields": list(fields),
            **extra}


def f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def changes(issues: list[Incompatibility]) -> list[tuple[str, str]]:
    return [(i.path, i.change) for i in issues]


# -- primitives and promotions --------------------------------------------------------------

PROMOTIONS = [("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"),
              ("long", "double"), ("float", "double"), ("string", "bytes"), ("bytes", "string")]
PRIMS = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]


@pytest.mark.parametrize("writer", PRIMS)
@pytest.mark.parametrize("reader", PRIMS)
def test_primitive_reads_follow_the_promotion_table(reader: str, writer: str) -> None:
    ok = reader == writer or (writer, reader) in PROMOTIONS
    issues = can_read(reader, writer)
    assert (issues == []) is ok
    if not ok:
        assert issues[0].change == f"type changed: writer has {writer}, reader has {reader}"
        assert "only promotes int→long→float→double and string↔bytes" in issues[0].reason


def test_promotion_inside_a_record_field() -> None:
    assert can_read(rec(f("amount", "long")), rec(f("amount", "int"))) == []
    issues = can_read(rec(f("amount", "int")), rec(f("amount", "long")))
    assert changes(issues) == [("Payment.amount", "type changed: writer has long, reader has int")]


# -- records ---------------------------------------------------------------------------------


def test_added_field_without_default_breaks_backward_with_a_fix_hint() -> None:
    old = rec(f("id", "string"))
    new = rec(f("id", "string"), f("amount", "double"))
    [issue] = check(new, [old], "BACKWARD")
    assert issue.path == "Payment.amount"
    assert issue.change == "field added without a default"
    assert "default" in issue.reason and "'amount' (double)" in issue.reason
    assert issue.against == "new schema reading data written with the previous version"
    assert str(issue).startswith("Payment.amount: field added without a default (new schema")


def test_added_field_with_default_is_fully_compatible() -> None:
    old = rec(f("id", "string"))
    new = rec(f("id", "string"), f("note", ["null", "string"], default=None))
    assert check(new, [old], "FULL_TRANSITIVE") == []


def test_removed_field_breaks_forward_only_when_the_old_schema_has_no_default() -> None:
    old = rec(f("id", "string"), f("amount", "double"))
    new = rec(f("id", "string"))
    assert check(new, [old], "BACKWARD") == []
    [issue] = check(new, [old], "FORWARD")
    assert (issue.path, issue.change) == ("Payment.amount",
                                          "field removed that has no default in the older schema")
    assert issue.against == "the previous version reading data written with the new schema"
    old_with_default = rec(f("id", "string"), f("amount", "double", default=0.0))
    assert check(new, [old_with_default], "FULL") == []


def test_field_renamed_with_alias_is_compatible_and_without_is_not() -> None:
    old = rec(f("amt", "double"))
    assert can_read(rec(f("amount", "double", aliases=["amt"])), old) == []
    assert changes(can_read(rec(f("amount", "double")), old)) == [
        ("Payment.amount", "reader field missing from the writer and has no default")]


def test_type_change_of_a_field_in_both_directions() -> None:
    old, new = rec(f("amount", "double")), rec(f("amount", "string"))
    issues = check(new, [old], "FULL")
    assert changes(issues) == [("Payment.amount", "type changed from double to string")] * 2
    assert "add a new field" in issues[0].reason


def test_record_names_match_unqualified_or_by_alias() -> None:
    writer = rec(f("id", "string"), name="Payment")
    moved = {**rec(f("id", "string")), "namespace": "org.other"}
    assert can_read(moved, writer) == []  # namespace moves are fine (as in Java/registries)
    renamed = rec(f("id", "string"), name="Charge")
    [issue] = check(renamed, [writer], "BACKWARD")
    assert issue.change == "record renamed from com.example.Payment to com.example.Charge"
    assert 'give the new com.example.Charge "aliases": ["com.example.Payment"]' in issue.reason
    aliased = rec(f("id", "string"), name="Charge", aliases=["Payment"])
    assert can_read(aliased, writer) == []
    aliased_full = rec(f("id", "string"), name="Charge", aliases=["com.example.Payment"])
    assert can_read(aliased_full, writer) == []


def test_nested_records_report_the_full_path() -> None:
    def order(amount_type: str) -> dict[str, Any]:
        money = {"type": "record", "name": "Money",
                 "fields": [f("amount", amount_type), f("currency", "string")]}
        line = {"type": "record", "name": "Line", "fields": [f("sku", "string"), f("price", money)]}
        return rec(f("lines", {"type": "array", "items": line}),
                   f("totals", {"type": "map", "values": "Money"}), name="Order")

    issues = check(order("string"), [order("double")], "BACKWARD")
    assert changes(issues) == [
        ("Order.lines[].price.amount", "type changed from double to string"),
        ("Order.totals{}.amount", "type changed from double to string"),
    ]
    assert check(order("double"), [order("float")], "BACKWARD") == []


def test_recursive_records_terminate() -> None:
    def node(value_type: str) -> dict[str, Any]:
        return rec(f("value", value_type), f("next", ["null", "Node"]), name="Node")

    assert can_read(node("long"), node("int")) == []
    assert changes(can_read(node("int"), node("long"))) == [
        ("Node.value", "type changed: writer has long, reader has int")]


# -- enums, fixed ------------------------------------------------------------------------------


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": "Status", "symbols": list(symbols), **extra}


def test_enum_symbols_added_break_forward_and_removed_break_backward() -> None:
    v1, v2 = enum("NEW", "PAID"), enum("NEW", "PAID", "REFUNDED")
    assert check(v2, [v1], "BACKWARD") == []
    [issue] = check(v2, [v1], "FORWARD")
    assert (issue.path, issue.change) == ("Status", "enum symbols added: REFUNDED")
    [issue] = check(v1, [v2], "BACKWARD")
    assert issue.change == "enum symbols removed: REFUNDED"


def test_enum_default_absorbs_unknown_symbols() -> None:
    assert can_read(enum("NEW", "PAID", "UNKNOWN", default="UNKNOWN"),
                    enum("NEW", "PAID", "REFUNDED")) == []


@pytest.mark.parametrize(("reader_size", "ok"), [(16, True), (8, False)])
def test_fixed_sizes_must_match(reader_size: int, ok: bool) -> None:
    w = {"type": "fixed", "name": "Hash", "size": 16}
    r = {"type": "fixed", "name": "Hash", "size": reader_size}
    issues = check(r, [w], "BACKWARD")
    assert (issues == []) is ok
    if not ok:
        assert issues[0].change == "fixed size changed from 16 to 8"


def test_fixed_and_bytes_do_not_mix() -> None:
    assert can_read("bytes", {"type": "fixed", "name": "H", "size": 4}) != []


# -- arrays, maps ------------------------------------------------------------------------------


def test_arrays_and_maps_compare_items_and_values() -> None:
    assert can_read({"type": "array", "items": "long"}, {"type": "array", "items": "int"}) == []
    narrowed = can_read({"type": "array", "items": "int"}, {"type": "array", "items": "long"})
    assert changes(narrowed) == [("array<int>[]", "type changed: writer has long, reader has int")]
    assert can_read({"type": "map", "values": "double"}, {"type": "map", "values": "float"}) == []
    assert can_read({"type": "map", "values": "long"}, {"type": "array", "items": "long"}) != []


# -- unions ------------------------------------------------------------------------------------


def test_making_a_field_optional_is_backward_but_not_forward_compatible() -> None:
    old = rec(f("note", "string"))
    new = rec(f("note", ["null", "string"], default=None))
    assert check(new, [old], "BACKWARD") == []
    [issue] = check(new, [old], "FORWARD")
    assert issue.path == "Payment.note"
    assert issue.change == "type changed from string to union[null, string]"
    assert "data written as null cannot be read as string" in issue.reason


def test_union_branches_added_and_removed() -> None:
    v1 = ["null", "string"]
    v2 = ["null", "string", "long"]
    assert check(v2, [v1], "BACKWARD") == []
    assert [i.change for i in check(v2, [v1], "FORWARD")] == ["union branch added: long"]
    assert [i.change for i in check(v1, [v2], "BACKWARD")] == ["union branch removed: long"]


def test_writer_branch_readable_through_promotion_in_a_reader_union() -> None:
    assert can_read(["null", "double"], ["null", "int"]) == []
    assert can_read(["null", "long"], "int") == []
    assert changes(can_read(["null", "long"], "string")) == [
        ("union[null, long]", "reader union lacks writer type string")]


def test_union_of_records_explains_what_changed_inside_the_matching_branch() -> None:
    card = {"type": "record", "name": "Card", "fields": [f("number", "string")]}
    card2 = {"type": "record", "name": "Card", "fields": [f("number", "long")]}
    old = rec(f("method", ["null", card]))
    new = rec(f("method", ["null", card2]))
    assert changes(check(new, [old], "BACKWARD")) == [
        ("Payment.method.number", "type changed from string to long")]


def test_non_union_reader_of_a_union_writer_reports_each_lost_branch() -> None:
    issues = can_read("long", ["null", "int", "string"])
    assert len(issues) == 1
    assert "null, string" in issues[0].reason


# -- logical types (stricter than registries) --------------------------------------------------


def test_decimal_scale_change_is_flagged() -> None:
    def dec(p: int, s: int) -> dict[str, Any]:
        return rec(f("amount", {"type": "bytes", "logicalType": "decimal", "precision": p,
                                "scale": s}))

    assert check(dec(12, 2), [dec(10, 2)], "BACKWARD") == []
    [issue] = check(dec(10, 3), [dec(10, 2)], "BACKWARD")
    assert issue.change == "decimal scale changed from 2 to 3"
    [issue] = check(dec(8, 2), [dec(10, 2)], "BACKWARD")
    assert issue.change == "decimal precision changed from 10 to 8"


def test_time_unit_change_is_flagged_but_adding_a_logical_type_is_not() -> None:
    millis = rec(f("ts", {"type": "long", "logicalType": "timestamp-millis"}))
    micros = rec(f("ts", {"type": "long", "logicalType": "timestamp-micros"}))
    plain = rec(f("ts", "long"))
    [issue] = check(micros, [millis], "BACKWARD")
    assert issue.change == "logical type changed from timestamp-millis to timestamp-micros"
    assert check(millis, [plain], "FULL") == []


# -- levels --------------------------------------------------------------------------------------

V1 = rec(f("id", "string"))
V2 = rec(f("id", "string"), f("amount", "double", default=0.0))
V3 = rec(f("id", "string"), f("amount", "double"))  # default dropped: v1 data unreadable


@pytest.mark.parametrize(("level", "n_issues"), [
    ("NONE", 0),
    ("BACKWARD", 0),
    ("BACKWARD_TRANSITIVE", 1),
    ("FORWARD", 0),
    ("FORWARD_TRANSITIVE", 0),
    ("FULL", 0),
    ("FULL_TRANSITIVE", 1),
    ("backward_transitive", 1),
])
def test_levels_check_latest_or_all_versions(level: str, n_issues: int) -> None:
    issues = check(V3, [V1, V2], level)
    assert len(issues) == n_issues
    if issues:
        assert issues[0].against == (
            "new schema reading data written with previous version #1 of 2")


def test_versions_can_be_given_by_number() -> None:
    [issue] = check(V3, {1: V1, 2: V2}, "BACKWARD_TRANSITIVE")
    assert issue.against == "new schema reading data written with version 1"


def test_no_previous_versions_means_nothing_to_check() -> None:
    assert check(V3, [], "FULL_TRANSITIVE") == []


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown compatibility level 'SIDEWAYS'"):
        check(V1, [V1], "SIDEWAYS")


# -- inputs ---------------------------------------------------------------------------------------


def test_schemas_may_be_json_text_paths_or_primitive_names() -> None:
    path = SCHEMAS / "payment.avsc"
    text = path.read_text()
    assert can_read(path, text) == []
    assert can_read(json.loads(text), str(path.read_text())) == []
    assert can_read("long", '"int"') == []


def test_example_contracts_are_self_compatible() -> None:
    for p in sorted(SCHEMAS.glob("*.avsc")):
        assert check(p, [p], "FULL_TRANSITIVE") == [], p


@pytest.mark.parametrize(("schema", "message"), [
    ({"type": "record", "name": "R", "fields": [{"name": "x", "type": "Nope"}]}, "unknown type"),
    ({"type": "record", "fields": []}, "without a name"),
    ({"type": "enum", "name": "E"}, "symbols"),
    ({"type": "fixed", "name": "F"}, "size"),
    ({"type": "array"}, "items"),
    ("{not json", "not valid JSON"),
    (42, "expected a type name"),
])
def test_invalid_schemas_raise_invalid_schema(schema: Any, message: str) -> None:
    with pytest.raises(InvalidSchema, match=message):
        can_read(schema, "string")


def test_explain_renders_a_list() -> None:
    issues = check(rec(f("id", "long")), [rec(f("id", "string"))], "BACKWARD")
    assert explain(issues) == (
        "  - Payment.id: type changed from string to long (new schema reading data written "
        "with the previous version): long cannot be read from string data (Avro only promotes "
        "int→long→float→double and string↔bytes); to change a field's type, add a new field "
        "(with a default) and deprecate the old one"
    )
    assert explain([]) == ""
