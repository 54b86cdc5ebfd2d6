"""Where an :class:`~streamflow.serde.avro.Avro` serde's schema comes from.

A declared schema is a path to an ``.avsc`` file, the schema itself (a dict, a list, or JSON
text), or the name of a schema in the schemas directory: a file stem (``payment``) or the
record's name or full name (``Payment``, ``com.example.Payment``). :func:`load_schema` finds
it, reads it and parses it once into a :class:`LoadedSchema`.

>>> from pathlib import Path
>>> load_schema("payment", Path("schemas")).fullname
'com.example.Payment'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from streamflow.serde.base import SerdeError

__all__ = ["LoadedSchema", "load_schema"]


@dataclass(frozen=True)
class LoadedSchema:
    """A declared schema, loaded and parsed once."""

    schema: Any  # the JSON value, as in the .avsc
    schema_str: str  # the text registered in the registry
    parsed: Any  # fastavro's parsed form
    canonical: str  # Avro parsing canonical form
    fullname: str | None  # full name of a named (record/enum/fixed) schema
    source: str  # where it came from, for messages


def load_schema(spec: Any, schemas_dir: Path) -> LoadedSchema:
    """Locate, read and parse the schema declared as ``spec``; see the module docstring."""
    schema, source = _locate(spec, schemas_dir)
    return _parse_declared(schema, source)


def _locate(spec: Any, schemas_dir: Path) -> tuple[Any, str]:
    """Find the schema JSON for ``spec``: (schema, description of its source)."""
    if isinstance(spec, (Mapping, list)):
        return spec, "an inline schema"
    text = str(spec)
    if isinstance(spec, str) and text.lstrip()[:1] in ("{", "[", '"'):
        try:
            return json.loads(text), "an inline schema"
        except ValueError as e:
            msg = f"inline Avro schema is not valid JSON: {e}"
            raise SerdeError(msg) from e
    if isinstance(spec, Path) or text.endswith((".avsc", ".json")) or "/" in text or "\\" in text:
        p = Path(text)
        tries = [p] if p.is_absolute() else [p, schemas_dir / p, schemas_dir.parent / p]
        for candidate in tries:
            if candidate.is_file():
                return _read_avsc(candidate), str(candidate)
        msg = (
            f"Avro schema file {text!r} not found (looked at "
            f"{', '.join(str(t) for t in dict.fromkeys(tries))})"
        )
        raise SerdeError(msg)
    return _by_name(text, schemas_dir)


def _by_name(name: str, schemas_dir: Path) -> tuple[Any, str]:
    direct = schemas_dir / f"{name}.avsc"
    if direct.is_file():
        return _read_avsc(direct), str(direct)
    if not schemas_dir.is_dir():
        msg = (
            f"Avro schema {name!r} not found: schemas directory {schemas_dir} does not exist "
            "(set schemas_dir, or pass a path to the .avsc)"
        )
        raise SerdeError(msg)
    files = sorted(schemas_dir.rglob("*.avsc"))
    full, short, stem = [], [], []
    for path in files:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        fullname = _fullname(data)
        if fullname == name:
            full.append((data, path))
        elif fullname is not None and fullname.rpartition(".")[2] == name:
            short.append((data, path))
        elif path.stem.lower() == name.lower():
            stem.append((data, path))
    for matches in (full, short, stem):
        if len(matches) == 1:
            return matches[0][0], str(matches[0][1])
        if len(matches) > 1:
            msg = (
                f"Avro schema name {name!r} is ambiguous in {schemas_dir}: "
                f"{', '.join(str(p) for _, p in matches)}; use the full name or a path"
            )
            raise SerdeError(msg)
    known = ", ".join(sorted(filter(None, (_fullname_of(p) for p in files)))) or "none"
    msg = (
        f"Avro schema {name!r} not found in {schemas_dir} (no {name}.avsc, and no .avsc "
        f"defines that name; schemas there: {known})"
    )
    raise SerdeError(msg)


def _fullname(data: Any) -> str | None:
    if not isinstance(data, Mapping) or data.get("type") not in ("record", "error", "enum",
                                                                  "fixed"):
        return None
    name = data.get("name")
    if not isinstance(name, str):
        return None
    ns = data.get("namespace")
    return name if "." in name or not ns else f"{ns}.{name}"


def _fullname_of(path: Path) -> str | None:
    try:
        return _fullname(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def _read_avsc(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as e:
        msg = f"cannot read Avro schema file {path}: {e}"
        raise SerdeError(msg) from e
    except ValueError as e:
        msg = f"Avro schema file {path} is not valid JSON: {e}"
        raise SerdeError(msg) from e


def _parse_declared(schema: Any, source: str) -> LoadedSchema:
    try:
        parsed = fastavro.parse_schema(schema)
        canonical = to_parsing_canonical_form(parsed)
    except Exception as e:  # fastavro: SchemaParseException, UnknownType, ValueError, ...
        msg = f"invalid Avro schema in {source}: {e}"
        raise SerdeError(msg) from e
    fullname = parsed.get("name") if isinstance(parsed, dict) and parsed.get("type") in (
        "record", "error", "enum", "fixed") else None
    return LoadedSchema(schema=schema, schema_str=json.dumps(schema, separators=(",", ":")),
                   parsed=parsed, canonical=canonical, fullname=fullname, source=source)
