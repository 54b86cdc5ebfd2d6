"""``load_config`` and ``Config``: defaults, then the TOML file, then ``STREAMFLOW_*`` variables;
types, ranges and unknown names are errors that name the variable or the file key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streamflow.config import (
    NOT_SETTINGS,
    NOT_SETTINGS_PREFIXES,
    TABLES,
    Config,
    ConfigError,
    load_config,
)


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


def test_unknown_setting_in_the_file_names_it_and_the_closest_one(tmp_path: Path) -> None:
    path = write(tmp_path, "[streamflow]\nbootstrap_server = 'x'\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'bootstrap_server' in \[streamflow\]"
                       r".*did you mean bootstrap_servers\?"):
        load_config(path, env={})


def test_unknown_section_in_the_file_names_it(tmp_path: Path) -> None:
    path = write(tmp_path, "[consumers]\n'fetch.min.bytes' = 1\n")
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['consumers'\].*\[consumer\]"):
        load_config(path, env={})


@pytest.mark.parametrize(
    ("line", "setting", "want"),
    [
        ("commit_interval_ms = 'soon'", "commit_interval_ms", "an integer"),
        ("commit_interval_ms = 1.5", "commit_interval_ms", "an integer"),
        ("commit_interval_ms = true", "commit_interval_ms", "an integer"),
        ("commit_interval_ms = [1]", "commit_interval_ms", "an integer"),
        ("commit_interval_ms = 0", "commit_interval_ms", "greater than 0"),
        ("shutdown_timeout_s = 'long'", "shutdown_timeout_s", "a number"),
        ("shutdown_timeout_s = false", "shutdown_timeout_s", "a number"),
        ("create_topics = 'maybe'", "create_topics", "true or false"),
        ("bootstrap_servers = 9092", "bootstrap_servers", "a string"),
        ("bootstrap_servers = ''", "bootstrap_servers", "not empty"),
        ("log_level = {level = 'INFO'}", "log_level", "one of DEBUG, INFO, WARNING, ERROR"),
        ("group_protocol = 'eager'", "group_protocol", "one of classic, consumer"),
        ("health_port = 70000", "health_port", "at most 65535"),
        ("max_error_ratio = 1.0", "max_error_ratio", "below 1"),
        ("error_window = '10 minutes'", "error_window", "a number of records"),
    ],
)
def test_bad_value_in_the_file_is_a_config_error_naming_the_file_key(
    tmp_path: Path, line: str, setting: str, want: str
) -> None:
    path = write(tmp_path, f"[streamflow]\n{line}\n")
    with pytest.raises(ConfigError, match=f"{setting} must be {want}.*, got .* \\(file "
                       f"{re.escape(str(path))} \\[streamflow\\] {setting}\\)"):
        load_config(path, env={})


def test_whole_number_float_in_the_file_is_accepted_for_an_integer(tmp_path: Path) -> None:
    path = write(tmp_path, "[streamflow]\ncommit_interval_ms = 500.0\n")
    config = load_config(path, env={})
    assert config.commit_interval_ms == 500 and isinstance(config.commit_interval_ms, int)


@pytest.mark.parametrize(
    ("var", "raw", "want"),
    [
        ("STREAMFLOW_BATCH_SIZE", "lots", "an integer"),
        ("STREAMFLOW_BATCH_SIZE", "1.5", "an integer"),
        ("STREAMFLOW_STARTUP_TIMEOUT_S", "forever", "a number"),
        ("STREAMFLOW_CREATE_TOPICS", "sometimes", "true or false"),
        # the cases of issue 15
        ("STREAMFLOW_COMMIT_INTERVAL_MS", "-5", "greater than 0"),
        ("STREAMFLOW_LOG_LEVEL", "LOUD", "one of DEBUG, INFO, WARNING, ERROR"),
        ("STREAMFLOW_SHUTDOWN_TIMEOUT_S", "-1", "at least 0"),
        ("STREAMFLOW_HEALTH_PORT", "99999", "at most 65535"),
    ],
)
def test_bad_value_in_the_environment_names_the_setting_and_the_variable(
    var: str, raw: str, want: str
) -> None:
    setting = var.removeprefix("STREAMFLOW_").lower()
    with pytest.raises(ConfigError, match=f"^{setting} must be {want}, got '{re.escape(raw)}' "
                       f"\\(env {var}\\)$"):
        load_config(env={var: raw})


def test_every_bad_value_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as e:
        load_config(env={"STREAMFLOW_BATCH_SIZE": "0", "STREAMFLOW_LOG_FORMAT": "xml"})
    assert "batch_size" in str(e.value) and "STREAMFLOW_LOG_FORMAT" in str(e.value)


@pytest.mark.parametrize(
    ("var", "closest"),
    [
        ("STREAMFLOW_COMIT_INTERVAL_MS", "STREAMFLOW_COMMIT_INTERVAL_MS"),
        ("STREAMFLOW_BOOTSTRAP_SERVER", "STREAMFLOW_BOOTSTRAP_SERVERS"),
        ("STREAMFLOW_HEALTHPORT", "STREAMFLOW_HEALTH_PORT"),
    ],
)
def test_an_unknown_streamflow_variable_is_an_error_with_the_closest_name(
    var: str, closest: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{var} is not a setting; did you mean {closest}\\?"):
        load_config(env={var: "1"})


def test_an_unknown_variable_without_a_close_setting_is_still_an_error() -> None:
    with pytest.raises(ConfigError, match=r"^STREAMFLOW_ZZZ is not a setting \("):
        load_config(env={"STREAMFLOW_ZZZ": "1"})


def test_a_table_prefix_without_a_key_is_not_a_setting() -> None:
    with pytest.raises(ConfigError, match="STREAMFLOW_KAFKA_ is not a setting"):
        load_config(env={"STREAMFLOW_KAFKA_": "1"})


@pytest.mark.parametrize("var", [
    "STREAMFLOW_PYTHON",
    "STREAMFLOW_REQUIRE_INTEGRATION", "STREAMFLOW_LOCAL_STACK", "STREAMFLOW_TEST_CLUSTER",
    "STREAMFLOW_STACK_KAFKA_LOG_LEVEL", "STREAMFLOW_FLEET_RATE", "STREAMFLOW_CHAOS_SEED",
])
def test_variables_of_the_tools_are_not_settings_and_not_errors(var: str) -> None:
    assert load_config(env={var: "x"}) == Config()
    assert var in NOT_SETTINGS or var.startswith(NOT_SETTINGS_PREFIXES)


def test_the_allow_list_covers_every_non_setting_variable_the_project_uses() -> None:
    root = Path(__file__).resolve().parents[2]
    skip = (root / "streamflow" / "config", root / "tests" / "unit" / "test_config.py",
            root / "tests" / "unit" / "test_config_cli.py")  # examples of bad names
    used: set[str] = set()
    for folder in ("streamflow", "tests", "deploy", "docs", ".ci"):  # bench: names, not vars
        for path in (root / folder).rglob("*"):
            if (path.is_file() and path.suffix in ("", ".py", ".sh", ".md", ".yml", ".yaml")
                    and not any(path == s or s in path.parents for s in skip)):
                text = path.read_text(errors="replace")
                used |= {v for v in re.findall(r"STREAMFLOW_[A-Z_]+", text)
                         if not v.endswith("_")}  # a prefix (STREAMFLOW_KAFKA_<KEY>)
    settings = {f"STREAMFLOW_{n.upper()}" for n in Config.model_fields}
    tables = tuple(f"STREAMFLOW_{t.upper()}_" for t in TABLES)
    used -= {"STREAMFLOW_COMIT_INTERVAL_MS"}  # the docs' example of a misspelt setting
    unexplained = sorted(v for v in used if v not in settings and not v.startswith(tables)
                         and v not in NOT_SETTINGS and not v.startswith(NOT_SETTINGS_PREFIXES))
    assert not unexplained, f"not settings and not allowed: {unexplained}"


# -- Config itself and with_overrides ------------------------------------------------------

def test_config_checks_its_arguments_like_the_loader() -> None:
    with pytest.raises(ConfigError, match=r"^group_protocol must be one of classic, consumer, "
                       r"got 'eager'$"):
        Config(group_protocol="eager")
    with pytest.raises(ConfigError, match="batch_size must be an integer"):
        Config(batch_size=True)
    with pytest.raises(ConfigError, match="bach_size is not a setting; did you mean batch_size"):
        Config(bach_size=3)


def test_log_level_is_case_insensitive() -> None:
    assert load_config(env={"STREAMFLOW_LOG_LEVEL": "debug"}).log_level == "DEBUG"


def test_with_overrides_checks_the_value_and_records_a_flag() -> None:
    config = load_config(env={"STREAMFLOW_BATCH_SIZE": "7"})
    other = config.with_overrides(instance_id="w-1")
    assert other.source_of("instance_id") == "flag"
    assert other.source_of("batch_size") == "env STREAMFLOW_BATCH_SIZE"
    assert other.source_of("commit_interval_ms") == "default"
    with pytest.raises(ConfigError, match=r"batch_size must be greater than 0, got 0 \(flag\)"):
        config.with_overrides(batch_size=0)


def test_sources_of_file_and_environment_values(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_FILE)
    config = load_config(path, env={"STREAMFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"})
    assert config.source_of("commit_interval_ms") == f"file {path} [streamflow] commit_interval_ms"
    assert config.source_of("kafka.sasl.mechanism") == "env STREAMFLOW_KAFKA_SASL_MECHANISM"
    assert config.source_of("kafka.security.protocol") == f"file {path} [kafka] security.protocol"
    assert config.source_of("batch_size") == "default"


@pytest.mark.parametrize("section", ["streamflow", "kafka", "schema_registry"])
def test_a_section_that_is_not_a_table_is_a_config_error(tmp_path: Path, section: str) -> None:
    path = write(tmp_path, f"{section} = 'x'\n")
    with pytest.raises(ConfigError, match=f"'{section}' in .* must be a \\[{section}\\] table"):
        load_config(path, env={})


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)
