"""Supervise worker processes: start them, restart crashed ones with backoff, stop them all.

Each worker is a ``streamflow run MODULE --processor NAME --worker-id I`` child process in
the processor's consumer group, so Kafka splits the partitions between them. Child ``I``'s
instance id is ``<base>-I`` (:mod:`streamflow.runtime.identity`; the base is the
``--instance-id`` passed on, else ``POD_NAME``, else the host name).

A child that exits on its configuration (exit 3) stops them all; one that exits because
another live worker has its instance id (exit 5) is not restarted, the others go on.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from streamflow.errors import EXIT_CONFIG, EXIT_DUPLICATE_INSTANCE

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


class Supervisor:
    """Runs and supervises worker processes for one or more processors."""

    def __init__(self, module: str, processors: list[str], workers: int,
                 config_file: str | None, shutdown_timeout_s: float = 30.0,
                 health_port: int = 0, extra_args: list[str] | None = None) -> None:
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
                self.children.append(_Child(p, i, argv))

    def _start(self, c: _Child) -> None:
        env = os.environ.copy()
        if self.health_port:
            # one port per child: base, base+1, ... in the order the children were declared
            env["STREAMFLOW_HEALTH_PORT"] = str(self.health_port + self.children.index(c))
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
                if rc == EXIT_CONFIG:
                    log.error("%s#%d failed on its configuration (exit %d); stopping",
                              c.processor, c.worker_id, rc)
                    code = EXIT_CONFIG
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
