"""A worker's identity in its fleet: the instance id, what it names, static membership, the
lock that keeps it unique on a host, and what a duplicate live instance gets (exit 5, never
restarted, never a fencing loop)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import streamflow as sf
from streamflow.cli import build_parser
from streamflow.cli.run import _child_args
from streamflow.config import Config, ConfigError, load_config
from streamflow.errors import EXIT_DUPLICATE_INSTANCE, DuplicateInstanceError
from streamflow.kafka import client
from streamflow.kafka.membership import LeaveGroupError, leave_group
from streamflow.runtime.engine import ConsumerFatal
from streamflow.runtime.identity import (
    LOCK_FILE,
    InstanceLock,
    resolve_identity,
    static_membership,
)
from streamflow.runtime.supervisor import Supervisor
from streamflow.runtime.worker import Worker, fenced_instance

# what librdkafka 2.16 hands out when the broker fences a static member (seen on Kafka 4.3)
FENCED_TEXT = ("Fatal error: Broker: Static consumer fenced by other consumer with same "
               "group.instance.id")


def _processor(guarantee: str = "exactly_once", stateful: bool = False) -> sf.Processor:
    topology = sf.Topology("shop")
    src = topology.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = topology.topic("out", key=sf.String(), value=sf.Json())
    stream = topology.processor("count", guarantee=guarantee).stream(src)
    if stateful:
        stream.group_by(lambda v: v, name="by").count(name="n").to_stream().to(out)
    else:
        stream.to(out)
    return topology.processors["count"]


# -- where the id comes from --------------------------------------------------------------
def test_an_explicit_id_wins_over_the_pod_name_and_the_host_name() -> None:
    ident = resolve_identity("eu-1", {"POD_NAME": "shop-count-2"}, None, "node-7")
    assert (ident.instance_id, ident.source) == ("eu-1", "instance_id")


def test_the_pod_name_is_the_id_in_a_statefulset() -> None:
    ident = resolve_identity("", {"POD_NAME": "shop-count-2"}, None, "node-7")
    assert (ident.instance_id, ident.source) == ("shop-count-2", "POD_NAME")


def test_the_host_name_fallback_is_host_and_local_index() -> None:
    assert resolve_identity("", {}, None, "node-7").instance_id == "node-7-0"
    assert resolve_identity("", {}, "0", "node-7").instance_id == "node-7-0"
    assert resolve_identity("", {}, "3", "node-7").instance_id == "node-7-3"


def test_two_hosts_each_with_two_workers_never_collide() -> None:
    ids = {resolve_identity("", {}, str(i), host).instance_id
           for host in ("host-a", "host-b") for i in range(2)}
    assert len(ids) == 4
    pods = {resolve_identity("", {"POD_NAME": pod}, str(i), "same-host").instance_id
            for pod in ("app-0", "app-1") for i in range(2)}
    assert pods == {"app-0-0", "app-0-1", "app-1-0", "app-1-1"}


def test_the_instance_id_setting_comes_from_the_environment() -> None:
    config = load_config(env={"STREAMFLOW_INSTANCE_ID": "rack3-a",
                              "STREAMFLOW_STATIC_MEMBERSHIP": "off",
                              "STREAMFLOW_LEAVE_ON_SHUTDOWN": "true"})
    assert config.instance_id == "rack3-a"
    assert config.static_membership == "off" and config.leave_on_shutdown is True


@pytest.mark.parametrize("bad", ["a/b", "../x", "-x", "a b", "x" * 201])
def test_an_id_that_cannot_name_a_folder_is_refused_naming_the_setting(bad: str) -> None:
    with pytest.raises(ConfigError, match="STREAMFLOW_INSTANCE_ID"):
        resolve_identity(bad, {}, None)


# -- static membership --------------------------------------------------------------------
@pytest.mark.parametrize(("mode", "env", "static"), [
    ("auto", {"POD_NAME": "p-0"}, True),
    ("auto", {}, False),  # the host name is not known to be stable
    ("on", {}, True),
    ("off", {"POD_NAME": "p-0"}, False),
])
def test_static_membership_where_the_identity_is_stable(mode: str, env: dict[str, str],
                                                         static: bool) -> None:
    config = Config(static_membership=mode)
    assert static_membership(config, resolve_identity("", env, None, "h")) is static


def test_an_unknown_static_membership_mode_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="static_membership"):
        static_membership(Config(static_membership="sometimes"),
                          resolve_identity("x", {}, None))


def test_the_instance_id_names_the_clients_and_the_static_member(tmp_path: Path) -> None:
    config = Config(state_dir=str(tmp_path), static_session_timeout_ms=60000)
    w = Worker(_processor(), config, env={"POD_NAME": "shop-count-1"})
    assert w.producer_conf["transactional.id"] == "shop.count-shop-count-1"
    assert w.consumer_conf["client.id"] == "shop.count.shop-count-1"
    assert w.consumer_conf["group.instance.id"] == "shop-count-1"
    assert w.consumer_conf["session.timeout.ms"] == 60000
    assert w.consumer_conf["heartbeat.interval.ms"] <= 60000 // 3


def test_under_kip_848_a_static_member_leaves_the_session_timeout_to_the_broker(
        tmp_path: Path) -> None:
    """librdkafka refuses session.timeout.ms and heartbeat.interval.ms with
    group.protocol=consumer: there they are the broker's settings."""
    w = Worker(_processor(stateful=True),
               Config(state_dir=str(tmp_path), group_protocol="consumer"),
               env={"POD_NAME": "shop-count-1"})
    assert w.consumer_conf["group.instance.id"] == "shop-count-1"
    assert w.consumer_conf["group.protocol"] == "consumer"
    assert "session.timeout.ms" not in w.consumer_conf
    assert "heartbeat.interval.ms" not in w.consumer_conf


def test_a_dynamic_member_keeps_the_short_session_timeout(tmp_path: Path) -> None:
    w = Worker(_processor(), Config(state_dir=str(tmp_path)), worker_id="1",
               env={"HOSTNAME": "ignored"})
    assert "group.instance.id" not in w.consumer_conf
    assert w.consumer_conf["session.timeout.ms"] == 10000
    assert w.instance_id.endswith("-1")
    user = Worker(_processor(), Config(state_dir=str(tmp_path), instance_id="a",
                                       consumer={"session.timeout.ms": 7000}))
    assert user.consumer_conf["session.timeout.ms"] == 7000  # the user's setting wins


def test_each_instance_has_its_own_state_folder(tmp_path: Path) -> None:
    config = Config(state_dir=str(tmp_path))
    a = Worker(_processor(stateful=True), config, env={"POD_NAME": "shop-count-0"})
    b = Worker(_processor(stateful=True), config, env={"POD_NAME": "shop-count-1"})
    assert a.engine.tasks.state_dir == tmp_path / "shop-count-0" / "shop" / "count"
    assert b.engine.tasks.state_dir == tmp_path / "shop-count-1" / "shop" / "count"
    assert a.lock.path == a.engine.tasks.state_dir / LOCK_FILE


# -- one live instance per id -------------------------------------------------------------
def test_a_second_instance_with_the_same_id_on_one_host_is_refused(tmp_path: Path) -> None:
    first = InstanceLock(tmp_path, "shop-count-0", "count")
    first.acquire()
    second = InstanceLock(tmp_path, "shop-count-0", "count")
    with pytest.raises(DuplicateInstanceError) as e:
        second.acquire()
    assert e.value.exit_code == EXIT_DUPLICATE_INSTANCE == 5
    text = str(e.value)
    assert "'shop-count-0'" in text and f"pid {os.getpid()}" in text
    assert "--instance-id" in text  # says what to do
    first.release()
    second.acquire()  # free again once the first is gone
    second.release()


def test_a_killed_workers_lock_does_not_outlive_it(tmp_path: Path) -> None:
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]);"
            "from pathlib import Path; from streamflow.runtime.identity import InstanceLock;"
            "lock = InstanceLock(Path(sys.argv[2]), 'x', 'p'); lock.acquire();"
            "print('locked', flush=True);"
            "time.sleep(60)")
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-c", code, root, str(tmp_path)],
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"locked\n"
        with pytest.raises(DuplicateInstanceError):
            InstanceLock(tmp_path, "x", "p").acquire()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        lock = InstanceLock(tmp_path, "x", "p")
        lock.acquire()
        lock.release()
    finally:
        proc.kill()
        proc.wait()


def test_a_fenced_static_member_stops_with_the_duplicate_instance_error(
        tmp_path: Path) -> None:
    fenced = client.KafkaError(client.KafkaError._FATAL, FENCED_TEXT)
    assert client.error_is_fatal(fenced)  # librdkafka says fatal() is False for this one
    assert fenced_instance(ConsumerFatal(fenced))
    assert not fenced_instance(ConsumerFatal(client.KafkaError(client.KafkaError._FATAL,
                                                               "Fatal error: other")))
    w = Worker(_processor(), Config(state_dir=str(tmp_path), leave_on_shutdown=True),
               env={"POD_NAME": "shop-count-0"})
    left: list[str] = []
    w._leave_group = lambda: left.append("left")  # type: ignore[method-assign]

    def start() -> None:
        raise ConsumerFatal(fenced)

    w.start = start  # type: ignore[method-assign]
    with pytest.raises(DuplicateInstanceError, match="fenced this static member") as e:
        w.run(install_signals=False)
    assert e.value.exit_code == EXIT_DUPLICATE_INSTANCE
    assert "'shop-count-0'" in str(e.value) and "shop.count" in str(e.value)
    assert left == []  # leaving would remove the live worker that took the id


class _Event:
    def __init__(self, err: Any) -> None:
        self._err = err

    def error(self) -> Any:
        return self._err


class _FencedConsumer:
    """A consumer in librdkafka's fatal state: the fence is its next event."""

    def __init__(self) -> None:
        self.events = [_Event(client.KafkaError(client.KafkaError._FATAL, FENCED_TEXT))]

    def consume(self, n: int, timeout: float) -> list[_Event]:
        out, self.events = self.events, []
        return out

    def close(self) -> None:
        pass


def test_a_seek_refused_after_the_fence_is_reported_as_the_duplicate_instance(
        tmp_path: Path) -> None:
    """Seen live: the twin's producer fences this one's, the rewind's seek then fails with
    _STATE in the consumer's fatal state, and the fence is still waiting as an event."""
    w = Worker(_processor(), Config(state_dir=str(tmp_path)), env={"POD_NAME": "shop-count-1"})

    def start() -> None:
        w.engine.consumer = _FencedConsumer()  # type: ignore[assignment]
        raise client.KafkaException(client.KafkaError(client.KafkaError._STATE,
                                                      "Failed to seek: Erroneous state"))

    w.start = start  # type: ignore[method-assign]
    with pytest.raises(DuplicateInstanceError, match="shop-count-1"):
        w.run(install_signals=False)
    # a dynamic member's failure stays what it was
    d = Worker(_processor(), Config(state_dir=str(tmp_path), static_membership="off"),
               env={"POD_NAME": "shop-count-1"})

    def start_d() -> None:
        d.engine.consumer = _FencedConsumer()  # type: ignore[assignment]
        raise client.KafkaException(client.KafkaError(client.KafkaError._STATE, "x"))

    d.start = start_d  # type: ignore[method-assign]
    with pytest.raises(client.KafkaException):
        d.run(install_signals=False)


def test_only_a_clean_stop_leaves_the_group(tmp_path: Path) -> None:
    w = Worker(_processor(), Config(state_dir=str(tmp_path), leave_on_shutdown=True),
               env={"POD_NAME": "shop-count-0"})
    left: list[str] = []
    w._leave_group = lambda: left.append("left")  # type: ignore[method-assign]
    w.start = lambda: True  # type: ignore[method-assign]  # joined
    w.run_loop = lambda: None  # type: ignore[method-assign]
    w.run(install_signals=False)
    assert left == ["left"]


def test_the_leave_request_refuses_a_secured_cluster_instead_of_guessing() -> None:
    with pytest.raises(LeaveGroupError, match="PLAINTEXT"):
        leave_group({"bootstrap.servers": "b:9092", "security.protocol": "SASL_SSL"}, "g", "i")


# -- the supervisor and the command line --------------------------------------------------
def test_the_supervisor_does_not_restart_a_duplicate_instance(tmp_path: Path) -> None:
    marker = tmp_path / "starts"
    sup = Supervisor("m", ["p"], 2, None, shutdown_timeout_s=5)
    for c in sup.children:
        exit_code = EXIT_DUPLICATE_INSTANCE if c.worker_id == 0 else 0
        c.argv = [sys.executable, "-c",
                  f"open({str(marker)!r}, 'a').write('{c.worker_id}'); exit({exit_code})"]
    began = time.monotonic()
    assert sup.run() == EXIT_DUPLICATE_INSTANCE
    assert time.monotonic() - began < 10
    assert sorted(marker.read_text()) == ["0", "1"]  # each started once


def test_supervised_children_get_their_index_and_the_passed_on_options() -> None:
    args = build_parser().parse_args(["run", "m", "-p", "p", "--workers", "2",
                                      "--instance-id", "eu-a", "--leave-on-shutdown"])
    assert args.instance_id == "eu-a" and args.leave_on_shutdown
    sup = Supervisor("m", ["p"], 2, None, extra_args=_child_args(args))
    argvs: list[list[Any]] = [c.argv for c in sup.children]
    for i, argv in enumerate(argvs):
        assert argv[argv.index("--worker-id") + 1] == str(i)
        assert argv[argv.index("--instance-id") + 1] == "eu-a"
        assert "--leave-on-shutdown" in argv
    assert _child_args(build_parser().parse_args(["run", "m"])) == []
