r"""A Griffe extension: the reST habits of streamflow's docstrings, as Markdown.

streamflow's docstrings are written for ``pydoc`` and doctest: Sphinx roles
(``:class:`~streamflow.errors.SerdeError```) and ``::`` before a literal block. mkdocstrings
renders docstrings as Markdown, where a role shows as text and ``::`` as two colons; this
extension (``extensions:`` in ``mkdocs.yml``) rewrites both when Griffe loads a docstring:

>>> to_markdown("a :class:`~streamflow.errors.SerdeError` and :func:`f`")
'a `SerdeError` and `f`'
>>> to_markdown("For example::\n\n    x = 1")
'For example:\n\n    x = 1'
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")
_LITERAL = re.compile(r"::\n(\n+[ ]{4})")


def _role(m: re.Match[str]) -> str:
    target = m.group(2)
    return f"`{target.rsplit('.', 1)[-1] if m.group(1) else target}`"


def to_markdown(text: str) -> str:
    """Sphinx roles become code spans; ``::`` before an indented block becomes ``:``."""
    return _LITERAL.sub(r":\n\1", _ROLE.sub(_role, text))


class RestToMarkdown(griffe.Extension):
    """Rewrite every docstring Griffe loads with :func:`to_markdown`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Called for each object Griffe loads (module, class, function, attribute)."""
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
