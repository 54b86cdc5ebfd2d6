"""The operating commands' advice names the exact command to run next: ``reset`` without
``--yes`` prints the reset to type back, then the ``run`` that restarts the processor; ``dlq
list`` without dead-lettering processors names every policy that dead-letters."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

import streamflow as sf
from streamflow.cli import main
from streamflow.kafka import client, groups

SPEC = f"{__name__}:shop"


def _shop(**policies: Any) -> sf.Topology:
    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    (t.processor("count", **policies).stream(orders).group_by(lambda o: o["user"], name="by-user")
     .count(name="per-user").to_stream().to(t.topic("counts", value=sf.Json())))
    return t


shop = _shop()
deserialize_only = _shop(on_deserialize_error="dead_letter")


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """An idle group on a two-partition cluster; the calls that change it, in order."""
    for var in ("STREAMFLOW_CONFIG", "STREAMFLOW_SCHEMA_REGISTRY_URL", "STREAMFLOW_NAME_SUFFIX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STREAMFLOW_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("STREAMFLOW_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    calls: list[str] = []
    topics = {"orders", "shop-count-by-user-repartition", "shop-count-per-user-changelog"}
    monkeypatch.setattr(client, "make_admin", lambda conf: object())
    monkeypatch.setattr(groups, "describe_group", lambda _a, g, _t=0: groups.GroupInfo(
        g, "Empty", "classic", "", ()))
    monkeypatch.setattr(groups, "partitions_of", lambda _a, names, _t=0: {
        t: [0, 1] for t in names if t in topics})
    monkeypatch.setattr(groups, "group_offsets", lambda _a, _g, pairs, _t=0: {
        p: 42 for p in pairs})
    monkeypatch.setattr(groups, "list_offsets", lambda _a, pairs, at, **_k: {
        p: {"earliest": 0, "latest": 100}.get(str(at), 7) for p in pairs})
    monkeypatch.setattr(groups, "delete_records", lambda _a, b, _t=0: calls.append("truncate"))
    monkeypatch.setattr(groups, "alter_group_offsets",
                        lambda _a, g, o, _t=0: calls.append(f"offsets {g}"))
    monkeypatch.setattr(client, "delete_topics", lambda _a, n, _t=0: calls.append(f"delete {n}"))
    return calls


def test_reset_without_yes_prints_the_command_that_resets_and_it_works_typed_back(
    broker: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["reset", SPEC, "-p", "count", "--to-datetime", "2026-11-26 07:00"]) == 2
    err = capsys.readouterr().err
    command = f"streamflow reset {SPEC} -p count --to-datetime '2026-11-26 07:00' --yes"
    assert ("nothing changed: to reset processor 'count' (its state and progress are lost) "
            f"run: {command}") in err
    assert broker == []
    words = shlex.split(command)
    assert words[0] == "streamflow"
    assert main(words[1:]) == 0
    assert broker == ["truncate", "offsets shop.count",
                      "delete ('shop-count-per-user-changelog',)"]
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == (
        "processor 'count' reset: its next run starts from the moved offsets with empty "
        f"state: streamflow run {SPEC} -p count")


@pytest.mark.parametrize(("flags", "config"), [(["--to-earliest"], None),
                                               (["--by-duration", "PT1H"], "my settings.toml")])
def test_the_reset_command_keeps_the_target_and_the_config_file(
    broker: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path,
    flags: list[str], config: str | None,
) -> None:
    given = []
    if config is not None:
        (tmp_path / config).write_text("[streamflow]\nbatch_size = 10\n")
        given = ["--config", str(tmp_path / config)]
    assert main(["reset", SPEC, "-p", "count", *flags, *given]) == 2
    said = capsys.readouterr().err.split("run: ", 1)[1].strip()
    assert shlex.split(said) == ["streamflow", "reset", SPEC, "-p", "count", *flags, "--yes",
                                 *given]


def test_dlq_list_without_dead_letters_names_every_policy_and_the_describe_command(
    broker: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["dlq", "list", SPEC]) == 0
    out = capsys.readouterr().out
    assert out == (
        "no processor of topology 'shop' sends dead letters: none has a 'dead_letter' policy "
        "(the processor's on_error=, on_deserialize_error=, on_processing_error= or "
        "on_produce_error=, or a step's on_error=) nor a policy function; each processor's "
        f"policies: streamflow describe {SPEC}\n")
    # the command named shows a policy that dead-letters where a processor has one
    assert main(["describe", f"{__name__}:deserialize_only"]) == 0
    assert "on_deserialize_error=dead_letter" in capsys.readouterr().out


def test_dlq_list_counts_a_processor_that_dead_letters_only_undecodable_input(
    broker: list[str], capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["dlq", "list", f"{__name__}:deserialize_only"]) == 0
    out = capsys.readouterr().out
    assert out == "count: no dead letters (shop.count.dlq does not exist yet)\n"
