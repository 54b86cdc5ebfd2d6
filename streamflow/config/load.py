"""``load_config``: the sources of the settings, in order, through pydantic-settings.

pydantic-settings merges the sources (``settings_customise_sources``): the ``STREAMFLOW_*``
variables over the TOML file over the defaults (command-line flags come after, through
:meth:`Config.with_overrides`). Each source records where its values came from, so that a bad
value's error, and ``streamflow config show``, name the variable or the file key.

Not every ``STREAMFLOW_*`` variable is a setting: :data:`NOT_SETTINGS` and
:data:`NOT_SETTINGS_PREFIXES` list the others (the config file's name, the test fixtures', the
local stack's, the benchmarks'); any other unknown ``STREAMFLOW_*`` variable is an error that
suggests the closest setting.

The sources themselves live in :mod:`streamflow.config.sources`, imported on the first load:
commands that read no settings (``--help``) do not import pydantic-settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from streamflow.config.model import TABLES, Config

__all__ = ["NOT_SETTINGS", "NOT_SETTINGS_PREFIXES", "PREFIX", "SCALARS", "is_setting",
           "load_config"]

PREFIX = "STREAMFLOW_"

# STREAMFLOW_* variables that are not settings, all documented where they are read
NOT_SETTINGS = frozenset({
    "STREAMFLOW_CONFIG",  # the config file (this module)
    "STREAMFLOW_PYTHON",  # the interpreter of the local stack's and the fleet's helpers
    "STREAMFLOW_REQUIRE_INTEGRATION",  # the test suite: integration tests must not skip
    "STREAMFLOW_LOCAL_STACK",  # the test fixtures: where the local stack is
    "STREAMFLOW_DEBIAN_MIRROR",  # deploy/containers/images.sh: the debootstrap mirror
    "STREAMFLOW_BROKER_CONFIG_DIR",  # deploy/containers/kafka: the broker image's config folder
})
NOT_SETTINGS_PREFIXES = (
    "STREAMFLOW_TEST_",  # the test fixtures' cluster (streamflow.testing)
    "STREAMFLOW_STACK_",  # the local stack (deploy/local, `streamflow stack`)
    "STREAMFLOW_FLEET_",  # the fleet tests
    "STREAMFLOW_CHAOS_",  # the chaos tests
    "STREAMFLOW_DOCKER_",  # deploy/containers/engine.sh: the private Docker engine
    "STREAMFLOW_IMAGE",  # deploy/containers/images.sh and compose: image tags and build folders
    "STREAMFLOW_JRE_",  # deploy/containers/images.sh: the JRE base's Debian suite and package
    "STREAMFLOW_PYTHON_",  # deploy/containers/images.sh: the Python base's Debian suite
)

SCALARS = tuple(name for name in Config.model_fields if name not in TABLES)




def is_setting(var: str) -> bool:
    """Whether a ``STREAMFLOW_*`` variable is meant as a setting (not one of the tools')."""
    return var not in NOT_SETTINGS and not var.startswith(NOT_SETTINGS_PREFIXES)


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Build the configuration from defaults, the TOML file and the environment.

    ``path`` (else ``$STREAMFLOW_CONFIG``) names the file; ``env`` defaults to ``os.environ``.
    Raises :class:`ConfigError` naming the variable or file key of any unknown setting or bad
    value. The result remembers each value's source (:meth:`Config.source_of`).
    """
    from streamflow.config.sources import read  # pydantic-settings: only when settings load

    env = os.environ if env is None else env
    chosen = path or env.get("STREAMFLOW_CONFIG") or None
    values, sources = read(Path(chosen) if chosen else None, env)
    return Config.build(values, sources)
