"""Find a topology by its ``MODULE[:ATTR]`` spec, as every ``streamflow`` command does."""

from __future__ import annotations

import importlib
import os
import sys
import traceback

from streamflow.dsl.topology import Topology
from streamflow.errors import ConfigurationError, StreamflowError

__all__ = ["load_topology"]

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def load_topology(spec: str, *, name_suffix: str = "") -> Topology:
    """Import ``MODULE[:ATTR]`` (ATTR defaults to ``topology``) and return the Topology.

    With ``name_suffix`` (the setting of that name), a copy with the suffix on every topic,
    group and its own name (:meth:`~streamflow.dsl.topology.Topology.with_name_suffix`).

    ATTR may also name a function returning one. The current directory is importable, as
    it is for ``python -m``. Raises :class:`~streamflow.errors.ConfigurationError` saying
    what to do when the module or the attribute is missing, and naming the cause with the
    user's file and line when the module fails to import (a syntax error, a missing
    dependency, an exception at import) or the function fails.
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
        raise ConfigurationError(_broken(module_name, e)) from e
    except StreamflowError:
        raise  # an invalid topology says what is wrong itself
    except Exception as e:  # SyntaxError, an exception raised by the module's own code
        raise ConfigurationError(_broken(module_name, e)) from e
    try:
        topology = getattr(module, attr)
    except AttributeError:
        msg = (
            f"module {module_name!r} has no attribute {attr!r}; expose the Topology as "
            f"`{attr} = streamflow.Topology(...)` or name it with {module_name}:NAME"
        )
        raise ConfigurationError(msg) from None
    if callable(topology) and not isinstance(topology, Topology):
        try:
            topology = topology()
        except StreamflowError:
            raise
        except Exception as e:
            raise ConfigurationError(_broken(spec, e, "building the topology with")) from e
    if not isinstance(topology, Topology):
        msg = (
            f"{spec} is a {type(topology).__name__}, "
            "not a streamflow.Topology"
        )
        raise ConfigurationError(msg)
    return topology.with_name_suffix(name_suffix)


def _broken(what: str, e: BaseException, doing: str = "importing") -> str:
    """One short block: the cause, then the user's file and line (not a framework traceback)."""
    where = ""
    if isinstance(e, SyntaxError) and e.filename:
        where = f"{e.filename}, line {e.lineno}"
        text = (e.text or "").strip()
    else:
        # the innermost frame of the user's own code: outside the import machinery and
        # streamflow, and in the user's folder when there is one (a library's own frames
        # say less than the user's line that called it)
        frames = [f for f in traceback.extract_tb(e.__traceback__)
                  if not f.filename.startswith(("<frozen", _PACKAGE))]
        frames = [f for f in frames if f.filename.startswith(os.getcwd())] or frames
        text = ""
        if frames:
            where = f"{frames[-1].filename}, line {frames[-1].lineno}"
            text = (frames[-1].line or "").strip()
    cause = f"{type(e).__name__}: {e.msg if isinstance(e, SyntaxError) else e}"
    msg = f"{doing} {what!r} failed: {cause}"
    if where:
        msg += f"\n  at {where}" + (f": {text}" if text else "")
    return msg
