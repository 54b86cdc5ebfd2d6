"""Check the pass-through client settings at start-up, against the clients themselves.

The ``[kafka]``, ``[consumer]`` and ``[producer]`` tables (``STREAMFLOW_KAFKA_*``, ...) go to
librdkafka as they are, and ``[schema_registry]`` to confluent's registry client. Rather than
keep a list of their keys, :func:`check_client_settings` builds each client from the settings
alone, without a broker (a client makes no connection before ``bootstrap.servers`` is given),
and turns a refusal of a key or a value into a :class:`~streamflow.config.ConfigError` that
names the variable or file key it came from. It takes a few milliseconds. How keys combine
(``max.poll.interval.ms`` >= ``session.timeout.ms``, a SASL mechanism's credentials) is left to
the clients the runtime makes, which add keys of their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer

from streamflow.config import Config, ConfigError
from streamflow.kafka.registry import make_registry_client

__all__ = ["check_client_settings"]

_QUIET = {"log_level": 0}  # the probes' own warnings (no bootstrap.servers) are not news


def _producer(conf: dict[str, Any]) -> None:
    Producer({**conf, **_QUIET})


def _consumer(conf: dict[str, Any]) -> None:
    Consumer({"group.id": "streamflow-settings-check", **conf, **_QUIET}).close()


def _refusal(make: Callable[[dict[str, Any]], None], conf: dict[str, Any]) -> str | None:
    """Why librdkafka refuses ``conf``, or None."""
    try:
        make(conf)
    except KafkaException as e:
        return str(e.args[0].str() if e.args and hasattr(e.args[0], "str") else e)
    return None


def _where(config: Config, table: str, key: str) -> str:
    source = config.source_of(f"{table}.{key}")
    return f"[{table}] {key}" if source == "default" else source


def _check_librdkafka(config: Config, tables: tuple[str, ...],
                      make: Callable[[dict[str, Any]], None]) -> None:
    conf: dict[str, Any] = {}
    for table in tables:
        conf.update(getattr(config, table))
    conf.pop("bootstrap.servers", None)  # its value is for the brokers to judge; no connecting
    reason = _refusal(make, conf)
    if reason is None or reason.startswith("Failed to create"):
        return  # keys and values fine; how they combine is judged with the runtime's own keys
    for table in reversed(tables):  # the key that fails on its own, named by its source
        for key, value in getattr(config, table).items():
            if key == "bootstrap.servers":
                continue
            alone = _refusal(make, {key: value})
            if alone is not None and not alone.startswith("Failed to create"):
                msg = f"{_where(config, table, key)}: librdkafka refuses {key}={value!r}: {alone}"
                raise ConfigError(msg)
    keys = ", ".join(_where(config, t, k) for t in tables for k in getattr(config, t))
    msg = f"librdkafka refuses the settings {keys}: {reason}"
    raise ConfigError(msg)


def _check_registry(config: Config) -> None:
    conf = dict(config.schema_registry)
    if not set(conf) - {"url"}:
        return  # any URL is a URL; building a client (~0.1 s: its TLS context) is for more
    conf.setdefault("url", "http://localhost:8081")  # not contacted
    try:
        make_registry_client(conf)
    except (ValueError, TypeError) as e:
        text = str(e)
        unknown = re.search(r"Unrecognized properties: (.*)", text)
        names = [k.strip() for k in unknown.group(1).split(",")] if unknown else []
        where = ", ".join(_where(config, "schema_registry", k) for k in names)
        msg = (f"{where}: not a schema-registry client setting ({text})" if where
               else f"the schema-registry settings are refused: {text}")
        raise ConfigError(msg) from None


def check_client_settings(config: Config) -> None:
    """Raise :class:`ConfigError` naming the source of a client setting the clients refuse.

    >>> check_client_settings(Config(kafka={"security.protocol": "SSL"}))
    >>> check_client_settings(Config(kafka={"foo.bar": 1}))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streamflow.config.model.ConfigError: [kafka] foo.bar: librdkafka refuses foo.bar=1: No such ...
    """
    _check_librdkafka(config, ("kafka", "producer"), _producer)
    _check_librdkafka(config, ("kafka", "consumer"), _consumer)
    _check_registry(config)
