"""Health endpoints for orchestrators' probes, served from a small background thread.

- ``GET /healthz``: 200 while the process is alive (the worker loop turned recently),
  503 otherwise; Kubernetes restarts the pod after a few 503s (liveness probe).
- ``GET /readyz``: 200 once partitions are assigned and state is restored, 503 before
  (readiness probe; a rolling update waits for it).
- ``GET /metrics``: a small JSON document of counters.

Every answer is JSON: the probe's dict, so ``curl host:port/readyz`` says why. The server
only calls ``probe()`` (and ``metrics()``); it never touches the worker itself.

>>> server = HealthServer(0, lambda: {"alive": True, "ready": False}).start()
>>> import urllib.request, urllib.error
>>> urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz").status
200
>>> try:
...     urllib.request.urlopen(f"http://127.0.0.1:{server.port}/readyz")
... except urllib.error.HTTPError as e:
...     e.code
503
>>> server.stop()
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from streamflow.observability.status import WorkerStatus

__all__ = ["HealthServer", "Probe", "serve_worker_health", "worker_probe"]

log = logging.getLogger("streamflow.health")

Probe = Callable[[], Mapping[str, Any]]
"""Returns at least ``{"alive": bool, "ready": bool}``; other keys are shown as they are."""


class HealthServer:
    """Serve ``/healthz``, ``/readyz`` and ``/metrics`` on ``host:port`` in a daemon thread.

    ``port=0`` binds a free port (see :attr:`port`); callers that treat 0 as "disabled"
    (the ``health_port`` setting) should not create a server at all. ``metrics`` defaults
    to ``probe``.
    """

    def __init__(
        self,
        port: int,
        probe: Probe,
        *,
        host: str = "0.0.0.0",
        metrics: Probe | None = None,
    ) -> None:
        self._probe = probe
        self._metrics = metrics or probe
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        """Start serving in a daemon thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            name="streamflow-health", daemon=True)
            self._thread.start()
            log.info("health endpoints on port %d (/healthz, /readyz, /metrics)", self.port)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5.0)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        """The status code and JSON body for ``path`` (used by the request handler)."""
        route = path.split("?", 1)[0].rstrip("/") or "/"
        try:
            if route == "/metrics":
                return 200, dict(self._metrics())
            if route in ("/healthz", "/readyz"):
                state = dict(self._probe())
                ok = bool(state.get("alive" if route == "/healthz" else "ready", False))
                return (200 if ok else 503), {"status": "ok" if ok else "unavailable", **state}
        except Exception as e:  # a failing probe means unhealthy, not a crashed server
            log.warning("health probe failed: %s", e)
            return 503, {"status": "error", "error": f"{type(e).__name__}: {e}"}
        return 404, {"status": "not found", "endpoints": ["/healthz", "/readyz", "/metrics"]}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, with_body: bool) -> None:
                code, body = server.answer(self.path)
                data = json.dumps(body, default=str).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if with_body:
                    self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(True)

            def do_HEAD(self) -> None:
                self._send(False)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s " + format, self.address_string(), *args)

        return Handler


def serve_worker_health(status: Callable[[], WorkerStatus], port: int,
                        shutdown_timeout_s: float) -> HealthServer | None:
    """Start the health server of a worker on ``port`` (None when 0).

    Raises ``OSError`` when the port is taken.

    Liveness tolerates a loop turn as slow as twice the shutdown timeout (a commit may
    wait that long for the broker), and at least a minute.
    """
    if not port:
        return None
    stale_after = max(60.0, 2 * float(shutdown_timeout_s))
    return HealthServer(port, worker_probe(status, stale_after_s=stale_after)).start()


def worker_probe(
    status: Callable[[], WorkerStatus],
    *,
    stale_after_s: float = 60.0,
    clock: Callable[[], float] = time.monotonic,
) -> Probe:
    """A probe over a worker's status snapshots.

    - alive: the loop's last turn (``last_loop``) is at most ``stale_after_s`` old; before
      the first turn, alive for ``stale_after_s`` after the probe was made (start-up:
      connecting, checking topics); always alive while restoring state, which blocks the
      loop inside the assignment callback;
    - ready: alive, partitions assigned, ``ready`` and not restoring;
    - also reports the processor, worker id, assigned partitions, records processed, commits
      and aborts, and the loop's age.
    """
    made = clock()

    def probe() -> dict[str, Any]:
        s = status()
        now = clock()
        age = now - (s.last_loop if s.last_loop is not None else made)
        alive = s.restoring or age <= stale_after_s
        return {
            "alive": alive,
            "ready": alive and bool(s.assigned) and s.ready and not s.restoring,
            "processor": s.processor,
            "worker_id": s.worker_id,
            "assigned": len(s.assigned),
            "restoring": s.restoring,
            "processed": s.processed,
            "commits": s.commits,
            "aborts": s.aborts,
            "skipped": s.skipped,
            "dead_lettered": s.dead_lettered,
            "loop_age_s": round(age, 3),
        }

    return probe
