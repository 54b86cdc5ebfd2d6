"""Fleet scenarios on the rendered manifests, verified like the chaos runs.

Each scenario renders ``deploy k8s`` for the chaos topology (:mod:`tests.chaos.topology`: a
map, a repartitioned running sum, a tumbling-window count), runs its StatefulSet's pods as
local processes (:mod:`tests.fleet.pods`), changes the fleet while seeded input is produced
(scale, rolling restart, kill -9, two hosts each with ``--workers 2``, a duplicate pod, a kill
-9 during a restore, a restore longer than ``max.poll.interval.ms``), drains, closes every
window with sentinels, stops the pods and hands the outputs to the chaos verifier
(read_committed: no duplicate, no loss, exact sums and window finals, no open transaction).

On top of the verifier it counts ``_FENCED`` log lines (at most one per kill; none in a
rolling restart or a scale change) and, per rolling-restart step, the rebalances the members
that stayed up went through (``assigned`` / ``revoking`` lines) and how the restarted member
restored its state (changes applied; resumed from a checkpoint or rebuilt).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import runpy
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from streamflow.testing.admin import TopicAdmin
from tests.chaos.harness import MODULE_NAME, PROCESSOR, ROOT, TOPOLOGY_FILE, wait_caught_up
from tests.chaos.inputs import ChaosConfig, InputProducer, Inputs
from tests.chaos.verifier import Report, Verifier
from tests.fleet.pods import Pod, PodFleet, render_pods

RESTORED = re.compile(r"restored \S+\[\d+\]: (\d+) changes applied.*checkpoint (\S+)\)")
REBALANCE = re.compile(r"streamflow\.engine: (assigned|revoking|lost) ")


@dataclass
class Step:
    """What one fleet change did to the members that stayed up and to the one that moved."""

    what: str
    seconds: float = 0.0
    others_rebalanced: dict[str, int] = field(default_factory=dict)  # pod -> assign/revoke
    restored_changes: int = 0
    restores: int = 0
    rebuilt: int = 0  # restores that started from no checkpoint

    def line(self) -> str:
        return (f"{self.what}: {self.seconds:.1f}s, rebalance lines of the others "
                f"{sum(self.others_rebalanced.values())} {self.others_rebalanced or ''}, "
                f"restores {self.restores} ({self.rebuilt} without checkpoint, "
                f"{self.restored_changes} changes applied)")


@dataclass
class FleetResult:
    scenario: str
    report: Report
    fenced: dict[str, int] = field(default_factory=dict)
    kills: int = 0
    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    expected_fences: int = 0  # besides one per kill

    @property
    def ok(self) -> bool:
        return self.report.ok and not self.problems

    def summary(self) -> str:
        out = [f"fleet {self.scenario}: {'OK' if self.ok else 'FAILED'} "
               f"fenced={sum(self.fenced.values())} {self.fenced} kills={self.kills}",
               "  " + self.report.summary_line()]
        out += [f"  step {s.line()}" for s in self.steps]
        out += [f"  PROBLEM: {p}" for p in self.problems]
        return "\n".join(out)


Scenario = Callable[["Run"], None]


class Run:
    """One scenario's fleet, input producer and observations."""

    def __init__(self, cfg: ChaosConfig, fleet: PodFleet, result: FleetResult,
                 leave: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.fleet = fleet
        self.result = result
        self.leave = leave

    def start(self, *ordinals: int) -> list[Pod]:
        pods = [self.fleet.pod(i) for i in ordinals]
        for p in pods:
            self.fleet.start(p, "scale up")
        for p in pods:
            self.fleet.wait_ready(p)
        return pods

    def step(self, what: str, moved: Pod | None, action: Callable[[], None]) -> Step:
        """Run ``action`` and record what it did to the other pods and to ``moved``."""
        others = [p for p in self.fleet.pods.values() if p is not moved and p.alive()]
        marks = {p.name: p.log_size() for p in self.fleet.pods.values()}
        began = time.monotonic()
        action()
        # the members that stayed up settle (a rebalance shows within a few heartbeats)
        self.fleet.wait(3.0)
        step = Step(what, time.monotonic() - began)
        for p in others:
            n = len(REBALANCE.findall(p.log_text(marks[p.name])))
            if n:
                step.others_rebalanced[p.name] = n
        if moved is not None:
            for applied, checkpoint in RESTORED.findall(moved.log_text(marks[moved.name])):
                step.restores += 1
                step.restored_changes += int(applied)
                step.rebuilt += checkpoint == "None"
        self.result.steps.append(step)
        self.fleet.log(f"[{self.fleet.elapsed():6.1f}s] {step.line()}")
        return step

    def restart(self, pod: Pod) -> None:
        """A rolling-update step: SIGTERM, the pod comes back with its name, wait ready."""
        self.fleet.terminate(pod, "rolling restart")
        self.fleet.start(pod, "rolling restart")
        self.fleet.wait_ready(pod)


# -- the scenarios ------------------------------------------------------------------------
def scale(run: Run) -> None:
    """1 -> 3 -> 2 replicas while processing; the removed pod leaves the group at once."""
    (first,) = run.start(0)
    run.fleet.wait(run.cfg.warmup_s)
    run.step("scale 1->3", None, lambda: run.start(1, 2))
    run.fleet.wait(run.cfg.warmup_s)
    gone = run.fleet.pods[f"{run.fleet.template.statefulset}-2"]

    def down() -> None:
        run.fleet.terminate(gone, "scale down")
        run.leave(gone.name)  # the operator: streamflow fleet leave ... --instance-id POD
        for p in (first, run.fleet.pods[f"{run.fleet.template.statefulset}-1"]):
            run.fleet.wait_ready(p)

    run.step("scale 3->2", gone, down)


def rolling(run: Run) -> None:
    """Three pods; SIGTERM one at a time, each back (same name) and ready before the next."""
    pods = run.start(0, 1, 2)
    run.fleet.wait(run.cfg.warmup_s)
    for pod in pods:
        run.step(f"rolling restart of {pod.name}", pod, lambda p=pod: run.restart(p))
        run.fleet.wait(2.0)


def kill(run: Run) -> None:
    """Three pods; one is SIGKILLed mid-processing and comes back with its name."""
    pods = run.start(0, 1, 2)
    victims = [random.Random(run.cfg.seed).choice(pods) for _ in range(max(1, run.cfg.kills))]
    for victim in victims:
        run.fleet.wait(run.cfg.warmup_s)

        def kill_and_return(v: Pod = victim) -> None:
            run.fleet.kill(v)
            run.fleet.wait(1.0)
            run.fleet.start(v, "restart after kill -9")
            run.fleet.wait_ready(v)

        run.step(f"kill -9 {victim.name}", victim, kill_and_return)


def hosts(run: Run) -> None:
    """Two "hosts" each running ``--workers 2`` (ids host-a-0/1, host-b-0/1); host-a is
    restarted once."""
    made = []
    for i, host in enumerate(("host-a", "host-b")):
        pod = run.fleet.pod(i, workers=2, name=host,
                            env={"STREAMFLOW_INSTANCE_ID": host, "POD_NAME": ""})
        run.fleet.start(pod, "host up")
        made.append(pod)
    for pod in made:
        run.fleet.wait_ready(pod)
    run.fleet.wait(run.cfg.warmup_s)
    run.step("restart of host-a (--workers 2)", made[0], lambda: run.restart(made[0]))


def duplicate(run: Run) -> None:
    """A second live pod with pod 1's name (another host, its own volume): one of the two
    must stop with exit 5 (Kafka fences the older static member) and not come back, with no
    fencing loop; the processing stays exactly-once."""
    pods = run.start(0, 1, 2)
    run.fleet.wait(run.cfg.warmup_s)
    twin = run.fleet.pod(1, name="twin-of-1")

    def start_twin() -> None:
        run.fleet.start(twin, "duplicate of pod 1")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(5 in p.exits for p in (pods[1], twin)):
            run.fleet.wait(0.2)

    run.step("a duplicate of pod 1 starts", twin, start_twin)
    stopped = [p for p in (pods[1], twin) if 5 in p.exits]
    if len(stopped) != 1:
        run.result.problems.append(f"expected one of pod 1 and its twin to exit 5, got "
                                   f"{[(p.name, p.exits) for p in (pods[1], twin)]}")
        return
    text = stopped[0].log_text()
    if "already in use" not in text or "fenced this static member" not in text:
        run.result.problems.append(f"{stopped[0].name} exited 5 without the clear error:\n"
                                   + text[-2000:])
    run.fleet.crashes = [c for c in run.fleet.crashes if "exited on its own with 5" not in c]
    # the twin's producer fences pod 1's, which answers until its consumer learns of the
    # fence at its next heartbeat (seen: 4 to 5 lines in all, the machine busy): bounded,
    # where a fencing loop goes on for as long as both run (tens of lines a minute)
    run.result.expected_fences = 10
    run.fleet.wait(run.cfg.warmup_s)


# restores slowed down so that they last (restore_max_rate, issue 19 items 3-4)
SLOW_RESTORE = {"STREAMFLOW_RESTORE_MAX_RATE": "1500", "STREAMFLOW_RESTORE_CHUNK_RECORDS": "500"}


def _lose_disk(run: Run, pod: Pod) -> None:
    """SIGTERM ``pod`` and delete its volume, so it comes back with a full restore."""
    run.fleet.terminate(pod, "lose its disk")
    shutil.rmtree(Path(pod.env["STREAMFLOW_STATE_DIR"]), ignore_errors=True)


def kill_restore(run: Run) -> None:
    """A pod that lost its disk is SIGKILLed while it restores, then comes back."""
    pods = [run.fleet.pod(i, env=SLOW_RESTORE) for i in range(3)]
    for p in pods:
        run.fleet.start(p, "start")
    for p in pods:
        run.fleet.wait_ready(p)
    run.fleet.wait(run.cfg.warmup_s * 2)
    victim = pods[1]

    def kill_while_restoring() -> None:
        _lose_disk(run, victim)
        run.fleet.start(victim, "empty volume: full restore")
        deadline = time.monotonic() + 60
        while not victim.probe().get("restoring") and time.monotonic() < deadline:
            run.fleet.wait(0.05)
        if not victim.probe().get("restoring"):
            run.result.problems.append("never saw the pod restoring (restores too quick?)")
        run.fleet.kill(victim)
        run.fleet.wait(1.0)
        run.fleet.start(victim, "restart after kill -9 during the restore")
        run.fleet.wait_ready(victim, timeout=180)

    run.step(f"kill -9 {victim.name} while it restores", victim, kill_while_restoring)


def _restore_seconds(text: str) -> float:
    """From a worker log: first ``assigned`` to the last ``task N restored`` line."""
    from datetime import datetime

    def stamp(line: str) -> float:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()

    lines = text.splitlines()
    first = next((stamp(x) for x in lines if "streamflow.engine: assigned" in x), None)
    last = [stamp(x) for x in lines if re.search(r"streamflow\.tasks: task \d+ restored", x)]
    return (last[-1] - first) if first is not None and last else 0.0


def long_restore(run: Run) -> None:
    """A restore longer than max.poll.interval.ms (set low) keeps the member in the group."""
    poll_ms = 7000
    slow = {**SLOW_RESTORE, "STREAMFLOW_RESTORE_MAX_RATE": "300",
            "STREAMFLOW_STATIC_SESSION_TIMEOUT_MS": "6000",
            "STREAMFLOW_CONSUMER_MAX_POLL_INTERVAL_MS": str(poll_ms)}
    pods = [run.fleet.pod(i, env=slow) for i in range(3)]
    for p in pods:
        run.fleet.start(p, "start")
    for p in pods:
        run.fleet.wait_ready(p)
    run.fleet.wait(run.cfg.warmup_s * 2)
    victim = pods[1]
    mark = victim.log_size()

    def restore() -> None:
        _lose_disk(run, victim)
        run.fleet.start(victim, "empty volume: full restore")
        run.fleet.wait_ready(victim, timeout=300)

    run.step(f"full restore of {victim.name} (> max.poll.interval.ms)", victim, restore)
    text = victim.log_text(mark)
    took = _restore_seconds(text)
    run.fleet.log(f"[{run.fleet.elapsed():6.1f}s] {victim.name} restored in {took:.1f}s "
                  f"(max.poll.interval.ms {poll_ms})")
    if took * 1000 <= poll_ms:
        run.result.problems.append(f"the restore took {took:.1f}s, not longer than "
                                   f"max.poll.interval.ms ({poll_ms} ms): nothing was shown")
    if "streamflow.engine: lost " in text or "MAX_POLL_EXCEEDED" in text:
        run.result.problems.append(f"{victim.name} left the group during its restore:\n"
                                   + text[-2000:])


RESTORES: dict[str, Scenario] = {"kill-restore": kill_restore, "long-restore": long_restore}
SCENARIOS: dict[str, Scenario] = {"scale": scale, "rolling": rolling, "kill": kill,
                                  "hosts": hosts, "duplicate": duplicate, **RESTORES}


# -- a run --------------------------------------------------------------------------------
def run_scenario(cfg: ChaosConfig, name: str, scenario: Scenario | None = None) -> FleetResult:
    """Run one scenario and verify it (never raises on a verification failure)."""
    import tempfile

    log = cfg.log
    workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix=f"fleet-{name}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    app = f"fleet-{name}-{cfg.seed}-{uuid.uuid4().hex[:6]}"
    topics = {"app": app, "in": f"{app}.in", "map": f"{app}.mapped", "sums": f"{app}.sums",
              "windows": f"{app}.windows",
              "repartition": f"{app}-{PROCESSOR}-by-user-repartition"}
    group = f"{app}.{PROCESSOR}"
    t0 = int(time.time() * 1000)
    inputs = Inputs(cfg, t0 - t0 % cfg.window_ms)
    report = Report(cfg.guarantee, cfg.seed, cfg.records, inputs.total - inputs.n,
                    windows_checked=True, workdir=str(workdir))
    result = FleetResult(name, report)
    shutil.copyfile(TOPOLOGY_FILE, workdir / f"{MODULE_NAME}.py")
    chaos_env = {
        "CHAOS_APP": app, "CHAOS_IN": topics["in"], "CHAOS_MAP": topics["map"],
        "CHAOS_SUMS": topics["sums"], "CHAOS_GUARANTEE": cfg.guarantee, "CHAOS_WINDOWS": "1",
        "CHAOS_WINDOWS_TOPIC": topics["windows"], "CHAOS_WINDOW_MS": str(cfg.window_ms),
        "CHAOS_GRACE_MS": str(cfg.grace_ms),
    }
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFLOW_")}
    base_env.update(chaos_env, PYTHONPATH=os.pathsep.join([str(workdir), str(ROOT)]))
    base_env.update(cfg.worker_env)
    saved = dict(os.environ)
    os.environ.update(chaos_env)
    try:
        topology = runpy.run_path(str(TOPOLOGY_FILE))["topology"]
    finally:
        os.environ.clear()
        os.environ.update(saved)
    template = render_pods(topology, MODULE_NAME, cfg.bootstrap, cfg.partitions)[PROCESSOR]
    log(f"fleet {name}: seed={cfg.seed} records={cfg.records} rate={cfg.rate:.0f}/s "
        f"statefulset={template.statefulset} app={app} dir={workdir}")
    admin = TopicAdmin(cfg.bootstrap)
    admin.create_topics([t for k, t in topics.items() if k not in ("app", "repartition")],
                        cfg.partitions, replication_factor=1)
    fleet = PodFleet(template, workdir, base_env, log)

    def leave(instance: str) -> None:
        subprocess.run([*template.command[:3], "fleet", "leave", MODULE_NAME, "-p", PROCESSOR,
                        "--instance-id", instance], env=base_env | template.config_map,
                       check=True, timeout=60, capture_output=True)

    producer: InputProducer | None = None
    try:
        producer = InputProducer(cfg.bootstrap, topics["in"], inputs, 0, inputs.n, cfg.rate)
        fleet.t0 = time.monotonic()
        producer.start()
        (scenario or SCENARIOS[name])(Run(cfg, fleet, result, leave))
        while producer.is_alive():
            fleet.wait(0.5)
        if producer.error or producer.errors:
            raise RuntimeError(f"producing the input failed: {producer.error or producer.errors}")
        sources = [topics["in"], topics["repartition"]]
        wait_caught_up(cfg, admin, fleet, group, sources, inputs.n, topics["in"])  # type: ignore[arg-type]
        producer = InputProducer(cfg.bootstrap, topics["in"], inputs, inputs.n, inputs.total, 0)
        producer.run()
        wait_caught_up(cfg, admin, fleet, group, sources, inputs.total, topics["in"])  # type: ignore[arg-type]
        fleet.stop_all()
        Verifier(cfg, inputs, topics, report, admin).run()
    finally:
        if producer is not None:
            producer.stop()
        fleet.kill_all()
        if not cfg.keep_topics:
            with contextlib.suppress(KafkaException):
                admin.delete_topics(admin.app_topics(app))
            admin.delete_groups([group])
    result.kills = fleet.kills
    result.fenced = {k: v for k, v in fleet.fenced_lines().items() if v}
    _judge(result, fleet)
    log(result.summary())
    return result


def _judge(result: FleetResult, fleet: PodFleet) -> None:
    fenced = sum(result.fenced.values())
    if fenced > result.kills + result.expected_fences:
        result.problems.append(f"{fenced} _FENCED log lines for {result.kills} kills "
                               f"(at most one per kill, plus {result.expected_fences})")
    if fleet.crashes:
        result.problems.append(f"{len(fleet.crashes)} pods exited on their own: "
                               + fleet.crashes[0])
    if fleet.unclean_stops:
        result.problems.append(f"{len(fleet.unclean_stops)} unclean stops: "
                               + fleet.unclean_stops[0])
    if result.scenario == "rolling":
        for step in result.steps:
            if step.others_rebalanced:
                result.problems.append(f"{step.what}: the members that stayed up rebalanced "
                                       f"{step.others_rebalanced}")
            if step.rebuilt:
                result.problems.append(f"{step.what}: {step.rebuilt} stores restored without "
                                       "a checkpoint (a full restore)")


def config_for(bootstrap: str, **kw: Any) -> ChaosConfig:
    """A fleet run's chaos configuration (records, rate, partitions...)."""
    base: dict[str, Any] = {"bootstrap": bootstrap, "seed": random.randrange(1, 1_000_000),
                            "records": 60_000, "rate": 2000.0, "partitions": 6, "kills": 1,
                            "warmup_s": 4.0, "log": lambda s: print(s, flush=True)}
    base.update(kw)
    return ChaosConfig(**base)
