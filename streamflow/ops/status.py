"""``streamflow status``: how each processor of a running topology is doing, from outside.

Everything comes from the broker and from what running instances already serve, so asking
costs the processors nothing:

- the broker (through :mod:`streamflow.kafka.groups`): per processor its consumer group's
  state and members (instance id, host, assigned partitions), the group's committed offset
  against the end of every input partition (the last stable offset: ``read_committed``, so
  an open transaction's records do not count as lag), and the size of its dead-letter topic;
- the instances' ``/status`` (the ``health_port`` of each member's host, or the URLs given):
  records consumed and produced, last commit age, readiness, restore progress. Rates
  (records/s) are the difference between two answers: pass the previous
  :class:`TopologyStatus` as ``previous``. An instance that does not answer is shown as
  unreachable, never an error.

Kafka requests made (and the ACLs they need): Metadata and ListOffsets (Describe on the
input and dead-letter topics), DescribeGroups (Describe on each processor's group),
OffsetFetch (Describe on the group and its input topics).

>>> p = ProcessorStatus("count", "shop.count", "Empty", partitions=(
...     PartitionLag("orders", 0, start=0, end=10, committed=4, owner=None),))
>>> p.lag, p.problems(max_lag=5)
(6, ['processor count: no members (group shop.count is Empty)', \
'processor count: lag 6 exceeds --max-lag 5'])
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from streamflow.config import Config
from streamflow.dsl.topology import Processor, Topology
from streamflow.kafka import client, groups

__all__ = [
    "InstanceStatus",
    "MemberStatus",
    "PartitionLag",
    "ProcessorStatus",
    "TopologyStatus",
    "collect_status",
    "fetch_instances",
]


@dataclass(frozen=True)
class MemberStatus:
    """A member of a processor's group: its instance id, host and assigned partitions.

    ``instance_id`` is the static member id, else what the worker's client id
    (``<topology>.<processor>.<instance id>``) names; ``static`` says which.
    """

    instance_id: str
    host: str
    partitions: tuple[tuple[str, int], ...]
    client_id: str = ""
    member_id: str = ""
    static: bool = False


@dataclass(frozen=True)
class PartitionLag:
    """One input partition: its log start and end, the group's committed offset, the owner.

    On a transactional input the lag at rest is 1 (the commit marker after the last record
    takes an offset the group's commit stops before), as ``kafka-consumer-groups.sh`` shows.

    ``committed`` is None when the group has committed nothing there (it then starts from
    the log start, so the lag counts from there). ``owner`` is the instance id of the member
    it is assigned to.
    """

    topic: str
    partition: int
    start: int
    end: int
    committed: int | None
    owner: str | None

    @property
    def lag(self) -> int:
        """Records between the group's position and the end (never negative)."""
        at = self.start if self.committed is None else max(self.committed, self.start)
        return max(0, self.end - at)


@dataclass(frozen=True)
class InstanceStatus:
    """What one instance's ``/status`` answered (``reachable`` False: nothing, see ``error``).

    ``consumed`` and ``produced`` are totals since the instance started, per topic; the
    ``*_per_s`` rates come from the difference with the previous answer (None without one).
    """

    instance_id: str
    url: str
    reachable: bool
    error: str | None = None
    alive: bool | None = None
    ready: bool | None = None
    reasons: tuple[str, ...] = ()
    processed: int | None = None
    dead_lettered: int | None = None
    skipped: int | None = None
    commits: int | None = None
    aborts: int | None = None
    lag: int | None = None
    restoring: bool = False
    restore_records: int | None = None
    restore_remaining: int | None = None
    last_commit_age_s: float | None = None
    loop_age_s: float | None = None
    consumed: dict[str, int] = field(default_factory=dict)
    produced: dict[str, int] = field(default_factory=dict)
    consumed_per_s: dict[str, float] = field(default_factory=dict)
    produced_per_s: dict[str, float] = field(default_factory=dict)
    fetched_at: float = 0.0  # time.monotonic() of the answer
    rated: bool = False  # the rates compare two answers of one run of the instance

    @property
    def records_in_per_s(self) -> float | None:
        """Records consumed per second over the last interval (all inputs)."""
        return sum(self.consumed_per_s.values()) if self.rated else None

    @property
    def records_out_per_s(self) -> float | None:
        """Records produced per second over the last interval (all outputs)."""
        return sum(self.produced_per_s.values()) if self.rated else None


def _sum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


@dataclass(frozen=True)
class ProcessorStatus:
    """One processor: its group, members, input lag, dead letters and instances."""

    name: str
    group_id: str
    state: str
    protocol: str = ""
    members: tuple[MemberStatus, ...] = ()
    partitions: tuple[PartitionLag, ...] = ()
    dead_letter_topic: str | None = None  # None unless on_error="dead_letter"
    # offsets in the dead-letter topic (None: it is missing); under exactly-once each
    # transaction's commit marker takes an offset too: `dlq list` counts the letters
    dead_letters: int | None = None
    instances: tuple[InstanceStatus, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def lag(self) -> int:
        """Records behind on all inputs."""
        return sum(p.lag for p in self.partitions)

    def lag_by_topic(self) -> dict[str, int]:
        """Records behind per input topic."""
        out: dict[str, int] = {}
        for p in self.partitions:
            out[p.topic] = out.get(p.topic, 0) + p.lag
        return out

    @property
    def records_in_per_s(self) -> float | None:
        """Records consumed per second by the instances that answered twice."""
        return _sum(i.records_in_per_s for i in self.instances)

    @property
    def records_out_per_s(self) -> float | None:
        """Records produced per second by the instances that answered twice."""
        return _sum(i.records_out_per_s for i in self.instances)

    @property
    def last_commit_age_s(self) -> float | None:
        """Seconds since the most recent commit of any instance that answered."""
        ages = [i.last_commit_age_s for i in self.instances if i.last_commit_age_s is not None]
        return min(ages) if ages else None

    @property
    def restore_remaining(self) -> int | None:
        """Changelog records the instances still have to restore."""
        rem = _sum(i.restore_remaining for i in self.instances)
        return None if rem is None else int(rem)

    def problems(self, max_lag: int | None = None) -> list[str]:
        """Why a script should worry: no members; lag above ``max_lag`` (when given)."""
        out = []
        if not self.members:
            out.append(f"processor {self.name}: no members (group {self.group_id} is "
                       f"{self.state})")
        if max_lag is not None and self.lag > max_lag:
            out.append(f"processor {self.name}: lag {self.lag} exceeds --max-lag {max_lag}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, with the derived figures (lag, rates) filled in."""
        d = asdict(self)
        d["lag"] = self.lag
        d["lag_by_topic"] = self.lag_by_topic()
        for p, pd in zip(self.partitions, d["partitions"], strict=True):
            pd["lag"] = p.lag
        for i, idict in zip(self.instances, d["instances"], strict=True):
            idict["records_in_per_s"] = i.records_in_per_s
            idict["records_out_per_s"] = i.records_out_per_s
            del idict["fetched_at"], idict["rated"]
        d["records_in_per_s"] = self.records_in_per_s
        d["records_out_per_s"] = self.records_out_per_s
        d["last_commit_age_s"] = self.last_commit_age_s
        d["restore_remaining"] = self.restore_remaining
        return d


@dataclass(frozen=True)
class TopologyStatus:
    """Every asked processor of a topology at one moment (``taken_at``: epoch seconds).

    ``unreachable`` lists the ``--instances`` URLs that did not answer (instances found
    through the group's members are listed under their processor instead).
    """

    topology: str
    bootstrap_servers: str
    taken_at: float
    processors: tuple[ProcessorStatus, ...]
    unreachable: tuple[InstanceStatus, ...] = ()

    def processor(self, name: str) -> ProcessorStatus:
        """The status of processor ``name`` (``KeyError`` if it was not asked)."""
        for p in self.processors:
            if p.name == name:
                return p
        raise KeyError(name)

    def problems(self, max_lag: int | None = None) -> list[str]:
        """Every processor's problems (see :meth:`ProcessorStatus.problems`)."""
        return [msg for p in self.processors for msg in p.problems(max_lag)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (``json.dumps`` takes it as it is)."""
        return {
            "topology": self.topology,
            "bootstrap_servers": self.bootstrap_servers,
            "taken_at": self.taken_at,
            "processors": [p.to_dict() for p in self.processors],
            "unreachable": [{k: v for k, v in asdict(i).items()
                             if k not in ("fetched_at", "rated")}
                            for i in self.unreachable],
        }


# -- instances' /status -----------------------------------------------------------------------


def _get_json(url: str, timeout: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def _docs(answer: Any) -> list[dict[str, Any]]:
    """A worker's status document, or each worker's of a supervisor's (``workers``)."""
    if isinstance(answer, dict) and isinstance(answer.get("workers"), list):
        return [w for w in answer["workers"] if isinstance(w, dict)]
    return [answer] if isinstance(answer, dict) else []


def fetch_instances(urls: Iterable[str], timeout_s: float = 2.0
                    ) -> dict[str, list[dict[str, Any]] | str]:
    """GET ``<url>/status`` of each base URL in parallel.

    Returns per URL the status documents (one per worker; a supervisor answers for all its
    workers) or, for a URL that did not answer, the error as a string.
    """
    todo = list(dict.fromkeys(u.rstrip("/") for u in urls))

    def one(url: str) -> list[dict[str, Any]] | str:
        try:
            return _docs(_get_json(f"{url}/status", timeout_s))
        except urllib.error.HTTPError as e:  # a 503 still carries the document
            try:
                return _docs(json.loads(e.read()))
            except ValueError:
                return f"HTTP {e.code}"
        except (OSError, ValueError) as e:
            return f"{type(e).__name__}: {getattr(e, 'reason', e)}"

    if not todo:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
        return dict(zip(todo, pool.map(one, todo), strict=True))


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _counts(v: Any) -> dict[str, int]:
    return {str(k): int(n) for k, n in v.items()
            if isinstance(n, int | float)} if isinstance(v, dict) else {}


def _rates(now: dict[str, int], before: dict[str, int], seconds: float
           ) -> dict[str, float] | None:
    if seconds <= 0 or any(now.get(k, 0) < n for k, n in before.items()):
        return None  # the instance restarted: its counters began again
    return {k: (n - before.get(k, 0)) / seconds for k, n in now.items()}


def _instance(doc: dict[str, Any], url: str, at: float,
              previous: InstanceStatus | None) -> InstanceStatus:
    raw_restore = doc.get("restore")
    restore: dict[str, Any] = raw_restore if isinstance(raw_restore, dict) else {}
    consumed, produced = _counts(doc.get("consumed")), _counts(doc.get("produced"))
    ins = outs = None
    if previous is not None and previous.reachable:
        seconds = at - previous.fetched_at
        ins = _rates(consumed, previous.consumed, seconds)
        outs = _rates(produced, previous.produced, seconds)
    raw_reasons = doc.get("reasons")
    reasons: list[Any] = raw_reasons if isinstance(raw_reasons, list) else []
    return InstanceStatus(
        instance_id=str(doc.get("instance") or doc.get("worker_id") or "?"), url=url,
        reachable=True, alive=bool(doc.get("alive", False)), ready=bool(doc.get("ready", False)),
        reasons=tuple(str(r) for r in reasons), processed=_int(doc.get("processed")),
        dead_lettered=_int(doc.get("dead_lettered")), skipped=_int(doc.get("skipped")),
        commits=_int(doc.get("commits")), aborts=_int(doc.get("aborts")),
        lag=_int(doc.get("lag")), restoring=bool(doc.get("restoring", False)),
        restore_records=_int(restore.get("records")),
        restore_remaining=_int(restore.get("remaining")),
        last_commit_age_s=_float(doc.get("last_commit_age_s")),
        loop_age_s=_float(doc.get("loop_age_s")), consumed=consumed, produced=produced,
        consumed_per_s=ins or {}, produced_per_s=outs or {}, fetched_at=at,
        rated=ins is not None and outs is not None)


# -- the broker ---------------------------------------------------------------------------------


def _member(m: groups.GroupMember, topology: str, processor: str) -> MemberStatus:
    prefix = f"{topology}.{processor}."
    if m.instance_id:
        instance, static = m.instance_id, True
    else:
        instance = m.client_id.removeprefix(prefix) if m.client_id.startswith(prefix) \
            else m.client_id
        static = False
    return MemberStatus(instance, m.host, m.partitions, m.client_id, m.member_id, static)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def collect_status(topology: Topology, config: Config, processors: Sequence[str] | None = None,
                   *, instances: Sequence[str] | None = None,
                   previous: TopologyStatus | None = None, admin: Any = None,
                   timeout_s: float = 10.0, http_timeout_s: float = 2.0) -> TopologyStatus:
    """The status of ``processors`` (all by default) of ``topology``.

    ``instances``: base URLs (``http://host:port``) whose ``/status`` to ask; by default
    each member's host at the ``health_port`` setting (none when it is 0). ``previous``: an
    earlier status, to compute records/s. ``admin``: an admin client to reuse (one is made
    from ``config`` otherwise). Raises :class:`~streamflow.kafka.client.Unreachable` when the
    broker does not answer within ``timeout_s``.
    """
    names = list(processors) if processors is not None else list(topology.processors)
    procs = [topology.processors[n] for n in names]
    admin = admin if admin is not None else client.make_admin(config.client_conf())
    dlqs = {p.name: p.dead_letter_topic for p in procs if p.on_error == "dead_letter"}
    topics = {t for p in procs for t in p.source_topics()} | set(dlqs.values())
    parts = groups.partitions_of(admin, sorted(topics), timeout_s)
    pairs = [(t, n) for t in sorted(parts) for n in parts[t]]
    start = groups.list_offsets(admin, pairs, groups.EARLIEST, timeout=timeout_s)
    end = groups.list_offsets(admin, pairs, groups.LATEST, timeout=timeout_s)
    found: list[tuple[Processor, groups.GroupInfo, dict[tuple[str, int], int]]] = []
    for p in procs:
        info = groups.describe_group(admin, p.group_id, timeout_s)
        inputs = [(t, n) for t in p.source_topics() for n in parts.get(t, [])]
        found.append((p, info, groups.group_offsets(admin, p.group_id, inputs, timeout_s)))
    prev = {(ps.name, i.instance_id): i for ps in (previous.processors if previous else ())
            for i in ps.instances}

    urls: list[str] = list(instances or [])
    if instances is None and config.health_port:
        urls = [_url(m.host, config.health_port) for _, info, _ in found for m in info.members]
    answers = fetch_instances(urls, http_timeout_s)
    at = time.monotonic()
    by_processor: dict[str, list[InstanceStatus]] = {}
    unreachable = []
    for url, answer in answers.items():
        if isinstance(answer, str):
            if instances is not None:
                unreachable.append(InstanceStatus("?", url, False, answer, fetched_at=at))
            continue
        for doc in answer:
            name = str(doc.get("processor", ""))
            if name in names:
                iid = str(doc.get("instance") or doc.get("worker_id") or "?")
                by_processor.setdefault(name, []).append(
                    _instance(doc, url, at, prev.get((name, iid))))

    out = []
    for p, info, committed in found:
        members = tuple(sorted((_member(m, topology.name, p.name) for m in info.members),
                               key=lambda m: m.instance_id))
        owners = {pair: m.instance_id for m in members for pair in m.partitions}
        lags = tuple(PartitionLag(t, n, start.get((t, n), 0), end.get((t, n), 0),
                                  committed.get((t, n)), owners.get((t, n)))
                     for t in p.source_topics() for n in parts.get(t, []))
        notes = [f"input topic {t!r} does not exist" for t in p.source_topics() if t not in parts]
        seen = by_processor.get(p.name, [])
        answered = {i.instance_id for i in seen}
        if instances is None and config.health_port:
            for url, answer in answers.items():
                if isinstance(answer, str):
                    seen += [InstanceStatus(m.instance_id, url, False, answer, fetched_at=at)
                             for m in members if _url(m.host, config.health_port) == url
                             and m.instance_id not in answered]
        elif instances is None and members:
            notes.append("instances not asked: set health_port (or --instances URL,...)")
        dlq = dlqs.get(p.name)
        size = None
        if dlq is not None and dlq in parts:
            size = sum(max(0, end.get((dlq, n), 0) - start.get((dlq, n), 0))
                       for n in parts[dlq])
        out.append(ProcessorStatus(
            p.name, p.group_id, info.state, info.protocol, members, lags, dlq, size,
            tuple(sorted(seen, key=lambda i: i.instance_id)), tuple(notes)))
    return TopologyStatus(topology.name, config.bootstrap_servers, time.time(), tuple(out),
                          tuple(unreachable))
