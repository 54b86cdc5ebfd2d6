"""Chaos verification harness: seeded input, a three-branch topology, a fleet of worker
processes, a killer, and a verifier that recomputes every output from the input.

The shape follows Kafka's own EOS system tests (DESIGN.md, "Testing tiers"; notes/peers.md):

* **Input**: ``records`` seeded records ``{"id", "user", "amount", "ts"}`` produced at a fixed
  pace into a topic of ``partitions`` partitions (idempotent producer, so the input itself has
  no duplicates). Event time advances with the pace plus a seeded jitter, so windows close
  while the workers are being killed.
* **Topology** (:data:`TOPOLOGY_MODULE`, written to the work directory; topics and the
  guarantee come from environment variables): one processor with three branches: a ``map``
  to an output topic; a ``group_by`` (repartition) with a running sum per user
  (``aggregate``) whose updates go to an output topic; and a tumbling-window count per user
  with final results (``window(...).count().final()``), when ``streamflow.Tumbling`` exists.
* **Fleet**: ``workers`` processes ``python -m streamflow run MODULE --processor chaos
  --worker-id I``, each with its own state directory (as separate pods would have).
* **Killer**: a seeded schedule of SIGKILLs at random moments on random workers (restarted
  after a random delay), plus rolling SIGTERM restarts (every worker in turn), and optionally
  pauses: SIGSTOP past the session timeout, then SIGCONT (a zombie that must be fenced).
  Workers that exit on their own are restarted and reported as crashes.
* **Drain**: once the schedule is done, wait until the group has committed everything; then
  produce one *sentinel* record per user far ahead in event time so that every window closes;
  drain again and stop the workers with SIGTERM.
* **Verifier**: reads every output partition with ``isolation.level=read_committed`` and
  checks each input is in the map output exactly once; the repartition topic holds each input
  exactly once, per user in the order of its input partition; the aggregate updates of each
  user are exactly the running sums over that user's records in repartition order (``n``,
  ``sum`` and the ``last`` id of each update); every window's final result equals the
  recomputation, emitted once (records the window step had to drop as late are found by
  replaying each repartition partition's stream time; none when the grace exceeds the skew
  between input partitions, reported as ``late`` and ``max_skew``); and no transaction is
  left open (on every partition of every topic, the last stable offset equals the high
  watermark). Under ``at_least_once`` the same checks count duplicates and over-counts
  instead, and only losses fail.

Everything random (records, kill times, victims, delays) comes from ``random.Random(seed)``.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[2]
PROCESSOR = "chaos"
MODULE_NAME = "chaos_topology"
OFFSET_BEGINNING = -2


def windows_available() -> bool:
    """True when this streamflow has event-time windows (``streamflow.Tumbling``)."""
    import streamflow

    return hasattr(streamflow, "Tumbling")


# --------------------------------------------------------------------------------------------
# the topology under test
# --------------------------------------------------------------------------------------------
TOPOLOGY_MODULE = '''
"""Chaos topology (written by tests/chaos/harness.py): map, repartition + running sum per
user, tumbling-window count per user with final results."""
import os

import streamflow as sf

E = os.environ
topology = sf.Topology(E["CHAOS_APP"])
source = topology.topic(E["CHAOS_IN"], key=sf.String(), value=sf.Json(), external=True)
mapped = topology.topic(E["CHAOS_MAP"], key=sf.String(), value=sf.Json())
sums = topology.topic(E["CHAOS_SUMS"], key=sf.String(), value=sf.Json())
chaos = topology.processor("chaos", guarantee=E["CHAOS_GUARANTEE"])

stream = chaos.stream(source, name="in")

# 1. stateless: one output record per input record
stream.map(lambda v: {"id": v["id"], "user": v["user"], "double": 2 * v["amount"]},
           name="double").to(mapped)

# 2. repartition by user, running sum; every update carries the id that produced it
by_user = stream.group_by(lambda v: v["user"], name="by-user", key_serde=sf.String())


def add(agg, v):
    return {"n": agg["n"] + 1, "sum": agg["sum"] + v["amount"], "last": v["id"]}


(by_user.aggregate(lambda: {"n": 0, "sum": 0, "last": -1}, add, name="sum")
 .to_stream().to(sums))

# 3. tumbling-window count per user, final results only
WINDOWED = E.get("CHAOS_WINDOWS") == "1" and hasattr(sf, "Tumbling")
if WINDOWED:
    windows = topology.topic(E["CHAOS_WINDOWS_TOPIC"], key=sf.String(), value=sf.Json())

    def plain(r):
        w = r.key
        user = getattr(w, "key", None)
        start = getattr(w, "start", None)
        end = getattr(w, "end", None)
        return (r.with_key(f"{user}@{start}")
                .with_value({"user": user, "start": start, "end": end, "count": r.value}))

    (by_user.window(sf.Tumbling(int(E["CHAOS_WINDOW_MS"]), grace=int(E["CHAOS_GRACE_MS"])))
     .count(name="per-window").final()
     .map_record(plain, name="plain").to(windows))
'''


# --------------------------------------------------------------------------------------------
# configuration and input
# --------------------------------------------------------------------------------------------
@dataclass
class ChaosConfig:
    """One chaos run. Times are seconds unless named ``_ms``."""

    bootstrap: str
    seed: int
    guarantee: str = "exactly_once"
    records: int = 200_000
    partitions: int = 6
    users: int = 500
    rate: float = 2500.0  # input records per second; event time advances at the same pace
    jitter_ms: int = 1000  # event-time jitter (+/-) around the paced timestamp
    window_ms: int = 10_000
    grace_ms: int = 60_000  # bigger than the jitter plus the skew between input partitions
    windows: bool = True  # run the windowed branch when streamflow has windows
    workers: int = 3
    kills: int = 10
    sigterm_rounds: int = 1
    pauses: int = 0  # SIGSTOP a worker past its session timeout, then SIGCONT: a zombie
    pause_s: tuple[float, float] = (12.0, 25.0)  # > session timeout, < transaction timeout
    warmup_s: float = 5.0  # no kill before this
    restart_delay_s: tuple[float, float] = (0.0, 3.0)
    crash_restart_delay_s: float = 1.0
    stop_timeout_s: float = 60.0  # SIGTERM to exit
    drain_timeout_s: float = 300.0
    worker_env: dict[str, str] = field(default_factory=dict)  # e.g. STREAMFLOW_CONSUMER_*
    workdir: Path | None = None
    keep_topics: bool = False
    log: Callable[[str], None] = print

    @property
    def production_s(self) -> float:
        """How long producing the input takes at ``rate``."""
        return self.records / self.rate


class Inputs:
    """The seeded input: ``records`` regular records, then one sentinel per user whose event
    time is far enough ahead to close every window of the regular records."""

    def __init__(self, cfg: ChaosConfig, t0: int) -> None:
        rng = random.Random(f"{cfg.seed}/input")
        self.t0 = t0
        self.n = cfg.records
        self.users = cfg.users
        n = cfg.records
        self.user = array("l", (rng.randrange(cfg.users) for _ in range(n)))
        self.amount = array("l", (rng.randint(1, 1000) for _ in range(n)))
        step = 1000.0 / cfg.rate
        jit = cfg.jitter_ms
        self.ts = array("q", (t0 + int(i * step) + rng.randint(-jit, jit) for i in range(n)))
        last = max(self.ts) if n else t0
        sentinel_ts = last + cfg.grace_ms + 2 * cfg.window_ms + jit
        for u in range(cfg.users):
            self.user.append(u)
            self.amount.append(rng.randint(1, 1000))
            self.ts.append(sentinel_ts + u)
        self.total = len(self.user)

    def value(self, i: int) -> dict[str, Any]:
        return {"id": i, "user": f"u{self.user[i]}", "amount": self.amount[i], "ts": self.ts[i]}

    def is_sentinel(self, i: int) -> bool:
        return i >= self.n


# --------------------------------------------------------------------------------------------
# Kafka helpers
# --------------------------------------------------------------------------------------------
_ADMINS: dict[str, Any] = {}


def admin_client(bootstrap: str) -> Any:
    """One AdminClient per cluster for the whole process."""
    from confluent_kafka.admin import AdminClient

    if bootstrap not in _ADMINS:
        _ADMINS[bootstrap] = AdminClient({"bootstrap.servers": bootstrap})
    return _ADMINS[bootstrap]


def create_topics(bootstrap: str, names: Iterable[str], partitions: int) -> None:
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    admin = admin_client(bootstrap)
    futs = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1)
                                for n in names], operation_timeout=30)
    for fut in futs.values():
        fut.result(timeout=60)
    deadline = time.monotonic() + 30
    names = list(names)
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=10)
        if all(n in md.topics and len(md.topics[n].partitions) == partitions for n in names):
            return
        time.sleep(0.2)
    raise RuntimeError(f"topics {names} did not appear")


def app_topics(bootstrap: str, app: str, extra: Iterable[str]) -> list[str]:
    """The topics of one run: the given ones plus internal ones named after the app."""
    md = admin_client(bootstrap).list_topics(timeout=15)
    extra = set(extra)
    return sorted(t for t in md.topics
                  if t in extra or t.startswith((f"{app}-", f"{app}.")))


def delete_topics(bootstrap: str, names: list[str]) -> None:
    if not names:
        return
    admin = admin_client(bootstrap)
    for fut in admin.delete_topics(names, operation_timeout=30).values():
        with contextlib.suppress(KafkaException):
            fut.result(timeout=60)


def delete_group(bootstrap: str, group: str) -> None:
    admin = admin_client(bootstrap)
    with contextlib.suppress(Exception):
        for fut in admin.delete_consumer_groups([group], request_timeout=15).values():
            fut.result(timeout=30)


def partitions_of(bootstrap: str, topic: str) -> list[int]:
    md = admin_client(bootstrap).list_topics(topic, timeout=15)
    return sorted(md.topics[topic].partitions)


def end_offsets(bootstrap: str, topic: str, committed_only: bool) -> dict[int, int]:
    """Per partition: the last stable offset (``committed_only``) or the high watermark."""
    from confluent_kafka import IsolationLevel
    from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

    admin = admin_client(bootstrap)
    level = IsolationLevel.READ_COMMITTED if committed_only else IsolationLevel.READ_UNCOMMITTED
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    req = {TopicPartition(topic, p): latest for p in partitions_of(bootstrap, topic)}
    out = {}
    for tp, fut in admin.list_offsets(req, isolation_level=level, request_timeout=30).items():
        out[tp.partition] = fut.result(timeout=60).offset
    return out


def read_partitions(bootstrap: str, topic: str, on_message: Callable[[Any], None], *,
                    starts: dict[int, int] | None = None, timeout: float = 300.0) -> int:
    """Read every partition of ``topic`` (read_committed) from ``starts`` (default: the
    beginning) to its end, calling ``on_message`` in offset order per partition; return how
    many records were read."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"chaos-verify-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "fetch.max.bytes": 64 * 1024 * 1024,
        "fetch.wait.max.ms": 10,  # the end of a partition shows up at once
    })
    try:
        parts = partitions_of(bootstrap, topic)
        starts = starts or {}
        c.assign([TopicPartition(topic, p, starts.get(p, OFFSET_BEGINNING)) for p in parts])
        pending = set(parts)
        n = 0
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: partitions {sorted(pending)} never ended")
            for m in c.consume(10_000, 0.1):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(m.partition())
                        continue
                    raise KafkaException(err)
                on_message(m)
                n += 1
        return n
    finally:
        c.close()


# --------------------------------------------------------------------------------------------
# input producer
# --------------------------------------------------------------------------------------------
class InputProducer(threading.Thread):
    """Produces records ``[start, stop)`` of the input, paced at ``rate`` per second
    (``rate=0``: as fast as possible). Idempotent, so retries never duplicate input."""

    def __init__(self, bootstrap: str, topic: str, inputs: Inputs, start: int, stop: int,
                 rate: float) -> None:
        super().__init__(name="chaos-producer", daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.inputs = inputs
        self.range = (start, stop)
        self.rate = rate
        self.produced = 0
        self.errors: list[str] = []
        self.error: BaseException | None = None
        self.finished_at: float | None = None
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:
            self.error = e

    def _run(self) -> None:
        p = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True,
                      "acks": "all", "linger.ms": 5, "partitioner": "murmur2_random"})

        def cb(err: Any, _msg: Any) -> None:
            if err is not None:
                self.errors.append(str(err))

        inputs = self.inputs
        start, stop = self.range
        began = time.monotonic()
        i = start
        while i < stop and not self._halt.is_set():
            if self.rate > 0:
                due = min(stop, start + int((time.monotonic() - began) * self.rate) + 1)
            else:
                due = stop
            while i < due:
                v = inputs.value(i)
                try:
                    p.produce(self.topic, orjson.dumps(v), str(i).encode(),
                              timestamp=v["ts"], on_delivery=cb)
                except BufferError:
                    p.poll(0.05)
                    continue
                i += 1
                self.produced += 1
                if i % 5000 == 0:
                    p.poll(0)
            p.poll(0)
            if self.rate > 0 and i < stop:
                time.sleep(0.01)
        if p.flush(120) != 0:
            self.errors.append("input records not acknowledged within 120s")
        self.finished_at = time.monotonic()


# --------------------------------------------------------------------------------------------
# the fleet of workers
# --------------------------------------------------------------------------------------------
class WorkerProcess:
    """One ``streamflow run ... --worker-id I`` process, restarted as needed; its output is
    appended to ``worker-I.log`` with a banner per start."""

    def __init__(self, index: int, module: str, cwd: Path, env: dict[str, str]) -> None:
        self.index = index
        self.argv = [sys.executable, "-m", "streamflow", "run", module, "--processor", PROCESSOR,
                     "--worker-id", str(index)]
        self.cwd = cwd
        self.env = env
        self.log_path = cwd / f"worker-{index}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.started_at = 0.0
        self.restart_at: float | None = None  # when to start again while down
        self.resume_at: float | None = None  # when to SIGCONT while stopped
        self.expected_exit = False

    def start(self, why: str) -> None:
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== chaos: start #{self.starts} of worker {self.index} ({why}) at "
                      f"{time.strftime('%H:%M:%S')} =====\n".encode())
            self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.started_at = time.monotonic()
        self.restart_at = None
        self.expected_exit = False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        """Running and past start-up: it logged "processor ... started", so its SIGTERM
        handler is installed. (A SIGTERM a moment after the spawn lands while Python is
        still importing and kills it with the default handler: exit -15, not a clean stop.)"""
        if not self.alive():
            return False
        text = self.log_path.read_bytes()
        since = text.rfind(f"===== chaos: start #{self.starts} ".encode())
        return since >= 0 and b"streamflow.worker: processor " in text[since:]

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.expected_exit = True
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


@dataclass
class Event:
    """One action of the killer's schedule (``at``: seconds after the chaos phase starts)."""

    at: float
    kind: str  # "kill", "rolling" or "pause"
    worker: int = -1
    delay: float = 0.0  # restart delay after a kill, pause length
    pauses: tuple[float, ...] = ()  # rolling: seconds between one worker's restart and the next


def plan_schedule(cfg: ChaosConfig, rng: random.Random) -> list[Event]:
    """Kills spread over the production phase at random moments, and ``sigterm_rounds``
    rolling restarts at random moments in between."""
    # kills no closer than ~9 s on average (a crashed member is noticed after the 10 s session
    # timeout), a rolling restart takes ~15 s
    span = max(cfg.production_s - cfg.warmup_s, 9.0 * cfg.kills + 15.0 * cfg.sigterm_rounds,
               1.0)
    events = []
    slot = span / max(1, cfg.kills)
    for k in range(cfg.kills):
        at = cfg.warmup_s + slot * (k + rng.uniform(0.1, 0.9))
        events.append(Event(at, "kill", rng.randrange(cfg.workers),
                            rng.uniform(*cfg.restart_delay_s)))
    for _ in range(cfg.sigterm_rounds):
        at = cfg.warmup_s + rng.uniform(0.2, 0.8) * span
        events.append(Event(at, "rolling", pauses=tuple(rng.uniform(2.0, 5.0)
                                                        for _ in range(cfg.workers))))
    for _ in range(cfg.pauses):
        at = cfg.warmup_s + rng.uniform(0.05, 0.95) * span
        events.append(Event(at, "pause", rng.randrange(cfg.workers), rng.uniform(*cfg.pause_s)))
    return sorted(events, key=lambda e: e.at)


class Fleet:
    """The worker processes, a monitor that restarts crashed ones, and the killer's actions."""

    def __init__(self, cfg: ChaosConfig, module: str, workdir: Path, env: dict[str, str]
                 ) -> None:
        self.cfg = cfg
        self.workers = []
        for i in range(cfg.workers):
            wenv = {**env, "STREAMFLOW_STATE_DIR": str(workdir / f"state-{i}")}
            self.workers.append(WorkerProcess(i, module, workdir, wenv))
        self.kills = 0
        self.sigterms = 0
        self.pauses = 0
        self.crashes: list[str] = []
        self.unclean_stops: list[str] = []
        self.log = cfg.log
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def start_all(self) -> None:
        for w in self.workers:
            w.start("initial")

    def monitor(self) -> None:
        """Restart workers that are due, and notice ones that exited on their own."""
        now = time.monotonic()
        for w in self.workers:
            if w.resume_at is not None and now >= w.resume_at:
                w.resume_at = None
                if w.alive():
                    assert w.proc is not None
                    w.proc.send_signal(signal.SIGCONT)
                    self.log(f"[{self.elapsed():6.1f}s] SIGCONT worker {w.index}")
            # a worker we signalled is handled by whoever signalled it
            if w.proc is not None and not w.expected_exit and w.proc.poll() is not None:
                rc = w.proc.returncode
                msg = (f"worker {w.index} exited on its own with {rc} after "
                       f"{now - w.started_at:.1f}s (start #{w.starts})")
                self.crashes.append(msg + "\n" + w.log_tail(15))
                self.log(f"[{self.elapsed():6.1f}s] CRASH: {msg}")
                w.restart_at = now + self.cfg.crash_restart_delay_s
                w.proc = None
            if w.proc is None and w.restart_at is not None and now >= w.restart_at:
                w.start("restart")

    def wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self.monitor()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.05, left))

    def kill(self, event: Event) -> None:
        order = [(event.worker + k) % len(self.workers) for k in range(len(self.workers))]
        while True:
            self.monitor()
            victim = next((self.workers[i] for i in order if self.workers[i].alive()), None)
            if victim is not None:
                break
            time.sleep(0.05)
        assert victim.proc is not None
        victim.resume_at = None
        victim.send(signal.SIGKILL)
        victim.proc.wait(30)
        victim.proc = None
        victim.restart_at = time.monotonic() + event.delay
        self.kills += 1
        self.log(f"[{self.elapsed():6.1f}s] SIGKILL worker {victim.index} "
                 f"(up {time.monotonic() - victim.started_at:.1f}s); restart in {event.delay:.1f}s")

    def terminate(self, w: WorkerProcess, why: str) -> int | None:
        """SIGTERM ``w`` and wait for its exit (SIGKILL after ``stop_timeout_s``)."""
        if not w.alive():
            return None
        assert w.proc is not None
        began = time.monotonic()
        w.send(signal.SIGTERM)
        deadline = began + self.cfg.stop_timeout_s
        while w.proc.poll() is None and time.monotonic() < deadline:
            self.wait(0.05)
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait(30)
            self.unclean_stops.append(f"worker {w.index} ({why}) ignored SIGTERM for "
                                      f"{self.cfg.stop_timeout_s}s; killed\n{w.log_tail(15)}")
        rc = w.proc.returncode
        if rc != 0 and rc != -signal.SIGKILL:
            self.unclean_stops.append(f"worker {w.index} ({why}) exited with {rc} on SIGTERM\n"
                                      f"{w.log_tail(15)}")
        self.log(f"[{self.elapsed():6.1f}s] SIGTERM worker {w.index} ({why}): exit {rc} after "
                 f"{time.monotonic() - began:.1f}s")
        w.proc = None
        return rc

    def pause(self, event: Event) -> None:
        """SIGSTOP a worker; the monitor sends SIGCONT ``event.delay`` seconds later."""
        order = [(event.worker + k) % len(self.workers) for k in range(len(self.workers))]
        victim = next((self.workers[i] for i in order
                       if self.workers[i].alive() and self.workers[i].resume_at is None), None)
        if victim is None:
            return
        assert victim.proc is not None
        victim.proc.send_signal(signal.SIGSTOP)
        victim.resume_at = time.monotonic() + event.delay
        self.pauses += 1
        self.log(f"[{self.elapsed():6.1f}s] SIGSTOP worker {victim.index} for {event.delay:.1f}s")

    def rolling(self, event: Event) -> None:
        self.log(f"[{self.elapsed():6.1f}s] rolling restart of {len(self.workers)} workers")
        for w, pause in zip(self.workers, event.pauses, strict=False):
            # a worker just killed (restart pending), still starting, or paused gets its
            # turn once it is back and running
            deadline = time.monotonic() + 30
            while not (w.ready() and w.resume_at is None) and time.monotonic() < deadline:
                self.wait(0.2)
            if w.ready() and w.resume_at is None:  # a stopped worker would not hear SIGTERM
                self.terminate(w, "rolling restart")
                self.sigterms += 1
                w.start("rolling restart")
            self.wait(pause)

    def stop_all(self) -> None:
        """SIGTERM every worker at once and wait for them all (no restarts)."""
        live = [w for w in self.workers if w.alive()]
        began = time.monotonic()
        for w in live:
            w.send(signal.SIGTERM)
        for w in live:
            assert w.proc is not None
            try:
                rc = w.proc.wait(max(0.1, began + self.cfg.stop_timeout_s - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                rc = w.proc.wait(30)
                self.unclean_stops.append(f"worker {w.index} (final stop) ignored SIGTERM for "
                                          f"{self.cfg.stop_timeout_s}s; killed\n{w.log_tail(15)}")
            else:
                if rc != 0:
                    self.unclean_stops.append(f"worker {w.index} (final stop) exited with {rc} "
                                              f"on SIGTERM\n{w.log_tail(15)}")
            self.log(f"[{self.elapsed():6.1f}s] SIGTERM worker {w.index} (final stop): exit "
                     f"{rc} after {time.monotonic() - began:.1f}s")
            w.proc = None
        for w in self.workers:
            w.restart_at = None

    def kill_all(self) -> None:
        for w in self.workers:
            if w.alive():
                assert w.proc is not None
                w.send(signal.SIGKILL)
                w.proc.wait(30)


# --------------------------------------------------------------------------------------------
# verification
# --------------------------------------------------------------------------------------------
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


class Verifier:
    """Recomputes every output from the seeded input and compares (read_committed)."""

    def __init__(self, cfg: ChaosConfig, inputs: Inputs, topics: dict[str, str],
                 report: Report) -> None:
        self.cfg = cfg
        self.inputs = inputs
        self.topics = topics
        self.report = report
        self.eos = cfg.guarantee == "exactly_once"
        self.bootstrap = cfg.bootstrap
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

        self.report.checked["input records"] = read_partitions(self.bootstrap,
                                                               self.topics["in"], on)
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

        self.report.checked["map outputs"] = read_partitions(self.bootstrap,
                                                             self.topics["map"], on)
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

        self.report.checked["repartitioned"] = read_partitions(
            self.bootstrap, self.topics["repartition"], on)
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

        self.report.checked["sum updates"] = read_partitions(self.bootstrap,
                                                             self.topics["sums"], on)
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

        self.report.checked["window results"] = read_partitions(self.bootstrap,
                                                                self.topics["windows"], on)
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
        for topic in app_topics(self.bootstrap, self.topics["app"], self.topics.values()):
            lso = end_offsets(self.bootstrap, topic, committed_only=True)
            hw = end_offsets(self.bootstrap, topic, committed_only=False)
            n += len(hw)
            for p in sorted(hw):
                if lso.get(p) != hw[p]:
                    self.report.open_transactions.append(f"{topic}[{p}] LSO {lso.get(p)} < "
                                                         f"high watermark {hw[p]}")
        self.report.checked["partitions with LSO = high watermark"] = (
            n - len(self.report.open_transactions))
        if self.report.open_transactions:
            self.report.problems.append(f"open transactions: {self.report.open_transactions}")


# --------------------------------------------------------------------------------------------
# draining: has the group processed everything?
# --------------------------------------------------------------------------------------------
def group_caught_up(bootstrap: str, group: str, topics: list[str]) -> bool:
    """True when the group's committed offsets (stable ones, as read_committed sees them)
    leave no record unread in ``topics``."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": "read_committed", "fetch.wait.max.ms": 10})
    try:
        tps = [TopicPartition(t, p) for t in topics for p in partitions_of(bootstrap, t)]
        committed = c.committed(tps, timeout=15)
        starts = {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                  for tp in committed}
        c.assign([TopicPartition(t, p, o) for (t, p), o in starts.items()])
        pending = set(starts)
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            for m in c.consume(500, 0.1):
                err = m.error()
                if err is None:
                    return False  # a record past the committed offset
                if err.code() == KafkaError._PARTITION_EOF:
                    pending.discard((m.topic(), m.partition()))
        return not pending
    except KafkaException:
        return False
    finally:
        c.close()


def wait_caught_up(cfg: ChaosConfig, fleet: Fleet, group: str, topics: list[str],
                   expect_input: int, input_topic: str) -> float:
    """Wait (restarting crashed workers) until the group has committed everything."""
    began = time.monotonic()
    deadline = began + cfg.drain_timeout_s
    streak = 0
    while time.monotonic() < deadline:
        fleet.wait(1.0)
        hw = end_offsets(cfg.bootstrap, input_topic, committed_only=False)
        if sum(hw.values()) < expect_input:
            continue
        if group_caught_up(cfg.bootstrap, group, topics):
            streak += 1
            if streak >= 2:
                return time.monotonic() - began
        else:
            streak = 0
    raise TimeoutError(f"the workers did not catch up within {cfg.drain_timeout_s}s")


# --------------------------------------------------------------------------------------------
# a run
# --------------------------------------------------------------------------------------------
def run(cfg: ChaosConfig) -> Report:
    """Run one chaos experiment and return its report (never raises on a verification
    failure; raises on an infrastructure failure such as the drain timing out)."""
    import tempfile

    started = time.monotonic()
    log = cfg.log
    windows = cfg.windows and windows_available()
    workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix=f"chaos-{cfg.seed}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    app = f"chaos-{cfg.seed}-{uuid.uuid4().hex[:6]}"
    topics = {"app": app, "in": f"{app}.in", "map": f"{app}.mapped", "sums": f"{app}.sums",
              "repartition": f"{app}-{PROCESSOR}-by-user-repartition"}
    if windows:
        topics["windows"] = f"{app}.windows"
    group = f"{app}.{PROCESSOR}"
    log(f"chaos: seed={cfg.seed} guarantee={cfg.guarantee} records={cfg.records} "
        f"partitions={cfg.partitions} workers={cfg.workers} kills={cfg.kills} "
        f"sigterm_rounds={cfg.sigterm_rounds} rate={cfg.rate:.0f}/s windows="
        f"{'on' if windows else 'OFF (streamflow has no Tumbling)'} app={app} dir={workdir}")
    t0 = int(time.time() * 1000)
    t0 -= t0 % cfg.window_ms
    gen = time.monotonic()
    inputs = Inputs(cfg, t0)
    report = Report(cfg.guarantee, cfg.seed, cfg.records, inputs.total - inputs.n,
                    windows_checked=windows, workdir=str(workdir))
    report.timings["generate"] = time.monotonic() - gen
    (workdir / f"{MODULE_NAME}.py").write_text(TOPOLOGY_MODULE)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(workdir), str(ROOT)]),
        "STREAMFLOW_BOOTSTRAP_SERVERS": cfg.bootstrap,
        "STREAMFLOW_LOG_LEVEL": "INFO",
        "CHAOS_APP": app, "CHAOS_IN": topics["in"], "CHAOS_MAP": topics["map"],
        "CHAOS_SUMS": topics["sums"], "CHAOS_GUARANTEE": cfg.guarantee,
        "CHAOS_WINDOWS": "1" if windows else "0",
        "CHAOS_WINDOWS_TOPIC": topics.get("windows", ""),
        "CHAOS_WINDOW_MS": str(cfg.window_ms), "CHAOS_GRACE_MS": str(cfg.grace_ms),
        **cfg.worker_env,
    }
    env.pop("STREAMFLOW_CONFIG", None)
    user_topics = [t for k, t in topics.items() if k not in ("app", "repartition")]
    create_topics(cfg.bootstrap, user_topics, cfg.partitions)
    fleet = Fleet(cfg, MODULE_NAME, workdir, env)
    try:
        _chaos(cfg, fleet, inputs, topics, group, report)
        verify = time.monotonic()
        try:
            Verifier(cfg, inputs, topics, report).run()
        finally:
            report.timings["verify"] = time.monotonic() - verify
    finally:
        fleet.kill_all()
        if not cfg.keep_topics:
            delete_topics(cfg.bootstrap, app_topics(cfg.bootstrap, app, user_topics))
            delete_group(cfg.bootstrap, group)
    if report.unclean_stops:
        report.problems.append(f"{len(report.unclean_stops)} workers did not stop cleanly on "
                               "SIGTERM")
    if cfg.kills and report.kills < cfg.kills:
        report.problems.append(f"only {report.kills} of {cfg.kills} kills happened")
    report.wall_s = time.monotonic() - started
    log(report.details())
    return report


def _chaos(cfg: ChaosConfig, fleet: Fleet, inputs: Inputs, topics: dict[str, str], group: str,
           report: Report) -> None:
    """Start the workers, produce the input while the killer works, drain, close every
    window with the sentinels, drain again and stop the workers."""
    log = cfg.log
    rng = random.Random(f"{cfg.seed}/chaos")
    producer: InputProducer | None = None
    try:
        schedule = plan_schedule(cfg, rng)
        log("chaos: schedule " + ", ".join(
            f"{e.at:.1f}s {e.kind}" + (f" w{e.worker} (+{e.delay:.1f}s)" if e.kind == "kill"
                                       else "") for e in schedule))
        fleet.start_all()
        fleet.t0 = time.monotonic()
        producer = InputProducer(cfg.bootstrap, topics["in"], inputs, 0, inputs.n, cfg.rate)
        producer.start()
        for event in schedule:
            fleet.wait(max(0.0, event.at - fleet.elapsed()))
            if event.kind == "kill":
                fleet.kill(event)
            elif event.kind == "pause":
                fleet.pause(event)
            else:
                fleet.rolling(event)
        report.timings["chaos"] = fleet.elapsed()
        while producer.is_alive():
            fleet.wait(0.5)
        if producer.error or producer.errors:
            raise RuntimeError(f"producing the input failed: {producer.error or producer.errors}")
        report.timings["produce"] = (producer.finished_at or 0) - fleet.t0
        sources = [topics["in"], topics["repartition"]]
        report.timings["drain"] = wait_caught_up(cfg, fleet, group, sources, inputs.n,
                                                 topics["in"])
        if "windows" in topics:
            report.checked["windows closed before the sentinels"] = read_partitions(
                cfg.bootstrap, topics["windows"], lambda m: None)
        log(f"[{fleet.elapsed():6.1f}s] caught up; producing {inputs.total - inputs.n} "
            "sentinels to close every window")
        producer = InputProducer(cfg.bootstrap, topics["in"], inputs, inputs.n, inputs.total, 0)
        producer.run()
        if producer.error or producer.errors:
            raise RuntimeError(f"producing sentinels failed: {producer.error or producer.errors}")
        report.timings["drain-sentinels"] = wait_caught_up(cfg, fleet, group, sources,
                                                           inputs.total, topics["in"])
        stop = time.monotonic()
        fleet.stop_all()
        report.timings["stop"] = time.monotonic() - stop
        log(f"[{fleet.elapsed():6.1f}s] all workers stopped; verifying")
    finally:
        if producer is not None:
            producer.stop()
        fleet.kill_all()
        report.kills = fleet.kills
        report.sigterm_restarts = fleet.sigterms
        report.pauses = fleet.pauses
        report.crashes = fleet.crashes
        report.unclean_stops = fleet.unclean_stops
