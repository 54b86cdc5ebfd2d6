"""Supervise worker processes: start them, restart crashed ones with backoff, stop them all.

Each worker is a ``streamflow run MODULE --processor NAME --worker-id I`` child process in
the processor's consumer group, so Kafka splits the partitions between them. Child ``I``'s
instance id is ``<base>-I`` (:mod:`streamflow.runtime.identity`; the base is the
``--instance-id`` passed on, else ``POD_NAME``, else the host name).

A child that exits on its configuration (exit 3) stops them all; one that exits because
another live worker has its instance id (exit 5) is not restarted, the others go on.

With a ``health_port``, the supervisor serves the one endpoint of the pod there (probes,
``/status`` and ``/metrics`` of all its workers, see ``observability.fleet``); each child
serves its own on an internal port picked at each start.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from streamflow.config import ConfigError
from streamflow.errors import EXIT_ACCESS, EXIT_CONFIG, EXIT_DUPLICATE_INSTANCE
from streamflow.observability.fleet import FleetView, Member
from streamflow.observability.health import HealthServer
from streamflow.runtime.identity import resolve_identity

log = logging.getLogger("streamflow.supervisor")


@dataclass
class _Child:
    processor: str
    worker_id: int
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)
    port: int | None = None  # the child's internal health port
    instance: str = ""  # the child's instance id


class Supervisor:
    """Runs and supervises worker processes for one or more processors."""

    def __init__(self, module: str, processors: list[str], workers: int,
                 config_file: str | None, shutdown_timeout_s: float = 30.0,
                 health_port: int = 0, extra_args: list[str] | None = None,
                 instance_id: str = "") -> None:
        self.children: list[_Child] = []
        self.health_port = health_port
        self.shutdown_timeout_s = shutdown_timeout_s
        self._stopping = False
        for p in processors:
            for i in range(workers):
                argv = [sys.executable, "-m", "streamflow", "run", module, "--processor", p,
                        "--worker-id", str(i)]
                if config_file:
                    argv += ["--config", config_file]
                argv += extra_args or []
                # the child's instance id, as it resolves it itself (its metrics' instance)
                instance = resolve_identity(instance_id, os.environ, str(i)).instance_id
                self.children.append(_Child(p, i, argv, instance=instance))

    def _start(self, c: _Child) -> None:
        env = os.environ.copy()
        if self.health_port:  # an internal port; the supervisor serves health_port
            c.port = _free_port()
            env["STREAMFLOW_HEALTH_PORT"] = str(c.port)
        c.proc = subprocess.Popen(c.argv, env=env)
        c.started_at = time.monotonic()
        log.info("started %s#%d (pid %d)", c.processor, c.worker_id, c.proc.pid)

    def stop(self, *_: object) -> None:
        """Stop all children (SIGTERM, then SIGKILL after the shutdown timeout)."""
        self._stopping = True

    def run(self) -> int:
        """Run until stopped or until a child fails on its configuration; return an exit code."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        health = self._serve_health()
        try:
            return self._supervise()
        finally:
            if health is not None:
                health.stop()

    def members(self) -> list[Member]:
        """The workers and their internal health ports (read by the health thread)."""
        out = []
        for c in self.children:
            proc = c.proc
            running = proc is not None and proc.poll() is None
            out.append(Member(c.processor, c.instance or str(c.worker_id),
                              c.port if running else None))
        return out

    def _serve_health(self) -> HealthServer | None:
        if not self.health_port:
            return None
        view = FleetView(self.members)
        try:
            return HealthServer(self.health_port, view.probe, metrics=view.metrics).start()
        except OSError as e:
            msg = (f"health_port {self.health_port}: cannot listen for health probes: {e}; "
                   "choose a free port (STREAMFLOW_HEALTH_PORT) or 0 to disable")
            raise ConfigError(msg) from e

    def _supervise(self) -> int:
        for c in self.children:
            self._start(c)
        code = 0
        while not self._stopping:
            time.sleep(0.2)
            now = time.monotonic()
            for c in self.children:
                if c.proc is None:
                    if now >= c.next_start:
                        self._start(c)
                    continue
                rc = c.proc.poll()
                if rc is None:
                    if now - c.started_at > 60:
                        c.restarts = 0  # it has been healthy for a while
                    continue
                if rc in (EXIT_CONFIG, EXIT_ACCESS):  # a restart would fail the same way
                    log.error("%s#%d failed on its configuration or access (exit %d); stopping",
                              c.processor, c.worker_id, rc)
                    code = rc
                    self._stopping = True
                    break
                if rc == EXIT_DUPLICATE_INSTANCE:
                    # a restart would only fence the other worker with this id, or be refused
                    log.error("%s#%d: another worker has its instance id (exit %d); not "
                              "restarting it", c.processor, c.worker_id, rc)
                    code = EXIT_DUPLICATE_INSTANCE
                    c.proc = None
                    c.next_start = float("inf")
                    continue
                if rc == 0:
                    log.info("%s#%d exited cleanly", c.processor, c.worker_id)
                    c.proc = None
                    c.next_start = float("inf")
                    continue
                delay = min(30.0, 0.5 * 2 ** c.restarts)
                c.restarts += 1
                log.warning("%s#%d exited with %d; restarting in %.1fs",
                            c.processor, c.worker_id, rc, delay)
                c.proc = None
                c.next_start = now + delay
            if all(c.proc is None and c.next_start == float("inf") for c in self.children):
                break
        self._terminate()
        return code

    def _terminate(self) -> None:
        live = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        for c in live:
            assert c.proc is not None
            c.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_timeout_s
        for c in live:
            assert c.proc is not None
            try:
                c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s#%d did not stop in time; killing", c.processor, c.worker_id)
                c.proc.kill()
                c.proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
