r"""The dashboard's HTTP server: the page, its graph library, JSON and a server-sent event stream.

One poller thread observes the topology every ``interval`` seconds (the broker's figures and
the instances' ``/status`` and ``/metrics``, through the ``observe`` function it is given) and
turns each observation into a frame (:mod:`streamflow.dashboard.frames`). Each browser gets a
thread (:class:`~streamflow.observability.httpd.BackgroundHTTPServer`) that sends it every new
frame as a server-sent event; however many pages are open, the processors are asked once per
interval.

Routes: ``/`` the page; ``/static/*`` its own script and style; ``/assets/*`` the graph
library installed from npm (``make dashboard-assets``); ``/api/graph`` the DAG;
``/api/frame`` the latest frame; ``/api/events`` the event stream (``event: frame``);
``/api/topics/NAME/records?last=N`` a topic's latest records, decoded.

>>> sse_event('{"a": 1}', event="frame", event_id=7)
b'event: frame\nid: 7\ndata: {"a": 1}\n\n'
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from streamflow.dashboard.frames import FrameBuilder
from streamflow.dashboard.graph import topology_graph
from streamflow.dsl.topology import Topology
from streamflow.observability.httpd import BackgroundHTTPServer, send

__all__ = ["ASSETS", "ASSETS_DIR", "STATIC_DIR", "DashboardServer", "Poller", "missing_assets",
           "sse_event"]

log = logging.getLogger("streamflow.dashboard")

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
ASSETS_DIR = HERE / "assets" / "node_modules"
# what the page loads from /assets/NAME -> the file npm installs under ASSETS_DIR
ASSETS = {
    "cytoscape.min.js": "cytoscape/dist/cytoscape.min.js",
    "cytoscape-dagre.min.js": "cytoscape-dagre/dist/cytoscape-dagre.min.js",
}
STATIC = {"index.html": "text/html; charset=utf-8",
          "dashboard.js": "text/javascript; charset=utf-8",
          "dashboard.css": "text/css; charset=utf-8"}
JSON_TYPE = "application/json"
KEEPALIVE_S = 15.0

Observe = Callable[[], dict[str, Any]]
"""One observation of the running topology (see :class:`.frames.FrameBuilder`)."""

Records = Callable[[str, int], list[dict[str, Any]]]
"""``records(topic, last)``: the topic's latest ``last`` records, decoded, JSON-ready."""


def sse_event(data: str, *, event: str | None = None, event_id: int | None = None) -> bytes:
    r"""One server-sent event: every line of ``data`` on its own ``data:`` line.

    >>> sse_event("a\nb")
    b'data: a\ndata: b\n\n'
    """
    lines = []
    if event:
        lines.append(f"event: {event}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


def missing_assets(assets_dir: Path = ASSETS_DIR) -> list[str]:
    """The graph library's files that are not installed (empty when the page can work)."""
    return [rel for rel in ASSETS.values() if not (assets_dir / rel).is_file()]


def missing_assets_page(missing: list[str], assets_dir: Path) -> bytes:
    """The HTML answered instead of the page when the graph library is not installed."""
    items = "".join(f"<li><code>{assets_dir / m}</code></li>" for m in missing)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>streamflow dashboard: "
        "assets missing</title></head><body><h1>The dashboard's graph library is not "
        "installed</h1><p>Run <code>make dashboard-assets</code> in a streamflow checkout "
        "(it runs <code>npm ci</code> in <code>streamflow/dashboard/assets</code>), or install "
        "a streamflow wheel built after it, then reload this page.</p><p>Missing:</p>"
        f"<ul>{items}</ul></body></html>"
    ).encode()


class Poller:
    """Observes every ``interval`` seconds in a daemon thread; keeps the latest frame.

    Readers wait on :meth:`wait_newer`; a failing ``observe`` yields a frame whose
    ``error`` says why (and no processors, so the page shows them as unknown).
    """

    def __init__(self, observe: Observe, interval: float, *,
                 builder: FrameBuilder | None = None) -> None:
        self._observe = observe
        self._interval = interval
        self._builder = builder or FrameBuilder()
        self._cond = threading.Condition()
        self._frame: dict[str, Any] | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> dict[str, Any]:
        """Observe now, publish the frame and return it."""
        try:
            obs = self._observe()
        except Exception as e:  # the page shows it; the next poll tries again
            log.warning("dashboard poll failed: %s", e)
            obs = {"error": f"{type(e).__name__}: {e}"}
        frame = self._builder.update(obs)
        with self._cond:
            self._frame = frame
            self._cond.notify_all()
        return frame

    def start(self) -> Poller:
        """Start polling in a daemon thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="streamflow-dashboard-poll",
                                            daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopped.is_set():
            self.poll_once()
            self._stopped.wait(self._interval)

    def stop(self) -> None:
        """Stop polling and wake every waiting reader."""
        self._stopped.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopped.is_set()

    def latest(self) -> dict[str, Any] | None:
        """The latest frame (None before the first poll)."""
        with self._cond:
            return self._frame

    def wait_newer(self, seq: int, timeout: float) -> dict[str, Any] | None:
        """The first frame with a ``seq`` above ``seq``, or None after ``timeout`` or stop."""
        with self._cond:
            self._cond.wait_for(
                lambda: self.stopped or (self._frame is not None and self._frame["seq"] > seq),
                timeout)
            if self._frame is not None and self._frame["seq"] > seq:
                return self._frame
            return None


class DashboardServer:
    """Serves the dashboard of ``topology`` on ``host:port`` (``port=0``: a free one)."""

    def __init__(self, topology: Topology, observe: Observe, *, records: Records | None = None,
                 host: str = "127.0.0.1", port: int = 0, interval: float = 2.0,
                 assets_dir: Path = ASSETS_DIR, keepalive_s: float = KEEPALIVE_S) -> None:
        self.topology = topology
        self.poller = Poller(observe, interval)
        self.graph = topology_graph(topology)
        self._records = records
        self._assets_dir = assets_dir
        self._keepalive_s = keepalive_s
        self._http = BackgroundHTTPServer(host, port, self._handler_class(),
                                          name="streamflow-dashboard")

    @property
    def port(self) -> int:
        """The port actually bound."""
        return self._http.port

    @property
    def url(self) -> str:
        """The page's address."""
        host = self._http.host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}/"

    def start(self) -> DashboardServer:
        """Start polling and serving in daemon threads; returns ``self``."""
        self.poller.start()
        self._http.start()
        return self

    def serve_forever(self) -> None:
        """Poll in the background and serve in this thread until interrupted."""
        self.poller.start()
        self._http.serve_forever()

    def stop(self) -> None:
        """Stop polling (ending every event stream) and serving."""
        self.poller.stop()
        self._http.stop()

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- answers (also used by the unit tests, without sockets) ---

    def answer(self, target: str) -> tuple[int, str, bytes]:
        """``(status, content type, body)`` for a GET of ``target`` (not the event stream)."""
        url = urllib.parse.urlsplit(target)
        path = urllib.parse.unquote(url.path)
        if path in ("/", "/index.html"):
            missing = missing_assets(self._assets_dir)
            if missing:
                return 503, STATIC["index.html"], missing_assets_page(missing, self._assets_dir)
            return 200, STATIC["index.html"], (STATIC_DIR / "index.html").read_bytes()
        if path.startswith("/static/") and path[len("/static/"):] in STATIC:
            name = path[len("/static/"):]
            return 200, STATIC[name], (STATIC_DIR / name).read_bytes()
        if path.startswith("/assets/") and path[len("/assets/"):] in ASSETS:
            file = self._assets_dir / ASSETS[path[len("/assets/"):]]
            if not file.is_file():
                return 404, "text/plain", b"not installed: run make dashboard-assets\n"
            return 200, "text/javascript; charset=utf-8", file.read_bytes()
        if path == "/favicon.ico":
            return 204, "image/x-icon", b""
        if path == "/api/graph":
            return 200, JSON_TYPE, _json(self.graph)
        if path == "/api/frame":
            return 200, JSON_TYPE, _json(self.poller.latest() or {"seq": 0})
        prefix, suffix = "/api/topics/", "/records"
        if path.startswith(prefix) and path.endswith(suffix):
            return self._topic_records(path[len(prefix):-len(suffix)],
                                       urllib.parse.parse_qs(url.query))
        return 404, "text/plain", b"not found\n"

    def _topic_records(self, topic: str, query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        if topic not in self.topology.topics:
            return 404, JSON_TYPE, _json({"error": f"topology {self.topology.name!r} has no "
                                                   f"topic {topic!r}"})
        if self._records is None:
            return 501, JSON_TYPE, _json({"error": "this dashboard does not read records"})
        try:
            last = min(200, max(1, int(query.get("last", ["20"])[0])))
        except ValueError:
            return 400, JSON_TYPE, _json({"error": "last must be a number"})
        try:
            rows = self._records(topic, last)
        except Exception as e:  # shown in the page's panel
            log.warning("reading %s failed: %s", topic, e)
            return 502, JSON_TYPE, _json({"error": f"reading {topic} failed: {e}"})
        return 200, JSON_TYPE, _json({"topic": topic, "records": rows})

    def stream(self, write: Callable[[bytes], None]) -> None:
        """Send frames as server-sent events through ``write`` until it fails or we stop."""
        write(b"retry: 2000\n\n")
        seq = 0
        latest = self.poller.latest()
        while not self.poller.stopped:
            if latest is not None:
                seq = int(latest["seq"])
                write(sse_event(json.dumps(latest, default=str), event="frame", event_id=seq))
            else:
                write(b": keepalive\n\n")
            latest = self.poller.wait_newer(seq, self._keepalive_s)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        dashboard = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if urllib.parse.urlsplit(self.path).path == "/api/events":
                    self._events()
                    return
                send(self, *dashboard.answer(self.path))

            def _events(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

                def write(chunk: bytes) -> None:
                    self.wfile.write(chunk)
                    self.wfile.flush()

                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    dashboard.stream(write)  # until the page goes away

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("dashboard %s: " + format, self.address_string(), *args)

        return Handler


def _json(body: Any) -> bytes:
    return json.dumps(body, default=str).encode()
