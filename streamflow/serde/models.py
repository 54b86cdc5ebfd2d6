"""Typed values: decode a topic's records into dataclasses or pydantic models, encode from them.

``Json(Order)`` and ``Avro(schema, model=Order)`` take the class; this module turns instances
into plain data (dicts, lists, scalars) and back, with errors that name the class and field.
This module does not import pydantic (the settings do; a topology need not): a class is treated
as a pydantic model when it has pydantic v2's ``model_validate`` and ``model_dump``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from streamflow.serde.base import SerdeError

ToData = Callable[[Any], Any]
FromData = Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class ModelCodec:
    """How one model class turns into plain data and back."""

    model: type
    to_data: ToData  # instance -> dicts/lists/scalars (raises SerdeError for a non-instance)
    from_data: FromData  # decoded data -> instance (raises SerdeError when it does not fit)
    fields: tuple[str, ...]  # the top-level field names
    required: frozenset[str]  # the fields without a default

    @property
    def name(self) -> str:
        """The class name, as shown in serde names (``Json(Order)``)."""
        return self.model.__name__


def is_pydantic(model: type) -> bool:
    """Whether ``model`` is a pydantic v2 model class."""
    return hasattr(model, "model_validate") and hasattr(model, "model_dump")


def model_codec(model: Any, *, json: bool) -> ModelCodec:
    """The codec of a dataclass or pydantic model class.

    ``json`` chooses JSON-ready data for pydantic (``model_dump(mode="json")``: datetimes as
    text); Avro takes Python values (fastavro encodes datetimes for logical types itself).
    Raises TypeError for anything else.
    """
    if not isinstance(model, type):
        msg = f"a model must be a dataclass or pydantic model class, not {model!r:.80}"
        raise TypeError(msg)
    if is_pydantic(model):
        return _pydantic(model, json=json)
    if dataclasses.is_dataclass(model):
        return _dataclass(model)
    msg = f"{model.__name__} is neither a dataclass nor a pydantic model"
    raise TypeError(msg)


def _wrong_type(name: str, value: Any) -> SerdeError:
    return SerdeError(f"expected a {name}, got {type(value).__name__}: {value!r:.80}")


def _pydantic(model: type, *, json: bool) -> ModelCodec:
    mode = "json" if json else "python"
    m: Any = model

    def to_data(value: Any) -> Any:
        if not isinstance(value, model):
            raise _wrong_type(model.__name__, value)
        dump: Any = value
        return dump.model_dump(mode=mode)

    def from_data(data: Any) -> Any:
        try:
            return m.model_validate(data)
        except Exception as e:  # pydantic.ValidationError, without importing pydantic
            msg = f"does not fit {model.__name__}: {_one_line(e)}"
            raise SerdeError(msg) from e

    fields = m.model_fields
    required = frozenset(n for n, f in fields.items() if f.is_required())
    return ModelCodec(model, to_data, from_data, tuple(fields), required)


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:300]


def _dataclass(model: type) -> ModelCodec:
    build = _builder(model)
    fields = dataclasses.fields(model)

    def to_data(value: Any) -> Any:
        if not isinstance(value, model):
            raise _wrong_type(model.__name__, value)
        return _plain(value)

    return ModelCodec(model, to_data, build, tuple(f.name for f in fields if f.init),
                      frozenset(_required(fields)))


def _required(fields: Iterable[dataclasses.Field[Any]]) -> set[str]:
    """The names of the dataclass fields without a default."""
    return {f.name for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}


def _problems(*lists: tuple[Sequence[str], str]) -> str:
    """The non-empty name lists, each put into its template's ``{}``, joined by ``; ``."""
    return "; ".join(template.format(", ".join(names)) for names, template in lists if names)


def _plain(value: Any) -> Any:
    """Nested dataclasses as dicts (lists and dicts walked); other values unchanged.

    Unlike ``dataclasses.asdict`` nothing is deep-copied.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _builder(tp: Any) -> FromData:
    """A function building ``tp`` from decoded data: nested dataclasses, lists, dicts, unions."""
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_builder(tp)
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        each = _builder(item)
        return lambda data: [each(v) for v in data] if isinstance(data, list) else data
    if origin is dict:
        args = typing.get_args(tp)
        each = _builder(args[1]) if len(args) == 2 else _identity
        return lambda data: ({k: each(v) for k, v in data.items()} if isinstance(data, dict)
                             else data)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1:  # Optional[X]
            each = _builder(inner[0])
            return lambda data: None if data is None else each(data)
    return _identity


def _identity(data: Any) -> Any:
    return data


def _dataclass_builder(model: type) -> FromData:
    fields = [f for f in dataclasses.fields(model) if f.init]
    names = {f.name for f in fields}
    required = _required(fields)
    builders: dict[str, FromData] = {}

    def resolve() -> dict[str, FromData]:
        # type hints resolve lazily: a model may refer to classes defined after it
        if not builders:
            hints = typing.get_type_hints(model)
            builders.update({f.name: _builder(hints.get(f.name, Any)) for f in fields})
        return builders

    def build(data: Any) -> Any:
        if not isinstance(data, dict):
            msg = f"does not fit {model.__name__}: expected an object, got {data!r:.80}"
            raise SerdeError(msg)
        problems = _problems((sorted(required - data.keys()), "missing {}"),
                             (sorted(map(str, data.keys() - names)), "unknown {}"))
        if problems:
            msg = f"does not fit {model.__name__}: {problems}"
            raise SerdeError(msg)
        b = resolve()
        try:
            return model(**{k: b[k](v) for k, v in data.items()})
        except SerdeError:
            raise
        except Exception as e:  # a __post_init__ that validates
            msg = f"does not fit {model.__name__}: {_one_line(e)}"
            raise SerdeError(msg) from e

    return build


def check_against_record(codec: ModelCodec, schema: Any, who: str) -> None:
    """Refuse a model whose fields do not match the Avro record's (at binding, not per record).

    Every model field must be in the record, and every record field without a default in the
    model: else encoding or decoding would fail on every record.
    """
    if not isinstance(schema, dict) or schema.get("type") != "record":
        msg = f"{who}: model={codec.name} needs a record schema"
        raise SerdeError(msg)
    record = {f["name"]: f for f in schema.get("fields", [])}
    extra = [n for n in codec.fields if n not in record]
    lacking = [n for n, f in record.items() if n not in codec.fields and "default" not in f]
    problems = _problems((extra, f"{codec.name} has {{}}, not in the schema"),
                         (lacking, f"the schema's {{}} (no default) not in {codec.name}"))
    if problems:
        msg = f"{who}: model and schema differ: {problems}"
        raise SerdeError(msg)
