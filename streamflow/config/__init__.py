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
that names the closest setting (the variables that are not settings, such as
``STREAMFLOW_CONFIG``, ``STREAMFLOW_TEST_*`` and ``STREAMFLOW_STACK_*``, are listed in
``NOT_SETTINGS`` and ``NOT_SETTINGS_PREFIXES``). Each error is a ``ConfigError`` (exit 3) that
names the variable or the file key. The keys of the client tables are checked against the
clients themselves when a command starts (``streamflow.kafka.settings``), and
``streamflow config show`` prints the effective settings with the source of each.

The settings are the fields of ``Config`` in ``streamflow/config/model.py`` (adding one is one
field there); ``streamflow/config/sources.py`` reads the file and the environment through
pydantic-settings.
"""

from __future__ import annotations

from streamflow.config.load import NOT_SETTINGS, NOT_SETTINGS_PREFIXES, load_config
from streamflow.config.model import TABLES, Config, ConfigError

__all__ = ["NOT_SETTINGS", "NOT_SETTINGS_PREFIXES", "TABLES", "Config", "ConfigError",
           "load_config"]
