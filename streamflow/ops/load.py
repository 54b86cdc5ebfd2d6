"""Find a topology by its ``MODULE[:ATTR]`` spec, as every ``streamflow`` command does."""

from __future__ import annotations

import importlib
import os
import sys

from streamflow.dsl.topology import Topology
from streamflow.errors import ConfigurationError

__all__ = ["load_topology"]


def load_topology(spec: str) -> Topology:
    """Import ``MODULE[:ATTR]`` (ATTR defaults to ``topology``) and return the Topology.

    ATTR may also name a function returning one. The current directory is importable, as
    it is for ``python -m``. Raises :class:`~streamflow.errors.ConfigurationError` saying
    what to do when the module or the attribute is missing.
    """
    module_name, _, attr = spec.partition(":")
    attr = attr or "topology"
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        # only the module itself (or a parent package) missing; not one that it imports
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            msg = (
                f"cannot import module {module_name!r}: {e}. Run from the directory that holds "
                "it, or give its dotted path (e.g. topologies.payments)"
            )
            raise ConfigurationError(msg) from e
        raise
    try:
        topology = getattr(module, attr)
    except AttributeError:
        msg = (
            f"module {module_name!r} has no attribute {attr!r}; expose the Topology as "
            f"`{attr} = streamflow.Topology(...)` or name it with {module_name}:NAME"
        )
        raise ConfigurationError(msg) from None
    if callable(topology) and not isinstance(topology, Topology):
        topology = topology()
    if not isinstance(topology, Topology):
        msg = (
            f"{spec} is a {type(topology).__name__}, "
            "not a streamflow.Topology"
        )
        raise ConfigurationError(msg)
    return topology
