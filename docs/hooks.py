"""MkDocs hooks: the configuration and CLI references, generated from the code at build time.

``mkdocs.yml`` loads this file (``hooks:``). ``on_files`` adds two pages that exist only in the
built site:

- ``reference/configuration.md`` from :class:`streamflow.config.Config`: every field, its TOML
  key, ``STREAMFLOW_*`` variable, type, default and description. Descriptions are the comment
  lines right above a field in ``streamflow/config.py`` and a comment at the end of its line
  (or a comment block over a run of fields that names it); ``tests/unit/test_docs.py`` fails
  on a setting without one.
- ``reference/cli.md`` from :func:`streamflow.cli.build_parser`: every command and subcommand
  with its ``--help`` text, and the exit codes of :mod:`streamflow.errors`.

``tests/unit/test_docs.py`` imports this file to check both pages against the code.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

from streamflow import config as config_module
from streamflow import errors
from streamflow.cli import build_parser

log = logging.getLogger("mkdocs.hooks.streamflow")

CONFIG_PAGE = "reference/configuration.md"
CLI_PAGE = "reference/cli.md"
TABLES = ("kafka", "consumer", "producer", "schema_registry")
HELP_WIDTH = 96  # columns of the generated --help texts (argparse reads $COLUMNS)


# -- configuration ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Setting:
    """One field of ``Config`` as the reference shows it."""

    name: str
    type: str
    default: Any
    description: str

    @property
    def toml_key(self) -> str:
        """Where the setting goes in the TOML file."""
        if self.name in TABLES:
            return f"[{self.name}] table"
        return f"[streamflow] {self.name}"

    @property
    def env_var(self) -> str:
        """The environment variable that sets it (a prefix for the tables)."""
        if self.name in TABLES:
            return f"STREAMFLOW_{self.name.upper()}_<KEY>"
        return f"STREAMFLOW_{self.name.upper()}"


def _comment_blocks(source: str, cls: ast.ClassDef) -> dict[int, list[str]]:
    """Comment lines right above each line of the class body, keyed by that line (1-based)."""
    lines = source.splitlines()
    blocks: dict[int, list[str]] = {}
    pending: list[str] = []
    for number in range(cls.lineno + 1, (cls.end_lineno or cls.lineno) + 1):
        text = lines[number - 1].strip()
        if text.startswith("#"):
            comment = text.lstrip("#").strip()
            if not (comment.startswith("--") and comment.endswith("--")):  # a section heading
                pending.append(comment)
        elif text:
            blocks[number] = pending
            pending = []
        else:
            pending = []
    return blocks


def _field_lines(cls: ast.ClassDef) -> Iterator[tuple[str, int]]:
    """(field name, line) of each annotated field of the class."""
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            yield node.target.id, node.lineno


def field_descriptions(source: str, class_name: str) -> dict[str, str]:
    """The description of each field of class ``class_name`` in ``source``, from its comments.

    A field's description is the comment block right above it, plus a comment at the end of its
    line. A field without either, in a run of fields under one block that names it, points at
    the field that carries the block.
    """
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    blocks = _comment_blocks(source, cls)
    lines = source.splitlines()
    described: dict[str, str] = {}
    block_owner = ""  # the last field with a comment block of its own
    for name, line in _field_lines(cls):
        own = " ".join(blocks.get(line, []))
        inline = lines[line - 1].partition("  # ")[2].strip()
        text = " ".join(t for t in (own, inline) if t)
        if own:
            block_owner = name
        elif text or not block_owner:
            block_owner = ""
        elif re.search(rf"\b{name}\b", described[block_owner]):
            text = f"Described with `{block_owner}` above."
        else:
            block_owner = ""
        described[name] = text
    return described


def settings() -> list[Setting]:
    """The fields of ``Config`` with their descriptions, in declaration order."""
    described = field_descriptions(inspect.getsource(config_module), "Config")
    for table in TABLES:  # a table's name is a common word: only its own comment describes it
        if described.get(table, "").startswith("Described with"):
            described[table] = ""
    defaults = config_module.Config()
    return [
        Setting(f.name, str(f.type), getattr(defaults, f.name), described.get(f.name, ""))
        for f in dataclasses.fields(config_module.Config)
    ]


def _cell(text: str) -> str:
    """Text for a Markdown table cell: no table, HTML or emphasis markup by accident."""
    for char, escaped in (("|", "\\|"), ("<", "&lt;"), (">", "&gt;"), ("*", "\\*")):
        text = text.replace(char, escaped)
    return text


def _default(value: Any) -> str:
    if isinstance(value, dict):
        return "(empty)" if not value else f"`{value!r}`"
    if isinstance(value, str):
        return f'`"{value}"`' if value else '`""`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int):
        return f"`{value}`"
    return f"`{value!r}`"


def config_reference() -> str:
    """The configuration reference page (Markdown)."""
    doc = inspect.getdoc(config_module) or ""
    scalars = [s for s in settings() if s.name not in TABLES]
    tables = [s for s in settings() if s.name in TABLES]
    out = [
        "# Configuration reference",
        "",
        "Generated from `streamflow/config.py` when the site is built. A worker takes its "
        "settings from the defaults below, then the TOML file (`--config FILE` or "
        "`STREAMFLOW_CONFIG`), then `STREAMFLOW_*` environment variables; a processor's own "
        "options (`commit_interval_ms=` and the others of `topology.processor(...)`) "
        "override them for that processor.",
        "",
        "## The file and the environment",
        "",
        "From the docstring of `streamflow.config`:",
        "",
        _docstring_markdown(doc),
        "",
        "## Settings",
        "",
        "| setting | TOML key | environment variable | type | default | description |",
        "|---|---|---|---|---|---|",
    ]
    for s in scalars:
        out.append(
            f"| `{s.name}` | `{s.toml_key}` | `{s.env_var}` | `{s.type}` | {_default(s.default)} "
            f"| {_cell(s.description) or '(no description)'} |"
        )
    out += [
        "",
        "## Tables of client settings",
        "",
        "These tables pass their keys through to librdkafka (`kafka`, `consumer`, `producer`) "
        "or to the schema-registry client (`schema_registry`, e.g. `url`). In a variable's "
        "name, underscores after the prefix become dots "
        "(`STREAMFLOW_KAFKA_SASL_MECHANISM` sets `sasl.mechanism`).",
        "",
        "| table | environment variables | default | description |",
        "|---|---|---|---|",
    ]
    for s in tables:
        out.append(f"| `[{s.name}]` | `{s.env_var}` | {_default(s.default)} "
                   f"| {_cell(s.description or _TABLE_ROLES[s.name])} |")
    return "\n".join(out) + "\n"


_TABLE_ROLES = {
    "kafka": "librdkafka settings for every client (SASL, TLS, ...)",
    "consumer": "librdkafka settings for the consumer only",
    "producer": "librdkafka settings for the producer only",
    "schema_registry": "schema-registry client settings; `url` is the registry's address",
}


def _docstring_markdown(doc: str) -> str:
    """A reST-flavoured module docstring as Markdown: ``::`` blocks fenced, ````x```` as `x`."""
    out: list[str] = []
    lines = doc.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            out.append(line.rstrip()[:-2].rstrip() + ":")
            i += 1
            block: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                block.append(lines[i][4:])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            while block and not block[0].strip():
                block.pop(0)
            out += ["", "```toml", *block, "```", ""]
            continue
        out.append(line.replace("``", "`"))
        i += 1
    return "\n".join(out)


# -- command line ----------------------------------------------------------------------------
def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each subcommand of ``parser``, in declaration order."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                out.append((name, helps.get(name, ""), sub))
    return out


def commands() -> list[tuple[str, str, argparse.ArgumentParser]]:
    """Every command and subcommand: (``"streamflow topics create"``, help, parser)."""
    out: list[tuple[str, str, argparse.ArgumentParser]] = []

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        for name, help_text, sub in _subcommands(parser):
            out.append((f"{prefix} {name}", help_text, sub))
            walk(f"{prefix} {name}", sub)

    walk("streamflow", build_parser())
    return out


def _help_text(parser: argparse.ArgumentParser) -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(HELP_WIDTH)
    try:
        return parser.format_help().rstrip()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def cli_reference() -> str:
    """The CLI reference page (Markdown)."""
    out = [
        "# Command line reference",
        "",
        "Generated from `streamflow.cli.build_parser()` when the site is built: each command's "
        "`--help`.",
        "",
        "## Exit codes",
        "",
        "`streamflow` exits with the `exit_code` of the error that stopped it "
        "(`streamflow.errors`):",
        "",
        "| code | meaning | errors |",
        "|---|---|---|",
    ]
    families = {
        errors.EXIT_OK: ("success", ""),
        errors.EXIT_FAILED: ("processing failed", errors.ProcessingError),
        errors.EXIT_USAGE: ("bad usage of a command", errors.UsageError),
        errors.EXIT_CONFIG: ("bad configuration or topology", errors.ConfigurationError),
        errors.EXIT_UNREACHABLE: ("Kafka or the schema registry unreachable",
                                  errors.UnreachableError),
        errors.EXIT_DUPLICATE_INSTANCE: ("another live worker has this worker's instance id",
                                         errors.DuplicateInstanceError),
        errors.EXIT_GROUP_ACTIVE: ("the processor is running (`reset` needs it stopped)",
                                   errors.GroupActiveError),
    }
    for code, (meaning, family) in sorted(families.items()):
        name = f"`{family.__name__}`" if isinstance(family, type) else ""
        summary = (inspect.getdoc(family) or "").split("\n\n")[0].replace("\n", " ")
        detail = f"{name}: {_cell(summary.replace('``', '`'))}" if name else ""
        out.append(f"| {code} | {meaning} | {detail} |")
    out += ["", "## streamflow", "", "```text", _help_text(build_parser()), "```"]
    for name, help_text, parser in commands():
        level = "#" * min(2 + name.count(" "), 4)
        out += ["", f"{level} {name}", ""]
        if help_text:
            out += [help_text[0].upper() + help_text[1:].rstrip(".") + ".", ""]
        out += ["```text", _help_text(parser), "```"]
    return "\n".join(out) + "\n"


# -- MkDocs ----------------------------------------------------------------------------------
def on_files(files: Any, config: Any) -> Any:
    """Add the generated reference pages to the site."""
    from mkdocs.structure.files import File

    for s in settings():
        if not s.description and s.name not in TABLES:  # tests/unit/test_docs.py fails on it
            log.info("setting %r has no description: add a comment line above it in "
                     "streamflow/config.py", s.name)
    for uri, text in ((CONFIG_PAGE, config_reference()), (CLI_PAGE, cli_reference())):
        files.append(File.generated(config, uri, content=text))
    return files
