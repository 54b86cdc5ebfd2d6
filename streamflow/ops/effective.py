"""The effective settings and where each came from, for ``streamflow config show``.

Without a topology: every setting, then every key of the client tables, each with its source:
``default``, ``file <path> [section] key``, ``env STREAMFLOW_...`` or ``flag``.

With a topology (``config show MODULE [-p NAME]``), each processor gets the whole picture its
workers run with, like ``kafka-configs --describe --all`` for a broker or Spring's
``configprops``:

- its own options (guarantee, group id, store, dead-letter topic, error policies), source
  ``topology``;
- every setting as the processor uses it. A processor's ``commit_interval_ms=`` replaces the
  setting its guarantee reads (``commit_interval_ms`` at least once, ``eos_commit_interval_ms``
  exactly once), source ``topology``. An empty ``group_assignor`` shows the assignor chosen for
  the processor, an empty ``instance_id`` the id a worker started here would take (``env
  POD_NAME`` or ``hostname``), ``static_membership = "auto"`` what it decides;
- the librdkafka settings of its group consumer and its producer, each from the ``kafka``,
  ``consumer`` or ``producer`` table, from a setting (``default (statistics_interval_ms)``
  when that setting is at its default), from the topology (``group.id``, ``transactional.id``,
  ``client.id``) or ``streamflow``: the framework's own choice (``enable.auto.commit = false``,
  ``isolation.level = "read_committed"``, ...);
- the ``schema_registry`` table, which its serdes use.

Values whose key holds a secret are masked: the keys ``deploy k8s`` reads from a Secret
(:func:`streamflow.config.secret_settings.is_secret`: passwords, client secrets, tokens,
credentials, a user's info, a JAAS configuration, private keys; not paths to them).

>>> import streamflow as sf
>>> from streamflow.config import Config
>>> t = sf.Topology("shop")
>>> t.processor("totals", guarantee="exactly_once", commit_interval_ms=50).stream(
...     t.topic("orders", external=True)).to(t.topic("out"))
>>> pod = {"POD_NAME": "shop-totals-0"}
>>> rows = {r.key: r for r in processor_rows(t.processors["totals"], Config(), env=pod)}
>>> rows["eos_commit_interval_ms"].value, rows["eos_commit_interval_ms"].source
(50, 'topology: processor(commit_interval_ms=50)')
>>> rows["consumer.isolation.level"].source, rows["producer.transactional.id"].value
('streamflow', 'shop.totals-shop-totals-0')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamflow.config import TABLES, Config
from streamflow.config.secret_settings import is_secret, without_password

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor

__all__ = ["MASK", "Row", "processor_rows", "rows"]

MASK = "********"
# librdkafka keys a worker derives from a setting (the rest: tables, topology or streamflow)
_FROM_SETTING = {
    "statistics.interval.ms": "statistics_interval_ms",
    "group.protocol": "group_protocol",
    "session.timeout.ms": "static_session_timeout_ms",  # when static; else streamflow's
    "heartbeat.interval.ms": "static_session_timeout_ms",
}
_FROM_TOPOLOGY = {
    "group.id": "topology: the processor's group id",
    "transactional.id": "topology: <group id>-<instance id>",
    "client.id": "topology: <topology>.<processor>.<instance id>",
}


@dataclass(frozen=True)
class Row:
    """One effective setting: ``batch_size``, ``kafka.sasl.mechanism``, a processor's own."""

    section: str  # "streamflow", a table's name, or "processor <name>"
    key: str
    value: Any
    source: str

    @property
    def name(self) -> str:
        """``batch_size``; ``kafka.<key>`` for a table's key; ``<processor>.<key>``."""
        if self.section == "streamflow":
            return self.key
        return f"{self.section.removeprefix('processor ')}.{self.key}"


def shown(key: str, value: Any) -> Any:
    """``value``, or the mask when it is set and a secret.

    Of an address with a password in it, only the password is masked.
    """
    if value in ("", None) or not is_secret(key, value):
        return value
    return MASK if is_secret(key) else without_password(value, MASK)


def rows(config: Config) -> list[Row]:
    """Every setting (secrets masked) with its source, then every key of the tables."""
    out = [Row("streamflow", name, shown(name, getattr(config, name)), config.source_of(name))
           for name in Config.model_fields if name not in TABLES]
    for table in TABLES:
        for key, value in getattr(config, table).items():
            out.append(Row(table, key, shown(key, value), config.source_of(f"{table}.{key}")))
    return out


def _via(config: Config, setting: str) -> str:
    """The source of a value derived from ``setting``: its own, naming it where vague."""
    source = config.source_of(setting)
    return f"{source} ({setting})" if source in ("default", "flag") else source


def processor_rows(processor: Processor, config: Config,
                   env: Mapping[str, str] | None = None) -> list[Row]:
    """Everything ``processor``'s workers run with (see the module doc), secrets masked.

    ``env`` (default ``os.environ``) gives ``POD_NAME`` for the instance id.
    """
    from streamflow.runtime.clients import consumer_conf, group_protocol_conf, producer_conf
    from streamflow.runtime.identity import resolve_identity, static_membership

    section = f"processor {processor.name}"
    out = [Row(section, key, value, "topology") for key, value in processor.options().items()]
    identity = resolve_identity(config.instance_id, os.environ if env is None else env, None)
    static = static_membership(config, identity)
    values = {name: (getattr(config, name), config.source_of(name))
              for name in Config.model_fields if name not in TABLES}
    own = processor.commit_interval_ms
    if own is not None:
        read = ("eos_commit_interval_ms" if processor.guarantee == "exactly_once"
                else "commit_interval_ms")
        values[read] = (own, f"topology: processor(commit_interval_ms={own})")
    group = group_protocol_conf(processor, config)  # a bad group_assignor: ConfigError, exit 3
    chosen = group.get("partition.assignment.strategy") or group["group.remote.assignor"]
    kind = "stateful" if processor.is_stateful() else "stateless"
    assignor_source = (config.source_of("group_assignor") if config.group_assignor
                       else f"topology: a {kind} processor's default")
    values["group_assignor"] = (chosen, assignor_source)
    id_source = (_via(config, "instance_id") if config.instance_id
                 else "env POD_NAME" if identity.source == "POD_NAME" else "hostname")
    values["instance_id"] = (identity.instance_id, id_source)
    if config.static_membership == "auto":
        values["static_membership"] = ("on" if static else "off",
                                       f"{_via(config, 'static_membership')}: "
                                       f"the instance id comes from {identity.source}")
    out += [Row(section, name, shown(name, value), source)
            for name, (value, source) in values.items()]
    clients = (("consumer", consumer_conf(processor, config, identity.instance_id,
                                          static=static)),
               ("producer", producer_conf(processor, config, identity.instance_id)))
    derived = {"group.instance.id": id_source, "partition.assignment.strategy": assignor_source,
               "group.remote.assignor": assignor_source}
    for client, conf in clients:
        for key, value in sorted(conf.items()):
            if isinstance(value, str | int | float | bool):  # not the log callbacks
                out.append(Row(section, f"{client}.{key}", shown(key, value),
                               _client_source(config, client, key, static, derived)))
    out += [Row(section, f"schema_registry.{key}", shown(key, value),
                config.source_of(f"schema_registry.{key}"))
            for key, value in config.schema_registry.items()]
    return out


def _client_source(config: Config, kind: str, key: str, static: bool,
                   derived: Mapping[str, str]) -> str:
    """Where a client's librdkafka ``key`` came from (the later sources win, as they do).

    ``derived`` holds the sources of the keys worked out for the processor (its assignor, its
    instance id).
    """
    if key in getattr(config, kind):
        return config.source_of(f"{kind}.{key}")
    if key in config.kafka:
        return config.source_of(f"kafka.{key}")
    if key == "bootstrap.servers":
        return _via(config, "bootstrap_servers")
    if key in derived:
        return derived[key]
    setting = _FROM_SETTING.get(key)
    if setting == "static_session_timeout_ms" and not static:
        setting = None  # a dynamic member: streamflow's own session timeout
    if setting is not None:
        return _via(config, setting)
    return _FROM_TOPOLOGY.get(key, "streamflow")
