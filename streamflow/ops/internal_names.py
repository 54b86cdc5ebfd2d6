"""Whether a topic name is one of a topology's internal topics: the one place that parses them.

Internal topics are named ``<topology>-<processor>-<step>-<kind>``: changelogs
(``-changelog``, dsl/topology.py, for every store), repartition topics (``-repartition``)
and a foreign-key join's two topics (``-subscription-registration`` and
``-subscription-response``, dsl/foreign_key.py). A topology renamed with a name suffix (the
``name_suffix`` setting, ``Topology.with_name_suffix``) has the suffix at the end of every
name, its own included: topology ``shop-t1`` owns ``shop-count-n-changelog-t1``, not
``shop-t1-count-n-changelog``. So the prefix is the name the topology was declared with and
the suffix follows the kind.

>>> import streamflow as sf
>>> t = sf.Topology("shop").with_name_suffix("-t1")
>>> declared_name(t), t.name
('shop', 'shop-t1')
>>> internal_name(t, "shop-count-n-changelog-t1")
InternalName(topic='shop-count-n-changelog-t1', owner='count-n', kind='changelog')
>>> internal_name(t, "shop-count-n-changelog") is None  # no suffix: another run's
True
"""

from __future__ import annotations

from dataclasses import dataclass

from streamflow.dsl.topology import Topology

__all__ = ["KINDS", "InternalName", "declared_name", "internal_name"]

# the last words of internal topic names, before the name suffix
KINDS = ("changelog", "repartition", "subscription-registration", "subscription-response")


@dataclass(frozen=True)
class InternalName:
    """An internal topic's name taken apart.

    ``owner`` is what stands between the topology's declared name and the ``kind``:
    ``<processor>-<step or store>``; names may hold dashes, so which is which takes the
    topology's processor names (see :func:`streamflow.ops.state_names.orphan_fix`).
    """

    topic: str
    owner: str
    kind: str


def declared_name(topology: Topology) -> str:
    """The name ``topology`` was declared with: its name without the name suffix."""
    return topology.name.removesuffix(topology.name_suffix) if topology.name_suffix \
        else topology.name


def internal_name(topology: Topology, topic: str) -> InternalName | None:
    """``topic`` taken apart when it is named like an internal topic of ``topology``, else None.

    That is ``<declared name>-<owner>-<kind><name suffix>`` with ``kind`` one of
    :data:`KINDS`. The topic need not be declared: an orphan of an older version matches too.
    """
    prefix, suffix = f"{declared_name(topology)}-", topology.name_suffix
    if not topic.startswith(prefix) or not topic.endswith(suffix):
        return None
    body = topic[len(prefix):len(topic) - len(suffix)]
    for kind in KINDS:
        owner = body.removesuffix(f"-{kind}")
        if owner != body and owner:
            return InternalName(topic, owner, kind)
    return None
