"""``streamflow dashboard``: a running topology's DAG, live, in the browser.

- :mod:`~streamflow.dashboard.graph`: the DAG as JSON (the graph ``describe`` draws);
- :mod:`~streamflow.dashboard.observe`: what is polled (``streamflow status``'s figures, the
  topics' end offsets, errors by step from the instances' ``/metrics``);
- :mod:`~streamflow.dashboard.frames`: rates and each processor's health from two polls;
- :mod:`~streamflow.dashboard.server`: the HTTP server, its server-sent events and the page
  (``static/``), which draws with Cytoscape.js and its dagre layout, installed from npm into
  ``assets/node_modules`` by ``make dashboard-assets`` (never committed).

The observer is imported where it is used (``streamflow.dashboard.observe``): the server, its
frames and the page need no broker.
"""

from __future__ import annotations

from streamflow.dashboard.frames import FrameBuilder, processor_health
from streamflow.dashboard.graph import topology_graph
from streamflow.dashboard.server import DashboardServer, Poller, missing_assets, sse_event

__all__ = ["DashboardServer", "FrameBuilder", "Poller", "missing_assets", "processor_health",
           "sse_event", "topology_graph"]
