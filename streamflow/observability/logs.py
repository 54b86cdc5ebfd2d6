"""Log set-up: text or JSON lines, and librdkafka's own lines rate-limited.

``setup_logging`` configures the root logger of a ``streamflow`` process (a worker or the
supervisor). With ``fmt="json"`` every line is one JSON object::

    {"time": "2026-11-26T04:01:02.345Z", "level": "WARNING", "logger": "streamflow.errors",
     "message": "skipped record orders[2]@17: ...", "processor": "enrich", "instance": "0",
     "topic": "orders", "partition": 2, "offset": 17}

``processor`` and ``instance`` (the worker id) are the process's; ``topic``, ``partition`` and
``offset`` appear where the line is about one record (passed as ``extra=``).

librdkafka logs through a Python logger (``client_log_conf()`` gives the client settings):
a broker that is down makes it repeat ``FAIL`` and transport errors many times a second, so
lines of one (facility, broker) are let through once per interval, the next one saying how
many were held back::

    >>> limiter = ClientLogLimiter(interval_s=10.0, clock=iter([0.0, 1.0, 2.0, 12.0]).__next__)
    >>> def line(msg):
    ...     rec = logging.LogRecord(CLIENT_LOGGER, logging.ERROR, "", 0, "%s [%s] %s",
    ...                             ("FAIL", "rdkafka#consumer-1", msg), None)
    ...     return rec.getMessage() if limiter.filter(rec) else None
    >>> down = "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused"
    >>> [line(down), line(down), line(down)] == [
    ...     "FAIL [rdkafka#consumer-1] " + down, None, None]
    True
    >>> line(down).endswith("(2 more like this in the last 12s)")
    True
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "CLIENT_LOGGER",
    "ClientLogLimiter",
    "JsonFormatter",
    "client_log_conf",
    "setup_logging",
]

CLIENT_LOGGER = "streamflow.librdkafka"  # streamflow.kafka.client names it too (a test checks)
LOG_FORMATS = ("text", "json")
# fields a log call may pass with extra= that JSON lines carry
RECORD_FIELDS = ("topic", "partition", "offset", "step")
_NOISY = ("httpx", "httpx2", "httpcore", "httpcore2")  # one INFO line per registry request


def setup_logging(level: str, prefix: str, *, fmt: str = "text", processor: str | None = None,
                  instance: str | None = None, client_interval_s: float = 10.0) -> None:
    """Log to stderr: text lines tagged with ``prefix``, or JSON lines (``fmt="json"``).

    ``processor`` and ``instance`` (the worker id) go into every JSON line;
    ``client_interval_s`` is how often one librdkafka line per facility and broker passes.
    """
    if fmt not in LOG_FORMATS:
        msg = f"log format {fmt!r}: use one of {', '.join(LOG_FORMATS)}"
        raise ValueError(msg)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(processor=processor, instance=instance))
    else:
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s %(levelname)-7s [{prefix}] %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        handlers=[handler], force=True)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    client_logger(client_interval_s)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, and the context."""

    def __init__(self, *, processor: str | None = None, instance: str | None = None) -> None:
        super().__init__()
        self.context = {k: v for k, v in (("processor", processor), ("instance", instance))
                        if v is not None}

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        when = datetime.fromtimestamp(record.created, UTC)
        doc: dict[str, Any] = {
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **self.context,
        }
        for name in RECORD_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class ClientLogLimiter(logging.Filter):
    """Lets one line per (facility, broker) pass per interval; the next says how many did not.

    The lines are librdkafka's (``"%s [%s] %s"`` with facility, client name and message),
    whose message starts with the broker (``host:port/id: ...``) when it is about one.
    CRITICAL lines always pass, and so do DEBUG lines (librdkafka's ``debug`` setting asks
    for every one of them).
    """

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.clock = clock
        self._seen: dict[tuple[str, str], list[float]] = {}  # key -> [since, held back]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """True when ``record`` is logged (its message then counts the held-back lines)."""
        if record.levelno >= logging.CRITICAL or record.levelno <= logging.DEBUG:
            return True
        key = line_key(record)
        now = self.clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.interval_s:
                seen[1] += 1
                return False
            self._seen[key] = [now, 0]
        if seen is not None and seen[1]:
            record.msg = f"{record.getMessage()} ({int(seen[1])} more like this in the last " \
                         f"{now - seen[0]:.0f}s)"
            record.args = None
        return True


def line_key(record: logging.LogRecord) -> tuple[str, str]:
    """(facility, broker) of a librdkafka line; the broker is "" when the line names none."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 3:
        facility, message = str(args[0]), str(args[2])
    else:
        facility, message = "", record.getMessage()
    if message.startswith("[thrd:"):  # "[thrd:host:port/id]: host:port/id: ..."
        message = message.partition("]: ")[2]
    head, sep, _ = message.partition(": ")
    broker = head if sep and "/" in head and " " not in head else ""
    return facility, broker


def client_logger(interval_s: float) -> logging.Logger:
    """The logger librdkafka's lines go to, rate-limited at one per key and ``interval_s``."""
    logger = logging.getLogger(CLIENT_LOGGER)
    for f in [f for f in logger.filters if isinstance(f, ClientLogLimiter)]:
        if f.interval_s == interval_s:
            return logger
        logger.removeFilter(f)
    logger.addFilter(ClientLogLimiter(interval_s))
    return logger


def client_log_conf(interval_s: float) -> dict[str, Any]:
    """The client settings that send librdkafka's lines and errors through ``client_logger``."""
    logger = client_logger(interval_s)

    def on_error(err: Any) -> None:
        fatal = bool(err.fatal()) if hasattr(err, "fatal") else False
        logger.log(logging.ERROR if fatal else logging.WARNING, "%s [%s] %s",
                   err.name() if hasattr(err, "name") else "ERROR", "error",
                   err.str() if hasattr(err, "str") else err)

    return {"logger": logger, "error_cb": on_error}
