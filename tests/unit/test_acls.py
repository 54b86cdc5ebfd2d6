"""Least-privilege ACLs derived from a topology, their formats, comparison and the audit trail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import streamflow as sf
from streamflow.cli import main
from streamflow.config import Config
from streamflow.errors import EXIT_ACCESS, AccessError
from streamflow.kafka.security import Acl
from streamflow.ops import acls as ops_acls
from streamflow.ops import audit
from streamflow.runtime.permissions import principal_of, required_acls
from streamflow.runtime.preflight import PermissionDenied, permission_errors


def _topology() -> sf.Topology:
    t = sf.Topology("shop")
    orders = t.topic("orders", external=True)
    totals = t.topic("totals")
    late = t.topic("late-orders")
    p = t.processor("totals", guarantee="exactly_once", on_error="dead_letter")
    (p.stream(orders).group_by(lambda v: v["customer"], name="by-customer")
     .count(name="n").to_stream().to(totals))
    w = t.processor("windows")
    (w.stream(orders).group_by_key()
     .window(sf.Tumbling(sf.minutes(1)), late_topic=late).count(name="per-minute"))
    return t


def _ops(acls: list[Acl], name: str) -> set[str]:
    return {a.operation for a in acls if a.name == name}


def test_each_topic_gets_exactly_the_operations_of_its_role() -> None:
    acls = required_acls(_topology().processors["totals"], "User:app", create_topics=False)
    assert _ops(acls, "orders") == {"READ", "DESCRIBE", "DESCRIBE_CONFIGS"}
    assert _ops(acls, "totals") == {"WRITE", "DESCRIBE", "DESCRIBE_CONFIGS"}
    assert _ops(acls, "shop.totals.dlq") == {"WRITE", "DESCRIBE", "DESCRIBE_CONFIGS"}
    for internal in ("shop-totals-by-customer-repartition", "shop-totals-n-changelog"):
        assert _ops(acls, internal) == {"READ", "WRITE", "DESCRIBE", "DESCRIBE_CONFIGS"}
    group = [a for a in acls if a.resource == "group"]
    assert {(a.name, a.operation) for a in group} == {("shop.totals", "READ"),
                                                      ("shop.totals", "DESCRIBE")}
    txn = [a for a in acls if a.resource == "transactional_id"]
    assert {(a.name, a.pattern, a.operation) for a in txn} == {
        ("shop.totals-", "prefixed", "WRITE"), ("shop.totals-", "prefixed", "DESCRIBE")}
    assert all(a.principal == "User:app" and a.host == "*" for a in acls)
    assert not [a for a in acls if a.resource == "cluster"]  # WRITE on a topic is enough


def test_create_only_on_internal_topics_and_only_when_the_worker_creates_them() -> None:
    p = _topology().processors["totals"]
    creating = required_acls(p, "User:app", create_topics=True)
    assert {a.name for a in creating if a.operation == "CREATE"} == {
        "shop-totals-by-customer-repartition", "shop-totals-n-changelog"}
    assert not [a for a in required_acls(p, "User:app", create_topics=False)
                if a.operation == "CREATE"]


def test_late_topic_is_written_and_at_least_once_has_no_transactional_id() -> None:
    acls = required_acls(_topology().processors["windows"], "User:w", create_topics=False)
    assert _ops(acls, "late-orders") == {"WRITE", "DESCRIBE", "DESCRIBE_CONFIGS"}
    assert not [a for a in acls if a.resource == "transactional_id"]


def test_a_processor_writing_no_topic_needs_idempotent_write_on_the_cluster() -> None:
    t = sf.Topology("sink")
    src = t.topic("in", external=True)
    t.processor("drop", on_error="skip").stream(src).peek(lambda r: None)
    acls = required_acls(t.processors["drop"], "User:x", create_topics=False)
    assert [a for a in acls if a.resource == "cluster"] == [
        Acl("cluster", "kafka-cluster", "literal", "IDEMPOTENT_WRITE", "User:x")]


def test_compare_reports_missing_and_broader_and_honours_implied_operations() -> None:
    want = [Acl("topic", "orders", "literal", "READ", "User:a"),
            Acl("topic", "orders", "literal", "DESCRIBE", "User:a"),
            Acl("topic", "totals", "literal", "WRITE", "User:a")]
    wildcard = Acl("topic", "tot", "prefixed", "ALL", "User:a")
    result = ops_acls.compare(want, [want[0], wildcard])
    assert result.missing == []  # READ implies DESCRIBE; the prefix grants totals
    assert result.broader == [wildcard]
    result = ops_acls.compare(want, want[:2])
    assert result.missing == [want[2]]
    assert result.broader == []
    assert ops_acls.compare(want, want).ok


def test_strimzi_rendering_has_one_user_per_principal_with_camel_case_operations() -> None:
    planned = ops_acls.plan(_topology(), None, "User:app", create_topics=False)
    users = ops_acls.strimzi_users(planned, "prod", "streams")
    assert len(users) == 1
    user = users[0]
    assert user["metadata"] == {"name": "app", "labels": {"strimzi.io/cluster": "prod"},
                                "namespace": "streams"}
    rules = user["spec"]["authorization"]["acls"]
    txn = [r for r in rules if r["resource"]["type"] == "transactionalId"]
    assert txn == [{"resource": {"type": "transactionalId", "name": "shop.totals-",
                                 "patternType": "prefixed"},
                    "operations": ["Write", "Describe"], "host": "*"}]


def test_json_format_round_trips(capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    module = tmp_path / "acl_topo.py"
    module.write_text("import streamflow as sf\n"
                      "topology = sf.Topology('t')\n"
                      "a = topology.topic('a', external=True)\n"
                      "b = topology.topic('b')\n"
                      "topology.processor('p').stream(a).to(b)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    rc = main(["acls", "acl_topo", "--principal", "User:svc", "-f", "json"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert {(a["name"], a["operation"]) for a in data["p"]} >= {("a", "READ"), ("b", "WRITE"),
                                                              ("t.p", "READ")}
    assert main(["acls", "acl_topo", "--principal", "svc"]) == 2  # not TYPE:NAME


def test_principal_comes_from_the_sasl_user_and_never_shows_the_password() -> None:
    conf = {"sasl.username": "app", "sasl.password": "s3cret", "security.protocol": "SASL_SSL"}
    assert principal_of(conf) == "User:app"
    assert principal_of({}) == "User:ANONYMOUS"


def test_audit_record_is_one_json_line_per_action_without_secrets(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "audit.jsonl"
    config = Config(audit_log=str(path), kafka={"sasl.username": "ops",
                                                "sasl.password": "hunter2"})
    audit.record("topics.delete", "shop", "ok", config=config, deleted=["a"])
    audit.record("acls.apply", "shop/totals", "refused: no", config=config)
    lines = path.read_text().splitlines()
    assert [json.loads(x)["action"] for x in lines] == ["topics.delete", "acls.apply"]
    first = json.loads(lines[0])
    assert first["principal"] == "User:ops" and first["deleted"] == ["a"]
    assert first["os_user"] and first["time"].endswith("+00:00")
    assert "hunter2" not in path.read_text()
    assert audit.record("x", "y", "ok", config=Config(audit_log="")) is None


def test_authorization_refusals_become_permission_denied_with_the_grant_command() -> None:
    t = _topology()
    p = t.processors["totals"]
    config = Config(kafka={"sasl.username": "app"})
    cause = RuntimeError("init_transactions: KafkaError{code=TRANSACTIONAL_ID_AUTHORIZATION_"
                         "FAILED,val=53}")
    with pytest.raises(PermissionDenied) as info, permission_errors(p, config):
        raise cause
    text = str(info.value)
    assert "transactional id prefix 'shop.totals-'" in text
    assert "User:app" in text
    assert "streamflow acls" in text and "-p totals --principal User:app --apply" in text
    assert info.value.exit_code == EXIT_ACCESS == 6
    assert isinstance(info.value, AccessError)
    with pytest.raises(ValueError, match="other"), permission_errors(p, config):
        raise ValueError("other")  # anything else passes through


def test_k8s_renders_a_kafka_user_per_processor_and_its_pods_log_in_as_it() -> None:
    from streamflow.ops import k8s

    rendered = k8s.render(_topology(), "shop_module", k8s.K8sOptions(kafka_users="prod"),
                          Config(bootstrap_servers="kafka:9092",
                                 kafka={"sasl.password": "never-rendered"}))
    users = [d for d in rendered.documents if d["kind"] == "KafkaUser"]
    assert [u["metadata"]["name"] for u in users] == ["shop-totals", "shop-windows"]
    assert users[0]["metadata"]["labels"]["strimzi.io/cluster"] == "prod"
    sts = next(d for d in rendered.documents if d["kind"] == "StatefulSet")
    env = {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["STREAMFLOW_KAFKA_SASL_USERNAME"]["value"] == "shop-totals"
    assert env["STREAMFLOW_KAFKA_SASL_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "shop-totals", "key": "password"}}
    assert "never-rendered" not in rendered.yaml()
    assert not [d for d in k8s.render(_topology(), "m").documents if d["kind"] == "KafkaUser"]


def test_start_up_check_names_each_missing_operation_and_skips_what_the_broker_did_not_say(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from streamflow.kafka import security
    from streamflow.runtime.preflight import check_permissions

    p = _topology().processors["totals"]
    every = {"READ", "WRITE", "DESCRIBE", "DESCRIBE_CONFIGS", "CREATE"}
    answers: dict[str, set[str] | str | None] = {
        "orders": {"DESCRIBE", "DESCRIBE_CONFIGS"},  # READ missing
        "totals": "TOPIC_AUTHORIZATION_FAILED",
        "shop.totals.dlq": None,  # an old broker: not told
        "shop-totals-n-changelog": "UNKNOWN_TOPIC_OR_PART",  # created later
    }
    monkeypatch.setattr(security, "authorized_topic_operations",
                        lambda admin, topics, timeout: {t: answers.get(t, every) for t in topics})
    monkeypatch.setattr(security, "authorized_group_operations",
                        lambda admin, group, timeout: {"DESCRIBE"})
    config = Config(kafka={"sasl.username": "app"})
    with pytest.raises(PermissionDenied) as info:
        check_permissions(None, p, config)
    lines = str(info.value).splitlines()
    assert "  - topic 'orders': READ" in lines
    assert any(x.startswith("  - topic 'totals': WRITE, DESCRIBE, DESCRIBE_CONFIGS") for x in lines)
    assert "  - group 'shop.totals': READ" in lines
    assert not [x for x in lines if "dlq" in x or "changelog" in x]
    answers.clear()
    monkeypatch.setattr(security, "authorized_group_operations",
                        lambda admin, group, timeout: None)
    check_permissions(None, p, config)  # everything granted: no error


def test_the_supervisor_stops_instead_of_restarting_a_worker_refused_access(
        tmp_path: Path) -> None:
    import sys
    import time

    from streamflow.runtime.supervisor import Supervisor

    marker = tmp_path / "starts"
    sup = Supervisor("m", ["p"], 1, None, shutdown_timeout_s=5)
    for c in sup.children:
        c.argv = [sys.executable, "-c",
                  f"open({str(marker)!r}, 'a').write('x'); exit({EXIT_ACCESS})"]
    began = time.monotonic()
    assert sup.run() == EXIT_ACCESS
    assert time.monotonic() - began < 10
    assert marker.read_text() == "x"  # started once, not restarted


def test_a_route_chosen_per_record_is_named_as_not_derivable() -> None:
    t = sf.Topology("r")
    src = t.topic("in", external=True)
    t.topic("a")
    t.processor("route").stream(src).to(lambda record: "a", name="pick")
    warnings = ops_acls.underivable(t, None)
    assert len(warnings) == 1
    assert "'route'" in warnings[0] and "'pick'" in warnings[0] and "by hand" in warnings[0]
