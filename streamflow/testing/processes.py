"""Run a topology's processors as managed ``streamflow run`` processes in integration tests.

:class:`StreamflowProcess` is one ``python -m streamflow ...`` child with its output in a log
file; :class:`TopologyApp` runs ``streamflow run MODULE [-p NAME]`` against a cluster, waits
until its readiness probe answers, and stops it cleanly. The ``streamflow_app`` fixture of
:mod:`streamflow.testing.plugin` hands out apps that stop at the end of the test and whose logs
are attached to the test's report when it fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from streamflow.errors import ProcessingError

__all__ = ["AppFailed", "StreamflowProcess", "TopologyApp", "free_port"]


class AppFailed(ProcessingError):
    """A managed ``streamflow`` process exited or never became ready; the log tail says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StreamflowProcess:
    """``python -m streamflow ARGS`` as a child process, its output appended to ``log``.

    ``cwd`` is importable (``PYTHONPATH``), as it is for ``streamflow`` run from a shell.
    """

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.args = args
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 (closed when the process is reaped)
        path = os.pathsep.join(p for p in (str(cwd), os.environ.get("PYTHONPATH", "")) if p)
        full_env = {**os.environ, "PYTHONPATH": path, **env}
        self.proc = subprocess.Popen([sys.executable, "-m", "streamflow", *args], cwd=cwd,
                                     env=full_env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""
        return self.proc.poll()

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the exit code (SIGKILL if it outlives ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(30)
        self._log.close()
        return rc

    def kill(self) -> int:
        """SIGKILL the process (and, for a supervisor, nothing else)."""
        self.proc.kill()
        rc = self.proc.wait(30)
        self._log.close()
        return rc

    def output(self) -> str:
        """What the process printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of its output."""
        return "\n".join(self.output().splitlines()[-lines:])


class TopologyApp:
    """``streamflow run MODULE [-p PROCESSOR]`` against a cluster, managed for a test.

    Use as a context manager (or ``start()`` / ``stop()``)::

        with TopologyApp("my_topology", "enrich", bootstrap=..., registry=...,
                         workdir=tmp_path) as app:
            ...  # produce, then read the outputs
        assert app.exit_code == 0

    Its readiness probe (``/readyz`` on a free port) decides when it is ready; ``env`` adds
    ``STREAMFLOW_*`` settings; state goes to ``workdir/state``, output to ``workdir/NAME.log``.
    ``name_suffix`` runs the topology with that suffix on every topic and group name (the
    ``name_suffix`` setting; see :meth:`~streamflow.dsl.topology.Topology.with_name_suffix`).
    """

    def __init__(self, module: str, processor: str | None = None, *, bootstrap: str,
                 registry: str | None = None, workdir: Path, cwd: Path | None = None,
                 env: dict[str, str] | None = None, args: list[str] | None = None,
                 ready_timeout_s: float = 60.0, name_suffix: str = "") -> None:
        self.module = module
        self.processor = processor
        self.port = free_port()
        self.workdir = workdir
        self.cwd = cwd or Path.cwd()
        self.ready_timeout_s = ready_timeout_s
        self.name = f"{module.replace(':', '.')}{'.' + processor if processor else ''}"
        self.env = {
            "STREAMFLOW_BOOTSTRAP_SERVERS": bootstrap,
            "STREAMFLOW_HEALTH_PORT": str(self.port),
            "STREAMFLOW_STATE_DIR": str(workdir / "state" / self.name),
            **({"STREAMFLOW_SCHEMA_REGISTRY_URL": registry} if registry else {}),
            **({"STREAMFLOW_NAME_SUFFIX": name_suffix} if name_suffix else {}),
            **(env or {}),
        }
        self.args = ["run", module, *(["--processor", processor] if processor else []),
                     *(args or [])]
        self.process: StreamflowProcess | None = None
        self.exit_code: int | None = None

    def start(self) -> TopologyApp:
        """Start the process and wait until it is ready (raises :class:`AppFailed`)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = StreamflowProcess(self.args, self.cwd, self.env,
                                         self.workdir / f"{self.name}.log")
        self.wait_ready(self.ready_timeout_s)
        return self

    def ready(self) -> bool:
        """Whether its readiness probe answers 200 now."""
        url = f"http://127.0.0.1:{self.port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float) -> None:
        """Wait until ready; raise :class:`AppFailed` with its log if it exits or times out."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not self.ready():
            rc = self.process.poll()
            if rc is not None:
                self.exit_code = rc
                msg = (f"streamflow {' '.join(self.args)} exited with {rc} before it was "
                       f"ready:\n{self.process.tail()}")
                raise AppFailed(msg)
            if time.monotonic() > deadline:
                msg = (f"streamflow {' '.join(self.args)} not ready after {timeout:.0f}s:\n"
                       f"{self.process.tail()}")
                raise AppFailed(msg)
            time.sleep(0.2)

    def stop(self, timeout: float = 60.0) -> int:
        """Stop it cleanly (SIGTERM: finish the batch, commit, leave); return the exit code."""
        if self.process is not None and self.exit_code is None:
            self.exit_code = self.process.terminate(timeout)
        return -1 if self.exit_code is None else self.exit_code

    def logs(self) -> str:
        """Everything it printed."""
        return "" if self.process is None else self.process.output()

    def __enter__(self) -> TopologyApp:
        try:
            return self.start()
        except BaseException:
            with contextlib.suppress(Exception):
                self.stop(10)
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
