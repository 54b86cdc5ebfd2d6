"""``status``, ``tail``, ``reset`` and ``dlq`` against running processors on the real broker.

Each test writes a topology module with unique topic and group names, runs its processor as
a ``streamflow run`` process (``TopologyApp``) and calls the commands in this process through
``streamflow.cli.main``, as an operator would from a shell.
"""

from __future__ import annotations

import json
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import streamflow as sf
from streamflow.cli import main
from streamflow.kafka.registry import make_registry_client
from streamflow.serde import SerdeContext
from streamflow.testing.admin import TopicAdmin
from streamflow.testing.processes import TopologyApp
from tests.integration.kafka_helpers import produce, read_all

pytestmark = pytest.mark.integration

ORDER = {"type": "record", "name": "OpsOrder", "namespace": "test.ops",
         "fields": [{"name": "id", "type": "string"}, {"name": "total", "type": "double"}]}

MODULE = """
import os
import streamflow as sf

ORDER = {order}
topology = sf.Topology(os.environ["T_APP"])
src = topology.topic(os.environ["T_IN"], key=sf.String(), value={value}, partitions=2,
                     external=True)
out = topology.topic(os.environ["T_OUT"], key=sf.String(), value=sf.Json(), partitions=2)

def check(v):
    n = int(v["total"]) if isinstance(v, dict) and "total" in v else int(v["n"])
    if n % 5 == 0 and os.environ.get("T_FIXED") != "1":
        raise ValueError(f"{{n}} is a multiple of 5")
    return {{"n": n}}

p = topology.processor("p", on_error="dead_letter", guarantee=os.environ.get("T_GUARANTEE",
                       "at_least_once"))
stream = p.stream(src).map(check, name="check")
if os.environ.get("T_COUNT") == "1":
    stream.group_by(lambda v: str(v["n"] % 7), name="by-mod").count(name="per-mod").to_stream(
        ).map(lambda c: {{"count": c}}, name="wrap").to(out)
else:
    stream.to(out)
"""


@pytest.fixture
def ops(tmp_path: Path, kafka_bootstrap: str, schema_registry_url: str,
        kafka_admin: TopicAdmin, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Write a topology module (``ops.module(value=..., **env)``); ``ops.run()`` makes apps."""
    uid = uuid.uuid4().hex[:8]
    names = {"T_APP": f"ops-{uid}", "T_IN": f"ops-in-{uid}", "T_OUT": f"ops-out-{uid}"}
    kafka_admin.create_topic(names["T_IN"], 2, {})
    for k, v in names.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("STREAMFLOW_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("STREAMFLOW_SCHEMA_REGISTRY_URL", schema_registry_url)
    monkeypatch.setenv("STREAMFLOW_STATE_DIR", str(tmp_path / "state"))  # the apps' too
    monkeypatch.syspath_prepend(str(tmp_path))
    apps: list[TopologyApp] = []

    class Ops:
        uid = names["T_APP"].removeprefix("ops-")
        app_name = names["T_APP"]
        topic_in, topic_out = names["T_IN"], names["T_OUT"]
        dlq = f"{names['T_APP']}.p.dlq"
        bootstrap = kafka_bootstrap
        registry = schema_registry_url
        module_name = ""

        def module(self, value: str = "sf.Json()", **env: str) -> str:
            self.module_name = f"ops_topology_{uid}"
            (tmp_path / f"{self.module_name}.py").write_text(textwrap.dedent(
                MODULE.format(order=repr(ORDER), value=value)))
            for k, v in env.items():
                monkeypatch.setenv(k, v)
            return self.module_name

        def run(self, **env: str) -> TopologyApp:
            app = TopologyApp(self.module_name, "p", bootstrap=kafka_bootstrap,
                              registry=schema_registry_url, workdir=tmp_path / "apps",
                              cwd=tmp_path, env={**names, "STREAMFLOW_COMMIT_INTERVAL_MS": "100",
                                                 "STREAMFLOW_STATIC_MEMBERSHIP": "off",
                                                 "STREAMFLOW_STATE_DIR": str(tmp_path / "state"),
                                                 **env})
            apps.append(app)
            return app  # started by `with`, or by .start()

    yield Ops()
    for app in apps:
        app.stop()
    kafka_admin.delete_topics([names["T_IN"], names["T_OUT"], f"{names['T_APP']}.p.dlq",
                               *(t for t in kafka_admin.topics()
                                 if t.startswith(names["T_APP"] + "-"))])


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.3)


def json_records(n: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    return [(f"k{i}".encode(), orjson.dumps({"n": i})) for i in range(start, start + n)]


def status(capsys: pytest.CaptureFixture[str], module: str, *extra: str
           ) -> tuple[int, dict[str, Any]]:
    code, out, _ = cli(capsys, "status", module, "--format", "json", *extra)
    return code, json.loads(out)["processors"][0]


def test_status_shows_lag_before_and_after_processing_and_names_the_members(
        ops: Any, capsys: pytest.CaptureFixture[str]) -> None:
    module = ops.module(T_FIXED="1")
    produce(ops.bootstrap, ops.topic_in, json_records(60))
    code, p = status(capsys, module)
    assert code == 1, p  # no members yet
    assert p["lag"] == 60 and p["members"] == [] and p["state"] in ("Dead", "Empty")

    app = ops.run(STREAMFLOW_INSTANCE_ID=f"ops-a-{ops.uid}").start()
    url = f"http://127.0.0.1:{app.port}"

    def caught_up() -> bool:
        return status(capsys, module, "--instances", url, "--rate-interval", "0")[1]["lag"] == 0

    wait_for("lag back to 0", caught_up)
    code, p = status(capsys, module, "--instances", url, "--max-lag", "0")
    assert code == 0, p
    assert [m["instance_id"] for m in p["members"]] == [f"ops-a-{ops.uid}"]
    assert sorted(tuple(x) for x in p["members"][0]["partitions"]) == [
        (ops.topic_in, 0), (ops.topic_in, 1)]
    assert {x["owner"] for x in p["partitions"]} == {f"ops-a-{ops.uid}"}
    (inst,) = p["instances"]
    assert inst["reachable"] and inst["ready"] and inst["processed"] == 60
    assert inst["consumed"] == {ops.topic_in: 60} and inst["produced"] == {ops.topic_out: 60}
    assert inst["records_in_per_s"] == 0  # two answers, nothing new between them
    assert inst["last_commit_age_s"] is not None

    produce(ops.bootstrap, ops.topic_in, json_records(40, start=60))
    wait_for("the new records processed", caught_up)
    code, out, _ = cli(capsys, "status", module, "--instances", f"{url},http://127.0.0.1:1",
                       "--rate-interval", "0")
    assert code == 0, out
    assert f"member ops-a-{ops.uid} @ " in out
    assert "instance at http://127.0.0.1:1 UNREACHABLE" in out
    assert "processed 100" in out


def test_tail_prints_decoded_avro_records_and_dead_letter_headers(
        ops: Any, capsys: pytest.CaptureFixture[str]) -> None:
    module = ops.module(value="sf.Avro(ORDER)")
    ser = sf.Avro(ORDER).serializer(ops.topic_in, False, SerdeContext(
        registry_factory=lambda: make_registry_client({"url": ops.registry})))
    records = [(f"o{i}".encode(), ser({"id": f"o{i}", "total": float(i)})) for i in (1, 2, 5)]
    produce(ops.bootstrap, ops.topic_in, [*records, (b"junk", b"\x00not avro")])
    code, out, _ = cli(capsys, "tail", ops.topic_in, "--module", module, "--from-beginning",
                       "--format", "json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted((r["key"], json.dumps(r["value"])) for r in rows if not r["value_error"]) == [
        ("o1", '{"id": "o1", "total": 1.0}'), ("o2", '{"id": "o2", "total": 2.0}'),
        ("o5", '{"id": "o5", "total": 5.0}')]
    (bad,) = [r for r in rows if r["value_error"]]
    assert bad["key"] == "junk" and "SerdeError" in bad["value_error"]

    with ops.run():
        wait_for("two dead letters", lambda: len(read_all(
            ops.bootstrap, ops.dlq, expect=2, timeout=2, settle=0)) >= 2)
    code, out, _ = cli(capsys, "tail", ops.dlq, "--module", module, "--last", "5")
    assert code == 0
    assert "key=o5" in out and '"id": "o5"' in out  # decoded with the source topic's serdes
    assert "streamflow.error.type: ValueError" in out
    assert "streamflow.error.message: 5 is a multiple of 5" in out
    assert "streamflow.error.step: check" in out
    assert f"streamflow.source.topic: {ops.topic_in}" in out
    assert "key=junk" in out and "(value not decoded: SerdeError" in out


def test_reset_refuses_while_running_then_a_second_run_reprocesses_everything(
        ops: Any, capsys: pytest.CaptureFixture[str]) -> None:
    module = ops.module(T_FIXED="1", T_COUNT="1")
    produce(ops.bootstrap, ops.topic_in, json_records(70))
    with ops.run():
        first = read_all(ops.bootstrap, ops.topic_out, expect=70, timeout=60, settle=1)
        code, out, err = cli(capsys, "reset", module, "-p", "p", "--to-earliest", "--yes")
        assert code == 7, out + err
        assert "active member" in err and "127.0.0.1" in err
    assert len(first) == 70
    code, out, _ = cli(capsys, "reset", module, "-p", "p", "--to-earliest", "--dry-run")
    assert code == 0, out
    assert f"would move-offsets {ops.topic_in}[0]: group {ops.app_name}.p: " in out
    assert f"would truncate {ops.app_name}-p-by-mod-repartition[0]" in out
    assert f"would delete-topic {ops.app_name}-p-per-mod-changelog" in out
    assert "would wipe-state " in out
    code, out, _ = cli(capsys, "reset", module, "-p", "p", "--to-earliest", "--yes")
    assert code == 0, out
    assert "reset:" in out
    with ops.run():
        both = read_all(ops.bootstrap, ops.topic_out, expect=140, timeout=60, settle=1)
    ends: dict[int, int] = {}
    for m in first:
        ends[m.partition()] = max(ends.get(m.partition(), 0), m.offset() + 1)
    second = [m for m in both if m.offset() >= ends.get(m.partition(), 0)]

    def counts(msgs: list[Any]) -> Counter[tuple[bytes, bytes]]:
        return Counter((m.key(), m.value()) for m in msgs)

    # the same count updates again: the state started empty and every input was read again
    assert counts(second) == counts(first)
    assert max(json.loads(m.value())["count"] for m in second) == 10


def test_dlq_replay_brings_fixed_records_through_exactly_once(
        ops: Any, capsys: pytest.CaptureFixture[str]) -> None:
    module = ops.module(T_GUARANTEE="exactly_once")
    produce(ops.bootstrap, ops.topic_in, [(f"k{i}".encode(), orjson.dumps({"n": i}))
                                          for i in range(30)])
    with ops.run():
        read_all(ops.bootstrap, ops.topic_out, expect=24, timeout=60, settle=1)
    code, out, _ = cli(capsys, "dlq", "list", module, "-p", "p")
    assert code == 0, out
    assert "6 dead letter(s)" in out and "6 not replayed yet" in out
    assert "ValueError" in out and "check" in out

    with ops.run(T_FIXED="1"):  # the fix: the check accepts multiples of 5 now
        code, out, _ = cli(capsys, "dlq", "replay", module, "-p", "p", "--dry-run")
        assert code == 0 and "would replay 6 of 6" in out, out
        code, out, _ = cli(capsys, "dlq", "replay", module, "-p", "p", "--filter",
                           "error=KeyError")
        assert code == 0 and "replayed 0 of 6" in out, out
        code, out, _ = cli(capsys, "dlq", "replay", module, "-p", "p")
        assert code == 0 and "replayed 6 of 6" in out, out
        code, out, _ = cli(capsys, "dlq", "replay", module, "-p", "p")
        assert code == 0 and "replayed 0 of 0" in out, out
        outputs = read_all(ops.bootstrap, ops.topic_out, expect=30, timeout=60, settle=2)
    ns = sorted(orjson.loads(m.value())["n"] for m in outputs)
    assert ns == list(range(30))  # each fixed record exactly once
    replayed = [m for m in outputs if orjson.loads(m.value())["n"] % 5 == 0]
    assert all(any(k == "streamflow.replay.of" for k, _ in (m.headers() or []))
               for m in replayed)
    code, out, _ = cli(capsys, "dlq", "list", module, "-p", "p")
    assert "0 not replayed yet" in out
