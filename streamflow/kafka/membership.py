"""Remove a static member from its consumer group at once (KIP-345's admin removal).

A static member (``group.instance.id``) never sends a LeaveGroup on close: the group keeps
its partitions for it until its session timeout passes, so a restart within the timeout gets
them back without a rebalance. A member that will not come back (a scale-down) should leave
at once instead. The Java admin client has ``removeMembersFromConsumerGroup`` (and Kafka 4.1's
``Consumer.close(CloseOptions)``, KIP-1092) for this; librdkafka and confluent-kafka-python
(2.16) offer neither, and under KIP-848 librdkafka's close of a static member sends the
"temporary leave" epoch -2 (the broker keeps its assignment), not -1.

So this module sends the one request the Java admin sends: ``FindCoordinator`` for the group,
then ``LeaveGroup`` v3 naming the member by its ``group.instance.id`` (member id empty), over
a plain TCP connection. It supports ``security.protocol=PLAINTEXT`` only; with TLS or SASL
it raises :class:`LeaveGroupError` and the member leaves after its session timeout.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

from streamflow.errors import ProcessingError

__all__ = ["LeaveGroupError", "leave_group"]

_FIND_COORDINATOR, _LEAVE_GROUP = 10, 13
_RETRIABLE = {14, 15, 16}  # coordinator loading, not available, not the coordinator
_UNKNOWN_MEMBER = 25  # already gone


class LeaveGroupError(ProcessingError):
    """The member could not be removed from its group."""


def _string(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> Any:
        (v,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s


def _call(addr: tuple[str, int], api: int, version: int, body: bytes, timeout: float) -> _Reader:
    header = struct.pack(">hhi", api, version, 1) + _string("streamflow-leave")
    request = header + body
    with socket.create_connection(addr, timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _read(sock, 4))[0]
        r = _Reader(_read(sock, size))
    r.take(">i")  # correlation id
    return r


def _read(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            msg = "connection closed by the broker"
            raise LeaveGroupError(msg)
        out += chunk
    return out


def _address(server: str) -> tuple[str, int]:
    host, _, port = server.strip().rpartition(":")
    return host.strip("[]"), int(port)


def leave_group(conf: dict[str, Any], group: str, instance_id: str,
                timeout_s: float = 10.0) -> None:
    """Remove the static member ``instance_id`` from ``group`` now.

    ``conf`` holds the client settings (``bootstrap.servers``, ``security.protocol``). A
    member the group no longer has is not an error.
    """
    protocol = str(conf.get("security.protocol", "plaintext")).lower()
    if protocol != "plaintext":
        msg = (f"security.protocol {protocol!r}: the leave request speaks PLAINTEXT only "
               "(librdkafka has no member-removal API)")
        raise LeaveGroupError(msg)
    servers = [_address(s) for s in str(conf["bootstrap.servers"]).split(",") if s.strip()]
    deadline = time.monotonic() + timeout_s
    last = "no broker answered"
    while time.monotonic() < deadline:
        for server in servers:
            left = max(0.5, deadline - time.monotonic())
            try:
                r = _call(server, _FIND_COORDINATOR, 2,
                          _string(group) + struct.pack(">b", 0), left)
                r.take(">i")  # throttle
                err = r.take(">h")
                message = r.string()
                r.take(">i")  # node id
                coordinator = (r.string() or "", r.take(">i"))
                if err:
                    last = f"FindCoordinator: error {err} {message or ''}"
                    continue
                body = (_string(group) + struct.pack(">i", 1) + _string("")
                        + _string(instance_id))
                r = _call(coordinator, _LEAVE_GROUP, 3, body, left)
                r.take(">i")  # throttle
                err = r.take(">h")
                members = [(r.string(), r.string(), r.take(">h")) for _ in range(r.take(">i"))]
            except (OSError, struct.error) as e:
                last = f"{server[0]}:{server[1]}: {e}"
                continue
            if err in _RETRIABLE:
                last = f"LeaveGroup: coordinator error {err}"
                continue
            if err:
                msg = f"LeaveGroup for {instance_id!r} in {group!r}: error {err}"
                raise LeaveGroupError(msg)
            bad = [code for _, _, code in members if code not in (0, _UNKNOWN_MEMBER)]
            if bad:
                msg = f"LeaveGroup for {instance_id!r} in {group!r}: member error {bad[0]}"
                raise LeaveGroupError(msg)
            return
        time.sleep(0.2)
    msg = f"no answer within {timeout_s:.0f}s: {last}"
    raise LeaveGroupError(msg)
