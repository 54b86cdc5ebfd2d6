"""Start-up check of a processor's topics: create what is missing, refuse what differs."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from streamflow.config import Config
from streamflow.dsl.global_table import global_topics
from streamflow.dsl.topology import Processor, Topic
from streamflow.errors import ConfigurationError
from streamflow.kafka import client

log = logging.getLogger("streamflow.topics")


class TopicMismatch(ConfigurationError):
    """A topic is missing or differs from its declaration."""


def processor_topics(processor: Processor) -> list[Topic]:
    """The declared topics a processor touches (sources, global tables, sinks, dead letters)."""
    topo = processor.topology
    names = [*processor.source_topics(), *global_topics(processor), *processor.sink_topics(),
             *processor.changelog_topics()]
    topics = [topo.topics[n] for n in dict.fromkeys(names)]
    if processor.dead_letters:
        dlq = processor.dead_letter_topic
        topics.append(topo.topics.get(dlq) or Topic(dlq))
    return topics


def ensure_topics(admin: Any, topics: list[Topic], config: Config,
                  sources: list[str] | None = None, *,
                  copartitioned: list[str] | None = None) -> None:
    """Create missing non-external topics (if allowed) and validate the existing ones.

    Internal topics (repartition, changelog) get as many partitions as the processor's
    widest declared input, so task N always finds partition N of each.
    """
    names = [t.name for t in topics]
    state = client.describe_topics(admin, names, timeout=config.startup_timeout_s)
    width = max(
        [state[t.name].partitions if t.name in state else (t.partitions or 0)
         for t in topics if not t.internal and (sources is None or t.name in sources)]
        or [config.default_partitions]
    ) or config.default_partitions
    topics = [replace(t, partitions=width) if t.internal else t for t in topics]
    problems: list[str] = []
    missing = [t for t in topics if t.name not in state]
    for t in missing:
        if t.external:
            problems.append(
                f"topic {t.name!r} does not exist; it is declared external (produced outside "
                "this topology), so create it first (streamflow topics create MODULE) or "
                "check the name"
            )
        elif not config.create_topics:
            problems.append(
                f"topic {t.name!r} does not exist and create_topics is off; create it with "
                "`streamflow topics create MODULE`"
            )
    if not problems and missing:
        specs = [
            (t.name, t.partitions or config.default_partitions,
             t.replication or config.default_replication, t.config_dict)
            for t in missing
        ]
        created = client.create_topics(admin, specs)
        for name in created:
            log.info("created topic %s", name)
        state.update(client.describe_topics(admin, [t.name for t in missing],
                                            timeout=config.startup_timeout_s))
    for t in topics:
        s = state.get(t.name)
        if s is None:
            continue
        if t.partitions is not None and s.partitions != t.partitions:
            problems.append(
                f"topic {t.name!r} has {s.partitions} partitions but is declared with "
                f"{t.partitions}; change the declaration or the topic"
            )
        for key, want in t.config:
            have = s.config.get(key)
            if key == "cleanup.policy" and have is not None and _policy(have) != _policy(want):
                problems.append(
                    f"topic {t.name!r} has cleanup.policy={have} but is declared with {want}"
                )
    if copartitioned:
        problems += _copartitioning(topics, state, copartitioned)
    if problems:
        raise TopicMismatch("\n".join(problems))


def _copartitioning(topics: list[Topic], state: dict[str, client.TopicState],
                    joined: list[str]) -> list[str]:
    """A join reads partition N of the stream and of the table in one task.

    Both sides must have the same partition count, or keys would meet the wrong rows.
    """
    counts = {t.name: state[t.name].partitions for t in topics
              if t.name in joined and not t.internal and t.name in state}
    if len(set(counts.values())) <= 1:
        return []
    widest = max(counts, key=lambda n: counts[n])
    return [
        f"topic {name!r} has {n} partitions but {widest!r} has {counts[widest]}; joins and "
        f"tables need co-partitioned topics: give {name!r} {counts[widest]} partitions or "
        "repartition the stream with .group_by(...) first"
        for name, n in sorted(counts.items()) if n != counts[widest]
    ]


def _policy(v: str) -> set[str]:
    return {p.strip() for p in v.split(",")}
