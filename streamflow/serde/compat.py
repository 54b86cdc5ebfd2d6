"""Avro schema compatibility, in pure Python, with explanations.

:func:`can_read` answers "can a reader using schema R decode data written with schema W?"
following the Avro specification's schema-resolution rules (the same rules the Java
``SchemaCompatibility`` class, hence Confluent Schema Registry and Apicurio, apply):

- named types (record, enum, fixed) match by unqualified name, or when the reader lists
  the writer's full name in ``aliases``;
- record fields match by name or by the reader field's ``aliases``; a reader field that the
  writer lacks needs a ``default``; writer fields the reader lacks are skipped;
- primitives must be equal or promotable: int→long→float→double, string↔bytes;
- enums: every writer symbol must be a reader symbol, unless the reader has a ``default``;
- fixed sizes must be equal; arrays and maps compare their items / values;
- unions: every branch the writer may write must be readable by the reader (some reader
  branch if the reader is a union).

It is stricter than the registries in two cases where data would silently change
meaning: a ``decimal`` whose scale changes (or precision shrinks), and a logical type
changed to another (e.g. ``timestamp-millis`` → ``timestamp-micros``).

:func:`check` applies a registry compatibility level (BACKWARD, FORWARD, FULL, their
``_TRANSITIVE`` forms, NONE) to a new schema and the subject's previous versions. Both
return :class:`Incompatibility` items whose ``path`` (``Payment.amount``), ``change`` and
``reason`` are meant for people.

>>> v1 = {"type": "record", "name": "Payment", "fields": [{"name": "id", "type": "string"}]}
>>> v2 = {"type": "record", "name": "Payment", "fields": [
...     {"name": "id", "type": "string"}, {"name": "amount", "type": "double"}]}
>>> [(i.path, i.change) for i in check(v2, [v1], "BACKWARD")]
[('Payment.amount', 'field added without a default')]
>>> can_read(reader={"type": "long"}, writer={"type": "int"})
[]
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamflow.errors import ConfigurationError
from streamflow.kafka.registry import COMPATIBILITY_LEVELS

__all__ = [
    "LEVELS",
    "Incompatibility",
    "InvalidSchema",
    "can_read",
    "check",
    "explain",
]

LEVELS = COMPATIBILITY_LEVELS  # the registry's compatibility levels

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
# writer type -> reader types that can read it
_PROMOTIONS = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


class InvalidSchema(ConfigurationError, ValueError):
    """A schema given to the checker is not valid Avro (the message says where)."""


@dataclass(frozen=True)
class Incompatibility:
    """One reason why data written with one schema cannot be read with another.

    ``path`` locates it (``Payment.amount``; ``[]`` marks array items, ``{}`` map values),
    ``change`` says what differs, ``reason`` why it breaks and what to do, ``against``
    (from :func:`check`) which schemas were compared.
    """

    path: str
    change: str
    reason: str
    against: str = ""

    def __str__(self) -> str:
        against = f" ({self.against})" if self.against else ""
        return f"{self.path}: {self.change}{against}: {self.reason}"


def explain(incompatibilities: Sequence[Incompatibility]) -> str:
    """Render incompatibilities as an indented list (empty string when there are none)."""
    return "\n".join(f"  - {i}" for i in incompatibilities)


# -- parsed form ---------------------------------------------------------------------------


@dataclass(eq=False)
class _Field:
    name: str
    type: _Node
    has_default: bool
    aliases: tuple[str, ...] = ()


@dataclass(eq=False)
class _Node:
    type: str
    logical: str | None = None
    precision: int | None = None
    scale: int | None = None
    fullname: str | None = None
    aliases: frozenset[str] = frozenset()
    fields: list[_Field] = field(default_factory=list)
    symbols: tuple[str, ...] = ()
    enum_default: str | None = None
    size: int | None = None
    items: _Node | None = None  # array items or map values
    branches: list[_Node] = field(default_factory=list)

    @property
    def name(self) -> str:
        return (self.fullname or self.type).rpartition(".")[2]


def _load(schema: Any) -> Any:
    if isinstance(schema, (os.PathLike, Path)):
        try:
            return json.loads(Path(schema).read_text())
        except (OSError, ValueError) as e:
            msg = f"cannot read schema file {schema}: {e}"
            raise InvalidSchema(msg) from e
    if isinstance(schema, (str, bytes)):
        text = schema.decode() if isinstance(schema, bytes) else schema
        stripped = text.strip()
        if stripped[:1] in ("{", "[", '"'):
            try:
                return json.loads(stripped)
            except ValueError as e:
                msg = f"schema is not valid JSON: {e}"
                raise InvalidSchema(msg) from e
        return stripped
    return schema


class _Parser:
    def __init__(self) -> None:
        self.names: dict[str, _Node] = {}

    def parse(self, schema: Any, ns: str | None, where: str) -> _Node:
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return _Node(type=schema)
            return self._ref(schema, ns, where)
        if isinstance(schema, list):
            branches = [self.parse(b, ns, f"{where}[{i}]") for i, b in enumerate(schema)]
            return _Node(type="union", branches=branches)
        if not isinstance(schema, Mapping):
            msg = f"{where}: expected a type name, object or list, got {schema!r}"
            raise InvalidSchema(msg)
        t = schema.get("type")
        if isinstance(t, (list, Mapping)):
            return self.parse(t, ns, where)
        if not isinstance(t, str):
            msg = f"{where}: missing or invalid 'type': {t!r}"
            raise InvalidSchema(msg)
        if t in PRIMITIVES:
            return _Node(type=t, logical=_opt_str(schema.get("logicalType")),
                         precision=_opt_int(schema.get("precision")),
                         scale=_opt_int(schema.get("scale")))
        if t in ("array", "map"):
            key = "items" if t == "array" else "values"
            if key not in schema:
                msg = f"{where}: {t} without {key!r}"
                raise InvalidSchema(msg)
            return _Node(type=t, items=self.parse(schema[key], ns, f"{where}.{key}"))
        if t in _NAMED:
            return self._named(schema, "record" if t == "error" else t, ns, where)
        return self._ref(t, ns, where)

    def _ref(self, name: str, ns: str | None, where: str) -> _Node:
        candidates = [name] if "." in name else ([f"{ns}.{name}"] if ns else []) + [name]
        for c in candidates:
            if c in self.names:
                return self.names[c]
        msg = f"{where}: unknown type {name!r} (named types must be defined first)"
        raise InvalidSchema(msg)

    def _named(self, schema: Mapping[str, Any], t: str, ns: str | None, where: str) -> _Node:
        name = schema.get("name")
        if not isinstance(name, str) or not name:
            msg = f"{where}: {t} without a name"
            raise InvalidSchema(msg)
        if "." in name:
            fullname = name
        else:
            space = schema.get("namespace", ns)
            fullname = f"{space}.{name}" if space else name
        own_ns = fullname.rpartition(".")[0] or None
        aliases = frozenset(
            a if "." in a or not own_ns else f"{own_ns}.{a}"
            for a in schema.get("aliases") or () if isinstance(a, str)
        )
        node = _Node(type=t, fullname=fullname, aliases=aliases,
                     logical=_opt_str(schema.get("logicalType")),
                     precision=_opt_int(schema.get("precision")),
                     scale=_opt_int(schema.get("scale")))
        self.names[fullname] = node  # before the fields: records may refer to themselves
        if t == "record":
            fields = schema.get("fields")
            if not isinstance(fields, list):
                msg = f"{where}: record {fullname} without a 'fields' list"
                raise InvalidSchema(msg)
            for i, f in enumerate(fields):
                if not isinstance(f, Mapping) or not isinstance(f.get("name"), str):
                    msg = f"{where}: field #{i} of {fullname} has no name"
                    raise InvalidSchema(msg)
                if "type" not in f:
                    msg = f"{where}: field {fullname}.{f['name']} has no type"
                    raise InvalidSchema(msg)
                node.fields.append(_Field(
                    name=f["name"],
                    type=self.parse(f["type"], own_ns, f"{fullname}.{f['name']}"),
                    has_default="default" in f,
                    aliases=tuple(a for a in f.get("aliases") or () if isinstance(a, str)),
                ))
        elif t == "enum":
            symbols = schema.get("symbols")
            if not isinstance(symbols, list):
                msg = f"{where}: enum {fullname} without a 'symbols' list"
                raise InvalidSchema(msg)
            node.symbols = tuple(str(s) for s in symbols)
            node.enum_default = _opt_str(schema.get("default"))
        else:
            size = schema.get("size")
            if not isinstance(size, int):
                msg = f"{where}: fixed {fullname} without an integer 'size'"
                raise InvalidSchema(msg)
            node.size = size
        return node


def _opt_str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _opt_int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _parse(schema: Any, role: str) -> _Node:
    return _Parser().parse(_load(schema), None, role)


def _show(n: _Node) -> str:
    if n.type == "union":
        return "union[" + ", ".join(_show(b) for b in n.branches) + "]"
    if n.type == "array":
        return f"array<{_show(n.items)}>" if n.items else "array"
    if n.type == "map":
        return f"map<{_show(n.items)}>" if n.items else "map"
    base = n.fullname or n.type
    if n.logical == "decimal":
        return f"{base} (decimal({n.precision},{n.scale}))"
    return f"{base} ({n.logical})" if n.logical else base


# -- the checker ---------------------------------------------------------------------------

# orientation: which side is the new schema (None = plain reader/writer wording)
_BACKWARD = "backward"  # reader = new schema, writer = old
_FORWARD = "forward"  # reader = old schema, writer = new


class _Checker:
    def __init__(self, orient: str | None, against: str = "") -> None:
        self.orient = orient
        self.against = against
        self.active: set[tuple[int, int]] = set()

    def issue(self, path: str, change: str, reason: str) -> Incompatibility:
        return Incompatibility(path=path, change=change, reason=reason, against=self.against)

    def changed(self, r: str, w: str) -> str:
        """' from OLD to NEW' in the reader/writer orientation."""
        if self.orient == _BACKWARD:
            return f" from {w} to {r}"
        if self.orient == _FORWARD:
            return f" from {r} to {w}"
        return f": writer has {w}, reader has {r}"

    def run(self, r: _Node, w: _Node) -> list[Incompatibility]:
        root = r.name if r.type == "record" else _show(r)
        return self.check(r, w, root)

    def check(self, r: _Node, w: _Node, path: str) -> list[Incompatibility]:
        key = (id(r), id(w))
        if key in self.active:  # recursive type: compatible unless shown otherwise
            return []
        self.active.add(key)
        try:
            return self._check(r, w, path)
        finally:
            self.active.discard(key)

    def _check(self, r: _Node, w: _Node, path: str) -> list[Incompatibility]:
        if w.type == "union":
            return self._writer_union(r, w, path)
        if r.type == "union":
            return self._reader_union(r, w, path)
        if r.type != w.type:
            if r.type in _PROMOTIONS.get(w.type, ()):
                return self._logical(r, w, path)
            return [self._mismatch(r, w, path)]
        if r.type in PRIMITIVES:
            return self._logical(r, w, path)
        if r.type in ("array", "map"):
            assert r.items is not None and w.items is not None
            return self.check(r.items, w.items, path + ("[]" if r.type == "array" else "{}"))
        out = self._names(r, w, path)
        if out:
            return out
        if r.type == "record":
            return self._record(r, w, path)
        if r.type == "enum":
            return self._enum(r, w, path)
        return self._fixed(r, w, path)

    # unions

    def _writer_union(self, r: _Node, w: _Node, path: str) -> list[Incompatibility]:
        out: list[Incompatibility] = []
        lost: list[_Node] = []
        for b in w.branches:
            sub = self.check(r, b, path)
            if not sub:
                continue
            # a branch with no counterpart is lost; otherwise explain what differs inside
            twin = _counterpart(r, b) if r.type == "union" else (r if r.type == b.type else None)
            if twin is None:
                lost.append(b)
            else:
                out.extend(sub)
        if lost:
            shown = ", ".join(_show(b) for b in lost)
            if r.type == "union":
                if self.orient == _BACKWARD:
                    change = f"union branch removed: {shown}"
                elif self.orient == _FORWARD:
                    change = f"union branch added: {shown}"
                else:
                    change = f"reader union lacks writer branch {shown}"
            else:
                change = f"type changed{self.changed(_show(r), _show(w))}"
            out.insert(0, self.issue(
                path, change,
                f"data written as {shown} cannot be read as {_show(r)}"
                + _hint_union(self.orient),
            ))
        return out

    def _reader_union(self, r: _Node, w: _Node, path: str) -> list[Incompatibility]:
        for b in r.branches:
            if not self.check(b, w, path):
                return []
        twin = _counterpart(r, w)
        if twin is not None:  # same kind of type in the union: explain what differs inside
            return self.check(twin, w, path)
        if self.orient is None:
            change = f"reader union lacks writer type {_show(w)}"
        else:
            change = f"type changed{self.changed(_show(r), _show(w))}"
        return [self.issue(path, change,
                           f"none of the branches of {_show(r)} can read {_show(w)} data"
                           + _hint_union(self.orient))]

    # primitives and logical types

    def _mismatch(self, r: _Node, w: _Node, path: str) -> Incompatibility:
        hint = ""
        if self.orient is not None:
            hint = ("; to change a field's type, add a new field (with a default) and "
                    "deprecate the old one")
        return self.issue(
            path, f"type changed{self.changed(_show(r), _show(w))}",
            f"{_show(r)} cannot be read from {_show(w)} data (Avro only promotes "
            f"int→long→float→double and string↔bytes){hint}",
        )

    def _logical(self, r: _Node, w: _Node, path: str) -> list[Incompatibility]:
        if r.logical is None or w.logical is None:
            return []
        if r.logical == "decimal" and w.logical == "decimal":
            if r.scale != w.scale:
                return [self.issue(
                    path, f"decimal scale changed{self.changed(str(r.scale), str(w.scale))}",
                    "the stored unscaled integer would be read with another scale, silently "
                    "changing every value (registries accept this; streamflow does not)",
                )]
            if (r.precision or 0) < (w.precision or 0):
                return [self.issue(
                    path,
                    f"decimal precision changed{self.changed(str(r.precision), str(w.precision))}",
                    "values written with the larger precision may not fit the reader's",
                )]
            return []
        if r.logical == w.logical:
            return []
        return [self.issue(
            path, f"logical type changed{self.changed(r.logical, w.logical)}",
            f"the stored {w.type} would be read as {r.logical} instead of {w.logical}, silently "
            "changing its meaning (registries accept this; streamflow does not); add a new "
            "field instead",
        )]

    # named types

    def _names(self, r: _Node, w: _Node, path: str) -> list[Incompatibility]:
        if _same_named(r, w):
            return []
        change = f"{r.type} renamed{self.changed(str(r.fullname), str(w.fullname))}"
        if self.orient is None:
            fix = f"the reader needs \"aliases\": [\"{w.fullname}\"]"
        elif self.orient == _BACKWARD:
            fix = f"give the new {r.fullname} \"aliases\": [\"{w.fullname}\"]"
        else:
            fix = (f"readers of {r.fullname} cannot read {w.fullname}; keep the old name and "
                   f"give it \"aliases\" instead")
        return [self.issue(path, change, f"Avro matches {r.type}s by name: {fix}")]

    def _record(self, r: _Node, w: _Node, path: str) -> list[Incompatibility]:
        out: list[Incompatibility] = []
        by_name = {f.name: f for f in w.fields}
        for rf in r.fields:
            wf = by_name.get(rf.name)
            if wf is None:
                wf = next((by_name[a] for a in rf.aliases if a in by_name), None)
            fpath = f"{path}.{rf.name}"
            if wf is not None:
                out.extend(self.check(rf.type, wf.type, fpath))
            elif not rf.has_default:
                out.append(self._missing_field(rf, fpath))
        return out

    def _missing_field(self, rf: _Field, path: str) -> Incompatibility:
        t = _show(rf.type)
        if self.orient == _BACKWARD:
            return self.issue(
                path, "field added without a default",
                f"records written before it existed have no '{rf.name}' ({t}) for the new "
                f"schema to read: give it a default (for example type [\"null\", ...] with "
                f"\"default\": null)",
            )
        if self.orient == _FORWARD:
            return self.issue(
                path, "field removed that has no default in the older schema",
                f"readers still using the older schema require '{rf.name}' ({t}): keep the "
                "field, or first release a version that gives it a default",
            )
        return self.issue(
            path, "reader field missing from the writer and has no default",
            f"the reader cannot fill '{rf.name}' ({t}) from the writer's data; give it a default",
        )

    def _enum(self, r: _Node, w: _Node, path: str) -> list[Incompatibility]:
        missing = [s for s in w.symbols if s not in r.symbols]
        if not missing or (r.enum_default is not None and r.enum_default in r.symbols):
            return []
        shown = ", ".join(missing)
        if self.orient == _BACKWARD:
            change = f"enum symbols removed: {shown}"
            reason = (f"older data may contain {shown}, which the new schema cannot represent: "
                      "keep the symbols, or give the enum a \"default\" symbol")
        elif self.orient == _FORWARD:
            change = f"enum symbols added: {shown}"
            reason = (f"readers using the older schema cannot decode {shown}: first release a "
                      "version of the enum with a \"default\" symbol")
        else:
            change = f"writer enum symbols unknown to the reader: {shown}"
            reason = "the reader enum has no \"default\" to map them to"
        return [self.issue(path, change, reason)]

    def _fixed(self, r: _Node, w: _Node, path: str) -> list[Incompatibility]:
        if r.size == w.size:
            return self._logical(r, w, path)
        return [self.issue(
            path, f"fixed size changed{self.changed(str(r.size), str(w.size))}",
            "fixed values must have the same size on both sides; use a new field instead",
        )]


def _same_named(r: _Node, w: _Node) -> bool:
    if r.fullname is None or w.fullname is None or r.type != w.type:
        return False
    if r.name == w.name:
        return True
    return w.fullname in r.aliases or any(a.rpartition(".")[2] == w.fullname for a in r.aliases)


def _counterpart(union: _Node, w: _Node) -> _Node | None:
    """The union branch of the same kind as ``w`` (same named type, or same type)."""
    for b in union.branches:
        if b.fullname is not None and _same_named(b, w):
            return b
    for b in union.branches:
        if b.fullname is None and b.type == w.type:
            return b
    return None


def _hint_union(orient: str | None) -> str:
    if orient is None:
        return ""
    return "; keep every branch that existing data or readers may use"


# -- public API ----------------------------------------------------------------------------


def can_read(reader: Any, writer: Any) -> list[Incompatibility]:
    """Reasons why data written with ``writer`` cannot be read with ``reader`` (empty: it can).

    Schemas may be dicts/lists as in an ``.avsc``, JSON text, a primitive type name, or a
    path to an ``.avsc`` file. Raises :class:`InvalidSchema` for invalid schemas.

    >>> can_read(reader={"type": "int"}, writer={"type": "long"})[0].change
    'type changed: writer has long, reader has int'
    """
    return _Checker(None).run(_parse(reader, "reader"), _parse(writer, "writer"))


def check(new: Any, previous_versions: Any, level: str = "BACKWARD") -> list[Incompatibility]:
    """Check ``new`` against a subject's previous versions under a compatibility ``level``.

    ``previous_versions`` is a sequence of schemas, oldest first, or a mapping from version
    number to schema. BACKWARD: the new schema reads data written with the latest previous
    version; FORWARD: the latest previous version reads data written with the new schema;
    FULL: both; ``*_TRANSITIVE``: against every previous version; NONE: nothing to check.

    >>> v1 = '{"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}'
    >>> v2 = '{"type": "enum", "name": "Color", "symbols": ["RED"]}'
    >>> [i.change for i in check(v2, [v1], "FULL")]
    ['enum symbols removed: GREEN']
    """
    lvl = str(level).upper().strip()
    if lvl not in LEVELS:
        msg = f"unknown compatibility level {level!r}; use one of {', '.join(LEVELS)}"
        raise ValueError(msg)
    if lvl == "NONE":
        return []
    if isinstance(previous_versions, Mapping):
        labelled = [(f"version {k}", v) for k, v in sorted(previous_versions.items())]
    elif isinstance(previous_versions, (str, bytes, dict)):
        msg = "previous_versions must be a sequence (or mapping) of schemas"
        raise TypeError(msg)
    else:
        prev = list(previous_versions)
        if len(prev) == 1 or not lvl.endswith("_TRANSITIVE"):
            labelled = [("the previous version", prev[-1])] if prev else []
        else:
            labelled = [(f"previous version #{i + 1} of {len(prev)}", s)
                        for i, s in enumerate(prev)]
    if not lvl.endswith("_TRANSITIVE"):
        labelled = labelled[-1:]
    new_node = _parse(new, "new schema")
    out: list[Incompatibility] = []
    for label, schema in labelled:
        old_node = _parse(schema, label)
        if lvl.startswith(("BACKWARD", "FULL")):
            against = f"new schema reading data written with {label}"
            out.extend(_Checker(_BACKWARD, against).run(new_node, old_node))
        if lvl.startswith(("FORWARD", "FULL")):
            against = f"{label} reading data written with the new schema"
            out.extend(_Checker(_FORWARD, against).run(old_node, new_node))
    return out
