"""The audit trail: one JSON line per administrative action (who, what, when, result).

``streamflow topics create|delete``, ``schemas register``, ``acls --apply``, ``reset`` and
``dlq replay`` call :func:`record` (or run inside :func:`audited`) after they act. The sink is the
``audit_log`` setting: a JSON-lines file (default ``.streamflow/audit.jsonl``), appended to,
one record per line; ``""`` turns the trail off. A record holds no secret: the principal is
the SASL user name, never its password.

>>> import json, tempfile, pathlib
>>> from streamflow.config import Config
>>> path = pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl"
>>> config = Config(audit_log=str(path), kafka={"sasl.username": "ops", "sasl.password": "x"})
>>> _ = record("topics.create", "shop", "ok", config=config, topics=["orders"])
>>> entry = json.loads(path.read_text())
>>> entry["action"], entry["target"], entry["result"], entry["principal"], entry["topics"]
('topics.create', 'shop', 'ok', 'User:ops', ['orders'])
>>> "x" in entry.values()
False
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from streamflow.config import Config
from streamflow.runtime.permissions import principal_of

__all__ = ["audited", "record"]

log = logging.getLogger("streamflow.audit")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return str(os.getuid()) if hasattr(os, "getuid") else "?"


def record(action: str, target: str, result: str, *, config: Config, **details: Any
           ) -> dict[str, Any] | None:
    """Append one audit record; return it (None when the trail is off).

    ``action``: what was done (``topics.create``, ``acls.apply``, ``offsets.reset``, ...);
    ``target``: on what (a topology, a subject, a group); ``result``: ``ok`` or the error;
    ``details``: JSON-serialisable specifics (topic names, counts). A sink that cannot be
    written is logged as a warning: auditing never hides the action's own outcome.
    """
    if not config.audit_log:
        return None
    entry: dict[str, Any] = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "action": action,
        "target": target,
        "result": result,
        "os_user": _os_user(),
        "host": socket.gethostname(),
        "principal": principal_of(config.client_conf()),
        "bootstrap_servers": config.bootstrap_servers,
        **details,
    }
    path = Path(config.audit_log)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, default=str) + "\n")
    except OSError as e:
        log.warning("could not write the audit record of %s to %s: %s", action, path, e)
    return entry


@contextmanager
def audited(action: str, target: str, *, config: Config, **details: Any
            ) -> Iterator[dict[str, Any]]:
    """Record ``action`` when the block ends: ``ok``, or ``failed: <error>`` (then re-raised).

    The block may add details to the dict it is given (counts known only at the end).
    """
    found: dict[str, Any] = dict(details)
    try:
        yield found
    except Exception as e:
        record(action, target, f"failed: {e}", config=config, **found)
        raise
    record(action, target, "ok", config=config, **found)
