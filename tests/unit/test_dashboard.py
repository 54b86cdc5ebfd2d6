"""The dashboard's server without a browser: SSE framing, JSON answers, the missing-assets page,
and the health each processor is given from its figures."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import streamflow as sf
from streamflow.cli import build_parser
from streamflow.dashboard import DashboardServer, FrameBuilder, Poller, processor_health, sse_event
from streamflow.dashboard.server import ASSETS, missing_assets


def _topology() -> sf.Topology:
    t = sf.Topology("shop")
    orders = t.topic("orders", partitions=2)
    paid = t.topic("paid")
    counts = t.topic("counts")
    t.processor("pay").stream(orders).filter(lambda v: v is not None, name="nonnull").to(paid)
    (t.processor("count").stream(paid).group_by(lambda v: v, name="by-value")
     .count(name="per-value").to_stream().to(counts))
    return t


def _assets(tmp_path: Path) -> Path:
    for rel in ASSETS.values():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("/* stand-in for the npm file */")
    return tmp_path


def _processor(**over: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"name": "pay", "state": "Stable",
                         "members": [{"instance_id": "host-0", "host": "/127.0.0.1",
                                      "partitions": [["orders", 0]]}],
                         "partitions": [{"topic": "orders", "partition": 0, "start": 0,
                                         "end": 10, "committed": 10, "lag": 0}],
                         "dead_letters": None, "instances": []}
    p.update(over)
    return p


class FakeObserve:
    """Observations that grow by ``step`` records per call (or raise ``fail``)."""

    def __init__(self, step: int = 10) -> None:
        self.calls = 0
        self.step = step
        self.fail: Exception | None = None

    def __call__(self) -> dict[str, Any]:
        if self.fail is not None:
            raise self.fail
        self.calls += 1
        end = self.calls * self.step
        part = {"topic": "orders", "partition": 0, "start": 0, "end": end, "committed": end,
                "lag": 0}
        return {"processors": {"pay": _processor(partitions=[part])},
                "topics": {"orders": {"end": end}, "paid": {"end": end}}}


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


# --- server-sent events ---


def test_sse_event_puts_each_line_of_the_data_on_its_own_data_line() -> None:
    assert sse_event("one\ntwo", event="frame", event_id=3) == (
        b"event: frame\nid: 3\ndata: one\ndata: two\n\n")
    assert sse_event("{}") == b"data: {}\n\n"


def test_event_stream_sends_each_new_frame_as_a_frame_event(tmp_path: Path) -> None:
    observe = FakeObserve()
    server = DashboardServer(_topology(), observe, interval=0.05, assets_dir=_assets(tmp_path))
    with server, urllib.request.urlopen(f"{server.url}api/events", timeout=10) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        assert r.readline() == b"retry: 2000\n"
        assert r.readline() == b"\n"
        events: list[dict[str, str]] = []
        current: dict[str, str] = {}
        while len(events) < 3:
            line = r.readline().decode().rstrip("\n")
            if line:
                field, _, value = line.partition(": ")
                current[field] = value
            else:
                events.append(current)
                current = {}
    assert all(e["event"] == "frame" for e in events)
    frames = [json.loads(e["data"]) for e in events]
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert [int(e["id"]) for e in events] == seqs
    assert frames[-1]["processors"]["pay"]["health"] == "ok"
    assert frames[-1]["topics"]["orders"]["rate"] > 0


def test_stopping_the_server_ends_open_event_streams(tmp_path: Path) -> None:
    server = DashboardServer(_topology(), FakeObserve(), interval=0.05,
                             assets_dir=_assets(tmp_path), keepalive_s=0.05).start()
    chunks: list[bytes] = []
    done = threading.Event()

    def write(chunk: bytes) -> None:
        chunks.append(chunk)

    def run() -> None:
        server.stream(write)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    server.stop()
    assert done.wait(5)
    assert chunks[0] == b"retry: 2000\n\n"


# --- JSON answers ---


def test_graph_answer_lists_every_topic_and_processor_and_their_edges(tmp_path: Path) -> None:
    with DashboardServer(_topology(), FakeObserve(), assets_dir=_assets(tmp_path)) as server:
        status, ctype, body = _get(f"{server.url}api/graph")
    assert status == 200 and ctype == "application/json"
    graph = json.loads(body)
    ids = {n["id"] for n in graph["nodes"]}
    assert {"topic:orders", "topic:paid", "topic:counts", "processor:pay",
            "processor:count"} <= ids
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    assert ("topic:orders", "processor:pay") in edges
    assert ("processor:pay", "topic:paid") in edges
    assert ("topic:paid", "processor:count") in edges
    assert all(e["topic"] in {"orders", "paid", "counts"} or "repartition" in e["topic"]
               for e in graph["edges"])
    count = next(n for n in graph["nodes"] if n["id"] == "processor:count")
    assert count["stores"] and count["group"] == "shop.count"


def test_frame_answer_is_the_latest_frame(tmp_path: Path) -> None:
    server = DashboardServer(_topology(), FakeObserve(), assets_dir=_assets(tmp_path))
    assert json.loads(server.answer("/api/frame")[2]) == {"seq": 0}
    server.poller.poll_once()
    server.poller.poll_once()
    frame = json.loads(server.answer("/api/frame")[2])
    assert frame["seq"] == 2 and frame["error"] is None
    assert frame["processors"]["pay"]["lag"] == 0


def test_a_failing_poll_gives_a_frame_that_says_why() -> None:
    observe = FakeObserve()
    observe.fail = ConnectionError("broker down")
    frame = Poller(observe, 1.0).poll_once()
    assert frame["error"] == "ConnectionError: broker down"
    assert frame["processors"] == {}


def test_topic_records_answers(tmp_path: Path) -> None:
    asked: list[tuple[str, int]] = []

    def records(topic: str, last: int) -> list[dict[str, Any]]:
        asked.append((topic, last))
        if topic == "counts":
            raise RuntimeError("registry down")
        return [{"partition": 0, "offset": 4, "key": "k", "value": {"n": 1}}]

    server = DashboardServer(_topology(), FakeObserve(), records=records,
                             assets_dir=_assets(tmp_path))
    status, ctype, body = server.answer("/api/topics/orders/records?last=5")
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body)["records"][0]["value"] == {"n": 1}
    assert server.answer("/api/topics/orders/records?last=100000")[0] == 200
    assert asked == [("orders", 5), ("orders", 200)]  # bounded
    assert server.answer("/api/topics/nope/records")[0] == 404
    assert "no topic 'nope'" in json.loads(server.answer("/api/topics/nope/records")[2])["error"]
    assert server.answer("/api/topics/orders/records?last=x")[0] == 400
    status, _, body = server.answer("/api/topics/counts/records")
    assert status == 502 and "registry down" in json.loads(body)["error"]
    bare = DashboardServer(_topology(), FakeObserve(), assets_dir=_assets(tmp_path))
    assert bare.answer("/api/topics/orders/records")[0] == 501


# --- the page and its assets ---


def test_page_says_to_run_make_dashboard_assets_when_the_library_is_missing(
        tmp_path: Path) -> None:
    assert sorted(missing_assets(tmp_path)) == sorted(ASSETS.values())
    with DashboardServer(_topology(), FakeObserve(), assets_dir=tmp_path) as server:
        status, ctype, body = _get(server.url)
        asset_status = _get(f"{server.url}assets/cytoscape.min.js")[0]
    assert status == 503 and ctype.startswith("text/html")
    assert b"make dashboard-assets" in body
    assert b"cytoscape/dist/cytoscape.min.js" in body
    assert asset_status == 404


def test_page_and_assets_are_served_when_installed(tmp_path: Path) -> None:
    assets = _assets(tmp_path)
    assert missing_assets(assets) == []
    with DashboardServer(_topology(), FakeObserve(), assets_dir=assets) as server:
        status, _, body = _get(server.url)
        js = _get(f"{server.url}assets/cytoscape-dagre.min.js")
        own = _get(f"{server.url}static/dashboard.js")
        other = _get(f"{server.url}static/../server.py")
    assert status == 200 and b"/assets/cytoscape.min.js" in body
    assert js[0] == 200 and js[2] == b"/* stand-in for the npm file */"
    assert own[0] == 200 and b"EventSource" in own[2]
    assert other[0] == 404


# --- frames and health ---


def test_no_members_is_down_and_unanswering_instances_are_down() -> None:
    assert processor_health(_processor(members=[], state="Empty"))[0] == "down"
    gone = _processor(instances=[{"instance_id": "host-0", "reachable": False}])
    health, reasons = processor_health(gone)
    assert health == "down" and "answers /status" in reasons[0]
    assert processor_health({"state": None})[0] == "unknown"


def test_an_instance_not_ready_is_a_warning_with_its_reasons() -> None:
    p = _processor(instances=[{"instance_id": "host-0", "reachable": True, "ready": False,
                               "reasons": ["restoring state"]}])
    assert processor_health(p) == ("warn", ["host-0: restoring state"])
    ok = _processor(instances=[{"instance_id": "host-0", "reachable": True, "ready": True}])
    assert processor_health(ok) == ("ok", [])


def test_lag_growing_for_the_given_polls_is_a_warning() -> None:
    b = FrameBuilder(lag_polls=3)
    healths = []
    for lag in (0, 5, 10, 20, 20):
        frame = b.update({"processors": {"pay": _processor(lag=lag)}})
        healths.append(frame["processors"]["pay"]["health"])
    assert healths == ["ok", "ok", "ok", "warn", "ok"]


def test_new_dead_letters_and_skips_are_a_warning_once() -> None:
    b = FrameBuilder()
    inst = {"instance_id": "host-0", "reachable": True, "ready": True, "skipped": 1}
    healths, errors = [], []
    for dead in (2, 2, 5, 5):
        frame = b.update({"processors": {"pay": _processor(dead_letters=dead,
                                                           instances=[inst])}})
        healths.append(frame["processors"]["pay"]["health"])
        errors.append(frame["processors"]["pay"]["errors"])
    assert errors == [3, 3, 6, 6]
    assert healths == ["ok", "ok", "warn", "ok"]


def test_rates_come_from_the_instances_else_from_committed_offsets() -> None:
    b = FrameBuilder()

    def obs(committed: int, end: int, rate: float | None = None) -> dict[str, Any]:
        part = {"topic": "orders", "partition": 0, "start": 0, "end": end,
                "committed": committed, "lag": end - committed}
        return {"processors": {"pay": _processor(partitions=[part], records_in_per_s=rate)},
                "topics": {"orders": {"end": end}}}

    assert b.update(obs(0, 0), now=10.0)["processors"]["pay"]["rate"] is None
    f = b.update(obs(100, 100), now=12.0)
    assert f["processors"]["pay"]["rate"] == 50.0 and f["topics"]["orders"]["rate"] == 50.0
    f = b.update(obs(100, 100, rate=7.25), now=14.0)
    assert f["processors"]["pay"]["rate"] == 7.2  # the instances' own figure
    assert b.update({"error": "Unreachable: broker down"}, now=16.0)["processors"] == {}
    f = b.update(obs(140, 140), now=18.0)  # against the last good poll, 4 s before
    assert f["processors"]["pay"]["rate"] == 10.0 and f["topics"]["orders"]["rate"] == 10.0
    f = b.update(obs(0, 0), now=20.0)  # the topic was recreated: no negative rates
    assert f["processors"]["pay"]["rate"] == 0.0 and f["topics"]["orders"]["rate"] == 0.0


# --- the command ---


def test_dashboard_command_is_registered_with_its_options() -> None:
    args = build_parser().parse_args(["dashboard", "topologies.orders", "--port", "9000",
                                      "--interval", "0.5", "--instances", "http://a:1,http://b:2"])
    assert (args.port, args.interval, args.host) == (9000, 0.5, "127.0.0.1")
    assert args.instances == "http://a:1,http://b:2"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["dashboard", "m", "--interval", "0"])


def test_error_kinds_keep_one_workers_errors_from_a_merged_document() -> None:
    from streamflow.dashboard.observe import error_kinds

    text = "\n".join([
        "# TYPE streamflow_errors counter",
        'streamflow_errors_total{topology="t",processor="pay",instance="h-0",step="parse",'
        'exception="KeyError"} 3',
        'streamflow_errors_total{topology="t",processor="pay",instance="h-1",step="parse",'
        'exception="KeyError"} 5',
        'streamflow_errors_total{topology="t",processor="count",instance="h-0",step="add",'
        'exception="TypeError"} 2',
        'streamflow_errors_total{topology="t",processor="count",instance="h-0",step="zero",'
        'exception="ValueError"} 0',
        "",
    ])
    assert error_kinds(text, "pay", "h-1") == [
        {"step": "parse", "exception": "KeyError", "count": 5}]
    assert error_kinds(text, "count", "h-0") == [
        {"step": "add", "exception": "TypeError", "count": 2}]
    assert len(error_kinds(text)) == 3


def test_an_unreachable_broker_is_a_frame_error_and_the_next_poll_tries_again() -> None:
    from streamflow.config import Config
    from streamflow.dashboard.observe import TopologyObserver

    observer = TopologyObserver(_topology(), Config(bootstrap_servers="127.0.0.1:9"),
                                timeout_s=1.0)
    poller = Poller(observer, 1.0)
    first = poller.poll_once()
    assert first["error"] and "Unreachable" in first["error"], first["error"]
    assert first["processors"] == {}
    second = poller.poll_once()
    assert second["seq"] == first["seq"] + 1 and second["error"]
