"""Aggregations whose state stays as it was when the user's function raises.

A step's ``on_error`` (else the processor's ``on_processing_error``) may let the processor go
on after an aggregator, reducer or merger raised (``skip``, ``dead_letter``, or a function
that may return either). The failed record must then leave no trace in the store: the
aggregation steps compute every new aggregate before they write any, and, since the stores
hand out the objects they cache, the user's function is given a private copy of a mutable
aggregate (one it could change in place before raising). Under ``fail`` the processor stops
and its unflushed state is discarded, so no copy is made.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from streamflow.dsl.nodes import Node
    from streamflow.plan.wiring import Wiring

# immutable values, Avro's logical types among them
_LEAVES = frozenset((int, float, str, bool, bytes, type(None), complex, Decimal, datetime, date,
                     time, timedelta, UUID))
_DEPTH = 16  # deeper plain data is copied by copy.deepcopy

Combine = Callable[[Any, Any], Any]


_NOT_PLAIN: Any = object()  # what _plain_copy returns of anything but plain data


def _plain_copy(x: Any, depth: int) -> Any:
    """A copy of dicts, lists, sets and tuples of numbers, strings and bytes (shared leaves).

    ``_NOT_PLAIN`` when ``x`` holds anything else or nests deeper than ``_DEPTH``.
    """
    t = type(x)
    if t in _LEAVES:
        return x
    if depth > _DEPTH:
        return _NOT_PLAIN
    if t is dict:
        for v in x.values():
            if type(v) not in _LEAVES:
                break
        else:
            return x.copy()  # flat: the common aggregate, copied in C
        out = {}
        for k, v in x.items():
            c = _plain_copy(v, depth + 1)
            if c is _NOT_PLAIN:
                return c
            out[k] = c
        return out
    if t is list or t is tuple:
        for v in x:
            if type(v) not in _LEAVES:
                break
        else:
            return x.copy() if t is list else x
        items = []
        for v in x:
            c = _plain_copy(v, depth + 1)
            if c is _NOT_PLAIN:
                return c
            items.append(c)
        if t is list:
            return items
        return x if all(a is b for a, b in zip(items, x, strict=True)) else tuple(items)
    if (t is set or t is frozenset) and all(type(v) in _LEAVES for v in x):
        return set(x) if t is set else x
    return _NOT_PLAIN


def copy_agg(agg: Any) -> Any:
    """A private copy of a mutable aggregate (an immutable one is its own).

    Plain data (dicts, lists, sets and tuples of numbers and strings: what JSON and Avro
    aggregates are made of) is copied by a walk about five times faster than
    ``copy.deepcopy``, which copies anything else (dataclasses, models, other classes).

    >>> a = {"n": 1, "seen": ["x"]}
    >>> b = copy_agg(a)
    >>> b is a, b == a, b["seen"] is a["seen"], copy_agg(5), copy_agg((1, "a"))
    (False, True, False, 5, (1, 'a'))
    """
    if type(agg) in _LEAVES:
        return agg
    mine = _plain_copy(agg, 0)
    return copy.deepcopy(agg) if mine is _NOT_PLAIN else mine


def goes_on(w: Wiring, node: Node) -> bool:
    """True when a failure in ``node``'s user code may leave the processor running.

    Its policy (``on_error=``, else the processor's ``on_processing_error``) is not ``fail``.
    """
    policy = node.on_error if node.on_error is not None else w.processor.policies["process"]
    return policy != "fail"


def on_copies(fn: Combine, w: Wiring, node: Node) -> Combine:
    """``fn(aggregate, x)``, given a copy of ``aggregate`` when ``node``'s policy goes on.

    ``fn`` itself under ``fail``.
    """
    if not goes_on(w, node):
        return fn

    def on_a_copy(agg: Any, x: Any) -> Any:
        return fn(copy_agg(agg), x)

    return on_a_copy
