"""One endpoint for all the worker processes of a supervisor (one port per pod).

Each worker serves its own probes and metrics on an internal port; the supervisor's
``FleetView`` asks them when it is asked, over loopback HTTP:

- ``/metrics``: every worker's Prometheus text, parsed with ``prometheus_client``'s parser and
  exposed again as one document (each worker's samples keep their ``processor`` and
  ``instance`` labels), plus ``streamflow_worker_up`` per worker;
- readiness: ready when every worker runs and is ready; liveness: no worker reports a stuck
  loop (a worker that is starting or being restarted does not make the pod dead);
- ``/status``: each worker's status document.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from streamflow.observability.metrics import exposition

__all__ = ["FleetView", "Member"]


@dataclass(frozen=True)
class Member:
    """One worker process: its processor, instance (worker id) and internal health port.

    ``port`` is None while the process is not running (starting over after a crash).
    """

    processor: str
    instance: str
    port: int | None


class FleetView:
    """Probe and metrics of a supervisor over its members' own endpoints."""

    def __init__(self, members: Callable[[], list[Member]], *, timeout_s: float = 2.0) -> None:
        self._members = members
        self._timeout_s = timeout_s

    def _get(self, port: int, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                        timeout=self._timeout_s) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read()
        except OSError:
            return 0, b""  # not listening (yet), or gone

    def probe(self) -> dict[str, Any]:
        """``alive``, ``ready``, ``reasons`` and each worker's status document."""
        workers = []
        reasons = []
        alive = True
        for m in self._members():
            name = f"{m.processor}#{m.instance}"
            doc: dict[str, Any] = {"processor": m.processor, "instance": m.instance}
            if m.port is None:
                reasons.append(f"{name} is not running")
                workers.append(doc)
                continue
            code, body = self._get(m.port, "/status")
            if code != 200:
                reasons.append(f"{name} does not answer on its port {m.port}")
                workers.append(doc)
                continue
            doc.update(json.loads(body))
            if not doc.get("alive", False):
                alive = False
                reasons.append(f"{name} is not alive: {'; '.join(doc.get('reasons', []))}")
            elif not doc.get("ready", False):
                reasons.append(f"{name} is not ready: {'; '.join(doc.get('reasons', []))}")
            workers.append(doc)
        return {"alive": alive, "ready": alive and not reasons, "reasons": reasons,
                "workers": workers}

    def metrics(self) -> bytes:
        """Every worker's metrics as one Prometheus text document."""
        return exposition(_Merged(self))

    def families(self) -> Iterator[Metric]:
        """The members' metric families merged by name, and ``streamflow_worker_up``."""
        merged: dict[str, Metric] = {}
        up = GaugeMetricFamily("streamflow_worker_up",
                               "1 when the worker process answered the scrape.",
                               labels=["processor", "instance"])
        for m in self._members():
            code, body = (0, b"") if m.port is None else self._get(m.port, "/metrics")
            up.add_metric([m.processor, m.instance], 1.0 if code == 200 else 0.0)
            if code != 200:
                continue
            for fam in text_string_to_metric_families(body.decode()):
                have = merged.get(fam.name)
                if have is None:
                    merged[fam.name] = fam
                else:
                    have.samples.extend(fam.samples)
        yield from merged.values()
        yield up


class _Merged(Collector):
    def __init__(self, view: FleetView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        return self._view.families()
