"""A chaos run's configuration, its seeded input, and the producer that writes it.

Everything random comes from ``random.Random(seed)``: the same seed gives the same records.
"""

from __future__ import annotations

import random
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer


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
