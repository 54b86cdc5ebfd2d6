"""``WorkerStatus``: a snapshot of one worker, the only thing probes (and metrics) read."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WorkerStatus:
    """What a worker reports about itself at one moment.

    >>> s = WorkerStatus(processor="enrich", worker_id="0", last_loop=None)
    >>> s.ready, s.assigned
    (False, ())
    """

    processor: str
    worker_id: str
    last_loop: float | None  # time.monotonic() of the loop's last turn; None before the first
    assigned: tuple[tuple[str, int], ...] = ()
    ready: bool = False  # partitions assigned and their state restored
    restoring: bool = False
    processed: int = 0
    commits: int = 0
    aborts: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    task_metrics: dict[str, int] = field(default_factory=dict)
