"""``load_config``: defaults, then the TOML file, then ``STREAMFLOW_*`` variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamflow.config import Config, ConfigError, load_config


def write(tmp_path: Path, text: str, name: str = "streamflow.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


FULL_FILE = """
[streamflow]
bootstrap_servers = "broker-1:9092,broker-2:9092"
commit_interval_ms = 500
shutdown_timeout_s = 5
create_topics = false
state_dir = "/var/lib/streamflow"

[kafka]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "PLAIN"

[consumer]
"fetch.min.bytes" = 1024

[producer]
"linger.ms" = 20

[schema_registry]
url = "https://registry:8081"
"basic.auth.user.info" = "u:p"
"""


# -- defaults ------------------------------------------------------------------------------

def test_no_file_and_no_environment_gives_the_defaults() -> None:
    config = load_config(env={})
    assert config == Config()
    assert config.bootstrap_servers == "127.0.0.1:9092"
    assert config.commit_interval_ms == 1000
    assert config.create_topics is True
    assert (config.kafka, config.consumer, config.producer, config.schema_registry) == (
        {}, {}, {}, {},
    )
    assert config.registry_url is None


def test_reads_os_environ_when_no_env_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMFLOW_BATCH_SIZE", "77")
    monkeypatch.delenv("STREAMFLOW_CONFIG", raising=False)
    assert load_config().batch_size == 77


# -- the file ------------------------------------------------------------------------------

def test_file_sets_streamflow_settings_and_librdkafka_sections(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_FILE), env={})
    assert config.bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert config.commit_interval_ms == 500
    assert config.shutdown_timeout_s == 5.0 and isinstance(config.shutdown_timeout_s, float)
    assert config.create_topics is False
    assert config.state_dir == "/var/lib/streamflow"
    assert config.kafka == {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}
    assert config.consumer == {"fetch.min.bytes": 1024}
    assert config.producer == {"linger.ms": 20}
    assert config.schema_registry == {"url": "https://registry:8081", "basic.auth.user.info": "u:p"}
    assert config.registry_url == "https://registry:8081"
    assert config.batch_size == Config().batch_size  # untouched settings keep their default


def test_file_path_may_be_a_string(tmp_path: Path) -> None:
    path = write(tmp_path, "[streamflow]\nbatch_size = 5\n")
    assert load_config(str(path), env={}).batch_size == 5


def test_streamflow_config_variable_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[streamflow]\nbatch_size = 5\n")
    assert load_config(env={"STREAMFLOW_CONFIG": str(path)}).batch_size == 5


def test_explicit_path_wins_over_streamflow_config(tmp_path: Path) -> None:
    chosen = write(tmp_path, "[streamflow]\nbatch_size = 5\n", "a.toml")
    other = write(tmp_path, "[streamflow]\nbatch_size = 6\n", "b.toml")
    assert load_config(chosen, env={"STREAMFLOW_CONFIG": str(other)}).batch_size == 5


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), env={}) == Config()


# -- the environment -----------------------------------------------------------------------

def test_environment_sets_streamflow_settings_with_types() -> None:
    config = load_config(env={
        "STREAMFLOW_BOOTSTRAP_SERVERS": "k:1",
        "STREAMFLOW_COMMIT_INTERVAL_MS": "250",
        "STREAMFLOW_SHUTDOWN_TIMEOUT_S": "2.5",
        "STREAMFLOW_CREATE_TOPICS": "no",
        "STREAMFLOW_LOG_LEVEL": "DEBUG",
    })
    assert config.bootstrap_servers == "k:1"
    assert config.commit_interval_ms == 250
    assert config.shutdown_timeout_s == 2.5
    assert config.create_topics is False
    assert config.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("YES", True), (" on ", True),
     ("0", False), ("False", False), ("no", False), ("off", False)],
)
def test_boolean_settings_accept_the_usual_spellings(raw: str, expected: bool) -> None:
    assert load_config(env={"STREAMFLOW_CREATE_TOPICS": raw}).create_topics is expected


def test_kafka_variables_pass_through_to_librdkafka_with_dots() -> None:
    config = load_config(env={
        "STREAMFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "STREAMFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    })
    assert config.kafka == {"sasl.mechanism": "SCRAM-SHA-512", "security.protocol": "SASL_SSL"}
    assert config.client_conf() == {
        "bootstrap.servers": "127.0.0.1:9092",
        "sasl.mechanism": "SCRAM-SHA-512",
        "security.protocol": "SASL_SSL",
    }


def test_consumer_producer_and_registry_variables_fill_their_sections() -> None:
    config = load_config(env={
        "STREAMFLOW_CONSUMER_AUTO_OFFSET_RESET": "latest",
        "STREAMFLOW_PRODUCER_LINGER_MS": "50",
        "STREAMFLOW_SCHEMA_REGISTRY_URL": "http://r:8081",
        "STREAMFLOW_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "u:p",
    })
    assert config.consumer == {"auto.offset.reset": "latest"}
    assert config.producer == {"linger.ms": "50"}
    assert config.schema_registry == {"url": "http://r:8081", "basic.auth.user.info": "u:p"}
    assert config.registry_url == "http://r:8081"
    assert config.kafka == {}


def test_variables_outside_the_streamflow_prefix_are_ignored() -> None:
    config = load_config(env={"KAFKA_BOOTSTRAP_SERVERS": "x:1", "BATCH_SIZE": "3",
                              "streamflow_batch_size": "4"})
    assert config == Config()


# -- precedence ----------------------------------------------------------------------------

def test_environment_overrides_file_overrides_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_FILE)
    config = load_config(path, env={
        "STREAMFLOW_COMMIT_INTERVAL_MS": "42",
        "STREAMFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "STREAMFLOW_SCHEMA_REGISTRY_URL": "http://override:8081",
    })
    assert config.commit_interval_ms == 42  # env over file
    assert config.bootstrap_servers == "broker-1:9092,broker-2:9092"  # file over default
    assert config.batch_size == 1000  # default
    assert config.kafka == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256"}
    assert config.schema_registry["url"] == "http://override:8081"
    assert config.schema_registry["basic.auth.user.info"] == "u:p"


def test_kafka_section_bootstrap_servers_wins_in_the_client_conf() -> None:
    config = load_config(env={"STREAMFLOW_BOOTSTRAP_SERVERS": "a:1",
                              "STREAMFLOW_KAFKA_BOOTSTRAP_SERVERS": "b:2"})
    assert config.client_conf()["bootstrap.servers"] == "b:2"


def test_with_overrides_returns_a_changed_copy() -> None:
    config = Config()
    other = config.with_overrides(batch_size=5)
    assert (config.batch_size, other.batch_size) == (1000, 5)
    with pytest.raises(AttributeError):
        config.batch_size = 5  # type: ignore[misc]


# -- errors --------------------------------------------------------------------------------

def test_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=f"config file '{missing}' does not exist"):
        load_config(missing, env={})


def test_invalid_toml_is_a_config_error_with_the_parser_message(tmp_path: Path) -> None:
    path = write(tmp_path, "[streamflow\nbatch_size = 1\n")
    with pytest.raises(ConfigError, match=r"is not valid TOML: .*line 1"):
        load_config(path, env={})


def test_unknown_setting_in_the_file_names_it_and_lists_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "[streamflow]\nbootstrap_server = 'x'\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'bootstrap_server' in \[streamflow\]"
                       r".*known: .*bootstrap_servers"):
        load_config(path, env={})


def test_unknown_section_in_the_file_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, "[consumers]\n'fetch.min.bytes' = 1\n")
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['consumers'\].*\[consumer\]"):
        load_config(path, env={})


@pytest.mark.parametrize(
    ("line", "setting", "kind"),
    [
        ("commit_interval_ms = 'soon'", "commit_interval_ms", "an integer"),
        ("commit_interval_ms = 1.5", "commit_interval_ms", "an integer"),
        ("commit_interval_ms = true", "commit_interval_ms", "an integer"),
        ("commit_interval_ms = [1]", "commit_interval_ms", "an integer"),
        ("shutdown_timeout_s = 'long'", "shutdown_timeout_s", "a number"),
        ("shutdown_timeout_s = false", "shutdown_timeout_s", "a number"),
        ("create_topics = 'maybe'", "create_topics", "true or false"),
        ("bootstrap_servers = 9092", "bootstrap_servers", "a string"),
        ("log_level = {level = 'INFO'}", "log_level", "a string"),
    ],
)
def test_bad_value_in_the_file_is_a_config_error_naming_the_setting(
    tmp_path: Path, line: str, setting: str, kind: str
) -> None:
    path = write(tmp_path, f"[streamflow]\n{line}\n")
    with pytest.raises(ConfigError, match=f"setting '{setting}' \\(\\[streamflow\\] of .*\\) "
                       f"must be {kind}, got"):
        load_config(path, env={})


def test_whole_number_float_in_the_file_is_accepted_for_an_integer(tmp_path: Path) -> None:
    path = write(tmp_path, "[streamflow]\ncommit_interval_ms = 500.0\n")
    config = load_config(path, env={})
    assert config.commit_interval_ms == 500 and isinstance(config.commit_interval_ms, int)


@pytest.mark.parametrize(
    ("var", "raw", "setting"),
    [
        ("STREAMFLOW_BATCH_SIZE", "lots", "batch_size"),
        ("STREAMFLOW_BATCH_SIZE", "1.5", "batch_size"),
        ("STREAMFLOW_STARTUP_TIMEOUT_S", "forever", "startup_timeout_s"),
        ("STREAMFLOW_CREATE_TOPICS", "sometimes", "create_topics"),
    ],
)
def test_bad_value_in_the_environment_names_the_setting_and_the_variable(
    var: str, raw: str, setting: str
) -> None:
    with pytest.raises(ConfigError, match=f"setting '{setting}' \\(\\${var}\\) must be .*"
                       f"got '{raw}'"):
        load_config(env={var: raw})


@pytest.mark.parametrize("section", ["streamflow", "kafka", "schema_registry"])
def test_a_section_that_is_not_a_table_is_a_config_error(tmp_path: Path, section: str) -> None:
    path = write(tmp_path, f"{section} = 'x'\n")
    with pytest.raises(ConfigError, match=f"'{section}' in .* must be a \\[{section}\\] table"):
        load_config(path, env={})


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)
