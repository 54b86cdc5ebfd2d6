"""A stdlib HTTP server served from a daemon thread, and the one way its handlers answer.

Shared by the health endpoints (:mod:`streamflow.observability.health`) and the dashboard
(:mod:`streamflow.dashboard.server`): a thread per request (``ThreadingHTTPServer``, daemon
threads, so an open event stream never holds the process), ``port=0`` for a free port.

>>> from http.server import BaseHTTPRequestHandler
>>> class Hello(BaseHTTPRequestHandler):
...     def do_GET(self) -> None:
...         send(self, 200, "text/plain", b"hi")
>>> import urllib.request
>>> with BackgroundHTTPServer("127.0.0.1", 0, Hello, name="hello") as s:
...     urllib.request.urlopen(f"http://127.0.0.1:{s.port}/").read()
b'hi'
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["BackgroundHTTPServer", "send"]


def send(handler: BaseHTTPRequestHandler, code: int, content_type: str, body: bytes, *,
         with_body: bool = True) -> None:
    """Answer ``code`` with ``body`` (not cached); ``with_body=False`` for a HEAD."""
    handler.send_response(code)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Cache-Control", "no-store")
    handler.end_headers()
    if with_body:
        handler.wfile.write(body)


class BackgroundHTTPServer:
    """``handler`` served on ``host:port`` from a daemon thread named ``name``."""

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler], *,
                 name: str) -> None:
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._name = name
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The address bound."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self._server.server_address[1])

    def start(self) -> BackgroundHTTPServer:
        """Start serving in the daemon thread (once); returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name=self._name,
                                            daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread instead, until :meth:`stop` (from another thread)."""
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5.0)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> BackgroundHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
