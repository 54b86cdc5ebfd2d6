"""``streamflow config show [MODULE]``: the effective settings and where each came from.

Sources: ``default``, ``file <path> [section] key``, ``env STREAMFLOW_...`` or ``flag``.
Values of keys that look secret (a password, secret, key, token, credentials, a user's info,
a JAAS configuration) are masked. With a MODULE, the processors' own options that override a
setting (``commit_interval_ms=``) follow.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from typing import Any

from streamflow.cli.common import CONFIG_HELP, load_settings
from streamflow.config import TABLES, Config
from streamflow.errors import EXIT_OK
from streamflow.ops.load import load_topology

__all__ = ["SECRET", "Row", "add_commands", "cmd_config_show", "rows"]

SECRET = re.compile(r"password|secret|key|token|credential|user\.info|jaas", re.IGNORECASE)
MASK = "********"


@dataclass(frozen=True)
class Row:
    """One effective setting: ``batch_size`` or ``kafka.sasl.mechanism``."""

    section: str  # "streamflow", a table's name, or "processor <name>"
    key: str
    value: Any
    source: str

    @property
    def name(self) -> str:
        """The setting's name (``kafka.<key>`` for a table's key)."""
        return self.key if self.section == "streamflow" else f"{self.section}.{self.key}"


def _shown(key: str, value: Any) -> Any:
    return MASK if value not in ("", None) and SECRET.search(key) else value


def rows(config: Config) -> list[Row]:
    """Every setting (secrets masked) with its source, then every key of the tables."""
    out = [Row("streamflow", name, _shown(name, getattr(config, name)), config.source_of(name))
           for name in Config.model_fields if name not in TABLES]
    for table in TABLES:
        for key, value in getattr(config, table).items():
            out.append(Row(table, key, _shown(key, value), config.source_of(f"{table}.{key}")))
    return out


def processor_rows(module: str, config: Config) -> list[Row]:
    """The options of a topology's processors that override a setting."""
    topology = load_topology(module)
    out = []
    for name, p in topology.processors.items():
        own = p.commit_interval_ms
        value = own if own is not None else config.commit_interval_ms
        source = "processor option" if own is not None else config.source_of("commit_interval_ms")
        out.append(Row(f"processor {name}", "commit_interval_ms", value, source))
    return out


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
    all_rows = rows(config)
    if args.module:
        all_rows += processor_rows(args.module, config)
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
        "keys, tokens, credentials) are masked. With MODULE, each processor's options that "
        "override a setting follow.",
        epilog="Exit codes: 0 ok, 3 a bad setting (named with its variable or file key).",
    )
    show.add_argument("module", metavar="MODULE[:ATTR]", nargs="?",
                      help="also show the topology's per-processor overrides")
    show.add_argument("--config", "-c", help=CONFIG_HELP)
    show.add_argument("--format", choices=sorted(_RENDER), default="table",
                      help="table (default), json, or toml (a config file; sources as comments)")
    show.set_defaults(func=cmd_config_show)
