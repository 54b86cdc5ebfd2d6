"""Health, status and metrics endpoints, served from a small background thread.

- ``GET /healthz`` (also ``/livez``): 200 while the process is alive (the worker loop turned
  recently), 503 otherwise; Kubernetes restarts the pod after a few 503s (liveness probe).
- ``GET /readyz``: 200 once partitions are assigned and state is restored, and while the
  broker answers and no partition is stalled; 503 otherwise (readiness probe).
- ``GET /status``: the probe's JSON document (counters, loop age, why not ready).
- ``GET /metrics``: the Prometheus text format (when the server has metrics).

Probe answers are JSON, the probe's dict, so ``curl host:port/readyz`` says why. The server
only calls ``probe()`` and ``metrics()``; it never touches the worker itself.

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
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from streamflow.observability.httpd import BackgroundHTTPServer, send
from streamflow.observability.metrics import CONTENT_TYPE, StatusCollector, exposition
from streamflow.observability.probes import worker_probe
from streamflow.observability.status import WorkerStatus

__all__ = ["ENDPOINTS", "HealthServer", "Probe", "serve_worker_health", "worker_probe"]

log = logging.getLogger("streamflow.health")

Probe = Callable[[], Mapping[str, Any]]
"""Returns at least ``{"alive": bool, "ready": bool}``; other keys are shown as they are."""

Metrics = Callable[[], bytes]
"""Returns the Prometheus text format."""

ENDPOINTS = ["/healthz", "/livez", "/readyz", "/status", "/metrics"]
JSON = "application/json"


class HealthServer:
    """Serve the probes, ``/status`` and ``/metrics`` on ``host:port`` in a daemon thread.

    ``port=0`` binds a free port (see :attr:`port`); callers that treat 0 as "disabled"
    (the ``health_port`` setting) should not create a server at all. Without ``metrics``,
    ``/metrics`` answers 404.
    """

    def __init__(self, port: int, probe: Probe, *, host: str = "0.0.0.0",
                 metrics: Metrics | None = None) -> None:
        self._probe = probe
        self._metrics = metrics
        self._http = BackgroundHTTPServer(host, port, self._handler_class(),
                                          name="streamflow-health")
        self._started = False

    @property
    def port(self) -> int:
        """The port actually bound."""
        return self._http.port

    def start(self) -> HealthServer:
        """Start serving in a daemon thread; returns ``self``."""
        if not self._started:
            self._http.start()
            self._started = True
            log.info("health endpoints on port %d (%s)", self.port, ", ".join(ENDPOINTS))
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._http.stop()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, path: str) -> tuple[int, str, bytes]:
        """The status code, content type and body for ``path`` (used by the handler)."""
        route = path.split("?", 1)[0].rstrip("/") or "/"
        try:
            if route == "/metrics" and self._metrics is not None:
                return 200, CONTENT_TYPE, self._metrics()
            if route == "/status":
                return 200, JSON, _json(dict(self._probe()))
            if route in ("/healthz", "/livez", "/readyz"):
                state = dict(self._probe())
                ok = bool(state.get("ready" if route == "/readyz" else "alive", False))
                body = {"status": "ok" if ok else "unavailable", **state}
                return (200 if ok else 503), JSON, _json(body)
        except Exception as e:  # a failing probe means unhealthy, not a crashed server
            log.warning("health probe failed: %s", e)
            return 503, JSON, _json({"status": "error", "error": f"{type(e).__name__}: {e}"})
        endpoints = [e for e in ENDPOINTS if e != "/metrics" or self._metrics is not None]
        return 404, JSON, _json({"status": "not found", "endpoints": endpoints})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                send(self, *server.answer(self.path))

            def do_HEAD(self) -> None:
                send(self, *server.answer(self.path), with_body=False)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s " + format, self.address_string(), *args)

        return Handler


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, default=str).encode()


def serve_worker_health(status: Callable[[], WorkerStatus], port: int,
                        shutdown_timeout_s: float, *, host: str = "0.0.0.0",
                        broker_timeout_s: float = 0.0, stall_timeout_s: float = 0.0,
                        metrics: bool = True) -> HealthServer | None:
    """Start the health server of a worker on ``port`` (None when 0).

    Raises ``OSError`` when the port is taken.

    Liveness tolerates a loop turn as slow as twice the shutdown timeout (a commit may
    wait that long for the broker), and at least a minute. ``broker_timeout_s`` and
    ``stall_timeout_s`` (0: off) make readiness see stalls (see ``worker_probe``).
    """
    if not port:
        return None
    stale_after = max(60.0, 2 * float(shutdown_timeout_s))
    probe = worker_probe(status, stale_after_s=stale_after, broker_timeout_s=broker_timeout_s,
                         stall_timeout_s=stall_timeout_s)
    collector = StatusCollector(status)
    return HealthServer(port, probe, host=host,
                        metrics=(lambda: exposition(collector)) if metrics else None).start()
