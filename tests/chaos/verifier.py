"""The chaos verifier: recomputes every output of a run from its seeded input.

It reads every output partition with ``isolation.level=read_committed`` and checks that each
input is in the map output exactly once; the repartition topic holds each input exactly once,
per user in the order of its input partition; the aggregate updates of each user are exactly
the running sums over that user's records in repartition order (``n``, ``sum`` and the
``last`` id of each update); every window's final result equals the recomputation, emitted
once (records the window step had to drop as late are found by replaying each repartition
partition's stream time; none when the grace exceeds the skew between input partitions,
reported as ``late`` and ``max_skew``); and no transaction is left open (on every partition
of every topic, the last stable offset equals the high watermark). Under ``at_least_once``
the same checks count duplicates and over-counts instead, and only losses fail.
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from tests.chaos.inputs import ChaosConfig, Inputs


@dataclass
class Report:
    """The outcome of one run. ``duplicates``, ``losses`` and ``wrong`` count per check:

    * ``map`` / ``repartition``: extra copies of an input in that topic (duplicates) or inputs
      absent from it (losses);
    * ``agg-updates``: sum updates beyond one per input; ``agg-overcount``: records counted
      twice in the users' final sums; ``agg-no-update``: inputs that produced no update;
      ``agg-undercount``: records missing from final sums; ``agg-sequence`` (wrong, EOS):
      updates that differ from the running sum over the repartition order;
    * ``windows-emitted-twice``, ``windows-overcount`` (windows with a count too high),
      ``windows-missing``, ``windows-undercount``.
    """

    guarantee: str
    seed: int
    records: int
    sentinels: int
    kills: int = 0
    sigterm_restarts: int = 0
    pauses: int = 0
    crashes: list[str] = field(default_factory=list)
    unclean_stops: list[str] = field(default_factory=list)
    windows_checked: bool = False
    duplicates: Counter[str] = field(default_factory=Counter)
    losses: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)  # values that are neither
    problems: list[str] = field(default_factory=list)  # what fails the run
    notes: list[str] = field(default_factory=list)
    late: int = 0
    max_skew_ms: int = 0
    open_transactions: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # records read per output
    timings: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    workdir: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary_line(self) -> str:
        def fmt(c: Counter[str]) -> str:
            # per check, no grand total: one duplicated input shows in several outputs
            parts = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if v)
            return f"({parts})" if parts else "0"

        win = "checked" if self.windows_checked else "NOT RUN (no streamflow.Tumbling)"
        return (f"chaos summary: guarantee={self.guarantee} records={self.records} "
                f"(+{self.sentinels} sentinels) kills={self.kills} "
                f"sigterm_restarts={self.sigterm_restarts} "
                + (f"pauses={self.pauses} " if self.pauses else "")
                + f"crashes={len(self.crashes)} "
                f"duplicates={fmt(self.duplicates)} losses={fmt(self.losses)} "
                f"wrong={fmt(self.wrong)} open_txns={len(self.open_transactions)} "
                f"windows={win} late={self.late} max_skew={self.max_skew_ms}ms "
                f"wall={self.wall_s:.1f}s seed={self.seed} -> {'OK' if self.ok else 'FAILED'}")

    def details(self) -> str:
        out = [self.summary_line()]
        out.append("  verified: " + ", ".join(f"{k} {v}" for k, v in self.checked.items()))
        out += [f"  timing {k}: {v:.1f}s" for k, v in self.timings.items()]
        out += [f"  note: {n}" for n in self.notes]
        out += [f"  PROBLEM: {p}" for p in self.problems]
        out += [f"  crash: {c}" for c in self.crashes]
        out += [f"  unclean stop: {c}" for c in self.unclean_stops]
        out.append(f"  work directory (module, worker logs, state): {self.workdir}")
        return "\n".join(out)


class Cluster(Protocol):
    """What the verifier reads: :class:`streamflow.testing.admin.TopicAdmin` on a broker, an
    in-memory double in the verifier's unit tests."""

    def read_topic(self, topic: str, on_message: Callable[[Any], None]) -> int:
        """Call ``on_message`` with every committed record of ``topic`` (offset order per
        partition); return how many."""
        ...

    def app_topics(self, app: str) -> list[str]:
        """The topics named after ``app`` (``<app>-...`` and ``<app>....``)."""
        ...

    def end_offsets(self, topic: str, *, committed_only: bool = False) -> dict[int, int]:
        """Per partition: the last stable offset (``committed_only``) or the high watermark."""
        ...


class Verifier:
    """Recomputes every output from the seeded input and compares (read_committed).

    ``topics`` maps ``app`` (the application id) and ``in``, ``map``, ``sums``,
    ``repartition`` and (when ``report.windows_checked``) ``windows`` to topic names.
    """

    def __init__(self, cfg: ChaosConfig, inputs: Inputs, topics: dict[str, str],
                 report: Report, cluster: Cluster) -> None:
        self.cfg = cfg
        self.inputs = inputs
        self.topics = topics
        self.report = report
        self.eos = cfg.guarantee == "exactly_once"
        self.cluster = cluster
        self.in_partition = array("b", [-1]) * inputs.total
        self.late_ids = bytearray(inputs.total)  # late for their window at first arrival

    # each check adds to report.duplicates / losses / wrong and, when it matters, problems
    def _problem(self, what: str, loss: bool) -> None:
        if loss or self.eos:
            self.report.problems.append(what)
        else:
            self.report.notes.append(what)

    def run(self) -> None:
        t = self.report.timings
        began = time.monotonic()

        def lap(name: str) -> None:
            nonlocal began
            now = time.monotonic()
            t[f"verify {name}"] = now - began
            began = now

        self.check_input()
        lap("input")
        self.check_map()
        lap("map")
        order = self.check_repartition()
        lap("repartition")
        self.check_sums(order)
        lap("sums")
        if self.report.windows_checked:
            self.check_windows()
            lap("windows")
        self.check_open_transactions()
        lap("open transactions")

    def check_input(self) -> None:
        """The harness's own sanity: the input topic holds each record exactly once."""
        seen = bytearray(self.inputs.total)
        dup = 0

        def on(m: Any) -> None:
            nonlocal dup
            i = int(m.key())
            if seen[i]:
                dup += 1
            seen[i] = 1
            self.in_partition[i] = m.partition()

        self.report.checked["input records"] = self.cluster.read_topic(self.topics["in"], on)
        missing = seen.count(0)
        if dup or missing:
            self.report.problems.append(f"input topic: {dup} duplicated and {missing} missing "
                                        "records (harness problem, not streamflow)")

    def check_map(self) -> None:
        inputs = self.inputs
        count = array("l", [0]) * inputs.total
        wrong = []

        def on(m: Any) -> None:
            v = orjson.loads(m.value())
            i = v["id"]
            count[i] += 1
            want = {"id": i, "user": f"u{inputs.user[i]}", "double": 2 * inputs.amount[i]}
            if v != want or m.key() != str(i).encode():
                wrong.append((m.partition(), m.offset(), m.key(), v, want))

        self.report.checked["map outputs"] = self.cluster.read_topic(self.topics["map"], on)
        dups = sum(c - 1 for c in count if c > 1)
        missing = [i for i, c in enumerate(count) if c == 0]
        self.report.duplicates["map"] += dups
        self.report.losses["map"] += len(missing)
        self.report.wrong["map"] += len(wrong)
        if missing:
            self._problem(f"map: {len(missing)} inputs missing, e.g. ids {missing[:10]}", True)
        if dups:
            ex = [i for i, c in enumerate(count) if c > 1][:10]
            self._problem(f"map: {dups} duplicate outputs, e.g. ids {ex}", False)
        if wrong:
            self.report.problems.append(f"map: {len(wrong)} wrong outputs, e.g. {wrong[:3]}")

    def check_repartition(self) -> dict[int, array[int]]:
        """Each input once in the repartition topic; per user, records of one input partition
        in their input order. Returns each user's ids in repartition order; also replays the
        stream time of each repartition partition to count records arriving too late."""
        inputs = self.inputs
        count = array("l", [0]) * inputs.total
        order: dict[int, array[int]] = {u: array("q") for u in range(inputs.users)}
        misplaced: list[Any] = []
        stream_time: dict[int, int] = {}
        late = 0
        max_skew = 0
        size, grace = self.cfg.window_ms, self.cfg.grace_ms

        def on(m: Any) -> None:
            nonlocal late, max_skew
            v = orjson.loads(m.value())
            i = v["id"]
            count[i] += 1
            u = inputs.user[i]
            if m.key() != f"u{u}".encode():
                misplaced.append((m.partition(), m.offset(), m.key(), v))
            order[u].append(i)
            ts = m.timestamp()[1]
            if ts != inputs.ts[i]:
                misplaced.append((m.partition(), m.offset(), "timestamp", ts, inputs.ts[i]))
            st = stream_time.get(m.partition(), ts)
            if not inputs.is_sentinel(i):
                max_skew = max(max_skew, st - ts)
                start = ts - ts % size
                # the window step's rule (streamflow.windows): a record is late when its
                # window closed before it arrived; its stream time is persisted with the
                # window store, so this replay of the committed repartition order matches it
                if count[i] == 1 and start + size + grace <= st:
                    late += 1
                    self.late_ids[i] = 1
            stream_time[m.partition()] = max(st, ts)

        self.report.checked["repartitioned"] = self.cluster.read_topic(
            self.topics["repartition"], on)
        self.report.late = late
        self.report.max_skew_ms = max_skew
        dups = sum(c - 1 for c in count if c > 1)
        missing = [i for i, c in enumerate(count) if c == 0]
        self.report.duplicates["repartition"] += dups
        self.report.losses["repartition"] += len(missing)
        if missing:
            self._problem(f"repartition: {len(missing)} inputs missing, e.g. {missing[:10]}",
                          True)
        if dups:
            self._problem(f"repartition: {dups} duplicate records", False)
        if misplaced:
            self.report.problems.append(f"repartition: {len(misplaced)} records with a wrong "
                                        f"key or timestamp, e.g. {misplaced[:3]}")
        # per user and input partition, ids (= input offsets order) must increase
        disorder = 0
        example = None
        for u, ids in order.items():
            last: dict[int, int] = {}
            for i in ids:
                p = self.in_partition[i]
                if last.get(p, -1) >= i:
                    disorder += 1
                    example = example or (f"u{u}", p, last[p], i)
                last[p] = max(last.get(p, -1), i)
        if disorder:
            self._problem(f"repartition: {disorder} records of a user out of their input "
                          f"partition's order, e.g. (user, input partition, before, after) = "
                          f"{example}", False)
        return order

    def check_sums(self, order: dict[int, array[int]]) -> None:
        """EOS: each user's updates are exactly the running sums over its repartition order.
        Both: the last update equals the recomputed total; every input produced an update."""
        inputs = self.inputs
        pos = dict.fromkeys(order, 0)
        running = dict.fromkeys(order, 0)
        final: dict[int, dict[str, int]] = {}
        as_last = bytearray(inputs.total)
        mismatches: list[Any] = []
        nmis = 0
        bad_key = 0
        updates = 0

        def on(m: Any) -> None:
            nonlocal nmis, bad_key, updates
            updates += 1
            key = m.key().decode()
            if not key.startswith("u") or not key[1:].isdigit() or int(key[1:]) not in order:
                bad_key += 1
                return
            u = int(key[1:])
            v = orjson.loads(m.value())
            final[u] = v
            if 0 <= v["last"] < inputs.total:
                as_last[v["last"]] = 1
            if not self.eos:
                return
            k = pos[u]
            ids = order[u]
            if k < len(ids):
                running[u] += inputs.amount[ids[k]]
                want = {"n": k + 1, "sum": running[u], "last": ids[k]}
            else:
                want = {"beyond": len(ids)}
            pos[u] = k + 1
            if v != want:
                nmis += 1
                if len(mismatches) < 5:
                    mismatches.append((key, m.partition(), m.offset(), v, want))

        self.report.checked["sum updates"] = self.cluster.read_topic(self.topics["sums"], on)
        truth_n = Counter(inputs.user)
        truth_sum: Counter[int] = Counter()
        for i in range(inputs.total):
            truth_sum[inputs.user[i]] += inputs.amount[i]
        over_n = under_n = over_users = under_users = 0
        for u in order:
            got = final.get(u, {"n": 0, "sum": 0})
            if got["n"] > truth_n[u] or got["sum"] > truth_sum[u]:
                over_users += 1
                over_n += got["n"] - truth_n[u]
            elif got["n"] < truth_n[u] or got["sum"] < truth_sum[u]:
                under_users += 1
                under_n += truth_n[u] - got["n"]
        no_update = as_last.count(0)
        expected_updates = inputs.total
        self.report.duplicates["agg-updates"] += max(0, updates - expected_updates)
        self.report.duplicates["agg-overcount"] += over_n
        self.report.losses["agg-no-update"] += no_update
        self.report.losses["agg-undercount"] += under_n
        if bad_key:
            self.report.problems.append(f"sums: {bad_key} updates with an unknown key")
        if no_update:
            ex = [i for i in range(inputs.total) if not as_last[i]][:10]
            self._problem(f"sums: {no_update} inputs never produced an update, e.g. {ex}", True)
        if under_users:
            self._problem(f"sums: {under_users} users' final aggregate is below the recomputed "
                          f"total ({under_n} records short)", True)
        if over_users:
            self._problem(f"sums: {over_users} users' final aggregate is above the recomputed "
                          f"total ({over_n} records counted twice)", False)
        if self.eos:
            short = sum(1 for u, ids in order.items() if pos[u] < len(ids))
            self.report.wrong["agg-sequence"] += nmis
            if nmis or short:
                self.report.problems.append(
                    f"sums: {nmis} updates differ from the running sums over the repartition "
                    f"order and {short} users have fewer updates than records; e.g. (key, "
                    f"partition, offset, got, want) {mismatches}")
        elif updates != expected_updates:
            self.report.notes.append(f"sums: {updates} updates for {expected_updates} records")

    def check_windows(self) -> None:
        inputs = self.inputs
        size = self.cfg.window_ms
        # what the window step must emit: every record counted in its window, except records
        # that arrived after their window closed (none when the grace exceeds the skew)
        expected: Counter[tuple[str, int]] = Counter()
        for i in range(inputs.n):
            ts = inputs.ts[i]
            w = (f"u{inputs.user[i]}", ts - ts % size)
            expected[w] += 0 if self.late_ids[i] else 1
        for w in [w for w, c in expected.items() if c == 0]:
            del expected[w]
        emitted: Counter[tuple[str, int]] = Counter()
        got: dict[tuple[str, int], int] = {}
        wrong: list[Any] = []

        def on(m: Any) -> None:
            v = orjson.loads(m.value())
            w = (v["user"], v["start"])
            emitted[w] += 1
            got[w] = max(got.get(w, 0), v["count"])
            if v["end"] != v["start"] + size or m.key() != f"{v['user']}@{v['start']}".encode():
                wrong.append((m.key(), v))

        self.report.checked["window results"] = self.cluster.read_topic(self.topics["windows"], on)
        self.report.checked["windows expected"] = len(expected)
        # sentinel windows never close (nothing comes after them); one emitted anyway (closed
        # on idleness, say) must still be right
        for i in range(inputs.n, inputs.total):
            ts = inputs.ts[i]
            w = (f"u{inputs.user[i]}", ts - ts % size)
            if w in emitted:
                expected[w] += 1
        missing = [w for w in expected if w not in emitted]
        dup_emits = sum(c - 1 for c in emitted.values() if c > 1)
        unknown = [w for w in emitted if w not in expected]
        low = [(w, got[w], c) for w, c in expected.items() if w in got and got[w] < c]
        high = [(w, got[w], c) for w, c in expected.items() if w in got and got[w] > c]
        self.report.losses["windows-missing"] += len(missing)
        self.report.losses["windows-undercount"] += len(low)
        self.report.duplicates["windows-emitted-twice"] += dup_emits
        self.report.duplicates["windows-overcount"] += len(high)
        self.report.wrong["windows"] += len(unknown) + len(wrong)
        if self.report.late:
            self.report.notes.append(
                f"windows: {self.report.late} records arrived after their window had closed "
                f"(skew up to {self.report.max_skew_ms} ms > grace {self.cfg.grace_ms} ms); "
                "they are dropped by design and the windows were checked without them")
        if missing:
            self._problem(f"windows: {len(missing)} of {len(expected)} windows never emitted, "
                          f"e.g. {missing[:5]}", True)
        if low:
            self._problem(f"windows: {len(low)} windows counted short, e.g. (window, got, want) "
                          f"{low[:5]}", True)
        if dup_emits:
            self._problem(f"windows: {dup_emits} final results emitted more than once", False)
        if high:
            self._problem(f"windows: {len(high)} windows over-counted, e.g. {high[:5]}", False)
        if unknown or wrong:
            self.report.problems.append(f"windows: {len(unknown)} results for windows without "
                                        f"input, {len(wrong)} malformed, e.g. "
                                        f"{unknown[:3]} {wrong[:3]}")

    def check_open_transactions(self) -> None:
        """Every partition's last stable offset equals its high watermark: nothing open."""
        n = 0
        for topic in self.cluster.app_topics(self.topics["app"]):
            lso = self.cluster.end_offsets(topic, committed_only=True)
            hw = self.cluster.end_offsets(topic, committed_only=False)
            n += len(hw)
            for p in sorted(hw):
                if lso.get(p) != hw[p]:
                    self.report.open_transactions.append(f"{topic}[{p}] LSO {lso.get(p)} < "
                                                         f"high watermark {hw[p]}")
        self.report.checked["partitions with LSO = high watermark"] = (
            n - len(self.report.open_transactions))
        if self.report.open_transactions:
            self.report.problems.append(f"open transactions: {self.report.open_transactions}")
