"""Compile a windowed aggregation (``WindowAggregate``) into one per-task step.

Semantics are documented in ``streamflow.windows``; the store layout (one entry per key
holding its open windows) in ``streamflow.state.window_store``. ``env`` holds what every
kind shares (the prologue, stream time, the per-record step, per-key state, idle closing);
``time`` (tumbling and hopping), ``sliding`` and ``session`` the window kinds. Per task a
kind keeps the open windows in memory (rebuilt from the store, after its changelog restore,
when the task is compiled) and an index of them by close time, so closing is
``O(closed windows)`` whatever the number of open ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamflow.dsl.nodes import WindowAggregate, WindowEmit
from streamflow.plan.context import Step
from streamflow.plan.windows.env import WindowEnv, WindowKind, make_step, with_idle_close
from streamflow.plan.windows.session import Sessions
from streamflow.plan.windows.sliding import SlidingWindows
from streamflow.plan.windows.time import TimeWindows
from streamflow.windows import Hopping, Session, Sliding, Tumbling

if TYPE_CHECKING:
    from streamflow.plan.wiring import Wiring

__all__ = ["build_window", "build_window_emit"]


def build_window(w: Wiring, node: WindowAggregate) -> Step:
    """The step of a ``WindowAggregate`` (its ``WindowEmit`` children are wired by it)."""
    env = WindowEnv(w, node)
    spec = node.spec
    kind: WindowKind
    if isinstance(spec, (Tumbling, Hopping)):
        kind = TimeWindows(env, spec.size, spec.advance, spec.grace)
    elif isinstance(spec, Sliding):
        kind = SlidingWindows(env, spec.size, spec.grace)
    elif isinstance(spec, Session):
        kind = Sessions(env, spec.gap, spec.grace)
    else:  # pragma: no cover - the DSL validates specs
        msg = f"unknown window spec {spec!r}"
        raise TypeError(msg)
    step = make_step(env, kind)
    idle = spec.close_after_idle
    return step if idle is None else with_idle_close(env, kind, step, idle)


def build_window_emit(w: Wiring, node: WindowEmit) -> Step:
    """A ``WindowEmit`` passes what its aggregation emits on to its children."""
    return w.downstream(node)
