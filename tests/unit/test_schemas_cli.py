"""``streamflow schemas check|register`` and the start-up contract check, on the mock registry."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient, SchemaRegistryError

import streamflow as sf
from streamflow.cli import main
from streamflow.kafka.registry import RegistryClient, make_registry_client
from streamflow.ops.schemas import check_schemas, register_schemas
from streamflow.runtime.contracts import ContractError, avro_sides, check_processor, evaluate
from streamflow.serde import SerdeContext, SerdeUnavailable


def rec(*fields: dict[str, Any], name: str = "Alert") -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "test", "fields": list(fields)}


def f(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


V1 = rec(f("id", "string"), f("score", "double"))
ADDED_NO_DEFAULT = rec(f("id", "string"), f("score", "double"), f("rule", "string"))
ADDED_DEFAULT = rec(f("id", "string"), f("score", "double"), f("rule", "string", default="-"))
REMOVED = rec(f("id", "string"))  # drops `score`, which has no default
RETYPED = rec(f("id", "string"), f("score", "string"))

MODULE = """
import json
import streamflow as sf

ALERT = json.loads({alert!r})
PAYMENT = json.loads({payment!r})
topology = sf.Topology("contracts")
payments = topology.topic("payments", key=sf.String(), value=sf.Avro(PAYMENT), external=True)
alerts = topology.topic("alerts", key=sf.String(), value=sf.Avro(ALERT))
topology.processor("detect").stream(payments).map(lambda p: p).to(alerts)
"""
PAYMENT = rec(f("id", "string"), f("amount", "double"), name="Payment")


@pytest.fixture(autouse=True)
def _no_env_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("STREAMFLOW_CONFIG", "STREAMFLOW_SCHEMA_REGISTRY_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def registry() -> RegistryClient:
    return make_registry_client({"url": f"mock://schemas-{uuid.uuid4().hex}"})


def topology(alert: Any = V1, payment: Any = PAYMENT) -> sf.Topology:
    t = sf.Topology("contracts")
    payments = t.topic("payments", key=sf.String(), value=sf.Avro(payment), external=True)
    alerts = t.topic("alerts", key=sf.String(), value=sf.Avro(alert))
    t.processor("detect").stream(payments).map(lambda p: p).to(alerts)
    return t


def ctx_for(registry: RegistryClient) -> SerdeContext:
    return SerdeContext(registry_factory=lambda: registry)


def statuses(reports: list[Any]) -> dict[str, str]:
    return {r.subject: r.status for r in reports}


# -- compatibility levels -----------------------------------------------------------------------


@pytest.mark.parametrize(("declared", "level", "status"), [
    (ADDED_NO_DEFAULT, "BACKWARD", "FAIL"),   # new reader lacks a default for old data
    (ADDED_NO_DEFAULT, "FORWARD", "OK"),      # old readers skip the new field
    (ADDED_NO_DEFAULT, "FULL", "FAIL"),
    (ADDED_DEFAULT, "FULL", "OK"),
    (REMOVED, "BACKWARD", "OK"),              # new reader ignores old data's field
    (REMOVED, "FORWARD", "FAIL"),             # old readers need `score`, which has no default
    (REMOVED, "FULL_TRANSITIVE", "FAIL"),
    (RETYPED, "BACKWARD", "FAIL"),
    (RETYPED, "NONE", "OK"),
])
def test_check_applies_the_subject_compatibility_level(
    registry: RegistryClient, declared: Any, level: str, status: str
) -> None:
    registry.register("alerts-value", json.dumps(V1))
    registry.set_compatibility(level, "alerts-value")
    reports = check_schemas(topology(declared), registry, ctx_for(registry))
    alerts = next(r for r in reports if r.subject == "alerts-value")
    assert alerts.status == status, alerts.render()
    if status == "FAIL":
        assert f"refuse it under {level}" in alerts.summary
        assert any(d.startswith("- Alert.") for d in alerts.details)
        assert alerts.details[-1].startswith("fix: ")
    else:
        assert f"compatible under {level} with v1" in alerts.summary


def test_transitive_levels_check_every_registered_version(registry: RegistryClient) -> None:
    registry.set_compatibility("NONE", "alerts-value")
    registry.register("alerts-value", json.dumps(V1))
    registry.register("alerts-value", json.dumps(REMOVED))  # v2: no `score`
    # v3 adds `score` back as a string: fine against v2, but v1 data has a double score
    v3 = rec(f("id", "string"), f("score", "string", default=""))
    registry.set_compatibility("BACKWARD", "alerts-value")
    assert statuses(check_schemas(topology(v3), registry, ctx_for(registry)))[
        "alerts-value"] == "OK"
    registry.set_compatibility("BACKWARD_TRANSITIVE", "alerts-value")
    report = next(r for r in check_schemas(topology(v3), registry, ctx_for(registry))
                  if r.subject == "alerts-value")
    assert report.status == "FAIL"
    assert "checked against all 2 registered versions" in report.summary
    assert any("Alert.score" in d and "previous version #1 of 2" in d for d in report.details)


def test_unregistered_subjects_are_new_and_fine(registry: RegistryClient) -> None:
    reports = check_schemas(topology(), registry, ctx_for(registry), module="my.mod")
    assert statuses(reports) == {"payments-value": "NEW", "alerts-value": "NEW"}
    by = {r.subject: r for r in reports}
    assert "`streamflow schemas register my.mod`" in by["alerts-value"].summary
    assert "its producer registers it" in by["payments-value"].summary
    assert not any(r.failed for r in reports)


def test_read_topics_must_read_the_latest_registered_version(registry: RegistryClient) -> None:
    registry.register("payments-value", json.dumps(PAYMENT))
    wants_currency = rec(f("id", "string"), f("amount", "double"), f("currency", "string"),
                         name="Payment")
    report = next(r for r in check_schemas(topology(payment=wants_currency), registry,
                                           ctx_for(registry)) if r.subject == "payments-value")
    assert report.status == "FAIL"
    assert "'detect' read with it" in report.summary and "latest registered version v1" in \
        report.summary
    assert any("Payment.currency: reader field missing from the writer and has no default" in d
               for d in report.details)
    ok = check_schemas(topology(), registry, ctx_for(registry))
    assert statuses(ok)["payments-value"] == "OK"


def test_evaluate_lists_reading_problems_once_when_the_level_already_did() -> None:
    registry = make_registry_client({"url": f"mock://e-{uuid.uuid4().hex}"})
    registry.register("t-value", json.dumps(V1))
    t = sf.Topology("x")
    topic = t.topic("t", value=sf.Avro(ADDED_NO_DEFAULT))
    t.processor("w").stream(t.topic("in", external=True)).to(topic)
    t.processor("r").stream(topic).to(t.topic("o"))
    side = next(s for s in avro_sides(t) if s.topic == "t")
    verdict = evaluate(side, registry, registration=True, reading=True)
    assert len(verdict.registration) == 1 and len(verdict.reading) == 1
    assert verdict.extra_reading == ()  # BACKWARD already checks the reading direction
    registry.set_compatibility("FORWARD", "t-value")
    verdict = evaluate(side, registry, registration=True, reading=True)
    assert verdict.registration == () and len(verdict.extra_reading) == 1


# -- the command line ---------------------------------------------------------------------------


@pytest.fixture
def cli_registry(monkeypatch: pytest.MonkeyPatch, registry: RegistryClient) -> RegistryClient:
    """The CLI's registry client is ``registry`` (mock registries don't share state)."""
    import streamflow.kafka.registry as reg

    monkeypatch.setenv("STREAMFLOW_SCHEMA_REGISTRY_URL", registry.url)
    monkeypatch.setattr(reg, "make_registry_client", lambda conf, **_: registry)
    return registry


@pytest.fixture
def module(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(alert: Any = V1, payment: Any = PAYMENT) -> str:
        name = f"contracts_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(
            MODULE.format(alert=json.dumps(alert), payment=json.dumps(payment)))
        return name

    yield write


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_schemas_check_cli_explains_what_breaks_and_exits_3(
    cli_registry: RegistryClient, module: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_registry.register("alerts-value", json.dumps(V1))
    cli_registry.register("payments-value", json.dumps(PAYMENT))
    code, out = run(capsys, "schemas", "check", module(RETYPED))
    assert code == 3, out
    assert "FAIL       alerts-value (topic 'alerts' value, Avro(test.Alert))" in out
    assert "the registry would refuse it under BACKWARD" in out
    assert "- Alert.score: type changed from double to string" in out
    assert "OK         payments-value" in out
    assert "2 subject(s): 1 ok, 1 fail" in out

    code, out = run(capsys, "schemas", "check", module(ADDED_DEFAULT))
    assert code == 0, out
    assert "OK         alerts-value" in out and "compatible under BACKWARD with v1" in out


def test_schemas_register_cli_registers_owned_subjects_and_skips_external(
    cli_registry: RegistryClient, module: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    mod = module()
    code, out = run(capsys, "schemas", "register", mod)
    assert code == 0, out
    assert "REGISTERED alerts-value" in out and "registered as version 1" in out
    assert "SKIPPED    payments-value" in out
    assert [v.version for v in cli_registry.versions("alerts-value")] == [1]
    assert cli_registry.versions("payments-value") == []
    code, out = run(capsys, "schemas", "register", mod, "--include-external")
    assert code == 0, out
    assert "EXISTS     alerts-value" in out and "REGISTERED payments-value" in out
    code, out = run(capsys, "schemas", "check", mod)
    assert code == 0 and "NEW" not in out, out


class _Refusing:
    """A confluent client that refuses every registration like a real registry (409)."""

    def __init__(self) -> None:
        self._mock = SchemaRegistryClient.new_client({"url": "mock://refusing"})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._mock, name)

    def register_schema_full_response(self, subject: str, schema: Any, *a: Any) -> Any:
        raise SchemaRegistryError(409, 409, "Schema being registered is incompatible with an "
                                  "earlier schema for subject \"alerts-value\"")

    def get_compatibility(self, subject: str | None = None) -> str:
        return "BACKWARD"


def test_schemas_register_shows_the_registrys_refusal_and_our_explanation(
    monkeypatch: pytest.MonkeyPatch, module: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import streamflow.kafka.registry as reg

    refusing = _Refusing()
    refusing._mock.register_schema("alerts-value", reg.Schema(json.dumps(V1), "AVRO"))
    client = RegistryClient(refusing, url="http://registry.test:8081")
    monkeypatch.setenv("STREAMFLOW_SCHEMA_REGISTRY_URL", client.url)
    monkeypatch.setattr(reg, "make_registry_client", lambda conf, **_: client)
    code, out = run(capsys, "schemas", "register", module(RETYPED))
    assert code == 3, out
    assert "REFUSED    alerts-value" in out
    assert "Schema being registered is incompatible" in out  # the registry's message
    assert "Alert.score: type changed" in out  # and ours
    assert "1 subject(s) refused or invalid" in out


def test_schemas_cli_exit_codes_without_or_with_an_unreachable_registry(
    monkeypatch: pytest.MonkeyPatch, module: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    mod = module()
    code, out = run(capsys, "schemas", "check", mod)
    assert code == 3 and "no schema registry configured" in out
    monkeypatch.setenv("STREAMFLOW_SCHEMA_REGISTRY_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("STREAMFLOW_SCHEMA_REGISTRY_MAX_RETRIES", "0")
    for action in ("check", "register"):
        code, out = run(capsys, "schemas", action, mod)
        assert code == 4, out
        assert "schema registry at http://127.0.0.1:9 is unavailable" in out


def test_schemas_cli_reads_the_config_file(
    tmp_path: Any, cli_registry: RegistryClient, module: Any,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STREAMFLOW_SCHEMA_REGISTRY_URL")
    cfg = tmp_path / "sf.toml"
    cfg.write_text(f'[schema_registry]\nurl = "{cli_registry.url}"\n')
    code, out = run(capsys, "schemas", "check", module(), "--config", str(cfg))
    assert code == 0, out
    assert f"schema registry at {cli_registry.url}" in out


def test_register_library_function_reports_each_subject(registry: RegistryClient) -> None:
    reports = register_schemas(topology(), ctx_for(registry))
    assert statuses(reports) == {"payments-value": "SKIPPED", "alerts-value": "REGISTERED"}


# -- the start-up check ---------------------------------------------------------------------------


def test_startup_check_refuses_a_reader_that_cannot_read_the_latest_version(
    registry: RegistryClient,
) -> None:
    registry.register("payments-value", json.dumps(PAYMENT))
    wants_currency = rec(f("id", "string"), f("amount", "double"), f("currency", "string"),
                         name="Payment")
    t = topology(payment=wants_currency)
    with pytest.raises(ContractError) as e:
        check_processor(t.processors["detect"], ctx_for(registry))
    msg = str(e.value)
    assert "processor 'detect' of topology 'contracts' cannot start" in msg
    assert "topic 'payments' (value), subject 'payments-value'" in msg
    assert "Payment.currency: reader field missing from the writer and has no default" in msg
    assert "how to fix:" in msg and "streamflow schemas check" in msg
    # the writer side was registered on the way (auto_register)
    assert registry.versions("alerts-value")


def test_startup_check_passes_compatible_and_unregistered_subjects(
    registry: RegistryClient,
) -> None:
    t = topology()
    check_processor(t.processors["detect"], ctx_for(registry))  # nothing registered yet
    registry.register("payments-value", json.dumps(
        rec(f("id", "string"), f("amount", "float"), f("extra", "int"), name="Payment")))
    check_processor(t.processors["detect"], ctx_for(registry))  # float -> double, skip extra


def test_startup_check_refuses_an_unregistered_schema_without_auto_register(
    registry: RegistryClient,
) -> None:
    t = sf.Topology("contracts")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("alerts", key=sf.String(), value=sf.Avro(V1, auto_register=False))
    t.processor("detect").stream(src).to(out)
    with pytest.raises(ContractError, match="not registered under subject 'alerts-value'") as e:
        check_processor(t.processors["detect"], ctx_for(registry))
    assert "streamflow schemas register" in str(e.value)
    registry.register("alerts-value", sf.Avro(V1).schema_str())
    check_processor(t.processors["detect"], ctx_for(registry))


def test_startup_check_needs_a_registry_for_avro_topics_only() -> None:
    with pytest.raises(ContractError, match="no registry is configured"):
        check_processor(topology().processors["detect"], SerdeContext())
    t = sf.Topology("plain")
    t.processor("p").stream(t.topic("a", external=True)).to(t.topic("b"))
    check_processor(t.processors["p"], SerdeContext())


def test_startup_check_with_an_unreachable_registry_is_an_outage() -> None:
    down = make_registry_client({"url": "http://127.0.0.1:1", "max.retries": 0})
    with pytest.raises(SerdeUnavailable, match=r"127\.0\.0\.1:1"):
        check_processor(topology().processors["detect"], ctx_for(down))
