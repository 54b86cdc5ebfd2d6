"""MkDocs hooks: the configuration and CLI references, generated from the code at build time.

``mkdocs.yml`` loads this file (``hooks:``). ``on_files`` adds two pages that exist only in the
built site:

- ``reference/configuration.md`` from the settings model :class:`streamflow.config.Config`:
  every field, its TOML key, ``STREAMFLOW_*`` variable, type, default, allowed values (from
  the field's constraints) and its ``description=``; ``tests/unit/test_docs.py`` fails on a
  setting without one.
- ``reference/cli.md`` from :func:`streamflow.cli.build_parser`: every command and subcommand
  with its ``--help`` text, and the exit codes of :mod:`streamflow.errors`.

``tests/unit/test_docs.py`` imports this file to check both pages against the code.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import os
from typing import Any

from streamflow import config as config_module
from streamflow import errors
from streamflow.cli import build_parser
from streamflow.config import NOT_SETTINGS, NOT_SETTINGS_PREFIXES, Config
from streamflow.ops import effective as effective_module

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
    constraints: str = ""

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


_JSON_TYPES = {"integer": "int", "number": "float", "boolean": "bool", "string": "str",
               "object": "table"}
_BOUNDS = (("exclusiveMinimum", "> {}"), ("minimum", ">= {}"), ("exclusiveMaximum", "< {}"),
           ("maximum", "<= {}"))


def _constraints(schema: dict[str, Any]) -> str:
    """The checks of a setting, from its JSON schema: bounds, choices, non-empty, a format."""
    out = [template.format(schema[key]) for key, template in _BOUNDS if key in schema]
    if "enum" in schema:
        out.append("one of " + ", ".join(f'"{v}"' for v in schema["enum"]))
    if schema.get("minLength") == 1:
        out.append("not empty")
    if "expects" in schema:
        out.append(str(schema["expects"]))
    return ", ".join(out)


def settings() -> list[Setting]:
    """The fields of ``Config`` with their descriptions and checks, in declaration order."""
    schema = Config.model_json_schema()["properties"]
    defaults = Config()
    out = []
    for name, field in Config.model_fields.items():
        kind = _JSON_TYPES.get(schema[name].get("type", ""), str(field.annotation))
        out.append(Setting(name, kind, getattr(defaults, name), field.description or "",
                           _constraints(schema[name])))
    return out


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
    effective_doc = inspect.getdoc(effective_module) or ""
    scalars = [s for s in settings() if s.name not in TABLES]
    tables = [s for s in settings() if s.name in TABLES]
    out = [
        "# Configuration reference",
        "",
        "Generated from the settings model (`streamflow/config/model.py`) when the site is "
        "built. A worker takes its settings from the defaults below, then the TOML file "
        "(`--config FILE` or `STREAMFLOW_CONFIG`), then `STREAMFLOW_*` environment variables, "
        "then command-line flags; a processor's own options (`commit_interval_ms=` and the "
        "others of `topology.processor(...)`) override them for that processor. "
        "`streamflow config show [MODULE]` prints the effective settings and the source of "
        "each.",
        "",
        "Every value is checked when a command starts: its type, the range or choices under "
        "*allowed*, and its name. A misspelt `STREAMFLOW_*` variable, a value out of range, "
        "or a client key that librdkafka or the registry client does not know stops the "
        "command with exit code 3 and a message that names the variable or the file key. "
        "These variables are not settings and are left alone: "
        + ", ".join(f"`{v}`" for v in sorted(NOT_SETTINGS))
        + ", and those starting with "
        + ", ".join(f"`{p}`" for p in NOT_SETTINGS_PREFIXES) + ".",
        "",
        "## The file and the environment",
        "",
        "From the docstring of `streamflow.config`:",
        "",
        _docstring_markdown(doc),
        "",
        "## What a processor runs with: `config show`",
        "",
        "`streamflow config show` prints the settings; `streamflow config show MODULE "
        "[-p NAME] [--format table|json|toml]` what each processor of a topology runs with. "
        "From the docstring of `streamflow.ops.effective`:",
        "",
        _docstring_markdown(effective_doc.split("\n>>>", 1)[0].rstrip()),
        "",
        "## Settings",
        "",
        "| setting | TOML key | environment variable | type | default | allowed | description |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in scalars:
        out.append(
            f"| `{s.name}` | `{s.toml_key}` | `{s.env_var}` | `{s.type}` | {_default(s.default)} "
            f"| {_cell(s.constraints) or 'any'} | {_cell(s.description) or '(no description)'} |"
        )
    out += [
        "",
        "## Tables of client settings",
        "",
        "These tables pass their keys through to librdkafka (`kafka`, `consumer`, `producer`) "
        "or to the schema-registry client (`schema_registry`, e.g. `url`). In a variable's "
        "name, underscores after the prefix become dots "
        "(`STREAMFLOW_KAFKA_SASL_MECHANISM` sets `sasl.mechanism`). When a command starts, "
        "their keys are checked by building the clients from them (no broker needed): a key "
        "or value librdkafka or the registry client refuses stops it with exit code 3, naming "
        "the variable or the file key. `config show` masks the values of keys that look "
        "secret (password, secret, key, token, credentials, user info, JAAS).",
        "",
        "| table | environment variables | default | description |",
        "|---|---|---|---|",
    ]
    for s in tables:
        out.append(f"| `[{s.name}]` | `{s.env_var}` | {_default(s.default)} "
                   f"| {_cell(s.description)} |")
    return "\n".join(out) + "\n"


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
        errors.EXIT_ACCESS: ("Kafka refused access: credentials or a missing ACL",
                             errors.AccessError),
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
        if not s.description:  # tests/unit/test_docs.py fails on it
            log.info("setting %r has no description: give its Field a description= in "
                     "streamflow/config/model.py", s.name)
    for uri, text in ((CONFIG_PAGE, config_reference()), (CLI_PAGE, cli_reference())):
        files.append(File.generated(config, uri, content=text))
    return files
