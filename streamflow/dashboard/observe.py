"""What the dashboard polls: ``streamflow status``'s figures, topic ends, errors by step.

:class:`TopologyObserver` is the dashboard's ``observe`` function. Each call asks, once for
all open pages:

- :func:`streamflow.ops.status.collect_status` (the broker's group states, members, committed
  offsets against the input ends, dead-letter sizes; the instances' ``/status``), with the
  previous answer so that the instances' records/s come out;
- the end offsets of every topic of the drawn graph, whose growth is each edge's throughput;
- each answering instance's ``/metrics``, for its errors by step and exception type
  (``streamflow_errors_total``).

The processors do nothing more than answer the endpoints they already serve.
:func:`topic_records` reads a topic's latest records for the page, decoded as ``streamflow
tail`` decodes them.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from streamflow.config import Config
from streamflow.dsl.render import drawn_topics
from streamflow.dsl.topology import Topology
from streamflow.kafka import client, groups
from streamflow.ops.status import TopologyStatus, collect_status
from streamflow.ops.tail import read_records

__all__ = ["TopologyObserver", "error_kinds", "topic_records"]

ERRORS_SAMPLE = "streamflow_errors_total"


def error_kinds(metrics_text: str, processor: str | None = None,
                instance: str | None = None) -> list[dict[str, Any]]:
    r"""Errors by step and exception type in a Prometheus text document.

    ``processor`` and ``instance`` keep the samples of one worker (a supervisor's document
    holds all of its workers').

    >>> error_kinds('streamflow_errors_total{processor="p",step="parse",exception="KeyError"} 3\n')
    [{'step': 'parse', 'exception': 'KeyError', 'count': 3}]
    """
    out = []
    for fam in text_string_to_metric_families(metrics_text):
        for s in fam.samples:
            wanted = (("processor", processor), ("instance", instance))
            if s.name == ERRORS_SAMPLE and s.value and all(
                    want is None or s.labels.get(k, want) == want for k, want in wanted):
                out.append({"step": s.labels.get("step", ""),
                            "exception": s.labels.get("exception", ""), "count": int(s.value)})
    return out


def _metrics_text(url: str, timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/metrics", timeout=timeout) as r:
            return str(r.read().decode())
    except (OSError, ValueError, urllib.error.HTTPError):
        return None


class TopologyObserver:
    """Observes ``topology`` with ``config`` (see the module); call it for one observation.

    ``instances``: base URLs of the instances' health ports (default: each group member's
    host at the ``health_port`` setting, as ``streamflow status`` does).
    """

    def __init__(self, topology: Topology, config: Config, *,
                 instances: list[str] | None = None, timeout_s: float = 5.0,
                 http_timeout_s: float = 2.0) -> None:
        self.topology = topology
        self.config = config
        self.instances = instances
        self.timeout_s = timeout_s
        self.http_timeout_s = http_timeout_s
        self._admin: Any = None
        self._previous: TopologyStatus | None = None
        self._topics = [t.name for t in drawn_topics(topology)]

    def __call__(self) -> dict[str, Any]:
        """One observation: ``{"processors": {...}, "topics": {...}, "unreachable": [...]}``."""
        if self._admin is None:
            self._admin = client.make_admin(self.config.client_conf())
        status = collect_status(self.topology, self.config, instances=self.instances,
                                previous=self._previous, admin=self._admin,
                                timeout_s=self.timeout_s, http_timeout_s=self.http_timeout_s)
        self._previous = status
        processors = {p["name"]: p for p in (p.to_dict() for p in status.processors)}
        self._add_error_kinds(processors)
        return {"processors": processors, "topics": self._topic_ends(),
                "unreachable": [i.url for i in status.unreachable]}

    def _topic_ends(self) -> dict[str, dict[str, Any]]:
        parts = groups.partitions_of(self._admin, self._topics, self.timeout_s)
        pairs = [(t, n) for t, ns in parts.items() for n in ns]
        ends = groups.list_offsets(self._admin, pairs, groups.LATEST, timeout=self.timeout_s)
        out: dict[str, dict[str, Any]] = {}
        for name in self._topics:
            if name not in parts:
                out[name] = {"end": None, "partitions": None, "exists": False}
                continue
            out[name] = {"end": sum(ends.get((name, n), 0) for n in parts[name]),
                         "partitions": len(parts[name]), "exists": True}
        return out

    def _add_error_kinds(self, processors: dict[str, dict[str, Any]]) -> None:
        answering = [i for p in processors.values() for i in p.get("instances", [])
                     if i.get("reachable")]
        urls = sorted({i["url"] for i in answering})
        if not urls:
            return
        with ThreadPoolExecutor(max_workers=min(8, len(urls))) as pool:
            texts = dict(zip(urls, pool.map(lambda u: _metrics_text(u, self.http_timeout_s),
                                            urls), strict=True))
        for name, p in processors.items():
            for i in p.get("instances", []):
                text = texts.get(i.get("url", ""))
                if text is not None:
                    i["error_kinds"] = error_kinds(text, name, i["instance_id"])

    def close(self) -> None:
        """Forget the admin client (it is closed when collected)."""
        self._admin = None


def topic_records(topology: Topology, config: Config, topic: str, last: int,
                  timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """The latest ``last`` records of ``topic``, decoded as ``streamflow tail`` does."""
    return [r.to_dict() for r in read_records(topology, topic, config, last=last,
                                              timeout_s=timeout_s)]
