"""Who a worker process is in its fleet: the instance id, and the lock that keeps it unique.

Every worker of a processor has an **instance id**, unique among the processor's workers and
stable across restarts of the same slot. It names the transactional id
(``<group>-<instance id>``), the client id, the static group member (``group.instance.id``)
and the worker's state folder (``<state_dir>/<instance id>/<topology>/<processor>``).

Where it comes from, first match wins:

1. ``--instance-id`` / ``STREAMFLOW_INSTANCE_ID`` (the ``instance_id`` setting);
2. ``POD_NAME`` (a StatefulSet pod: ``<statefulset>-<ordinal>``, stable per slot);
3. the host name.

A worker that ``streamflow run --workers N`` supervises is child ``i`` and appends ``-<i>``
to that base, so two hosts each running ``--workers 2`` never collide; an unsupervised worker
on the host-name fallback is ``<hostname>-0`` (the same id as ``--workers 1``).

>>> resolve_identity("", {"POD_NAME": "shop-count-1"}, None, "node-7")
Identity(instance_id='shop-count-1', source='POD_NAME')
>>> resolve_identity("", {}, "1", "node-7").instance_id
'node-7-1'
>>> resolve_identity("eu-a", {"POD_NAME": "ignored"}, "0", "node-7").instance_id
'eu-a-0'

Static membership (``static_membership = "auto"``) is used only where the identity is known
to be stable: an explicit id or a pod name. A host name is not (a container's host name
changes when it is recreated, and a run with fewer ``--workers`` than the last leaves
static members behind that hold their partitions for the whole session timeout).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from streamflow.config import Config, ConfigError
from streamflow.errors import DuplicateInstanceError

__all__ = ["Identity", "InstanceLock", "instance_in_use", "resolve_identity", "static_membership"]

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
STATIC_SOURCES = ("instance_id", "POD_NAME")
LOCK_FILE = ".instance.lock"


@dataclass(frozen=True)
class Identity:
    """A worker's instance id, and where it came from.

    ``source`` is ``instance_id`` (the setting), ``POD_NAME`` or ``hostname``.
    """

    instance_id: str
    source: str


def resolve_identity(explicit: str, env: Mapping[str, str], worker_index: str | None,
                     hostname: str | None = None) -> Identity:
    """The instance id of a worker (see the module docstring for the order).

    ``explicit`` is the ``instance_id`` setting (``--instance-id`` or
    ``STREAMFLOW_INSTANCE_ID``), ``worker_index`` the supervisor's local index of this
    worker (``--worker-id``), None when unsupervised.
    """
    if explicit:
        base, source = explicit, "instance_id"
    elif env.get("POD_NAME"):
        base, source = env["POD_NAME"], "POD_NAME"
    else:
        base, source = hostname or socket.gethostname(), "hostname"
    if worker_index is not None:
        instance = f"{base}-{worker_index}"
    else:
        instance = f"{base}-0" if source == "hostname" else base
    if not _SAFE.fullmatch(instance):
        msg = (
            f"instance id {instance!r} (from {source}) must be 1-200 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit: it names the worker's state folder "
            "and its Kafka ids; set --instance-id / STREAMFLOW_INSTANCE_ID"
        )
        raise ConfigError(msg)
    return Identity(instance, source)


def static_membership(config: Config, identity: Identity) -> bool:
    """Whether the worker joins its group as a static member (``group.instance.id``)."""
    if config.static_membership == "auto":  # the settings model admits auto, on and off
        return identity.source in STATIC_SOURCES
    return config.static_membership == "on"


def instance_in_use(instance_id: str, processor: str, where: str) -> DuplicateInstanceError:
    """The error for a second live worker with the same instance id."""
    msg = (
        f"instance id {instance_id!r} of processor {processor!r} is already in use {where}; "
        "two live workers with one instance id would fence each other. Stop the other "
        "worker, or give this one its own id (--instance-id / STREAMFLOW_INSTANCE_ID; "
        "POD_NAME in Kubernetes); this worker was not restarted"
    )
    return DuplicateInstanceError(msg)


class InstanceLock:
    """An exclusive lock on the worker's state folder, held while the worker runs.

    ``flock`` is released by the kernel when the process dies, so a worker killed with
    ``kill -9`` leaves no stale lock behind.
    """

    def __init__(self, folder: Path, instance_id: str, processor: str) -> None:
        self.path = folder / LOCK_FILE
        self.instance_id = instance_id
        self.processor = processor
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`DuplicateInstanceError` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")  # noqa: SIM115 - held open for the worker's lifetime
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise instance_in_use(self.instance_id, self.processor,
                                  f"on this host (pid {holder} holds {self.path})") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f

    def release(self) -> None:
        """Give the lock up (closing the file releases it)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
