"""Configuration: defaults, then an optional TOML file, then ``STREAMFLOW_*`` variables.

The file::

    [streamflow]
    bootstrap_servers = "broker:9092"
    commit_interval_ms = 500

    [kafka]                      # librdkafka settings for every client (SASL, TLS, ...)
    "security.protocol" = "SASL_SSL"

    [consumer]                   # librdkafka settings for the consumer only
    [producer]                   # ... and the producer only

    [schema_registry]
    url = "https://registry:8081"

Environment: ``STREAMFLOW_<SETTING>`` for the ``[streamflow]`` settings (e.g.
``STREAMFLOW_BOOTSTRAP_SERVERS``), ``STREAMFLOW_KAFKA_<KEY>`` for librdkafka keys with dots
as underscores (``STREAMFLOW_KAFKA_SASL_MECHANISM=SCRAM-SHA-512``), likewise
``STREAMFLOW_CONSUMER_*``, ``STREAMFLOW_PRODUCER_*`` and ``STREAMFLOW_SCHEMA_REGISTRY_*``
(``STREAMFLOW_SCHEMA_REGISTRY_URL``). ``STREAMFLOW_CONFIG`` names the file. Command-line
flags (``run --instance-id``, ...) come last.

Every value is typed and range-checked, and an unknown ``STREAMFLOW_*`` variable is an error
that names the closest setting (a few variables that are not settings are known:
``STREAMFLOW_CONFIG``, ``STREAMFLOW_TEST_*``, ``STREAMFLOW_STACK_*`` and others, see
:data:`streamflow.config.load.NOT_SETTINGS`); each error is a :class:`ConfigError` (exit 3)
that names the variable or the file key. The librdkafka and schema-registry keys are checked
against the clients themselves when a command starts (``streamflow.kafka.settings``).
``streamflow config show`` prints the effective settings and where each came from.

The settings are the fields of :class:`~streamflow.config.model.Config` (adding one is one
field there); :mod:`streamflow.config.load` reads the sources through pydantic-settings.
"""

from __future__ import annotations

from streamflow.config.load import NOT_SETTINGS, NOT_SETTINGS_PREFIXES, load_config
from streamflow.config.model import TABLES, Config, ConfigError

__all__ = ["NOT_SETTINGS", "NOT_SETTINGS_PREFIXES", "TABLES", "Config", "ConfigError",
           "load_config"]
