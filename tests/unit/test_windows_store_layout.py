"""A window store holds one entry per key: a commit sends at most one changelog record per key
touched (plus the stream time), however many windows of the key changed; keys whose windows
all closed leave the store, and the changelog alone rebuilds the open windows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson

import streamflow as sf
from streamflow.plan.compile import TaskContext, compile_task
from streamflow.serde import SerdeContext
from streamflow.state.backends import MemoryBackend
from streamflow.state.keys import encode_key
from streamflow.state.task_state import TaskState
from streamflow.state.window_store import META_STREAM_TIME, load, window_prefix

Changelog = list[tuple[bytes, bytes | None]]


def _processor(spec: Any) -> Any:
    t = sf.Topology("layout")
    src = t.topic("in", key=sf.String(), value=sf.Json(), external=True)
    out = t.topic("out", key=sf.TimeWindowedSerde(sf.String(), window_size=1), value=sf.Long())
    t.processor("p", store="memory").stream(src).group_by_key().window(spec).count(
        name="w").final().to(out)
    return t.processors["p"]


class _Task:
    def __init__(self, spec: Any, tmp: Path) -> None:
        processor = _processor(spec)
        self.state = TaskState(processor.stores, 0, tmp, "memory", SerdeContext())
        self.finals: list[tuple[bytes | None, bytes | None]] = []
        ctx = TaskContext("p", 0, lambda t, k, v, ts, h: self.finals.append((k, v)),
                          SerdeContext(), self.state.stores)
        self.entry = compile_task(processor, ctx).entries["in"]

    def send(self, key: str, ts: int) -> None:
        self.entry(key.encode(), orjson.dumps({}), ts, None)

    def commit(self) -> Changelog:
        sent: Changelog = []
        self.state.flush(lambda topic, p, k, v, h: sent.append((k, v)), {})
        self.state.write_pending()
        return sent


def test_hopping_windows_send_at_most_one_changelog_record_per_key_per_commit(
        tmp_path: Path) -> None:
    task = _Task(sf.Hopping(100, 10, grace=5), tmp_path)  # 10 windows per record
    keys = [f"k{i}" for i in range(7)]
    for commit in range(6):
        touched = set()
        for i in range(40):
            key = keys[(commit * 3 + i) % len(keys)]
            touched.add(key)
            task.send(key, commit * 200 + i * 5)
        sent = task.commit()
        per_key = Counter(k for k, _ in sent)
        assert set(per_key) <= {window_prefix(encode_key(k)) for k in keys} | {META_STREAM_TIME}
        assert all(n == 1 for n in per_key.values()), per_key
        # the touched keys, keys whose last windows closed, and the stream time
        assert len(sent) <= len(keys) + 1
        assert META_STREAM_TIME in per_key
    assert task.finals


def test_a_key_opened_and_closed_between_commits_never_reaches_the_changelog(
        tmp_path: Path) -> None:
    task = _Task(sf.Tumbling(10), tmp_path)
    task.send("gone", 1)
    task.send("stays", 25)  # closes [0, 10) of "gone": its only window
    sent = task.commit()
    assert [k for k, _ in sent] == [META_STREAM_TIME, window_prefix(encode_key("stays"))]
    assert len(task.finals) == 1


def test_a_key_deleted_and_reopened_before_a_commit_still_leaves_a_tombstone(
        tmp_path: Path) -> None:
    task = _Task(sf.Tumbling(10), tmp_path)
    kb = window_prefix(encode_key("a"))
    task.send("a", 1)
    task.commit()  # "a" is stored
    task.send("b", 15)  # closes "a"'s window: its entry is deleted
    task.send("a", 16)  # "a" opens [10, 20) ...
    task.send("b", 35)  # ... which closes too, before the next commit
    sent = dict(task.commit())
    assert sent[kb] is None  # the stored entry is deleted, not left behind
    assert load(task.state.stores["w"]).stream_time == 35


def test_the_changelog_alone_rebuilds_the_open_windows(tmp_path: Path) -> None:
    spec = sf.Hopping(100, 10, grace=5)
    task = _Task(spec, tmp_path / "a")
    changelog: Changelog = []
    for i in range(60):
        task.send(f"k{i % 4}", i * 7)
        if i % 13 == 0:
            changelog += task.commit()
    changelog += task.commit()
    backend = MemoryBackend()
    backend.write(changelog)  # a restore writes the changelog records as they are
    restored = _Task(spec, tmp_path / "b")
    restored.state.stores["w"].backend = backend
    expected = load(task.state.stores["w"])
    got = load(restored.state.stores["w"])
    assert got.stream_time == expected.stream_time == 59 * 7
    assert [(sk, s, c.agg, c.max_ts) for sk, _, s, c in got.windows] == [
        (sk, s, c.agg, c.max_ts) for sk, _, s, c in expected.windows]
    assert 0 < len(got.windows) <= 4 * 10
