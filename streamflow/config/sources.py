"""The sources of :func:`~streamflow.config.load.load_config`, merged by pydantic-settings.

``settings_customise_sources`` puts the ``STREAMFLOW_*`` variables over the TOML file; the
defaults are ``Config``'s own. Each source records where its values came from.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from streamflow.config.load import PREFIX, SCALARS, is_setting
from streamflow.config.model import TABLES, ConfigError, did_you_mean

__all__ = ["read"]


@dataclass
class _Request:
    """What one ``load_config`` call reads, and where each value came from.

    pydantic-settings calls the sources from the highest priority down: the first source to
    name a value is where it came from.
    """

    path: Path | None
    env: Mapping[str, str]
    sources: dict[str, str] = field(default_factory=dict)


_REQUEST: ContextVar[_Request] = ContextVar("streamflow_config_request")


class _File(PydanticBaseSettingsSource):
    """The TOML file: ``[streamflow]`` settings and the client tables."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        request = _REQUEST.get()
        if request.path is None:
            return {}
        p = request.path
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            msg = f"config file {str(p)!r} does not exist"
            raise ConfigError(msg) from None
        except (OSError, UnicodeDecodeError) as e:
            msg = f"config file {str(p)!r} cannot be read: {e}"
            raise ConfigError(msg) from None
        except tomllib.TOMLDecodeError as e:
            msg = f"config file {str(p)!r} is not valid TOML: {e}"
            raise ConfigError(msg) from None
        unknown = set(data) - {"streamflow", *TABLES}
        if unknown:
            msg = (
                f"unknown section(s) {sorted(unknown)} in {str(p)!r}; known: "
                f"[streamflow], {', '.join(f'[{t}]' for t in TABLES)}"
            )
            raise ConfigError(msg)
        for section in ("streamflow", *TABLES):
            if not isinstance(data.get(section, {}), dict):
                msg = f"{section!r} in {str(p)!r} must be a [{section}] table of settings"
                raise ConfigError(msg)
        values: dict[str, Any] = {}
        for key, val in data.get("streamflow", {}).items():
            if key not in SCALARS:
                msg = (f"unknown setting {key!r} in [streamflow] of {str(p)!r}"
                       f"{did_you_mean(key, SCALARS)}")
                raise ConfigError(msg)
            values[key] = val
            request.sources.setdefault(key, f"file {p} [streamflow] {key}")
        for table in TABLES:
            entries = {str(k): v for k, v in data.get(table, {}).items()}
            if entries:
                values[table] = entries
            for key in entries:
                request.sources.setdefault(f"{table}.{key}", f"file {p} [{table}] {key}")
        return values


class _Environment(PydanticBaseSettingsSource):
    """``STREAMFLOW_<SETTING>`` and ``STREAMFLOW_<TABLE>_<KEY>`` variables."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads every variable at once

    def __call__(self) -> dict[str, Any]:
        request = _REQUEST.get()
        values: dict[str, Any] = {}
        for var, val in sorted(request.env.items()):
            if not var.startswith(PREFIX) or not is_setting(var):
                continue
            rest = var[len(PREFIX):].lower()
            if rest in SCALARS:
                values[rest] = val
                request.sources.setdefault(rest, f"env {var}")
                continue
            table = next((t for t in TABLES if rest.startswith(f"{t}_")), None)
            if table is None or len(rest) == len(table) + 1:
                known = [f"{PREFIX}{s.upper()}" for s in SCALARS]
                msg = (f"{var} is not a setting"
                       f"{did_you_mean(var, known) or ' (`streamflow config show` lists them)'}")
                raise ConfigError(msg)
            key = rest[len(table) + 1:].replace("_", ".")
            values.setdefault(table, {})[key] = val
            request.sources.setdefault(f"{table}.{key}", f"env {var}")
        return values


class _Settings(BaseSettings):
    """The sources, merged by pydantic-settings into the values of a :class:`Config`.

    It declares no fields: every value passes through unchecked (deep-merged per table), and
    ``Config.build`` validates the merged values once, naming each bad value's source.
    """

    model_config = SettingsConfigDict(extra="allow")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment over the file (the defaults are ``Config``'s)."""
        return _Environment(settings_cls), _File(settings_cls)


@contextmanager
def _reading(request: _Request) -> Iterator[None]:
    token = _REQUEST.set(request)
    try:
        yield
    finally:
        _REQUEST.reset(token)


def read(path: Path | None, env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The merged values of the file and the environment, and the source of each."""
    request = _Request(path, env)
    with _reading(request):
        values = _Settings().model_dump()
    return values, request.sources
