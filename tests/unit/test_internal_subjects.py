"""The registry subjects of stores and internal topics: listed, checked, registered, required.

A store or internal topic that keeps a topic's Avro values (``streamflow.serde.stored``) writes
them under its own subject (``<changelog or internal topic>-value``). With
``auto_register=False`` nothing registers those at run time, so ``streamflow schemas
register`` must, a worker without them must refuse to start saying so, and ``schemas check``
and ``check`` must judge them like the declared ones.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

import streamflow as sf
from streamflow.kafka.registry import RegistryClient, make_registry_client
from streamflow.ops.check import check_topology
from streamflow.ops.schemas import check_schemas, register_schemas
from streamflow.ops.subjects import list_subjects
from streamflow.runtime.contracts import ContractError, check_processor
from streamflow.serde import SerdeContext
from streamflow.serde.join_values import SideValues, UnmatchedSerde, ValueList
from streamflow.serde.stored import StoredAs, row_serde
from streamflow.testing import TopologyTestDriver
from tests.unit.test_schemas_cli import run

PRICE = {"type": "record", "name": "Price", "namespace": "test", "fields": [
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 8,
                                "scale": 2}},
    {"name": "since", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}
SINCE = datetime(2026, 1, 1, tzinfo=UTC)

# the subjects streamflow writes itself in `priced()`
REPARTITION = "kept-p-by-amount-repartition-value"
LATEST = "kept-p-latest-changelog-value"
ROWS = "kept-p-rows-changelog-value"
WINDOWED = "kept-p-wlatest-changelog-value"
PAIR = ("kept-p-pair-left-changelog-value", "kept-p-pair-right-changelog-value")
INTERNAL = {REPARTITION, LATEST, ROWS, WINDOWED, *PAIR}

MODULE = '''
from tests.unit.test_internal_subjects import priced

topology = priced(auto_register=False)
'''


@pytest.fixture(autouse=True)
def _no_env_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("STREAMFLOW_CONFIG", "STREAMFLOW_SCHEMA_REGISTRY_URL", "STREAMFLOW_NAME_SUFFIX"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(params=["memory", "rocksdb"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> RegistryClient:
    """A mock registry every client made in the test shares (the driver's and the CLI's)."""
    import streamflow.kafka.registry as reg

    client = make_registry_client({"url": f"mock://internal-{uuid.uuid4().hex}"})
    monkeypatch.setattr(reg, "make_registry_client", lambda conf, **_: client)
    return client


def ctx_for(registry: RegistryClient) -> SerdeContext:
    return SerdeContext(registry_factory=lambda: registry)


def priced(*, auto_register: bool = True) -> sf.Topology:
    """An Avro topic (a decimal) as a table, grouped, reduced, window-reduced and joined."""
    price = sf.Avro(PRICE, auto_register=auto_register)
    t = sf.Topology("kept")
    a = t.topic("a", key=sf.String(), value=price, external=True)
    b = t.topic("b", key=sf.String(), value=price, external=True)
    rows = t.topic("rows", key=sf.String(), value=price, external=True)
    outs = {n: t.topic(n, key=sf.String(), value=sf.String())
            for n in ("counts", "latest", "windowed", "joined", "enriched")}
    p = t.processor("p")
    s = p.stream(a)
    (s.group_by(lambda v: str(v["amount"]), name="by-amount").count(name="n")
     .to_stream().map(str, name="n-text").to(outs["counts"]))
    (s.group_by_key(name="same-key").reduce(lambda _old, new: new, name="latest")
     .to_stream().map(repr, name="latest-text").to(outs["latest"]))
    (s.group_by_key(name="wkey").window(sf.Tumbling(10_000))
     .reduce(lambda _old, new: new, name="wlatest").to_stream().key_by(str, name="wkey-text")
     .map(repr, name="w-text").to(outs["windowed"]))
    s.join(p.stream(b), lambda x, y: repr((x, y)), window=sf.JoinWindows(10_000),
           name="pair").to(outs["joined"])
    (p.stream(t.topic("events", key=sf.String(), value=sf.Json(), external=True))
     .join(t.table(rows, name="rows"), lambda e, r: repr(r), name="enrich")
     .to(outs["enriched"]))
    return t


# -- listing ----------------------------------------------------------------------------------


def test_stores_and_internal_topics_inherit_a_serde_that_does_not_auto_register() -> None:
    price = sf.Avro(PRICE, auto_register=False)
    assert row_serde(price) == StoredAs(price)
    t = priced(auto_register=False)
    assert t.processors["p"].stores["latest"].value_serde == StoredAs(price)
    assert t.topics["kept-p-by-amount-repartition"].value == StoredAs(price)


def test_every_internal_subject_is_listed_with_its_store_or_topic() -> None:
    reports = {r.subject: r for r in list_subjects(priced(auto_register=False), SerdeContext(),
                                                   module="shop.kept")}
    assert {s for s, r in reports.items() if r.status == "INTERNAL"} == INTERNAL
    assert {s for s, r in reports.items() if r.status == "EXTERNAL"} == {
        "a-value", "b-value", "rows-value"}
    latest = reports[LATEST]
    assert latest.where == ("store 'latest' of processor 'p' (internal, changelog "
                            "'kept-p-latest-changelog') value")
    assert latest.schema == "Avro(test.Price)"
    assert "`streamflow schemas register shop.kept` registers it (auto_register is off" in \
        latest.summary
    assert reports[REPARTITION].where == "internal topic 'kept-p-by-amount-repartition' value"
    assert "read by processor(s) 'p'; written by processor(s) 'p'" in \
        reports[REPARTITION].summary
    # the count keeps JSON: no subject
    assert not any("-n-changelog" in s for s in reports)


def test_internal_subjects_follow_the_name_suffix_and_the_first_write_registers_them() -> None:
    reports = list_subjects(priced().with_name_suffix("-pr7"), SerdeContext())
    internal = {r.subject for r in reports if r.status == "INTERNAL"}
    assert internal == {s.replace("-value", "-pr7-value") for s in INTERNAL}
    assert all("(or the first write) registers it" in r.summary
               for r in reports if r.status == "INTERNAL")


def _left_join_of_two_records() -> sf.Topology:
    other = dict(PRICE, name="Other")
    t = sf.Topology("j")
    a = t.topic("a", key=sf.String(), value=sf.Avro(PRICE), external=True)
    b = t.topic("b", key=sf.String(), value=sf.Avro(other), external=True)
    p = t.processor("p")
    p.stream(a).left_join(p.stream(b), lambda x, y: "x", window=sf.JoinWindows(1_000),
                          name="pair").to(t.topic("o", key=sf.String(), value=sf.String()))
    return t


UNMATCHED = "j-p-pair-unmatched-changelog"


def test_a_joins_unmatched_store_keeps_each_side_under_a_subject_of_its_own(
        registry: RegistryClient) -> None:
    t = _left_join_of_two_records()
    internal = {r.subject: r.schema for r in list_subjects(t, SerdeContext())
                if r.status == "INTERNAL"}
    assert internal[f"{UNMATCHED}-value"] == "Avro(test.Price)"
    assert internal[f"{UNMATCHED}-right-value"] == "Avro(test.Other)"
    # one subject holding both records would be refused under the registry's BACKWARD level
    assert registry.compatibility(f"{UNMATCHED}-value") == "BACKWARD"
    register_schemas(t, ctx_for(registry))
    checked = {r.subject: r.status for r in check_schemas(t, registry, ctx_for(registry))}
    assert {s: checked[s] for s in internal} == dict.fromkeys(internal, "OK")


def test_unmatched_right_values_kept_under_the_shared_subject_before_stay_readable(
        registry: RegistryClient) -> None:
    spec = _left_join_of_two_records().processors["p"].stores["pair-unmatched"]
    assert isinstance(spec.value_serde, UnmatchedSerde)
    ctx = ctx_for(registry)
    value = {"amount": Decimal("1.25"), "since": SINCE}
    before = b"\x01\x01" + ValueList(spec.value_serde.right).serializer(
        UNMATCHED, False, ctx)([value])  # the right side bound to the changelog itself
    read = spec.value_serde.deserializer(UNMATCHED, False, ctx)
    assert read(before) == SideValues(1, [value])
    now = spec.value_serde.serializer(UNMATCHED, False, ctx)(SideValues(1, [value]))
    assert read(now) == SideValues(1, [value])
    assert registry.versions(f"{UNMATCHED}-right-value")


def test_foreign_key_topics_keyed_by_an_avro_key_are_marked_internal() -> None:
    key = sf.Avro({"type": "record", "name": "Id", "fields": [{"name": "id", "type": "long"}]})
    t = sf.Topology("fk")
    orders = t.topic("orders", key=key, value=sf.Json(), external=True)
    users = t.topic("users", key=key, value=sf.Json(), external=True)
    p = t.processor("p")
    joined = p.materialize(t.table(orders)).join(
        p.materialize(t.table(users)), lambda o, u: o, foreign_key=lambda o: {"id": o["user"]},
        name="ou")
    joined.to_stream().to(t.topic("out", key=key, value=sf.Json()))
    reports = {r.subject: r for r in list_subjects(t, SerdeContext())}
    assert reports["fk-p-ou-subscription-registration-key"].status == "INTERNAL"
    assert reports["fk-p-ou-subscription-response-key"].where == \
        "internal topic 'fk-p-ou-subscription-response' key"
    assert reports["out-key"].status == "TOPIC"


# -- registering, and what a worker needs -------------------------------------------------------


def test_register_registers_every_internal_subject(registry: RegistryClient) -> None:
    reports = register_schemas(priced(auto_register=False), ctx_for(registry))
    by = {r.subject: r.status for r in reports}
    assert {s for s, status in by.items() if status == "REGISTERED"} == INTERNAL
    assert all(registry.versions(s) for s in INTERNAL)
    again = register_schemas(priced(auto_register=False), ctx_for(registry))
    assert {r.subject for r in again if r.status == "EXISTS"} == INTERNAL


def test_a_worker_refuses_to_start_without_its_internal_subjects(registry: RegistryClient
                                                                 ) -> None:
    p = priced(auto_register=False).processors["p"]
    with pytest.raises(ContractError) as e:
        check_processor(p, ctx_for(registry))
    msg = str(e.value)
    assert "processor 'p' of topology 'kept' cannot start" in msg
    for subject in INTERNAL:
        assert f"not registered under subject {subject!r}" in msg
    assert ("- store 'latest' of processor 'p' (internal, changelog 'kept-p-latest-changelog') "
            "value, written here:") in msg
    assert "register it with `streamflow schemas register MODULE`" in msg
    register_schemas(priced(auto_register=False), ctx_for(registry))
    check_processor(p, ctx_for(registry))


def test_an_auto_registering_worker_registers_its_internal_subjects_at_start(
        registry: RegistryClient) -> None:
    check_processor(priced().processors["p"], ctx_for(registry))
    assert all(registry.versions(s) for s in INTERNAL)


def test_registered_subjects_let_stores_keep_avro_and_restore(registry: RegistryClient,
                                                              store: str) -> None:
    t = priced(auto_register=False)
    register_schemas(t, ctx_for(registry), include_external=True)
    one = {"amount": Decimal("1.50"), "since": SINCE}
    two = {"amount": Decimal("2.50"), "since": SINCE}
    with TopologyTestDriver(t, config={"store": store,
                                       "schema_registry.url": registry.url}) as d:
        d.input("rows").send(two, key="k", timestamp=1)
        d.input("a").send(one, key="k", timestamp=1)
        d.crash(keep_state=False)  # every store comes back from its changelog
        d.input("b").send(two, key="k", timestamp=2)
        d.input("a").send(one, key="k", timestamp=3)
        d.input("events").send({}, key="k", timestamp=4)
        assert d.output("counts").read_values() == ["1", "2"]
        assert d.output("latest").read_values() == [repr(one)] * 2
        assert d.output("windowed").read_values() == [repr(one)] * 2
        assert d.output("joined").read_values() == [repr((one, two))] * 2
        assert d.output("enriched").read_values() == [repr(two)]
        changelog = d.output("kept-p-latest-changelog").read_records()
    # the row's time, 0xFE, then Confluent's wire format: magic 0 and the id registered under
    # the store's own subject
    schema_id = registry.latest(LATEST).schema_id
    assert changelog[0].value[8:14] == b"\xfe\x00" + schema_id.to_bytes(4, "big")


def test_without_its_subjects_the_driver_fails_naming_the_subject_and_the_command() -> None:
    with pytest.raises(sf.SerdeError, match=r"not registered under subject 'kept-p-.*-value'.*"
                                            r"`streamflow schemas register MODULE`"):
        TopologyTestDriver(priced(auto_register=False))


# -- checking against the registry ------------------------------------------------------------

OLDER = dict(PRICE, fields=[{"name": "amount", "type": "int"}, PRICE["fields"][1]])


def test_schemas_check_judges_internal_subjects(registry: RegistryClient) -> None:
    t = priced(auto_register=False)
    reports = {r.subject: r for r in check_schemas(t, registry, ctx_for(registry),
                                                   module="shop.kept")}
    assert reports[LATEST].status == "NEW"
    assert "`streamflow schemas register shop.kept` registers it (auto_register is off: " \
        "workers refuse to start without it)" in reports[LATEST].summary
    registry.register(LATEST, json.dumps(OLDER))  # what the store kept before
    latest = next(r for r in check_schemas(t, registry, ctx_for(registry)) if r.subject == LATEST)
    assert latest.status == "FAIL", latest.render()
    assert latest.where.startswith("store 'latest' of processor 'p' (internal")
    assert "the registry would refuse it under BACKWARD" in latest.summary
    assert any("Price.amount" in d for d in latest.details)


def test_check_notes_missing_internal_subjects_and_reports_incompatible_ones(
        registry: RegistryClient) -> None:
    t = priced(auto_register=False)
    result = check_topology(t, registry)
    assert result.ok
    assert any(n.startswith(f"subject {LATEST!r} (store 'latest' of processor 'p'") and
               "auto_register is off: workers refuse to start until `streamflow schemas "
               "register MODULE` registers it" in n for n in result.notes)
    registry.register(LATEST, json.dumps(OLDER))
    problems = check_topology(t, registry).problems
    assert [p.code for p in problems] == ["schema"]
    assert problems[0].message.startswith(
        f"store 'latest' of processor 'p' (internal, changelog 'kept-p-latest-changelog') "
        f"value (subject {LATEST!r}): processor(s) 'p' would write a schema the registry "
        "rejects under BACKWARD")


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"internal_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(Path(__file__).parents[2]))
    yield name


def test_schemas_list_marks_internal_subjects_without_a_registry(
        module: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "schemas", "list", module)
    assert code == 0, out
    assert f"INTERNAL   {LATEST} (store 'latest' of processor 'p'" in out
    assert f"`streamflow schemas register {module}` registers it" in out
    assert "EXTERNAL   a-value (topic 'a' value, Avro(test.Price))" in out
    assert "9 subject(s): 3 external, 6 internal" in out


def test_schemas_register_then_check_cover_internal_subjects(
        registry: RegistryClient, module: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMFLOW_SCHEMA_REGISTRY_URL", registry.url)
    code, out = run(capsys, "schemas", "register", module)
    assert code == 0, out
    assert f"REGISTERED {REPARTITION} (internal topic 'kept-p-by-amount-repartition' value" in out
    assert "9 subject(s): 3 skipped, 6 registered" in out
    code, out = run(capsys, "schemas", "check", module)
    assert code == 0, out
    statuses = {line.split()[1]: line.split()[0] for line in out.splitlines()
                if line.split() and line.split()[0] in ("OK", "NEW", "FAIL")}
    assert {s: statuses[s] for s in INTERNAL} == dict.fromkeys(INTERNAL, "OK")
    assert statuses["a-value"] == "NEW"  # external: its producer registers it
