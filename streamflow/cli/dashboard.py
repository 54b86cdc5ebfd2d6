"""``streamflow dashboard MODULE``: the running topology's DAG, live, in the browser."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any

from streamflow.cli.common import CONFIG_HELP, warn
from streamflow.cli.operate import operator_config, operator_topology
from streamflow.dashboard import DashboardServer, missing_assets
from streamflow.errors import EXIT_OK

__all__ = ["add_commands", "cmd_dashboard"]


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Serve the dashboard until interrupted (Ctrl-C or SIGTERM); return the exit code."""
    from streamflow.dashboard.observe import TopologyObserver, topic_records

    config = operator_config(args.config)  # as status and tail: librdkafka's own error lines off
    topology = operator_topology(args.module, config)
    instances = [u.strip() for u in (args.instances or "").split(",") if u.strip()] or None
    if missing_assets():
        warn("the dashboard's graph library is not installed (run `make dashboard-assets`); "
             "the page will say so")
    server = DashboardServer(
        topology, TopologyObserver(topology, config, instances=instances),
        records=lambda topic, last: topic_records(topology, config, topic, last),
        host=args.host, port=args.port, interval=args.interval)
    print(f"streamflow dashboard of {topology.name!r} on {server.url} "
          f"(polling every {args.interval:g}s; Ctrl-C stops it)", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    sys.stdout.flush()
    return EXIT_OK


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        msg = f"must be above 0, not {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_commands(sub: Any) -> None:
    """Register ``dashboard`` on the ``streamflow`` subparsers."""
    p = sub.add_parser(
        "dashboard", help="serve a live view of a running topology's DAG in the browser",
        description="Serve a web page that draws the topology's DAG (the graph `describe` "
        "draws) and updates it live by server-sent events: each processor coloured by its "
        "health (members present, instances ready, lag not growing, no new errors) with its "
        "records/s, lag and error count; each topic edge with its records/s. Click a "
        "processor for its members, partitions, errors and restore progress, a topic for "
        "its latest records decoded as `tail` decodes them. The server polls the broker and "
        "the instances' /status and /metrics every --interval seconds, once for all open "
        "pages: the processors pay nothing beyond answering those endpoints.")
    p.add_argument("module", metavar="MODULE[:ATTR]", help="module exposing the Topology")
    p.add_argument("--port", type=int, default=8050, help="port to serve on (default 8050)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--interval", type=_positive, default=2.0,
                   help="seconds between two polls of the broker and instances (default 2)")
    p.add_argument("--instances", metavar="URL,...",
                   help="base URLs of the instances' health ports (default: each group "
                   "member's host at the health_port setting)")
    p.add_argument("--config", "-c", help=CONFIG_HELP)
    p.set_defaults(func=cmd_dashboard)
