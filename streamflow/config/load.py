"""``load_config``: the sources of the settings, in order, through pydantic-settings.

pydantic-settings merges the sources (``settings_customise_sources``): the ``STREAMFLOW_*``
variables over the TOML file over the defaults (command-line flags come after, through
:meth:`Config.with_overrides`). Each source records where its values came from, so that a bad
value's error, and ``streamflow config show``, name the variable or the file key.

Not every ``STREAMFLOW_*`` variable is a setting: :data:`NOT_SETTINGS` and
:data:`NOT_SETTINGS_PREFIXES` list the others (the config file's name, the test fixtures', the
local stack's, the benchmarks'); any other unknown ``STREAMFLOW_*`` variable is an error that
suggests the closest setting.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from streamflow.config.model import TABLES, Config, ConfigError, did_you_mean

__all__ = ["NOT_SETTINGS", "NOT_SETTINGS_PREFIXES", "PREFIX", "load_config"]

PREFIX = "STREAMFLOW_"

# STREAMFLOW_* variables that are not settings, all documented where they are read
NOT_SETTINGS = frozenset({
    "STREAMFLOW_CONFIG",  # the config file (this module)
    "STREAMFLOW_PYTHON",  # the interpreter of the local stack's and the fleet's helpers
    "STREAMFLOW_REQUIRE_INTEGRATION",  # the test suite: integration tests must not skip
    "STREAMFLOW_LOCAL_STACK",  # the test fixtures: where the local stack is
})
NOT_SETTINGS_PREFIXES = (
    "STREAMFLOW_TEST_",  # the test fixtures' cluster (streamflow.testing)
    "STREAMFLOW_STACK_",  # the local stack (deploy/local, `streamflow stack`)
    "STREAMFLOW_FLEET_",  # the fleet tests
    "STREAMFLOW_CHAOS_",  # the chaos tests
)

_SCALARS = tuple(name for name in Config.model_fields if name not in TABLES)


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
            if key not in _SCALARS:
                msg = (f"unknown setting {key!r} in [streamflow] of {str(p)!r}"
                       f"{did_you_mean(key, _SCALARS)}")
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
            if not var.startswith(PREFIX) or not _is_setting(var):
                continue
            rest = var[len(PREFIX):].lower()
            if rest in _SCALARS:
                values[rest] = val
                request.sources.setdefault(rest, f"env {var}")
                continue
            table = next((t for t in TABLES if rest.startswith(f"{t}_")), None)
            if table is None or len(rest) == len(table) + 1:
                known = [f"{PREFIX}{s.upper()}" for s in _SCALARS]
                msg = (f"{var} is not a setting"
                       f"{did_you_mean(var, known) or ' (`streamflow config show` lists them)'}")
                raise ConfigError(msg)
            key = rest[len(table) + 1:].replace("_", ".")
            values.setdefault(table, {})[key] = val
            request.sources.setdefault(f"{table}.{key}", f"env {var}")
        return values


def _is_setting(var: str) -> bool:
    return var not in NOT_SETTINGS and not var.startswith(NOT_SETTINGS_PREFIXES)


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


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Build the configuration from defaults, the TOML file and the environment.

    ``path`` (else ``$STREAMFLOW_CONFIG``) names the file; ``env`` defaults to ``os.environ``.
    Raises :class:`ConfigError` naming the variable or file key of any unknown setting or bad
    value. The result remembers each value's source (:meth:`Config.source_of`).
    """
    env = os.environ if env is None else env
    chosen = path or env.get("STREAMFLOW_CONFIG") or None
    request = _Request(Path(chosen) if chosen else None, env)
    with _reading(request):
        merged = _Settings().model_dump()
    return Config.build(merged, request.sources)
