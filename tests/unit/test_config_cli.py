"""``streamflow config show`` and configuration errors at the command line (exit 3, named)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from streamflow.cli import EXIT_CONFIG, EXIT_OK, main
from streamflow.config import Config, ConfigError, load_config
from streamflow.kafka.settings import check_client_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No STREAMFLOW_* settings from the surrounding shell."""
    for var in list(os.environ):
        if var.startswith("STREAMFLOW_"):
            monkeypatch.delenv(var)


def show(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["config", "show", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- the cases of issue 15: exit 3 naming the variable --------------------------------------

@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("STREAMFLOW_COMIT_INTERVAL_MS", "500",
         "STREAMFLOW_COMIT_INTERVAL_MS is not a setting; did you mean "
         "STREAMFLOW_COMMIT_INTERVAL_MS?"),
        ("STREAMFLOW_COMMIT_INTERVAL_MS", "-5",
         "commit_interval_ms must be greater than 0, got '-5' (env STREAMFLOW_COMMIT_INTERVAL_MS)"),
        ("STREAMFLOW_LOG_LEVEL", "LOUD",
         "log_level must be one of DEBUG, INFO, WARNING, ERROR, got 'LOUD' "
         "(env STREAMFLOW_LOG_LEVEL)"),
        ("STREAMFLOW_SHUTDOWN_TIMEOUT_S", "-1",
         "shutdown_timeout_s must be at least 0, got '-1' (env STREAMFLOW_SHUTDOWN_TIMEOUT_S)"),
        ("STREAMFLOW_HEALTH_PORT", "99999",
         "health_port must be at most 65535, got '99999' (env STREAMFLOW_HEALTH_PORT)"),
        ("STREAMFLOW_KAFKA_FOO_BAR", "1",
         "env STREAMFLOW_KAFKA_FOO_BAR: librdkafka refuses foo.bar='1': "
         'No such configuration property: "foo.bar"'),
    ],
)
def test_a_bad_setting_exits_3_naming_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    var: str, value: str, expected: str,
) -> None:
    monkeypatch.setenv(var, value)
    code, out, err = show(capsys)
    assert code == EXIT_CONFIG
    assert err == f"streamflow: error: {expected}\n"
    assert out == ""


def test_a_bad_setting_exits_3_without_a_traceback_in_a_real_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFLOW_")}
    env["STREAMFLOW_HEALTH_PORT"] = "99999"
    proc = subprocess.run([sys.executable, "-m", "streamflow", "config", "show"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == EXIT_CONFIG
    assert "Traceback" not in proc.stderr
    assert "STREAMFLOW_HEALTH_PORT" in proc.stderr


def test_a_bad_file_key_exits_3_naming_the_file_and_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[streamflow]\nbatch_size = 0\n")
    code, _, err = show(capsys, "--config", str(path))
    assert code == EXIT_CONFIG
    assert f"batch_size must be greater than 0, got 0 (file {path} [streamflow] batch_size)" in err


def test_a_refused_librdkafka_key_from_the_file_names_the_table_and_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[producer]\n"linger.ms" = "soon"\n')
    code, _, err = show(capsys, "--config", str(path))
    assert code == EXIT_CONFIG
    assert f"file {path} [producer] linger.ms: librdkafka refuses linger.ms='soon'" in err


def test_invalid_toml_exits_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[streamflow\n")
    code, _, err = show(capsys, "--config", str(path))
    assert code == EXIT_CONFIG
    assert err.startswith(f"streamflow: error: config file '{path}' is not valid TOML: ")


# -- the client checks --------------------------------------------------------------------

def test_valid_client_settings_pass() -> None:
    check_client_settings(load_config(env={
        "STREAMFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "STREAMFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "STREAMFLOW_KAFKA_SASL_USERNAME": "u",
        "STREAMFLOW_KAFKA_SASL_PASSWORD": "p",
        "STREAMFLOW_CONSUMER_AUTO_OFFSET_RESET": "latest",
        "STREAMFLOW_CONSUMER_FETCH_MIN_BYTES": "1024",
        "STREAMFLOW_PRODUCER_LINGER_MS": "20",
        "STREAMFLOW_SCHEMA_REGISTRY_URL": "http://registry:8081",
        "STREAMFLOW_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "u:p",
        "STREAMFLOW_SCHEMA_REGISTRY_MAX_RETRIES": "2",
    }))


def test_a_consumer_key_with_a_bad_value_is_named() -> None:
    config = load_config(env={"STREAMFLOW_CONSUMER_ENABLE_AUTO_COMMIT": "maybe"})
    with pytest.raises(ConfigError, match=r"^env STREAMFLOW_CONSUMER_ENABLE_AUTO_COMMIT: "
                       r"librdkafka refuses enable\.auto\.commit='maybe': Expected bool"):
        check_client_settings(config)


def test_how_keys_combine_is_left_to_the_clients_the_runtime_makes() -> None:
    # max.poll.interval.ms: valid with the runtime's session.timeout.ms; SASL_SSL alone needs
    # a mechanism and credentials: the clients say so when the worker makes them
    check_client_settings(load_config(env={
        "STREAMFLOW_CONSUMER_MAX_POLL_INTERVAL_MS": "10000",
        "STREAMFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    }))


def test_an_unknown_schema_registry_key_is_named() -> None:
    config = load_config(env={"STREAMFLOW_SCHEMA_REGISTRY_URL": "http://r:8081",
                              "STREAMFLOW_SCHEMA_REGISTRY_BASIC_AUTH_USERINFO": "u:p"})
    with pytest.raises(ConfigError, match=r"^env STREAMFLOW_SCHEMA_REGISTRY_BASIC_AUTH_USERINFO: "
                       r"not a schema-registry client setting"):
        check_client_settings(config)


def test_client_settings_made_in_code_are_named_by_their_table() -> None:
    with pytest.raises(ConfigError, match=r"^\[producer\] nope: librdkafka refuses"):
        check_client_settings(Config(producer={"nope": 1}))


# -- config show ----------------------------------------------------------------------------

FILE = """
[streamflow]
batch_size = 50

[kafka]
"sasl.password" = "file-secret"
"sasl.username" = "alice"

[schema_registry]
"basic.auth.user.info" = "u:registry-secret"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "streamflow.toml"
    path.write_text(FILE)
    return path


def test_show_lists_every_setting_with_its_source_and_masks_secrets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, config_file: Path,
) -> None:
    monkeypatch.setenv("STREAMFLOW_COMMIT_INTERVAL_MS", "250")
    monkeypatch.setenv("STREAMFLOW_SCHEMA_REGISTRY_URL", "http://r:8081")
    monkeypatch.setenv("STREAMFLOW_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET", "env-secret")
    code, out, _ = show(capsys, "--config", str(config_file))
    assert code == EXIT_OK
    lines = {line.split()[0]: line.split(None, 2)[1:] for line in out.splitlines()[1:]}
    assert lines["commit_interval_ms"] == ["250", "env STREAMFLOW_COMMIT_INTERVAL_MS"]
    assert lines["batch_size"] == ["50", f"file {config_file} [streamflow] batch_size"]
    assert lines["log_level"] == ['"INFO"', "default"]
    assert lines["kafka.sasl.username"] == ['"alice"', f"file {config_file} [kafka] sasl.username"]
    assert lines["kafka.sasl.password"][0] == '"********"'
    assert lines["kafka.sasl.oauthbearer.client.secret"] == [
        '"********"', "env STREAMFLOW_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET"]
    assert lines["schema_registry.basic.auth.user.info"][0] == '"********"'
    assert lines["schema_registry.url"] == ['"http://r:8081"', "env STREAMFLOW_SCHEMA_REGISTRY_URL"]
    assert set(Config.model_fields) - {"kafka", "consumer", "producer", "schema_registry"} <= set(
        lines)
    assert "secret" not in out.replace("client.secret", "").replace("CLIENT_SECRET", "")


def test_show_as_json_and_as_a_toml_file_that_loads_back(
    capsys: pytest.CaptureFixture[str], config_file: Path, tmp_path: Path,
) -> None:
    _, out, _ = show(capsys, "--config", str(config_file), "--format", "json")
    data = json.loads(out)
    assert data["streamflow"]["batch_size"] == {
        "value": 50, "source": f"file {config_file} [streamflow] batch_size"}
    assert data["kafka"]["sasl.password"]["value"] == "********"
    _, out, _ = show(capsys, "--config", str(config_file), "--format", "toml")
    assert f'batch_size = 50  # file {config_file} [streamflow] batch_size' in out
    again = tmp_path / "again.toml"
    again.write_text(out)
    reloaded = load_config(again, env={})
    assert reloaded.batch_size == 50 and reloaded.kafka["sasl.username"] == "alice"
    assert tomllib.loads(out)["streamflow"]["shutdown_timeout_s"] == 30.0


def test_show_with_a_module_shows_the_processors_overrides(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    (tmp_path / "sf_config_show_topo.py").write_text(textwrap.dedent("""
        import streamflow as sf
        topology = sf.Topology("show")
        src = topology.topic("in", external=True)
        topology.processor("fast", commit_interval_ms=50).stream(src).to(topology.topic("a"))
        topology.processor("plain").stream(src).to(topology.topic("b"))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, _ = show(capsys, "sf_config_show_topo")
    assert code == EXIT_OK
    rows = [line.split(None, 2) for line in out.splitlines()]
    assert ["fast.commit_interval_ms", "50", "topology: processor(commit_interval_ms=50)"] in rows
    assert ["plain.commit_interval_ms", "1000", "default"] in rows
