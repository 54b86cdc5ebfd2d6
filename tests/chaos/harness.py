"""Chaos verification harness: seeded input, a three-branch topology, a fleet of worker
processes, a killer, and a verifier that recomputes every output from the input.

The shape follows Kafka's own EOS system tests (DESIGN.md, "Testing tiers"; notes/peers.md):

* **Input** (:mod:`tests.chaos.inputs`): ``records`` seeded records ``{"id", "user",
  "amount", "ts"}`` produced at a fixed pace into a topic of ``partitions`` partitions
  (idempotent producer, so the input itself has no duplicates). Event time advances with the
  pace plus a seeded jitter, so windows close while the workers are being killed.
* **Topology** (:mod:`tests.chaos.topology`, copied to the work directory; topics and the
  guarantee come from environment variables): one processor with three branches: a ``map``
  to an output topic; a ``group_by`` (repartition) with a running sum per user
  (``aggregate``) whose updates go to an output topic; and a tumbling-window count per user
  with final results (``window(...).count().final()``), when ``streamflow.Tumbling`` exists.
* **Fleet and killer** (:mod:`tests.chaos.fleet`): ``workers`` processes ``python -m
  streamflow run MODULE --processor chaos --worker-id I``; a seeded schedule of SIGKILLs,
  rolling SIGTERM restarts and optional pauses (zombies).
* **Drain** (here): once the schedule is done, wait until the group has committed
  everything; then produce one *sentinel* record per user far ahead in event time so that
  every window closes; drain again and stop the workers with SIGTERM.
* **Verifier** (:mod:`tests.chaos.verifier`): recomputes every output from the input
  (read_committed) and checks that no transaction is left open.

Everything random (records, kill times, victims, delays) comes from ``random.Random(seed)``.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streamflow.testing.admin import OFFSET_BEGINNING, TopicAdmin
from tests.chaos.fleet import Fleet, plan_schedule
from tests.chaos.inputs import ChaosConfig, InputProducer, Inputs
from tests.chaos.verifier import Report, Verifier

ROOT = Path(__file__).resolve().parents[2]
PROCESSOR = "chaos"
MODULE_NAME = "chaos_topology"
TOPOLOGY_FILE = Path(__file__).with_name("topology.py")


def windows_available() -> bool:
    """True when this streamflow has event-time windows (``streamflow.Tumbling``)."""
    import streamflow

    return hasattr(streamflow, "Tumbling")


# --------------------------------------------------------------------------------------------
# draining: has the group processed everything?
# --------------------------------------------------------------------------------------------
def group_caught_up(admin: TopicAdmin, group: str, topics: list[str]) -> bool:
    """True when the group's committed offsets (stable ones, as read_committed sees them)
    leave no record unread in ``topics``."""
    c = Consumer({"bootstrap.servers": admin.bootstrap_servers, "group.id": group,
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": "read_committed", "fetch.wait.max.ms": 10})
    try:
        tps = [TopicPartition(t, p) for t in topics for p in admin.partitions(t)]
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


def wait_caught_up(cfg: ChaosConfig, admin: TopicAdmin, fleet: Fleet, group: str,
                   topics: list[str], expect_input: int, input_topic: str) -> float:
    """Wait (restarting crashed workers) until the group has committed everything."""
    began = time.monotonic()
    deadline = began + cfg.drain_timeout_s
    streak = 0
    while time.monotonic() < deadline:
        fleet.wait(1.0)
        hw = admin.end_offsets(input_topic)
        if sum(hw.values()) < expect_input:
            continue
        if group_caught_up(admin, group, topics):
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
    shutil.copyfile(TOPOLOGY_FILE, workdir / f"{MODULE_NAME}.py")
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
    admin = TopicAdmin(cfg.bootstrap)
    admin.create_topics(user_topics, cfg.partitions, replication_factor=1)
    fleet = Fleet(cfg, MODULE_NAME, PROCESSOR, workdir, env)
    try:
        _chaos(cfg, admin, fleet, inputs, topics, group, report)
        verify = time.monotonic()
        try:
            Verifier(cfg, inputs, topics, report, admin).run()
        finally:
            report.timings["verify"] = time.monotonic() - verify
    finally:
        fleet.kill_all()
        if not cfg.keep_topics:
            with contextlib.suppress(KafkaException):
                admin.delete_topics(admin.app_topics(app))
            admin.delete_groups([group])
    if report.unclean_stops:
        report.problems.append(f"{len(report.unclean_stops)} workers did not stop cleanly on "
                               "SIGTERM")
    if cfg.kills and report.kills < cfg.kills:
        report.problems.append(f"only {report.kills} of {cfg.kills} kills happened")
    report.wall_s = time.monotonic() - started
    log(report.details())
    return report


def _chaos(cfg: ChaosConfig, admin: TopicAdmin, fleet: Fleet, inputs: Inputs,
           topics: dict[str, str], group: str, report: Report) -> None:
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
        report.timings["drain"] = wait_caught_up(cfg, admin, fleet, group, sources, inputs.n,
                                                 topics["in"])
        if "windows" in topics:
            report.checked["windows closed before the sentinels"] = admin.read_topic(
                topics["windows"], lambda m: None)
        log(f"[{fleet.elapsed():6.1f}s] caught up; producing {inputs.total - inputs.n} "
            "sentinels to close every window")
        producer = InputProducer(cfg.bootstrap, topics["in"], inputs, inputs.n, inputs.total, 0)
        producer.run()
        if producer.error or producer.errors:
            raise RuntimeError(f"producing sentinels failed: {producer.error or producer.errors}")
        report.timings["drain-sentinels"] = wait_caught_up(cfg, admin, fleet, group, sources,
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
