"""The fleet of worker processes and the killer: each worker is ``python -m streamflow run
MODULE --processor P --worker-id I`` with its own state directory (as separate pods would
have); the killer's seeded schedule SIGKILLs random workers at random moments (restarted after
a random delay), SIGTERM-restarts every worker in turn, and optionally pauses one (SIGSTOP past
its session timeout, then SIGCONT: a zombie that must be fenced). Workers that exit on their
own are restarted and reported as crashes.
"""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.chaos.inputs import ChaosConfig


class WorkerProcess:
    """One ``streamflow run ... --worker-id I`` process, restarted as needed; its output is
    appended to ``worker-I.log`` with a banner per start."""

    def __init__(self, index: int, module: str, processor: str, cwd: Path,
                 env: dict[str, str]) -> None:
        self.index = index
        self.argv = [sys.executable, "-m", "streamflow", "run", module, "--processor", processor,
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

    def __init__(self, cfg: ChaosConfig, module: str, processor: str, workdir: Path,
                 env: dict[str, str]) -> None:
        self.cfg = cfg
        self.workers = []
        for i in range(cfg.workers):
            wenv = {**env, "STREAMFLOW_STATE_DIR": str(workdir / f"state-{i}")}
            self.workers.append(WorkerProcess(i, module, processor, workdir, wenv))
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
