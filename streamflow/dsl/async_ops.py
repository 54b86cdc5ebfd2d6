"""The DSL side of async I/O steps: checking ``map_async`` / ``flat_map_async`` options.

The steps run in ``streamflow.plan.async_steps``; here they are only described (an
``AsyncApply`` node) and their options checked when the topology is defined, so a bad value
fails at import time with a message saying what to pass instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from streamflow.dsl.nodes import AsyncApply
from streamflow.dsl.topology import TopologyError


def async_node(name: str, parent: str, op: str, fn: Callable[..., Any], *, concurrency: int,
               timeout: float | None, retries: int, backoff: float) -> AsyncApply:
    """The ``AsyncApply`` node of ``op`` (``map_async`` or ``flat_map_async``), checked.

    >>> async def lookup(v): return v
    >>> async_node("m", "src", "map_async", lookup, concurrency=10, timeout=1.0, retries=2,
    ...            backoff=0.05).label()
    'map_async(lookup, concurrency=10)'
    """
    sync = op.removesuffix("_async")
    if not callable(fn):
        msg = f"{op}() needs an async function (async def), got {type(fn).__name__}"
        raise TopologyError(msg)
    if inspect.isfunction(fn) and not inspect.iscoroutinefunction(fn):
        msg = (f"{op}() needs an async function (async def), but {fn.__qualname__} is a plain "
               f"function; use {sync}() for it, or declare it 'async def'")
        raise TopologyError(msg)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        msg = f"{op}(concurrency=...) must be an int of at least 1, got {concurrency!r}"
        raise TopologyError(msg)
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                or timeout <= 0):
        msg = (f"{op}(timeout=...) must be a number of seconds above 0 (or None for no "
               f"limit), got {timeout!r}")
        raise TopologyError(msg)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        msg = f"{op}(retries=...) must be an int of at least 0, got {retries!r}"
        raise TopologyError(msg)
    if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 0:
        msg = f"{op}(backoff=...) must be a number of seconds of at least 0, got {backoff!r}"
        raise TopologyError(msg)
    return AsyncApply(name, (parent,), op=op, fn=fn, concurrency=concurrency,
                      timeout=None if timeout is None else float(timeout), retries=retries,
                      backoff=float(backoff))
