"""``streamflow status``, ``tail``, ``reset`` and ``dlq``: operating a running topology.

Each ``cmd_*`` loads the topology, calls :mod:`streamflow.ops` (``status``, ``tail``,
``reset``, ``dlq``) and prints; it returns an exit code or raises a
:class:`~streamflow.errors.StreamflowError` (whose ``exit_code`` :func:`streamflow.cli.main`
returns: 4 when Kafka does not answer).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from streamflow.cli.common import (
    CONFIG_HELP,
    CliError,
    command_line,
    err,
    load_settings,
    processor_names,
)
from streamflow.config import Config
from streamflow.dsl.topology import Topology
from streamflow.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from streamflow.kafka import client
from streamflow.ops import audit
from streamflow.ops import dlq as ops_dlq
from streamflow.ops import reset as ops_reset
from streamflow.ops import status as ops_status
from streamflow.ops import tail as ops_tail
from streamflow.ops.load import load_topology

__all__ = ["add_commands", "cmd_dlq", "cmd_reset", "cmd_status", "cmd_tail", "operator_config",
           "operator_topology"]


@contextmanager
def kafka_errors(config: Config) -> Iterator[None]:
    """Name the cluster in Kafka's errors: unreachable (exit 4) or a refusal (exit 1)."""
    try:
        yield
    except client.Unreachable as e:
        msg = f"cannot reach Kafka at {config.bootstrap_servers}: {e}"
        raise CliError(msg, e.exit_code) from e
    except client.KafkaException as e:
        msg = f"Kafka at {config.bootstrap_servers} refused: {e}"
        raise CliError(msg, EXIT_FAILED) from e


def operator_config(path: str | None) -> Config:
    """The configuration, with librdkafka's own error lines off unless ``[kafka]`` sets them.

    Without a broker, librdkafka prints a connection failure every few tens of milliseconds;
    the command reports the outage once, with exit code 4.
    """
    config = load_settings(path)
    return config.with_overrides(kafka={"log_level": 2, **config.kafka})


def operator_topology(module: str, config: Config) -> Topology:
    """The topology every command here acts on (the one place that loads it)."""
    return load_topology(module, name_suffix=config.name_suffix)


def _timeout(config: Config) -> float:
    return min(10.0, config.startup_timeout_s)


# -- status -----------------------------------------------------------------------------------


def _num(v: float | None, fmt: str = "{:.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def format_status(s: ops_status.TopologyStatus, max_lag: int | None = None) -> str:
    """The ``status`` table of one topology, then each processor's members, lag, instances."""
    when = datetime.datetime.fromtimestamp(s.taken_at, datetime.UTC).strftime("%H:%M:%S")
    lines = [f"topology {s.topology} (Kafka {s.bootstrap_servers}, {when} UTC)", ""]
    rows: list[tuple[str, ...]] = [("PROCESSOR", "GROUP", "MEMBERS", "LAG", "IN/S", "OUT/S",
                                    "LAST COMMIT", "DEAD LETTERS", "RESTORING")]
    for p in s.processors:
        rows.append((p.name, p.state, str(len(p.members)), str(p.lag),
                     _num(p.records_in_per_s, "{:.1f}"), _num(p.records_out_per_s, "{:.1f}"),
                     _num(p.last_commit_age_s, "{:.1f}s ago"), _num(p.dead_letters),
                     _num(p.restore_remaining) if p.restore_remaining else "-"))
    lines += _table(rows)
    for p in s.processors:
        lines += ["", f"{p.name} (group {p.group_id}{', ' + p.protocol if p.protocol else ''})"]
        if p.members:
            for m in p.members:
                owned = ", ".join(f"{t}[{n}]" for t, n in m.partitions) or "no partitions"
                lines.append(f"  member {m.instance_id} @ {m.host}: {owned}")
        else:
            lines.append("  no members")
        for topic, lag in p.lag_by_topic().items():
            parts = ", ".join(
                f"p{x.partition} {'-' if x.committed is None else x.committed}/{x.end}"
                for x in p.partitions if x.topic == topic)
            lines.append(f"  lag {topic}: {lag} (committed/end: {parts})")
        for i in p.instances:
            if not i.reachable:
                lines.append(f"  instance {i.instance_id} UNREACHABLE at {i.url}: {i.error}")
                continue
            state = "ready" if i.ready else "NOT READY: " + "; ".join(i.reasons)
            lines.append(f"  instance {i.instance_id} {state}; processed {i.processed}, "
                         f"dead-lettered {i.dead_lettered}, commits {i.commits}"
                         + (f", restoring {i.restore_remaining} left" if i.restoring else ""))
        lines += [f"  note: {n}" for n in p.notes]
    for i in s.unreachable:
        lines.append(f"instance at {i.url} UNREACHABLE: {i.error}")
    problems = s.problems(max_lag)
    lines += ["", *(f"PROBLEM: {m}" for m in problems)] if problems else []
    return "\n".join(lines) + "\n"


def cmd_status(args: argparse.Namespace) -> int:
    """``streamflow status MODULE``: exit 1 when a processor has no members or too much lag."""
    config = operator_config(args.config)
    topology = operator_topology(args.module, config)
    names = processor_names(topology, args.processor)
    urls = [u.strip() for u in args.instances.split(",") if u.strip()] \
        if args.instances else None
    if urls is not None:
        urls = [u if "://" in u else f"http://{u}" for u in urls]
    admin = client.make_admin(config.client_conf())

    def sample(previous: ops_status.TopologyStatus | None) -> ops_status.TopologyStatus:
        with kafka_errors(config):
            return ops_status.collect_status(topology, config, names, instances=urls,
                                             previous=previous, admin=admin,
                                             timeout_s=_timeout(config))

    def show(s: ops_status.TopologyStatus) -> int:
        if args.format == "json":
            print(json.dumps({**s.to_dict(), "problems": s.problems(args.max_lag)}), flush=True)
        else:
            if args.watch is not None and sys.stdout.isatty():
                sys.stdout.write("\x1b[2J\x1b[H")
            sys.stdout.write(format_status(s, args.max_lag))
            sys.stdout.flush()
        return EXIT_FAILED if s.problems(args.max_lag) else EXIT_OK

    current = sample(None)
    answered = any(i.reachable for p in current.processors for i in p.instances)
    if args.watch is None:
        if answered and args.rate_interval > 0:  # a second answer gives the rates
            time.sleep(args.rate_interval)
            current = sample(current)
        return show(current)
    code = EXIT_OK
    try:
        while True:
            code = show(current)
            time.sleep(args.watch)
            current = sample(current)
    except KeyboardInterrupt:
        return code


# -- tail -------------------------------------------------------------------------------------


def _short(v: Any) -> str:
    out = ops_tail.jsonable(v)
    return out if isinstance(out, str) else json.dumps(out, ensure_ascii=False)


def format_record(r: ops_tail.DecodedRecord) -> str:
    """One record for the table format: position, time, key, value; then headers, errors."""
    when = "-" if r.timestamp is None else datetime.datetime.fromtimestamp(
        r.timestamp / 1000, datetime.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")
    lines = [f"{r.topic}[{r.partition}]@{r.offset}  {when}  key={_short(r.key)}  "
             f"value={_short(r.value)}"]
    for k, v in r.headers:
        text = ops_tail.header_text(v) or ""
        if k == "streamflow.error.traceback":
            text = text.strip().splitlines()[-1] if text.strip() else text
        lines.append(f"    {k}: {text}")
    if r.key_error:
        lines.append(f"    (key not decoded: {r.key_error})")
    if r.value_error:
        lines.append(f"    (value not decoded: {r.value_error})")
    return "\n".join(lines)


def cmd_tail(args: argparse.Namespace) -> int:
    """``streamflow tail TOPIC --module MODULE``."""
    config = operator_config(args.config)
    topology = operator_topology(args.module, config) if args.module else Topology("tail")
    last = args.last if args.last is not None else (
        None if args.from_beginning or args.follow else 10)
    topic = ops_tail.topic_name(topology, args.topic)

    def emit(r: ops_tail.DecodedRecord) -> None:
        if args.format == "json":
            print(json.dumps(r.to_dict(), ensure_ascii=False), flush=args.follow)
        else:
            print(format_record(r), flush=args.follow)

    with kafka_errors(config):
        if not args.follow:
            for r in ops_tail.read_records(topology, topic, config, last=last,
                                           from_beginning=args.from_beginning,
                                           partition=args.partition, max_records=args.max,
                                           read_committed=not args.read_uncommitted,
                                           timeout_s=_timeout(config)):
                emit(r)
            return EXIT_OK
        seen = 0
        try:
            for r in ops_tail.follow_records(topology, topic, config, last=last,
                                             from_beginning=args.from_beginning,
                                             partition=args.partition,
                                             read_committed=not args.read_uncommitted,
                                             timeout_s=_timeout(config)):
                emit(r)
                seen += 1
                if args.max is not None and seen >= args.max:
                    break
        except KeyboardInterrupt:
            pass
    return EXIT_OK


# -- reset ------------------------------------------------------------------------------------


def cmd_reset(args: argparse.Namespace) -> int:
    """``streamflow reset MODULE -p NAME --to-...``: exit 7 while the group has members."""
    config = operator_config(args.config)
    topology = operator_topology(args.module, config)
    (name,) = processor_names(topology, args.processor)
    target = ops_reset.reset_target(to_earliest=args.to_earliest, to_latest=args.to_latest,
                                    to_datetime=args.to_datetime, by_duration=args.by_duration)
    admin = client.make_admin(config.client_conf())
    with kafka_errors(config):
        plan = ops_reset.plan_reset(topology, name, config, target, admin=admin,
                                    timeout_s=_timeout(config))
        if args.dry_run or not args.yes:
            for step in plan.steps:
                print(f"would {step}")
            if args.dry_run:
                print(f"dry run: nothing changed ({len(plan.steps)} step(s))")
                return EXIT_OK
            err(f"nothing changed: to reset processor {name!r} (its state and progress are "
                f"lost) run: {_reset_command(args, name)}")
            return EXIT_USAGE
        with audit.audited("offsets.reset", plan.group_id, config=config, processor=name,
                           to=str(target)) as details:
            done = []
            for step in ops_reset.apply_reset(topology, plan, config, admin=admin,
                                              timeout_s=config.startup_timeout_s):
                print(f"done  {step}")
                done.append(str(step))
            details["steps"] = done
    print(f"processor {name!r} reset: its next run starts from the moved offsets with empty "
          f"state: {command_line('run', args.module, '-p', name, config=args.config)}")
    return EXIT_OK


def _reset_command(args: argparse.Namespace, name: str) -> str:
    """The ``reset`` command given, with ``--yes``."""
    to = (["--to-earliest"] if args.to_earliest else ["--to-latest"] if args.to_latest
          else ["--to-datetime", args.to_datetime] if args.to_datetime
          else ["--by-duration", args.by_duration])
    return command_line("reset", args.module, "-p", name, *to, "--yes", config=args.config)


# -- dlq --------------------------------------------------------------------------------------


def _counts(title: str, counts: dict[str, int]) -> list[str]:
    if not counts:
        return []
    return [f"  by {title}:", *(f"    {n:>8}  {k}" for k, n in counts.items())]


def cmd_dlq(args: argparse.Namespace) -> int:
    """``streamflow dlq list|replay MODULE -p NAME``."""
    config = operator_config(args.config)
    topology = operator_topology(args.module, config)
    if args.action == "list":
        names = [n for n in processor_names(topology, args.processor)
                 if args.processor or topology.processors[n].dead_letters]
        with kafka_errors(config):
            sums = [ops_dlq.summarize(topology, n, config, timeout_s=_timeout(config))
                    for n in names]
        if args.format == "json":
            print(json.dumps([dataclasses.asdict(s) for s in sums]))
            return EXIT_OK
        for s in sums:
            if not s.exists:
                print(f"{s.processor}: no dead letters ({s.topic} does not exist yet)")
                continue
            print(f"{s.processor}: {s.total} dead letter(s) in {s.topic}, {s.pending} not "
                  "replayed yet")
            for title, counts in (("error type", s.by_error), ("step", s.by_step),
                                  ("phase", s.by_phase), ("source topic", s.by_source)):
                for line in _counts(title, counts):
                    print(line)
        if not names:
            print(f"no processor of topology {topology.name!r} sends dead letters: none has "
                  "a 'dead_letter' policy (the processor's on_error=, on_deserialize_error=, "
                  "on_processing_error= or on_produce_error=, or a step's on_error=) nor a "
                  "policy function; each processor's policies: "
                  f"{command_line('describe', args.module)}")
        return EXIT_OK
    (name,) = processor_names(topology, args.processor)
    flt = ops_dlq.ReplayFilter.parse(args.filter)
    with kafka_errors(config):
        if args.dry_run:
            r = ops_dlq.replay(topology, name, config, flt=flt, dry_run=True,
                               timeout_s=config.startup_timeout_s)
        else:
            with audit.audited("dlq.replay", topology.processors[name].dead_letter_topic,
                               config=config, processor=name, filter=str(flt)) as details:
                r = ops_dlq.replay(topology, name, config, flt=flt, dry_run=False,
                                   timeout_s=config.startup_timeout_s)
                details.update(replayed=r.replayed, by_topic=r.by_topic)
    verb = "would replay" if r.dry_run else "replayed"
    where = ", ".join(f"{n} to {t}" for t, n in r.by_topic.items())
    print(f"{verb} {r.replayed} of {r.considered} dead letter(s) from {r.topic}"
          + (f" ({where})" if where else "")
          + (f"; {r.filtered_out} not matching --filter {flt}" if r.filtered_out else "")
          + f"; progress kept by group {r.group}")
    for problem in r.problems:
        print(f"  not replayable: {problem} ({r.unreplayable} letter(s) in all)")
    return EXIT_OK


# -- registration -----------------------------------------------------------------------------


def add_commands(sub: Any) -> None:
    """Register ``status``, ``tail``, ``reset`` and ``dlq``."""
    st = sub.add_parser(
        "status", help="each processor's group, members, lag, rates and dead letters",
        description="Show, per processor of the topology: its consumer group's state and "
        "members (instance ids, hosts, partitions), the lag of each input partition (the "
        "group's committed offset against the last stable offset), records/s in and out, the "
        "last commit's age, the dead-letter topic's size and restore progress. Instances are "
        "asked for their /status at each member's host and the health_port setting, or at "
        "--instances; those that do not answer are shown as unreachable. Costs the "
        "processors nothing: it reads the broker and what they already serve.",
        epilog="Exit codes: 0 ok; 1 a processor has no members, or its lag exceeds --max-lag; "
        "3 configuration or topology error; 4 Kafka unreachable.")
    st.add_argument("module", metavar="MODULE[:ATTR]")
    st.add_argument("--processor", "-p", help="only this processor")
    st.add_argument("--watch", "-w", nargs="?", type=float, const=2.0, metavar="SECONDS",
                    help="refresh every SECONDS (default 2) until interrupted")
    st.add_argument("--format", choices=("table", "json"), default="table",
                    help="table (default) or json (one document per refresh)")
    st.add_argument("--max-lag", type=int, metavar="N",
                    help="exit 1 when a processor's lag exceeds N records")
    st.add_argument("--instances", metavar="URL,...",
                    help="ask these health endpoints (http://host:port) instead of the "
                    "members' hosts at health_port")
    st.add_argument("--rate-interval", type=float, default=1.0, metavar="SECONDS",
                    help="without --watch, ask the instances twice this far apart for "
                    "records/s (0: once, no rates; default 1)")
    st.add_argument("--config", "-c", help=CONFIG_HELP)
    st.set_defaults(func=cmd_status)

    tl = sub.add_parser(
        "tail", help="print a topic's records, decoded with the topology's serdes",
        description="Print records of TOPIC decoded with the serdes the topology declares "
        "for it (Avro through the registry, windowed keys, JSON...); dead letters are "
        "decoded with their source topic's serdes and show their error headers. Records that "
        "do not decode are shown raw with the error. read_committed unless "
        "--read-uncommitted. Without --from-beginning, --last or --follow: the last 10.",
        epilog="Exit codes: 0 ok; 3 configuration error or no such topic; 4 Kafka "
        "unreachable.")
    tl.add_argument("topic", metavar="TOPIC",
                    help="the topic; under a name_suffix, a topic of MODULE may be named as "
                    "declared (orders for orders-t1)")
    tl.add_argument("--module", "-m", metavar="MODULE[:ATTR]",
                    help="the topology declaring the topic's serdes (without: raw bytes)")
    start = tl.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true", help="from the log start")
    start.add_argument("--last", "-n", type=int, metavar="N",
                       help="the last N records (N per partition read, newest N shown)")
    tl.add_argument("--follow", "-f", action="store_true",
                    help="keep printing new records until interrupted")
    tl.add_argument("--partition", "-P", type=int, help="only this partition")
    tl.add_argument("--max", type=int, metavar="N", help="stop after N records")
    tl.add_argument("--format", choices=("table", "json"), default="table",
                    help="table (default) or json (one object per line)")
    tl.add_argument("--read-uncommitted", action="store_true",
                    help="also show records of open and aborted transactions")
    tl.add_argument("--config", "-c", help=CONFIG_HELP)
    tl.set_defaults(func=cmd_tail)

    rs = sub.add_parser(
        "reset", help="make a processor reprocess its inputs from a point, with empty state",
        description="Like Kafka's streams application reset tool: moves the processor's "
        "group offsets on its input topics, truncates its repartition topics, deletes its "
        "changelog topics (made again by the next worker, or now when create_topics is off) "
        "and wipes the local state folders under state_dir. Refuses while the group has "
        "active members. Prints every step; --dry-run changes nothing, and without --yes "
        "nothing is changed either.",
        epilog="Exit codes: 0 reset (or dry run); 2 --yes missing; 3 configuration or "
        "topology error; 4 Kafka unreachable; 7 the processor is running (its group has "
        "members, or a local worker holds its state folder).")
    rs.add_argument("module", metavar="MODULE[:ATTR]")
    rs.add_argument("--processor", "-p", required=True, help="the processor to reset")
    to = rs.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true", help="inputs from their log start")
    to.add_argument("--to-latest", action="store_true", help="inputs from their end")
    to.add_argument("--to-datetime", metavar="TIME",
                    help="inputs from the first record at or after TIME (ISO-8601; no zone: "
                    "UTC)")
    to.add_argument("--by-duration", metavar="DURATION",
                    help="inputs from DURATION ago (PT1H, P1DT12H, 15m, 2h, 1d)")
    rs.add_argument("--dry-run", action="store_true", help="print the steps, change nothing")
    rs.add_argument("--yes", action="store_true", help="really reset (state is lost)")
    rs.add_argument("--config", "-c", help=CONFIG_HELP)
    rs.set_defaults(func=cmd_reset)

    dl = sub.add_parser("dlq", help="list or replay a processor's dead letters",
                        description="Dead letters of processors that may dead-letter a "
                        "record: a 'dead_letter' policy (on_error=, on_deserialize_error=, "
                        "on_processing_error=, on_produce_error=, or a step's on_error=) or a "
                        "policy function.")
    actions = dl.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser(
        "list", help="count dead letters by error type, step, phase and source topic",
        description="Read the dead-letter topic(s) and count the letters by error type, "
        "failed step, phase and source topic, and how many no replay has sent back yet.",
        epilog="Exit codes: 0 ok; 3 configuration or topology error; 4 Kafka unreachable.")
    ls.add_argument("module", metavar="MODULE[:ATTR]")
    ls.add_argument("--processor", "-p", help="only this processor (default: every one "
                    "that may dead-letter)")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.add_argument("--config", "-c", help=CONFIG_HELP)
    ls.set_defaults(func=cmd_dlq)
    rp = actions.add_parser(
        "replay", help="send dead letters back to their source topic and partition",
        description="Send each dead letter back to the topic and partition it was read from, "
        "with its original key, value, timestamp and headers (without the error and source "
        "headers, with streamflow.replay.of naming the letter). Progress is kept by the "
        "consumer group <group>.dlq-replay (one per --filter), committed in the transaction "
        "that re-sends the letters: a second replay sends nothing twice. Letters a filter "
        "passes over are not seen again by that filter.",
        epilog="Exit codes: 0 ok; 2 bad --filter; 3 configuration or topology error (e.g. "
        "the processor has no dead-letter topic); 4 Kafka unreachable.")
    rp.add_argument("module", metavar="MODULE[:ATTR]")
    rp.add_argument("--processor", "-p", required=True, help="the processor")
    rp.add_argument("--filter", metavar="KEY=VALUE,...",
                    help="only letters whose error=TYPE, step=STEP, phase=PHASE, topic=SOURCE "
                    "(and processor=NAME) all match")
    rp.add_argument("--dry-run", action="store_true", help="count, send nothing")
    rp.add_argument("--config", "-c", help=CONFIG_HELP)
    rp.set_defaults(func=cmd_dlq)
