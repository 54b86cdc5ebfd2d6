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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamflow.dsl.nodes import Node
    from streamflow.plan.wiring import Wiring

_IMMUTABLE = frozenset((int, float, str, bool, bytes, type(None), tuple, frozenset))

Combine = Callable[[Any, Any], Any]


def copy_agg(agg: Any) -> Any:
    """A private copy of a mutable aggregate (an immutable one is its own).

    >>> a = {"n": 1}
    >>> copy_agg(a) is a, copy_agg(a) == a, copy_agg(5)
    (False, True, 5)
    """
    return agg if type(agg) in _IMMUTABLE else copy.deepcopy(agg)


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
