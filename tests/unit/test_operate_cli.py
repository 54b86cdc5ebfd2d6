"""``reset``, ``dlq`` and the printing of ``status`` and ``tail`` without a broker."""

from __future__ import annotations

from pathlib import Path

import pytest

import streamflow as sf
from streamflow.cli import build_parser
from streamflow.cli.operate import format_record, format_status
from streamflow.config import Config
from streamflow.errors import EXIT_GROUP_ACTIVE, GroupActiveError, UsageError
from streamflow.kafka import groups
from streamflow.ops import reset as ops_reset
from streamflow.ops.dlq import ReplayFilter, replay_group, replay_headers
from streamflow.ops.status import (
    InstanceStatus,
    MemberStatus,
    PartitionLag,
    ProcessorStatus,
    TopologyStatus,
)
from streamflow.ops.tail import DecodedRecord


def counting() -> sf.Topology:
    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    (t.processor("count").stream(orders).group_by(lambda o: o["user"], name="by-user")
     .count(name="per-user").to_stream().to(t.topic("counts", value=sf.Json())))
    return t


@pytest.mark.parametrize(("text", "ms"), [("PT1H", 3_600_000), ("P1DT12H", 129_600_000),
                                          ("PT0.5S", 500), ("90s", 90_000), ("15m", 900_000),
                                          ("2h", 7_200_000), ("1d", 86_400_000)])
def test_durations_in_iso_8601_or_short_form(text: str, ms: int) -> None:
    assert ops_reset.parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "P", "PT", "1 hour", "-5m", "h"])
def test_a_bad_duration_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="duration"):
        ops_reset.parse_duration(text)


def test_reset_targets() -> None:
    assert ops_reset.reset_target(to_earliest=True) == "earliest"
    assert ops_reset.reset_target(to_latest=True) == "latest"
    assert ops_reset.reset_target(by_duration="PT1M", now_ms=100_000) == 40_000
    assert ops_reset.reset_target(to_datetime="1970-01-01T00:01:00") == 60_000
    assert ops_reset.reset_target(to_datetime="1970-01-01T01:01:00+01:00") == 60_000
    with pytest.raises(UsageError):
        ops_reset.reset_target(to_earliest=True, to_latest=True)
    with pytest.raises(UsageError, match="ISO-8601"):
        ops_reset.reset_target(to_datetime="yesterday")


class FakeAdmin:
    pass


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> dict[str, groups.GroupInfo]:
    found: dict[str, groups.GroupInfo] = {}
    parts = {"orders": [0, 1], "shop-count-by-user-repartition": [0, 1],
             "shop-count-per-user-changelog": [0, 1]}
    monkeypatch.setattr(groups, "describe_group", lambda _a, g, _t=0: found.get(
        g, groups.GroupInfo(g, "Empty", "classic", "", ())))
    monkeypatch.setattr(groups, "partitions_of", lambda _a, topics, _t=0: {
        t: parts[t] for t in topics if t in parts})
    monkeypatch.setattr(groups, "group_offsets", lambda _a, _g, pairs, _t=0: {
        p: 42 for p in pairs})
    monkeypatch.setattr(groups, "list_offsets", lambda _a, pairs, at, **_k: {
        p: {"earliest": 0, "latest": 100}.get(str(at), 7) for p in pairs})
    return found


def test_reset_plan_moves_inputs_truncates_repartition_deletes_changelogs_wipes_state(
        broker: dict[str, groups.GroupInfo], tmp_path: Path) -> None:
    folder = tmp_path / "host-0" / "shop" / "count"
    (folder / "per-user" / "0").mkdir(parents=True)
    (tmp_path / "host-0" / "shop" / "other").mkdir(parents=True)
    config = Config(state_dir=str(tmp_path))
    plan = ops_reset.plan_reset(counting(), "count", config, "earliest", admin=FakeAdmin())
    assert plan.offsets == {("orders", 0): 0, ("orders", 1): 0,
                            ("shop-count-by-user-repartition", 0): 100,
                            ("shop-count-by-user-repartition", 1): 100}
    assert plan.truncate == {("shop-count-by-user-repartition", 0): 100,
                             ("shop-count-by-user-repartition", 1): 100}
    assert plan.delete_topics == ("shop-count-per-user-changelog",)
    assert plan.create_topics == ()  # the next worker creates it
    assert plan.folders == (folder,)
    lines = [str(s) for s in plan.steps]
    assert lines[0] == "move-offsets orders[0]: group shop.count: 42 -> 0 (earliest)"
    assert "truncate shop-count-by-user-repartition[1]: delete the records below 100; " \
           "group shop.count -> 100" in lines
    assert lines[-1] == f"wipe-state {folder}: local state of instance 'host-0'"
    off = ops_reset.plan_reset(counting(), "count", Config(state_dir=str(tmp_path),
                                                           create_topics=False),
                               60_000, admin=FakeAdmin())
    assert off.create_topics == ("shop-count-per-user-changelog",)
    assert off.offsets[("orders", 0)] == 7
    assert "the first record at or after 1970-01-01T00:01:00+00:00" in str(off.steps[0])


def test_reset_refuses_while_the_group_has_members(broker: dict[str, groups.GroupInfo]) -> None:
    broker["shop.count"] = groups.GroupInfo("shop.count", "Stable", "classic", "range", (
        groups.GroupMember("m", "shop.count.pod-0", "pod-0", "10.1.2.3", (("orders", 0),)),))
    with pytest.raises(GroupActiveError, match=r"1 active member\(s\): pod-0 on 10\.1\.2\.3") \
            as e:
        ops_reset.plan_reset(counting(), "count", Config(), "latest", admin=FakeAdmin())
    assert e.value.exit_code == EXIT_GROUP_ACTIVE == 7


def test_reset_wipes_state_folders_but_refuses_one_a_local_worker_holds(
        broker: dict[str, groups.GroupInfo], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from streamflow.runtime.identity import InstanceLock

    folder = tmp_path / "host-0" / "shop" / "count"
    (folder / "per-user" / "0").mkdir(parents=True)
    (folder / "checkpoint").write_text("5")
    calls: list[str] = []
    monkeypatch.setattr(groups, "delete_records", lambda _a, b, _t=0: calls.append("truncate"))
    monkeypatch.setattr(groups, "alter_group_offsets",
                        lambda _a, g, o, _t=0: calls.append(f"offsets {g}"))
    from streamflow.kafka import client
    monkeypatch.setattr(client, "delete_topics", lambda _a, n, _t=0: calls.append(f"delete {n}"))
    config = Config(state_dir=str(tmp_path))
    plan = ops_reset.plan_reset(counting(), "count", config, "earliest", admin=FakeAdmin())
    lock = InstanceLock(folder, "host-0", "count")
    lock.acquire()
    try:
        with pytest.raises(GroupActiveError, match="already in use"):
            ops_reset.apply_reset(counting(), plan, config, admin=FakeAdmin())
    finally:
        lock.release()
    assert calls == [] and (folder / "checkpoint").exists()
    ops_reset.apply_reset(counting(), plan, config, admin=FakeAdmin())
    assert calls == ["truncate", "offsets shop.count",
                     "delete ('shop-count-per-user-changelog',)"]
    assert [p.name for p in folder.iterdir()] in ([], [".instance.lock"])


def test_replay_filter_and_headers() -> None:
    assert str(ReplayFilter.parse("topic=orders, error=KeyError")) == "error=KeyError,topic=orders"
    for bad in ("error", "colour=red", "error="):
        with pytest.raises(UsageError, match="--filter"):
            ReplayFilter.parse(bad)
    # provenance headers of the original record stay; the dead-letter policy's own go
    original = [("streamflow.source.topic", b"upstream"), ("trace", b"t")]
    letter = [*original, ("streamflow.error.type", b"E"), ("streamflow.error.phase", b"process"),
              ("streamflow.source.topic", b"orders"), ("streamflow.source.partition", b"3"),
              ("streamflow.source.offset", b"9")]
    assert replay_headers(letter, "d[0]@1") == [*original, ("streamflow.replay.of", b"d[0]@1")]
    assert ReplayFilter.parse("phase=process,topic=orders").matches(letter)
    assert not ReplayFilter.parse("topic=upstream").matches(letter)


def test_each_filter_keeps_its_own_replay_progress() -> None:
    p = counting().processors["count"]
    assert replay_group(p) == "shop.count.dlq-replay"
    a = replay_group(p, ReplayFilter.parse("error=KeyError"))
    assert a.startswith("shop.count.dlq-replay.") and a != replay_group(
        p, ReplayFilter.parse("error=ValueError"))
    assert a == replay_group(p, ReplayFilter.parse(" error=KeyError "))


def test_status_table_names_members_lag_instances_and_problems() -> None:
    p = ProcessorStatus(
        "count", "shop.count", "Stable", "classic",
        (MemberStatus("pod-0", "10.0.0.1", (("orders", 0), ("orders", 1))),),
        (PartitionLag("orders", 0, 0, 10, 10, "pod-0"), PartitionLag("orders", 1, 0, 20, 5,
                                                                    "pod-0")),
        "shop.count.dlq", 3,
        (InstanceStatus("pod-0", "http://10.0.0.1:8080", True, ready=True, processed=25,
                        dead_lettered=3, commits=4, consumed_per_s={"orders": 12.5}, rated=True,
                        last_commit_age_s=0.25),
         InstanceStatus("pod-1", "http://10.0.0.2:8080", False, "timed out")))
    text = format_status(TopologyStatus("shop", "k:9092", 0.0, (p,)), max_lag=10)
    assert "count      Stable  1        15   12.5" in text
    assert "0.2s ago" in text or "0.3s ago" in text
    assert "member pod-0 @ 10.0.0.1: orders[0], orders[1]" in text
    assert "lag orders: 15 (committed/end: p0 10/10, p1 5/20)" in text
    assert "instance pod-0 ready; processed 25, dead-lettered 3, commits 4" in text
    assert "instance pod-1 UNREACHABLE at http://10.0.0.2:8080: timed out" in text
    assert "PROBLEM: processor count: lag 15 exceeds --max-lag 10" in text


def test_tail_table_shows_headers_and_the_last_traceback_line() -> None:
    r = DecodedRecord("t.dlq", 1, 7, 0, "k", b"\xff", (
        ("streamflow.error.type", b"KeyError"),
        ("streamflow.error.traceback",
         b"Traceback (most recent call last):\n  ...\nKeyError: 'x'\n"),
    ), value_error="SerdeError: bad")
    text = format_record(r)
    assert text.splitlines()[0] == ("t.dlq[1]@7  1970-01-01T00:00:00.000Z  key=k  "
                                    "value=base64:/w==")
    assert "    streamflow.error.type: KeyError" in text
    assert "    streamflow.error.traceback: KeyError: 'x'" in text
    assert "(value not decoded: SerdeError: bad)" in text


def test_the_commands_are_registered() -> None:
    parser = build_parser()
    args = parser.parse_args(["status", "m", "--watch", "--max-lag", "5"])
    assert args.watch == 2.0 and args.max_lag == 5
    args = parser.parse_args(["tail", "t", "-m", "m", "--last", "3", "--follow"])
    assert args.last == 3 and args.follow
    with pytest.raises(SystemExit):
        parser.parse_args(["tail", "t", "--last", "3", "--from-beginning"])
    with pytest.raises(SystemExit):
        parser.parse_args(["reset", "m", "-p", "x"])  # where to: required
    args = parser.parse_args(["dlq", "replay", "m", "-p", "x", "--filter", "error=E"])
    assert args.filter == "error=E" and not args.dry_run
