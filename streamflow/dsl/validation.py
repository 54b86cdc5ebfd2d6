"""Data-quality rules: ``stream.validate({"rule name": predicate, ...})``.

Each record's value is checked against every rule, in order (all of them, so the metrics
count each failed rule, not only the first). A record that passes goes on unchanged; one that
fails any rule raises :class:`InvalidRecord` in the step, naming the failed rules, and the
step's ``on_invalid`` policy decides (the same values as ``on_error``: ``"dead_letter"`` by
default, ``"skip"``, ``"fail"`` or a function). A rule that raises counts as failed, with the
exception in the error message. Dead letters carry the message in their error headers, so
``streamflow dlq`` shows which rules a record broke, and ``streamflow dlq replay`` sends it
back once the data (or the rule) is fixed.

Per rule, ``streamflow_records_invalid_total{step, rule}`` counts the failures (the task
counter ``"<step>.invalid:<rule>"``, see :data:`RULE_METRIC`).

>>> rules = Rules({"positive amount": lambda v: v["amount"] > 0,
...                "known currency": lambda v: v["currency"] in {"EUR", "USD"}})
>>> rules
rules[positive amount, known currency]
>>> rules({"amount": -1, "currency": "EUR"})
(['positive amount'], [])
>>> rules({"amount": 3})
(['known currency'], ["known currency: KeyError: 'currency'"])
>>> str(InvalidRecord(["known currency"], ["known currency: KeyError: 'currency'"]))
"failed rule known currency (known currency: KeyError: 'currency')"
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streamflow.errors import ProcessingError

__all__ = ["RULE_METRIC", "InvalidRecord", "Rules"]

RULE_METRIC = ".invalid:"  # task counter "<step>.invalid:<rule>"
_RULE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ .-]{0,99}")


class InvalidRecord(ProcessingError):
    """A record failed ``validate()`` rules.

    ``rules`` names them, ``details`` says why a rule that raised did.
    """

    def __init__(self, rules: Sequence[str], details: Sequence[str] = ()) -> None:
        self.rules = tuple(rules)
        self.details = tuple(details)
        what = f"failed rule{'s' if len(self.rules) > 1 else ''} {', '.join(self.rules)}"
        super().__init__(f"{what} ({'; '.join(self.details)})" if self.details else what)


class Rules:
    """Named predicates over a record's value, as given to ``Stream.validate``."""

    __slots__ = ("checks",)

    def __init__(self, rules: Mapping[str, Callable[[Any], object]]) -> None:
        if not isinstance(rules, Mapping) or not rules:
            msg = ("validate() needs a dict of rules, name -> predicate(value), e.g. "
                   "{'positive amount': lambda v: v['amount'] > 0}")
            raise TypeError(msg)
        for name, check in rules.items():
            if not isinstance(name, str) or not _RULE_NAME.fullmatch(name):
                msg = (f"validate(): rule name {name!r} must be 1-100 letters, digits, spaces, "
                       "'_', '-' or '.', starting with a letter, digit or '_' (it becomes a "
                       "metric label)")
                raise ValueError(msg)
            if not callable(check):
                msg = f"validate(): rule {name!r} needs a predicate, got {type(check).__name__}"
                raise TypeError(msg)
        self.checks: tuple[tuple[str, Callable[[Any], object]], ...] = tuple(rules.items())

    @property
    def names(self) -> list[str]:
        """The rule names, in order."""
        return [name for name, _ in self.checks]

    def __call__(self, value: Any) -> tuple[list[str], list[str]]:
        """The rules ``value`` fails, and why for those that raised."""
        failed: list[str] = []
        details: list[str] = []
        for name, check in self.checks:
            try:
                if check(value):
                    continue
            except Exception as e:
                details.append(f"{name}: {type(e).__name__}: {e}")
            failed.append(name)
        return failed, details

    def __repr__(self) -> str:
        return f"rules[{', '.join(self.names)}]"
