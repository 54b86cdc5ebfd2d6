"""Pods from the rendered manifests, run as local processes the way Kubernetes would run them.

:func:`render_pods` renders ``streamflow deploy k8s`` for a topology and returns, per
StatefulSet, what a pod of it gets: the container's command (``streamflow`` as ``python -m
streamflow``) and its environment: the ConfigMap's ``STREAMFLOW_*`` values plus the
downward-API entries (``POD_NAME``, ``STREAMFLOW_INSTANCE_ID`` from ``metadata.name`` =
``<statefulset>-<ordinal>``). Two things are local stand-ins: the state volume (the ConfigMap's
``STREAMFLOW_STATE_DIR`` becomes one folder per pod, like a volume claim per replica) and the
health port (pods have their own IPs; local processes share one, so each pod gets a free
port).

:class:`PodFleet` starts, SIGTERMs, SIGKILLs and restarts pods, waits for their readiness on
``/readyz`` (as a rolling update does), and reads their logs.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamflow.config import Config
from streamflow.dsl.topology import Topology
from streamflow.ops import k8s


@dataclass(frozen=True)
class PodTemplate:
    """What every pod of one StatefulSet runs: command, environment and its replica count."""

    statefulset: str
    command: list[str]
    config_map: dict[str, str]
    field_env: dict[str, str]  # env var -> downward-API field path
    replicas: int
    state_mount: str

    def pod_env(self, ordinal: int) -> tuple[str, dict[str, str]]:
        """The pod name and the environment Kubernetes gives pod ``ordinal``."""
        pod = f"{self.statefulset}-{ordinal}"
        env = dict(self.config_map)
        for var, path in self.field_env.items():
            if path == "metadata.name":
                env[var] = pod
        return pod, env


def render_pods(topology: Topology, module: str, bootstrap: str, replicas: int,
                config: Config | None = None) -> dict[str, PodTemplate]:
    """The pod templates of ``deploy k8s`` for ``topology``, by processor name."""
    config = (config or Config()).with_overrides(bootstrap_servers=bootstrap)
    rendered = k8s.render(topology, module, k8s.K8sOptions(replicas=replicas), config)
    config_map = next(d for d in rendered.documents if d["kind"] == "ConfigMap")["data"]
    out = {}
    for doc in rendered.documents:
        if doc["kind"] != "StatefulSet":
            continue
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        field_env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
                     for e in container.get("env", [])
                     if "fieldRef" in e.get("valueFrom", {})}
        processor = doc["spec"]["template"]["metadata"]["annotations"][
            "streamflow.io/processor"]
        state = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "state")
        command = list(container["command"])
        assert command[0] == "streamflow", command
        out[processor] = PodTemplate(doc["metadata"]["name"],
                                     [sys.executable, "-m", "streamflow", *command[1:]],
                                     dict(config_map), field_env, doc["spec"]["replicas"],
                                     state)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pod:
    """One replica: a process, or a supervisor serving one endpoint for its worker processes."""

    name: str
    argv: list[str]
    env: dict[str, str]
    health_ports: list[int]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    expected_exit: bool = False
    exits: list[int] = field(default_factory=list)

    def start(self, why: str) -> None:
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== fleet: start #{self.starts} of {self.name} ({why}) at "
                      f"{time.strftime('%H:%M:%S')} =====\n".encode())
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.expected_exit = False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        """Every worker of the pod answers 200 on ``/readyz`` (assigned and restored)."""
        if not self.alive():
            return False
        for port in self.health_ports:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status != 200:
                        return False
            except (urllib.error.URLError, OSError):
                return False
        return True

    def probe(self) -> dict[str, Any]:
        """The first worker's ``/readyz`` answer (its JSON, 200 or 503); {} when none."""
        import json

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_ports[0]}/readyz",
                                        timeout=1) as r:
                return dict(json.loads(r.read()))
        except urllib.error.HTTPError as e:
            with contextlib.suppress(ValueError):
                return dict(json.loads(e.read()))
        except (urllib.error.URLError, OSError):
            pass
        return {}

    def log_text(self, since: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0


class PodFleet:
    """The pods of one processor, started from a :class:`PodTemplate`."""

    def __init__(self, template: PodTemplate, workdir: Path, base_env: Mapping[str, str],
                 log: Any = print) -> None:
        self.template = template
        self.workdir = workdir
        self.base_env = dict(base_env)
        self.pods: dict[str, Pod] = {}
        self.crashes: list[str] = []
        self.unclean_stops: list[str] = []
        self.kills = 0
        self.log = log
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def pod(self, ordinal: int, *, extra_args: tuple[str, ...] = (), workers: int = 1,
            env: Mapping[str, str] | None = None, name: str | None = None) -> Pod:
        """Pod ``ordinal`` of the StatefulSet (created on first use; its own state volume)."""
        pod_name, pod_env = self.template.pod_env(ordinal)
        name = name or pod_name
        if name in self.pods:
            return self.pods[name]
        # a supervisor (workers > 1) serves the pod's one endpoint for all its workers, ready
        # when every worker is
        port = free_port()
        full = {**self.base_env, **pod_env, **(env or {}),
                "STREAMFLOW_STATE_DIR": str(self.workdir / "volumes" / name),
                "STREAMFLOW_HEALTH_PORT": str(port)}
        argv = [*self.template.command, *extra_args]
        if workers > 1:
            argv += ["--workers", str(workers)]
        pod = Pod(name, argv, full, [port],
                  self.workdir / f"{name}.log")
        self.pods[name] = pod
        return pod

    def start(self, pod: Pod, why: str) -> None:
        pod.start(why)
        self.log(f"[{self.elapsed():6.1f}s] start {pod.name} ({why})")

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` while noticing pods that exit on their own (restarted, as a
        StatefulSet restarts a failed container)."""
        end = time.monotonic() + seconds
        while True:
            for pod in self.pods.values():
                if pod.proc is not None and not pod.expected_exit and pod.proc.poll() is not None:
                    rc = pod.proc.returncode
                    pod.exits.append(rc)
                    self.crashes.append(f"{pod.name} exited on its own with {rc}\n"
                                        + "\n".join(pod.log_text().splitlines()[-15:]))
                    self.log(f"[{self.elapsed():6.1f}s] CRASH {pod.name} exit {rc}")
                    pod.proc = None
                    if rc != 5:  # a duplicate instance is not restarted
                        self.start(pod, "restart after crash")
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.05, left))

    def wait_ready(self, pod: Pod, timeout: float = 120.0) -> float:
        """Wait for ``pod``'s readiness probe; return how long it took."""
        began = time.monotonic()
        while not pod.ready():
            if time.monotonic() - began > timeout:
                msg = f"{pod.name} not ready within {timeout}s\n{pod.log_text()[-3000:]}"
                raise TimeoutError(msg)
            self.wait(0.2)
        return time.monotonic() - began

    def terminate(self, pod: Pod, why: str, timeout: float = 60.0) -> int | None:
        """SIGTERM ``pod`` and wait for its exit (SIGKILL after ``timeout``)."""
        if not pod.alive():
            return None
        assert pod.proc is not None
        began = time.monotonic()
        pod.expected_exit = True
        pod.proc.send_signal(signal.SIGTERM)
        try:
            rc = pod.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pod.proc.kill()
            rc = pod.proc.wait(30)
            self.unclean_stops.append(f"{pod.name} ({why}) ignored SIGTERM; killed")
        if rc != 0:
            self.unclean_stops.append(f"{pod.name} ({why}) exited with {rc} on SIGTERM\n"
                                      + "\n".join(pod.log_text().splitlines()[-15:]))
        pod.exits.append(rc)
        pod.proc = None
        self.log(f"[{self.elapsed():6.1f}s] SIGTERM {pod.name} ({why}): exit {rc} after "
                 f"{time.monotonic() - began:.1f}s")
        return rc

    def kill(self, pod: Pod) -> None:
        """SIGKILL ``pod`` (its whole process group: a supervisor and its workers)."""
        assert pod.proc is not None
        pod.expected_exit = True
        with contextlib.suppress(ProcessLookupError):
            import os

            os.killpg(pod.proc.pid, signal.SIGKILL)
        pod.proc.wait(30)
        pod.proc = None
        self.kills += 1
        self.log(f"[{self.elapsed():6.1f}s] SIGKILL {pod.name}")

    def stop_all(self) -> None:
        for pod in list(self.pods.values()):
            self.terminate(pod, "final stop")

    def kill_all(self) -> None:
        for pod in self.pods.values():
            if pod.alive():
                self.kill(pod)

    def fenced_lines(self) -> dict[str, int]:
        """Per pod: streamflow's log lines that mention ``_FENCED`` (a producer fenced by
        its transactional id: recreated, or failing to abort). librdkafka's own ``%1|...
        TXNERR`` lines are left out: it prints one per partition of the same fence."""
        return {p.name: sum("_FENCED" in line and " streamflow." in line
                            for line in p.log_text().splitlines())
                for p in self.pods.values()}
