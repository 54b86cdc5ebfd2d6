"""On the secured local stack (SASL_SSL, SCRAM-SHA-512, the standard authorizer, no ACL = no
access): an exactly-once processor runs end to end with exactly the ACLs ``streamflow acls
--apply`` created; without any one of them it refuses to start, naming what is missing, and
``acls --check`` reports it; a wrong password or an untrusted certificate fails clearly.

The secured stack is ``deploy/local/stack up --secure`` (``make test`` starts it and exports
STREAMFLOW_TEST_SECURE_ENV, its admin env file); run alone, this module starts it when it is
not up and stops it afterwards. Every test has its own SCRAM user, topics and group.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from confluent_kafka.serialization import MessageField, SerializationContext

from streamflow.config import Config, load_config
from streamflow.errors import EXIT_ACCESS
from streamflow.kafka.security import Acl, AuthenticationFailed, delete_acls, describe_acls
from streamflow.ops import acls as ops_acls
from streamflow.ops.load import load_topology
from streamflow.runtime.preflight import PermissionDenied
from streamflow.runtime.worker import Worker
from streamflow.testing.cluster import read_env_file
from streamflow.testing.processes import TopologyApp
from tests.integration.kafka_helpers import (
    ROOT,
    StreamflowProcess,
    confluent_registry,
    confluent_serializer,
    produce,
    read_all,
    write_module,
)

pytestmark = pytest.mark.integration

STACK = ROOT / "deploy" / "local" / "stack"
ENV_SECURE = "STREAMFLOW_TEST_SECURE_ENV"

MODULE = """
import os
import streamflow as sf

topology = sf.Topology(os.environ["T_APP"])
src = topology.topic(os.environ["T_IN"], key=sf.String(), value=sf.Json(), external=True)
counts = topology.topic(os.environ["T_OUT"], key=sf.String(), value=sf.Long())
p = topology.processor("count", guarantee="exactly_once")
(p.stream(src).group_by(lambda v: v["user"], name="by-user", key_serde=sf.String())
 .count(name="n").to_stream().to(counts))
"""


@pytest.fixture(scope="module")
def admin_env() -> Iterator[dict[str, str]]:
    """The secured stack's admin settings (a super user); starts the stack if needed."""
    given = os.environ.get(ENV_SECURE)
    started = False
    env_file = Path(given) if given else ROOT / "deploy" / "local" / ".run-secure" / "stack.env"
    if not given and subprocess.call(["bash", str(STACK), "status", "--secure"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        subprocess.run(["bash", str(STACK), "up", "--secure"], check=True, timeout=600,
                       stdout=subprocess.DEVNULL)
        started = True
    assert env_file.exists(), f"no secured stack env file at {env_file}"
    try:
        yield read_env_file(env_file)
    finally:
        if started:
            subprocess.run(["bash", str(STACK), "down", "--secure"], check=False, timeout=120)


def _conf(env: dict[str, str]) -> dict[str, Any]:
    return load_config(env=env).client_conf()


@pytest.fixture
def user(admin_env: dict[str, str]) -> dict[str, str]:
    """A fresh SCRAM user with no ACLs: its env (the admin's, with its own credentials)."""
    name, password = f"app-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = AdminClient(_conf(admin_env))
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    for fut in admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(name, info, password.encode())]).values():
        fut.result(timeout=30)
    return {**admin_env, "STREAMFLOW_KAFKA_SASL_USERNAME": name,
            "STREAMFLOW_KAFKA_SASL_PASSWORD": password}


@pytest.fixture
def app(tmp_path: Path, admin_env: dict[str, str], user: dict[str, str]) -> dict[str, Any]:
    """The topology module, its topics (created by the admin) and both envs."""
    tag = uuid.uuid4().hex[:8]
    topo = {"T_APP": f"sec-{tag}", "T_IN": f"sec-in-{tag}", "T_OUT": f"sec-out-{tag}"}
    module = write_module(tmp_path, f"sec_topology_{tag}", MODULE)
    common = {**topo, "STREAMFLOW_STATE_DIR": str(tmp_path / "state"),
              "STREAMFLOW_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
              "STREAMFLOW_CREATE_TOPICS": "false", "STREAMFLOW_STARTUP_TIMEOUT_S": "20"}
    admin = {**admin_env, **common}
    run_as = {**user, **common}
    cli(["topics", "create", module], tmp_path, admin)
    return {"module": module, "admin": admin, "user": run_as, "tmp": tmp_path, **topo,
            "principal": f"User:{user['STREAMFLOW_KAFKA_SASL_USERNAME']}"}


def cli(args: list[str], cwd: Path, env: dict[str, str], expect: int = 0, *,
        logs: Path | None = None) -> str:
    """``streamflow ARGS`` in a child (its output in ``logs``, default ``cwd``); its output,
    after checking the exit code."""
    log = (logs or cwd) / f"cli-{uuid.uuid4().hex[:6]}.log"
    proc = StreamflowProcess(args, cwd, env, log)
    rc = proc.proc.wait(120)
    out = proc.output()
    proc.terminate()
    assert rc == expect, f"streamflow {' '.join(args)} exited {rc}, not {expect}:\n{out}"
    return out


def _worker(app: dict[str, Any], env: dict[str, str]) -> Worker:
    os.environ.update({k: app[k] for k in ("T_APP", "T_IN", "T_OUT")})
    import sys

    sys.path.insert(0, str(app["tmp"]))
    topology = load_topology(app["module"])
    return Worker(topology.processors["count"], load_config(env=env), worker_id="0",
                  env={"POD_NAME": ""})


def _counts(conf: dict[str, Any], topic: str, want: dict[str, int], timeout: float) -> dict[
        str, int]:
    c = Consumer({**conf, "group.id": f"verify-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    c.subscribe([topic])
    seen: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and seen != want:
            for m in c.consume(500, 0.5):
                if m.error() is None:
                    seen[m.key().decode()] = int.from_bytes(m.value(), "big", signed=True)
    finally:
        c.close()
    return seen


def test_exactly_once_processor_runs_with_exactly_the_generated_acls(
        app: dict[str, Any]) -> None:
    tmp, module, principal = app["tmp"], app["module"], app["principal"]
    out = cli(["acls", module, "--principal", principal, "--no-create-topics", "--apply"], tmp,
              app["admin"])
    assert f"ACL(s) in place for {principal}" in out
    out = cli(["acls", module, "--principal", principal, "--no-create-topics", "--check"], tmp,
              app["admin"])
    lines = out.splitlines()  # stdout and stderr together
    assert f"OK: {principal} has exactly the ACLs of count" in lines, out
    assert not [line for line in lines if line.startswith(("MISSING", "BROADER"))], out
    assert "|BGQUEUE|" not in out  # librdkafka's lines go through logging, not raw to stderr
    admin_conf = _conf(app["admin"])
    produce(admin_conf["bootstrap.servers"], app["T_IN"],
            [(f"k{i}".encode(), orjson.dumps({"user": f"u{i % 5}"})) for i in range(50)],
            conf=admin_conf)
    proc = StreamflowProcess(["run", module], tmp, app["user"], tmp / "run.log")
    try:
        seen = _counts(_conf(app["admin"]), app["T_OUT"], {f"u{i}": 10 for i in range(5)}, 60)
    finally:
        rc = proc.terminate()
    assert seen == {f"u{i}": 10 for i in range(5)}, proc.tail()
    assert rc == 0, proc.tail()
    log = proc.output()
    assert app["user"]["STREAMFLOW_KAFKA_SASL_PASSWORD"] not in log
    actions = [json.loads(x)["action"] for x in (tmp / "audit.jsonl").read_text().splitlines()]
    assert actions == ["topics.create", "acls.apply"]


def _essential(acls: list[Acl]) -> list[Acl]:
    """The ACLs whose absence changes what the principal may do (Kafka derives DESCRIBE from
    READ or WRITE on the same resource, so the explicit DESCRIBE ones are redundant)."""
    granted = {(a.resource, a.name, a.operation) for a in acls}
    return [a for a in acls if not (a.operation == "DESCRIBE" and any(
        (a.resource, a.name, op) in granted for op in ("READ", "WRITE")))]


def test_each_missing_acl_stops_the_processor_at_start_with_the_grant_command(
        app: dict[str, Any]) -> None:
    admin = AdminClient(_conf(app["admin"]))
    principal = app["principal"]
    cli(["acls", app["module"], "--principal", principal, "--no-create-topics", "--apply"],
        app["tmp"], app["admin"])
    topology = _worker(app, app["user"]).processor.topology
    planned = ops_acls.plan(topology, ["count"], principal, create_topics=False)
    assert sorted(describe_acls(admin, principal)) == sorted(planned["count"])
    assert ops_acls.check(admin, planned, principal).ok
    essential = _essential(planned["count"])
    assert len(essential) >= 10
    for acl in essential:
        delete_acls(admin, [acl])
        try:
            _wait_for(lambda acl=acl: acl not in describe_acls(admin, principal))
            check = ops_acls.check(admin, planned, principal)
            assert check.missing == [acl]
            worker = _worker(app, app["user"])
            started = time.monotonic()
            with pytest.raises(PermissionDenied) as info:
                worker.run(install_signals=False)
            took = time.monotonic() - started
            text = str(info.value)
            target = ("transactional id prefix" if acl.resource == "transactional_id"
                      else f"{acl.resource} {acl.name!r}")
            assert target in text, (acl, text)
            assert principal in text and "--apply" in text and "-p count" in text
            assert info.value.exit_code == EXIT_ACCESS
            assert took < 20, f"{acl}: took {took:.1f}s to refuse"
        finally:
            ops_acls.apply(admin, {"count": [acl]})
            _wait_for(lambda acl=acl: acl in describe_acls(admin, principal))


def _wait_for(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_wrong_password_fails_within_seconds_with_exit_6(app: dict[str, Any]) -> None:
    env = {**app["user"], "STREAMFLOW_KAFKA_SASL_PASSWORD": "not-the-password"}
    started = time.monotonic()
    out = cli(["run", app["module"]], app["tmp"], env, expect=EXIT_ACCESS)
    assert time.monotonic() - started < 20
    assert "Kafka refused the credentials" in out and "SASL authentication error" in out
    assert "not-the-password" not in out


def test_untrusted_certificate_says_so(app: dict[str, Any]) -> None:
    env = {**app["user"], "STREAMFLOW_KAFKA_SSL_CA_LOCATION": "/etc/ssl/certs/ca-certificates.crt"}
    config: Config = load_config(env=env)
    from streamflow.runtime.preflight import connect

    with pytest.raises(AuthenticationFailed, match=r"TLS handshake with Kafka failed.*ssl\.ca"):
        connect(config)


# -- the example topologies --------------------------------------------------------------------


def _feed_orders(conf: dict[str, Any], registry: str) -> dict[str, int]:
    """12 orders (half of them large), 2 cancelled ones and one that is not JSON."""
    rows = [(f"o{i}", {"customer": f"c{i % 3}", "status": "cancelled" if i >= 12 else "new",
                       "country": "DE", "lines": [{"qty": 1, "unit_price": 900 if i % 2 else 9}]})
            for i in range(14)]
    records = [(k.encode(), orjson.dumps(v)) for k, v in rows] + [(b"bad", b"{not json")]
    produce(conf["bootstrap.servers"], "orders", records, conf=conf)
    return {"orders.large": 6, "orders.small": 6, "orders.enrich.dlq": 1}


def _feed_payments(conf: dict[str, Any], registry: str) -> dict[str, int]:
    """The payments example's cards and payments; expected outputs from the test driver."""
    from tests.integration.test_example_payments import _payments, expected_outputs
    from topologies import payments

    _await_table(conf, "payments.flag", "cards")  # joined only once the table is there
    serialize = confluent_serializer(confluent_registry(registry),
                                     (ROOT / "schemas/payment.avsc").read_text())
    ctx = SerializationContext("payments", MessageField.VALUE)
    rows = _payments()
    producer = Producer({**conf, "partitioner": "murmur2_random"})  # as Java clients
    for p in rows:
        producer.produce("payments", serialize(p, ctx), p["card_id"].encode(),
                         timestamp=payments.event_time(p))
    assert producer.flush(30) == 0
    alerts, flags = expected_outputs(rows)
    return {"fraud-alerts": len(alerts), "payments.flagged": len(flags)}


def _feed_clickstream(conf: dict[str, Any], registry: str) -> dict[str, int]:
    """One burst of the clickstream example's views: each comes out enriched."""
    from tests.integration.test_example_clickstream import _views
    from topologies import clickstream

    _await_table(conf, "clickstream.enrich", "clickstream.users")
    serialize = confluent_serializer(confluent_registry(registry),
                                     (ROOT / "schemas/page_view.avsc").read_text())
    ctx = SerializationContext("clickstream.page-views", MessageField.VALUE)
    views = _views()[0]
    producer = Producer({**conf, "partitioner": "murmur2_random"})  # as Java clients
    for v in views:
        producer.produce("clickstream.page-views", serialize(v, ctx), v["user_id"].encode(),
                         timestamp=clickstream.event_time(v))
    assert producer.flush(30) == 0
    return {"clickstream.views-enriched": len(views)}


FEEDS = {"orders": _feed_orders, "payments": _feed_payments, "clickstream": _feed_clickstream}


def _tables(example: str) -> dict[str, list[tuple[bytes, bytes]]]:
    """The table topics' records, produced before the example starts."""
    if example == "payments":
        from tests.integration.test_example_payments import CARDS

        return {"cards": [(c.encode(), orjson.dumps(p)) for c, p in CARDS.items()]}
    if example == "clickstream":
        from tests.integration.test_example_clickstream import USERS

        return {"clickstream.users": [(u.encode(), orjson.dumps(p)) for u, p in USERS.items()]}
    return {}


def _await_table(conf: dict[str, Any], group: str, topic: str, timeout: float = 60) -> None:
    """Wait until ``group`` has committed the end of every partition of ``topic``."""
    from confluent_kafka import TopicPartition

    c = Consumer({**conf, "group.id": group})
    try:
        parts = [TopicPartition(topic, p) for p in c.list_topics(topic, 10).topics[topic]
                 .partitions]
        ends = {tp.partition: c.get_watermark_offsets(tp, 10)[1] for tp in parts}
        deadline = time.monotonic() + timeout
        while True:
            done = {tp.partition: tp.offset for tp in c.committed(parts, 10)}
            if all(done[p] >= end for p, end in ends.items() if end > 0):
                return
            assert time.monotonic() < deadline, f"{group} did not read all of {topic}: {done}"
            time.sleep(0.2)
    finally:
        c.close()


@pytest.mark.parametrize("example", list(FEEDS))
def test_example_topology_runs_with_exactly_the_generated_acls(
        example: str, admin_env: dict[str, str], user: dict[str, str],
        schema_registry_url: str, tmp_path: Path) -> None:
    """Every processor of the example, its exactly-once ones included, under one principal
    holding nothing but ``acls --apply``'s ACLs; the admin creates the topics."""
    module = f"topologies.{example}"
    common = {"STREAMFLOW_SCHEMA_REGISTRY_URL": schema_registry_url,
              "STREAMFLOW_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
              "STREAMFLOW_CREATE_TOPICS": "false", "PAYMENTS_IDLE_MS": "3000",
              "CLICKSTREAM_IDLE_MS": "3000"}
    admin = {**admin_env, **common}
    principal = f"User:{user['STREAMFLOW_KAFKA_SASL_USERNAME']}"
    cli(["topics", "delete", module, "--yes", "--include-external"], ROOT, admin,
        logs=tmp_path)
    cli(["topics", "create", module], ROOT, admin, logs=tmp_path)
    cli(["acls", module, "--principal", principal, "--no-create-topics", "--apply"], ROOT,
        admin, logs=tmp_path)
    app = TopologyApp(module, bootstrap=user["STREAMFLOW_BOOTSTRAP_SERVERS"],
                      registry=schema_registry_url, workdir=tmp_path, cwd=ROOT,
                      env={**user, **common}, ready_timeout_s=90)
    conf = _conf(admin_env)
    for topic, records in _tables(example).items():
        produce(conf["bootstrap.servers"], topic, records, conf=conf)
    with app:
        expected = FEEDS[example](conf, schema_registry_url)
        got = {topic: len(read_all(conf["bootstrap.servers"], topic, expect=n, timeout=90,
                                   settle=2, conf=conf))
               for topic, n in expected.items()}
    assert app.exit_code == 0, app.logs()[-3000:]
    assert got == expected, app.logs()[-3000:]
    assert all(n > 0 for n in expected.values())
    assert user["STREAMFLOW_KAFKA_SASL_PASSWORD"] not in app.logs()
