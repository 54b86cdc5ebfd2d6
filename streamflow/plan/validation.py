"""The ``validate`` step (``streamflow.dsl.validation``): check, count, pass or raise."""

from __future__ import annotations

from typing import Any

from streamflow.dsl.validation import RULE_METRIC, InvalidRecord, Rules
from streamflow.plan.context import Step, StepError, TaskContext
from streamflow.record import Headers


def build_validate(name: str, rules: Rules, nxt: Step, ctx: TaskContext) -> Step:
    """Pass records that satisfy every rule.

    For the others, count each failed rule and raise ``InvalidRecord``: the step's
    ``on_invalid`` policy decides.
    """
    metrics = ctx.metrics
    counters = {rule: f"{name}{RULE_METRIC}{rule}" for rule in rules.names}
    for counter in counters.values():
        metrics.setdefault(counter, 0)
    checks = rules.checks

    def validate(k: Any, v: Any, ts: int, h: Headers | None) -> None:
        for _rule, check in checks:  # the common case: every rule holds, nothing allocated
            try:
                if not check(v):
                    break
            except Exception:
                break
        else:
            nxt(k, v, ts, h)
            return
        failed, details = rules(v)
        for rule in failed:
            metrics[counters[rule]] += 1
        raise StepError(name, InvalidRecord(failed, details))

    return validate
