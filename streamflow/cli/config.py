"""``streamflow config show [MODULE]``: the effective settings and where each came from.

Sources: ``default``, ``file <path> [section] key``, ``env STREAMFLOW_...`` or ``flag``.
Values of secret keys (passwords, client secrets, tokens, credentials, a user's info, a JAAS
configuration, private keys: :func:`streamflow.config.secret_settings.is_secret`, which ``deploy
k8s`` asks too) are masked. With a MODULE, each processor's whole effective picture
instead: its options, every setting as it uses it, its clients' librdkafka settings
(:mod:`streamflow.ops.effective`).
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from streamflow.cli.common import CONFIG_HELP, CliError, load_settings, processor_names
from streamflow.config import TABLES
from streamflow.errors import EXIT_OK, EXIT_USAGE
from streamflow.ops.effective import Row, processor_rows, rows
from streamflow.ops.load import load_topology

__all__ = ["Row", "add_commands", "cmd_config_show", "rows"]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string: JSON's escapes are TOML's


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def render_table(all_rows: list[Row]) -> str:
    """Aligned columns: setting, value, source."""
    cells = [("setting", "value", "source")]
    cells += [(r.name, json.dumps(r.value) if isinstance(r.value, str) else _toml_value(r.value),
               r.source) for r in all_rows]
    widths = [max(len(c[i]) for c in cells) for i in range(2)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in cells)


def render_json(all_rows: list[Row]) -> str:
    """``{section: {key: {"value": ..., "source": ...}}}``."""
    out: dict[str, dict[str, Any]] = {}
    for r in all_rows:
        out.setdefault(r.section, {})[r.key] = {"value": r.value, "source": r.source}
    return json.dumps(out, indent=2)


def render_toml(all_rows: list[Row]) -> str:
    """A config file of the effective settings, each line's source as its comment."""
    lines: list[str] = []
    section = ""
    for r in all_rows:
        if r.section != section:
            section = r.section
            header = section if section in ("streamflow", *TABLES) else f'"{section}"'
            lines += ["", f"[{header}]"] if lines else [f"[{header}]"]
        lines.append(f"{_toml_key(r.key)} = {_toml_value(r.value)}  # {r.source}")
    return "\n".join(lines)


_RENDER = {"table": render_table, "json": render_json, "toml": render_toml}


def cmd_config_show(args: argparse.Namespace) -> int:
    """``streamflow config show [MODULE]``: print the effective settings."""
    config = load_settings(args.config)
    if args.module:
        topology = load_topology(args.module, name_suffix=config.name_suffix)
        all_rows = [row for name in processor_names(topology, args.processor)
                    for row in processor_rows(topology.processors[name], config)]
    elif args.processor:
        msg = "--processor needs a MODULE"
        raise CliError(msg, EXIT_USAGE)
    else:
        all_rows = rows(config)
    print(_RENDER[args.format](all_rows))
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Register ``config show`` on the ``streamflow`` subparsers."""
    config = sub.add_parser(
        "config", help="show the effective settings and where each came from",
        description="The settings a worker would run with.",
    )
    actions = config.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show", help="print every setting with its value and source",
        description="Print every setting with its value and its source: default, the file "
        "(with its section and key), an environment variable, or a flag. Secrets (passwords, "
        "client secrets, tokens, credentials, private keys; not paths to them) are masked. "
        "With MODULE, everything each processor runs "
        "with instead: its options (source topology), every setting as it uses it (a "
        "processor's commit_interval_ms=, the assignor chosen for it, its instance id), and "
        "the librdkafka settings of its consumer and producer with their sources (a table, a "
        "setting, the topology, or streamflow's own choice).",
        epilog="Exit codes: 0 ok, 2 --processor without MODULE, 3 a bad setting (named with "
        "its variable or file key), an unknown processor, or a topology that does not load.",
    )
    show.add_argument("module", metavar="MODULE[:ATTR]", nargs="?",
                      help="show what each processor of this topology runs with")
    show.add_argument("--processor", "-p", metavar="NAME",
                      help="only this processor (with MODULE)")
    show.add_argument("--config", "-c", help=CONFIG_HELP)
    show.add_argument("--format", choices=sorted(_RENDER), default="table",
                      help="table (default), json, or toml (a config file; sources as comments)")
    show.set_defaults(func=cmd_config_show)
