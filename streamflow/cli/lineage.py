"""``streamflow lineage MODULE``: a topology's static lineage as OpenLineage events."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from streamflow.cli.common import CONFIG_HELP, processor_names
from streamflow.config import load_config
from streamflow.errors import EXIT_OK
from streamflow.observability.lineage import ProcessorLineage, require_openlineage
from streamflow.ops.load import load_topology

__all__ = ["add_commands", "cmd_lineage"]


def cmd_lineage(args: argparse.Namespace) -> int:
    """Print one OpenLineage ``JobEvent`` per processor (JSON lines); return the exit code."""
    require_openlineage()
    from openlineage.client.serde import Serde

    config = load_config(args.config)
    topology = load_topology(args.module, name_suffix=config.name_suffix)
    for name in processor_names(topology, args.processor):
        event = ProcessorLineage(topology.processors[name], config).job_event()
        sys.stdout.write(Serde.to_json(event) + "\n")
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Register ``lineage`` on the ``streamflow`` subparsers."""
    p = sub.add_parser(
        "lineage", help="print a topology's lineage as OpenLineage events",
        description="Print each processor's static lineage as an OpenLineage JobEvent (one "
        "JSON object per line): the job <topology>.<processor> in the lineage_namespace, "
        "the topics it reads and writes as datasets in kafka://<first bootstrap server>, "
        "with a schema facet where a topic has an Avro contract. Needs streamflow[lineage].")
    p.add_argument("module", metavar="MODULE[:ATTR]", help="module exposing the Topology")
    p.add_argument("--processor", "-p", help="only this processor")
    p.add_argument("--config", "-c", help=CONFIG_HELP)
    p.set_defaults(func=cmd_lineage)
