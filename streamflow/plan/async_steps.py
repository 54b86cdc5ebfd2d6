"""Async I/O steps: ``map_async`` and ``flat_map_async`` run a coroutine per record, many at once.

How a batch runs:

1. While the runtime processes a consumed batch, an async step only collects the records that
   reach it, each with the source record it came from (position and original bytes).
2. After the batch, ``flush`` starts every task's collected calls on one event loop
   (``AsyncRunner``: a background thread owned by the processor's task manager in this worker,
   kept across batches, so clients bound to a loop, such as an aiohttp session, keep working).
   At most ``concurrency`` calls of a step are in flight at once in the processor; each attempt
   gets ``timeout`` seconds and a failed one is tried again ``retries`` times, after
   ``backoff * 2**attempt`` seconds.
3. Once all have ended, each step hands its results to the steps after it in input order (per
   partition, so per key). A record whose call failed goes to the error policy (the step's
   ``on_error=``, else the processor's ``on_processing_error``) with its source record, as a
   failure in any other step would: ``skip``, ``dead_letter`` (the original bytes) or ``fail``.
   Chained async steps repeat 2 and 3 until none has work left.

Only then is the batch processed: offsets are committed past a record, and an exactly-once
transaction holding its results commits, only after its call ended. A crash or a kill loses no
in-flight record (it is processed again after the restart), and under exactly-once nothing is
duplicated. Shutdown and rebalances happen between batches, so they find no work in flight;
work still in flight when the engine closes after a failure is cancelled, uncommitted.

Metrics: each step's calls started, in flight, attempts retried and timed out, and calls failed
(``StepCounts``, kept by the processor's ``AsyncRunner`` in this worker, so they survive
rebalances; ``streamflow.observability.metrics`` reads them on a scrape). Calls are counted per
batch; in-flight, retry and timeout counts per call, beside the call's own coroutine work.

The price is that a batch's calls end before the next batch is taken: the throughput is about
``concurrency / latency`` records per second while batches are full (100 calls of 20 ms: about
5,000 records/s), and a slow call holds up its batch up to ``timeout * (retries + 1)`` plus the
backoffs. A batch's calls must end well within the consumer's ``max.poll.interval.ms``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from streamflow.dsl.nodes import AsyncApply
from streamflow.plan.context import Entry, Step, StepError, TaskContext
from streamflow.plan.wiring import Wiring
from streamflow.record import Headers

log = logging.getLogger("streamflow.async")

CLOSE_WAIT_S = 5.0  # how long closing waits for in-flight calls to be cancelled
Source = tuple[bytes | None, bytes | None, int, Headers | None]
Handle = Callable[[StepError, str | None, int, int | None, Source | None], None]
"""Called for a record whose call (or a step after it) failed: ``(error, topic, partition,
offset, source)``, the source record being ``(key bytes, value bytes, timestamp, headers)``
(None for records a wall-clock punctuation produced)."""


class Call:
    """One record waiting for, or done with, its async call."""

    __slots__ = ("error", "headers", "key", "offset", "result", "source", "timestamp", "topic",
                 "value")

    def __init__(self, key: Any, value: Any, timestamp: int, headers: Headers | None,
                 topic: str | None, offset: int | None, source: Source | None) -> None:
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.headers = headers
        self.topic = topic
        self.offset = offset
        self.source = source
        self.result: Any = None
        self.error: BaseException | None = None


Work = list[tuple["AsyncStep", Call]]
"""The calls of one step (over the processor's tasks) that one flush runs."""


class StepCounts:
    """What one async step did in this worker, over the processor's tasks (for metrics)."""

    __slots__ = ("calls", "failed", "in_flight", "retried", "timed_out")

    def __init__(self) -> None:
        self.calls = 0  # started
        self.in_flight = 0  # started and not ended (waiting for a retry included)
        self.retried = 0  # attempts tried again
        self.timed_out = 0  # attempts that ran out of time
        self.failed = 0  # calls that failed after their last attempt


class AsyncRunner:
    """The event loop of a processor's async steps in one worker, in a background thread.

    Started on first use. ``run`` gives each step's calls to at most ``concurrency`` worker
    coroutines, each taking the next call when its last one ended: that bounds the calls in
    flight per step over all the processor's tasks, without a semaphore or a task per call.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.counts: dict[str, StepCounts] = {}  # by step name

    def counts_of(self, step: str) -> StepCounts:
        """The counts of ``step`` (made on first use)."""
        counts = self.counts.get(step)
        if counts is None:
            counts = self.counts[step] = StepCounts()
        return counts

    def run(self, steps: list[tuple[int, Work]]) -> None:
        """Run every step's calls (``(concurrency, calls)``); return when all have ended."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=loop.run_forever, daemon=True,
                                            name=f"streamflow-async-{self.name}")
            self._thread.start()
        asyncio.run_coroutine_threadsafe(_run(steps), loop).result()

    def close(self) -> None:
        """Cancel what is still in flight, stop the loop and its thread.

        A coroutine blocking the loop (a blocking call inside ``async def``) is left behind in
        the daemon thread after ``CLOSE_WAIT_S``, with a warning.
        """
        loop, self._loop = self._loop, None
        thread, self._thread = self._thread, None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(CLOSE_WAIT_S)
        except Exception as e:  # a blocked loop: do not hang the shutdown on it
            log.warning("async steps of %s: in-flight calls not cancelled (%s: %s)", self.name,
                        type(e).__name__, e)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CLOSE_WAIT_S)
        if not thread.is_alive():
            loop.close()


async def _run(steps: list[tuple[int, Work]]) -> None:
    workers = []
    for concurrency, work in steps:
        calls = iter(work)  # shared by the step's workers: each call is taken once
        workers += [_worker(calls) for _ in range(min(concurrency, len(work)))]
    await asyncio.gather(*workers)


async def _worker(calls: Iterator[tuple[AsyncStep, Call]]) -> None:
    for step, call in calls:
        await step.call(call)


async def _cancel_all() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class AsyncStep:
    """One task's async step: collects records, runs their calls, delivers the results."""

    def __init__(self, node: AsyncApply, nxt: Step, ctx: TaskContext) -> None:
        assert node.fn is not None
        self.name = node.name
        self.fn: Callable[[Any], Any] = node.fn
        self.flat = node.op == "flat_map_async"
        self.concurrency = node.concurrency
        self.timeout = node.timeout
        self.retries = node.retries
        self.backoff = node.backoff
        self.retried = f"{node.name}.retries"  # the task metric counting retried attempts
        self.nxt = nxt
        self.ctx = ctx
        self.pending: list[Call] = []  # collected during the batch
        self.running: list[Call] = []  # started by the flush, delivered after
        self.counts = StepCounts()  # the runner's, once a flush ran this step

    def step(self) -> Step:
        """The step the records reach: it collects them."""
        pending = self.pending
        ctx = self.ctx

        def collect(k: Any, v: Any, ts: int, h: Headers | None) -> None:
            pending.append(Call(k, v, ts, h, ctx.topic, ctx.offset, ctx.source))

        return collect

    def take(self) -> list[Call]:
        """The records collected since the last flush, now running."""
        self.running = list(self.pending)
        self.pending.clear()
        return self.running

    async def call(self, call: Call) -> None:
        """Call the function for ``call``: with its timeout, retried; the outcome in ``call``.

        The worker running it waits out the backoff (its slot stays taken).
        """
        attempt = 0
        counts = self.counts
        counts.in_flight += 1
        try:
            while True:
                try:
                    call.result = await self._attempt(call.value, attempt)
                    return
                except Exception as e:
                    if attempt >= self.retries:
                        if self.retries:
                            e.add_note(f"(after {attempt + 1} attempts)")
                        call.error = e
                        return
                metrics = self.ctx.metrics  # the processing thread waits meanwhile
                metrics[self.retried] = metrics.get(self.retried, 0) + 1
                counts.retried += 1
                await asyncio.sleep(self.backoff * 2 ** attempt)
                attempt += 1
        finally:
            counts.in_flight -= 1

    async def _attempt(self, value: Any, attempt: int) -> Any:
        aw = self.fn(value)
        if not inspect.isawaitable(aw):
            op = "flat_map_async" if self.flat else "map_async"
            msg = (f"{op} needs an async function (async def); {_name(self.fn)} returned "
                   f"{type(aw).__name__}, not an awaitable")
            raise TypeError(msg)
        if self.timeout is None:
            return await aw
        limit = asyncio.timeout(self.timeout)  # cheaper than wait_for: no task per call
        try:
            async with limit:
                return await aw
        except TimeoutError:
            if not limit.expired():
                raise  # the function's own TimeoutError
            self.counts.timed_out += 1
            msg = (f"{_name(self.fn)} gave no result within {self.timeout:g} s "
                   f"(attempt {attempt + 1} of {self.retries + 1})")
            raise TimeoutError(msg) from None

    def deliver(self, handle: Handle) -> None:
        """Pass the results on in input order; failures to ``handle``."""
        calls, self.running = self.running, []
        ctx = self.ctx
        nxt = self.nxt
        name = self.name
        part = ctx.partition
        for c in calls:
            ctx.topic = c.topic  # the record's source, for the steps after this one
            ctx.offset = c.offset
            ctx.source = c.source
            try:
                if c.error is not None:
                    self.counts.failed += 1
                    raise StepError(name, c.error) from c.error
                values: Iterable[Any] = (c.result,)
                if self.flat:
                    try:
                        values = list(c.result)
                    except Exception as e:
                        raise StepError(name, e) from e
                for v in values:
                    nxt(c.key, v, c.timestamp, c.headers)
            except StepError as e:
                handle(e, c.topic, part, c.offset, c.source)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def build_async(w: Wiring, node: AsyncApply) -> Step:
    """An async step: registered with the task, flushed by the runtime after each batch."""
    step = AsyncStep(node, w.downstream(node), w.ctx)
    w.ctx.flushers.append(step)
    return step.step()


def keep_source(entry: Entry, ctx: TaskContext) -> Entry:
    """``entry`` recording the raw source record in ``ctx.source`` (for failed async calls).

    Only tasks with async steps pay for it.
    """
    def entry_(kb: bytes | None, vb: bytes | None, ts: int, h: Headers | None) -> None:
        ctx.source = (kb, vb, ts, h)
        entry(kb, vb, ts, h)

    return entry_


def flush(contexts: Iterable[TaskContext], runner: AsyncRunner, handle: Handle) -> None:
    """Run the calls the tasks' async steps collected, then deliver them in order.

    Results reaching another async step are run in turn, until no step has work left.
    """
    steps = [s for ctx in contexts for s in ctx.flushers]
    while True:
        work: dict[str, tuple[int, Work]] = {}  # by step name: the step over all tasks
        started = []
        for s in steps:
            calls = s.take()
            if calls:
                s.counts = runner.counts_of(s.name)
                s.counts.calls += len(calls)
                started.append(s)
                work.setdefault(s.name, (s.concurrency, []))[1].extend((s, c) for c in calls)
        if not work:
            return
        runner.run(list(work.values()))
        for s in started:
            s.deliver(handle)
