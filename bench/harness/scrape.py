"""Scrape a streamflow worker's ``/metrics`` during a run, as Prometheus would (more often).

Used by the ``streamflow_metrics`` implementation, so the metrics-overhead comparison pays for
the HTTP thread building the exposition while the loop runs. The last document is kept, for
the run's log.
"""

from __future__ import annotations

import socket
import threading
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Scraper:
    """GET ``/metrics`` every ``interval`` seconds in a daemon thread until ``stop()``."""

    def __init__(self, port: int, interval: float) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.interval = interval
        self.scrapes = 0
        self.failures = 0
        self.last = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-scraper", daemon=True)

    def start(self) -> Scraper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    self.last = r.read()
                self.scrapes += 1
            except OSError:
                self.failures += 1  # not listening yet, or stopping
