"""``streamflow config show MODULE``: everything each processor runs with, and where it came from.

A config file, environment variables and a topology's own options all change something; the
output (JSON and table) names each value's source, secrets masked.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

import streamflow as sf
from streamflow.cli import EXIT_CONFIG, EXIT_OK, EXIT_USAGE, main
from streamflow.config import Config
from streamflow.ops.effective import _FROM_SETTING, processor_rows
from streamflow.runtime.clients import consumer_conf, producer_conf

TOPOLOGY = """
    import streamflow as sf
    topology = sf.Topology("show")
    src = topology.topic("in", external=True)
    topology.processor("fast", commit_interval_ms=50).stream(src).to(topology.topic("a"))
    (topology.processor("eos", guarantee="exactly_once", commit_interval_ms=20)
     .stream(src).group_by_key().count(name="n").to_stream().to(topology.topic("b")))
    topology.processor("plain", on_error="skip").stream(src).to(topology.topic("c"))
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for var in list(os.environ):
        if var.startswith("STREAMFLOW_") or var == "POD_NAME":
            monkeypatch.delenv(var)
    (tmp_path / "sf_effective_topo.py").write_text(textwrap.dedent(TOPOLOGY))
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "streamflow.toml"
    config.write_text(textwrap.dedent("""
        [streamflow]
        batch_size = 50
        [kafka]
        "sasl.username" = "alice"
        "sasl.password" = "hunter2"
        [consumer]
        "fetch.min.bytes" = 1
        [producer]
        "linger.ms" = 20
        [schema_registry]
        url = "http://registry:8081"
    """))
    monkeypatch.setenv("STREAMFLOW_CONFIG", str(config))
    monkeypatch.setenv("STREAMFLOW_STATISTICS_INTERVAL_MS", "1000")
    monkeypatch.setenv("STREAMFLOW_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("POD_NAME", "show-eos-0")
    return "sf_effective_topo"


def _show(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["config", "show", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_each_processor_shows_every_setting_with_its_source(
    capsys: pytest.CaptureFixture[str], module: str,
) -> None:
    code, out, _ = _show(capsys, module, "--format", "json")
    assert code == EXIT_OK
    data: dict[str, dict[str, dict[str, Any]]] = json.loads(out)
    assert list(data) == ["processor fast", "processor eos", "processor plain"]
    config = Path(os.environ["STREAMFLOW_CONFIG"])
    for section in data.values():  # every setting, for every processor
        assert set(Config.model_fields) - {"kafka", "consumer", "producer",
                                           "schema_registry"} <= set(section)
        assert section["batch_size"] == {
            "value": 50, "source": f"file {config} [streamflow] batch_size"}
        assert section["consumer.statistics.interval.ms"] == {
            "value": 1000, "source": "env STREAMFLOW_STATISTICS_INTERVAL_MS"}
        assert section["producer.security.protocol"] == {
            "value": "SASL_SSL", "source": "env STREAMFLOW_KAFKA_SECURITY_PROTOCOL"}
        assert section["consumer.sasl.password"] == {
            "value": "********", "source": f"file {config} [kafka] sasl.password"}
        assert section["consumer.isolation.level"] == {
            "value": "read_committed", "source": "streamflow"}
        assert section["schema_registry.url"]["value"] == "http://registry:8081"
    assert "hunter2" not in out
    fast, eos, plain = data["processor fast"], data["processor eos"], data["processor plain"]
    # the topology's commit interval replaces the setting its guarantee reads
    assert fast["commit_interval_ms"] == {
        "value": 50, "source": "topology: processor(commit_interval_ms=50)"}
    assert fast["eos_commit_interval_ms"] == {"value": 100, "source": "default"}
    assert eos["eos_commit_interval_ms"] == {
        "value": 20, "source": "topology: processor(commit_interval_ms=20)"}
    assert eos["commit_interval_ms"] == {"value": 1000, "source": "default"}
    assert plain["commit_interval_ms"] == {"value": 1000, "source": "default"}
    # its options, and what is chosen for it
    assert eos["guarantee"] == {"value": "exactly_once", "source": "topology"}
    assert plain["on_deserialize_error"] == {"value": "skip", "source": "topology"}
    assert eos["group_assignor"]["value"] == "range"
    assert fast["group_assignor"]["value"] == "cooperative-sticky"
    assert eos["consumer.partition.assignment.strategy"] == {
        "value": "range", "source": "topology: a stateful processor's default"}
    assert eos["instance_id"] == {"value": "show-eos-0", "source": "env POD_NAME"}
    assert eos["static_membership"]["value"] == "on"
    assert eos["consumer.group.instance.id"] == {"value": "show-eos-0", "source": "env POD_NAME"}
    assert eos["consumer.session.timeout.ms"] == {
        "value": 45000, "source": "default (static_session_timeout_ms)"}
    assert eos["producer.transactional.id"]["value"] == "show.eos-show-eos-0"
    assert eos["producer.transactional.id"]["source"].startswith("topology")
    assert "producer.transactional.id" not in fast
    # the client tables: consumer-only and producer-only keys where they apply
    assert fast["consumer.fetch.min.bytes"] == {
        "value": 1, "source": f"file {config} [consumer] fetch.min.bytes"}
    assert fast["producer.linger.ms"] == {
        "value": 20, "source": f"file {config} [producer] linger.ms"}
    assert "producer.fetch.min.bytes" not in fast


def test_the_table_names_the_processor_and_one_processor_can_be_chosen(
    capsys: pytest.CaptureFixture[str], module: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMFLOW_NAME_SUFFIX", "-pr7")
    code, out, _ = _show(capsys, module, "-p", "fast")
    assert code == EXIT_OK
    lines = [line.split(None, 2) for line in out.splitlines()]
    assert ["fast.commit_interval_ms", "50", "topology: processor(commit_interval_ms=50)"] \
        in lines
    assert ["fast.group_id", '"show.fast-pr7"', "topology"] in lines  # name_suffix applied
    assert lines[[r[0] for r in lines].index("fast.batch_size")][:2] == ["fast.batch_size", "50"]
    assert not [r for r in lines if r[0].startswith(("eos.", "plain."))]
    code, _, err = _show(capsys, module, "-p", "nope")
    assert code == EXIT_CONFIG and "has no processor 'nope'" in err
    code, _, err = _show(capsys, "-p", "fast")
    assert code == EXIT_USAGE and "--processor needs a MODULE" in err


def test_a_client_table_key_wins_over_what_streamflow_derives(
    capsys: pytest.CaptureFixture[str], module: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMFLOW_CONSUMER_PARTITION_ASSIGNMENT_STRATEGY", "roundrobin")
    monkeypatch.setenv("STREAMFLOW_INSTANCE_ID", "eu-1")
    _, out, _ = _show(capsys, module, "-p", "fast", "--format", "json")
    fast = json.loads(out)["processor fast"]
    assert fast["consumer.partition.assignment.strategy"] == {
        "value": "roundrobin", "source": "env STREAMFLOW_CONSUMER_PARTITION_ASSIGNMENT_STRATEGY"}
    assert fast["instance_id"] == {"value": "eu-1", "source": "env STREAMFLOW_INSTANCE_ID"}
    assert fast["consumer.client.id"]["value"] == "show.fast.eu-1"


# each client key attributed to a setting really moves with it
_OTHER = {"statistics_interval_ms": 1234, "group_protocol": "consumer",
          "static_session_timeout_ms": 20000}


@pytest.mark.parametrize(("key", "setting"), sorted(_FROM_SETTING.items()))
def test_client_keys_said_to_come_from_a_setting_follow_it(key: str, setting: str) -> None:
    t = sf.Topology("t")
    t.processor("p", guarantee="exactly_once").stream(t.topic("in", external=True)).to(
        t.topic("out"))
    p = t.processors["p"]
    before, after = Config(), Config(**{setting: _OTHER[setting]})

    def conf(config: Config) -> dict[str, Any]:
        return {**producer_conf(p, config, "i"), **consumer_conf(p, config, "i", static=True)}

    assert conf(before).get(key) != conf(after).get(key)
    rows = {r.key: r for r in processor_rows(p, after, env={"POD_NAME": "t-p-0"})}
    shown = [r for name, r in rows.items() if name.endswith(f".{key}")]
    assert shown and all(setting in r.source for r in shown), shown
