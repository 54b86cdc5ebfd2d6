"""``streamflow dashboard`` in a real headless browser (Debian's Chromium through Playwright,
no browser download) while a two-processor topology runs on the real broker: the page draws
every processor and topic, its counters increase, a click shows a processor's members and a
topic's decoded records, and a stopped processor turns down within seconds."""

from __future__ import annotations

import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from streamflow.dashboard.server import missing_assets
from streamflow.testing.processes import StreamflowProcess, free_port
from tests.integration.kafka_helpers import ROOT, produce, wait_for, write_module

pytestmark = pytest.mark.integration

MODULE = """
import os
import streamflow as sf

topology = sf.Topology(os.environ["T_APP"])
src = topology.topic(os.environ["T_IN"], key=sf.String(), value=sf.Json(), external=True)
mid = topology.topic(os.environ["T_MID"], key=sf.String(), value=sf.Json())
out = topology.topic(os.environ["T_OUT"], key=sf.String(), value=sf.Json())
(topology.processor("enrich", on_error="dead_letter").stream(src)
 .map(lambda v: {**v, "square": v["n"] * v["n"]}, name="square").to(mid))
(topology.processor("route").stream(mid)
 .filter(lambda v: v["n"] % 2 == 0, name="even").to(out))
"""

SHOTS = ROOT / "build" / "dashboard"
CY = "window.streamflowDashboard.cy"


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def click_node(page: Any, node: str) -> None:
    """Click the drawn node with the mouse, where the graph library placed it."""
    box = page.locator("#cy").bounding_box()
    at = page.evaluate(f"(id) => {CY}.getElementById(id).renderedPosition()", node)
    page.mouse.click(box["x"] + at["x"], box["y"] + at["y"])


@pytest.fixture
def feed(kafka_bootstrap: str) -> Iterator[Callable[[str], None]]:
    """Starts producing ~100 records/s to a topic in a thread, until the test ends."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def run(topic: str) -> None:
        p = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
        n = 0
        while not stop.is_set():
            for _ in range(10):
                p.produce(topic, orjson.dumps({"n": n}), f"k{n % 7}".encode())
                n += 1
            p.poll(0)
            stop.wait(0.1)
        p.flush(10)

    def start(topic: str) -> None:
        t = threading.Thread(target=run, args=(topic,), daemon=True)
        t.start()
        threads.append(t)

    yield start
    stop.set()
    for t in threads:
        t.join(15)


@pytest.fixture
def topics(kafka_admin: Any) -> Iterator[dict[str, str]]:
    """The topology's name and its three topics (short names: they are drawn), deleted after."""
    app = f"dash-{uuid.uuid4().hex[:6]}"
    names = {"T_APP": app, "T_IN": f"{app}.orders", "T_MID": f"{app}.enriched",
             "T_OUT": f"{app}.even"}
    for key in ("T_IN", "T_MID", "T_OUT"):
        kafka_admin.create_topic(names[key], 2, {})
    yield names
    kafka_admin.delete_topics([*(names[k] for k in ("T_IN", "T_MID", "T_OUT")),
                               f"{app}.enrich.dlq"])
    kafka_admin.delete_groups([f"{app}.enrich", f"{app}.route"])


@pytest.fixture
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is in the test extra (pip install -e .[test])")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Chromium is not installed (make chromium, or apt-get install chromium)")
    if missing_assets():
        pytest.fail("the dashboard's graph library is not installed: run make dashboard-assets")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_dashboard_shows_the_running_topology_live_and_a_stopped_processor_down(
    tmp_path: Path, kafka_bootstrap: str, topics: dict[str, str], streamflow_app: Any,
    feed: Callable[[str], None], browser: Any,
) -> None:
    began = time.monotonic()

    def lap(what: str) -> None:
        print(f"{time.monotonic() - began:5.1f}s {what}")

    module = write_module(tmp_path, "dash_topology", MODULE)
    env = {**topics, "STREAMFLOW_COMMIT_INTERVAL_MS": "300"}
    t_in, t_mid, t_out = env["T_IN"], env["T_MID"], env["T_OUT"]
    enrich = streamflow_app(module, "enrich", env=env, cwd=tmp_path)
    route = streamflow_app(module, "route", env=env, cwd=tmp_path)
    feed(t_in)
    lap("both processors ready")

    port = free_port()
    instances = f"http://127.0.0.1:{enrich.port},http://127.0.0.1:{route.port}"
    dash = StreamflowProcess(["dashboard", module, "--port", str(port), "--interval", "0.5",
                              "--instances", instances],
                             tmp_path, {**env, "STREAMFLOW_BOOTSTRAP_SERVERS": kafka_bootstrap},
                             tmp_path / "dashboard.log")
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for("the dashboard answers", lambda: answers(url) or dash.poll() is not None, 30)
        assert dash.poll() is None, dash.output()
        page = browser.new_page(viewport={"width": 1500, "height": 820})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        lap("dashboard up")
        page.goto(url)
        page.wait_for_function(
            "window.streamflowDashboard && window.streamflowDashboard.frames > 0", timeout=20_000)

        # every processor and topic of the topology is drawn, with its edges
        nodes = set(page.evaluate(f"{CY}.nodes().map(n => n.id())"))
        assert nodes == {f"topic:{t_in}", f"topic:{t_mid}", f"topic:{t_out}",
                         "processor:enrich", "processor:route"}
        edges = set(page.evaluate(
            f"{CY}.edges().map(e => e.source().id() + '>' + e.target().id())"))
        assert edges == {f"topic:{t_in}>processor:enrich", f"processor:enrich>topic:{t_mid}",
                         f"topic:{t_mid}>processor:route", f"processor:route>topic:{t_out}"}

        def health(name: str) -> str:
            return str(page.get_attribute(f"#summary tr[data-processor='{name}']",
                                          "data-health"))

        wait_for("both processors ok", lambda: health("enrich") == health("route") == "ok", 30)
        lap("page drawn, both processors ok")

        # the counters increase: records/s on the processors, topic ends on the edges
        def figures() -> dict[str, Any]:
            return dict(page.evaluate("""() => {
                const f = window.streamflowDashboard.frame;
                const ends = Object.entries(f.topics).map(([k, v]) => [k, v.end]);
                return {seq: f.seq, enrich: f.processors.enrich.rate,
                        route: f.processors.route.rate, ends: Object.fromEntries(ends)};
            }"""))

        first = figures()
        wait_for("records/s above 0 on both processors",
                   lambda: (figures()["enrich"] or 0) > 0 and (figures()["route"] or 0) > 0, 20)
        wait_for("every topic's end grows", lambda: all(
            figures()["ends"][t] > first["ends"][t] for t in (t_in, t_mid, t_out)), 20)
        label = page.evaluate(f"{CY}.getElementById('processor:enrich').data('label')")
        assert "rec/s" in label and "lag" in label
        rate_cell = "#summary tr[data-processor='enrich'] [data-field='rate']"
        assert float(page.inner_text(rate_cell)) > 0
        lap("counters increase")

        # a click on a processor shows its members and partitions, on a topic its latest
        # records, decoded
        click_node(page, "processor:enrich")
        page.wait_for_selector("#details h2:has-text('processor enrich')")
        details = page.inner_text("#details")
        assert "members" in details and f"{t_in}-0" in details and "ready" in details
        lap("processor details shown")
        click_node(page, f"topic:{t_out}")
        page.wait_for_selector("#topic-records table", timeout=20_000)
        records = page.inner_text("#topic-records")
        assert '"square"' in records
        lap("details and records shown")

        # records that fail count as errors: dead letters, and errors by step in the details
        page.click("#summary tr[data-processor='enrich']")
        produce(kafka_bootstrap, t_in, [(b"bad", b"{not json")] * 3)
        errors_cell = "#summary tr[data-processor='enrich'] [data-field='errors']"
        wait_for("3 errors shown", lambda: page.inner_text(errors_cell) == "3", 20)
        wait_for("errors by step shown", lambda: "SerdeError" in page.inner_text("#details"), 10)
        lap("errors shown")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "running.png"))

        # a stopped processor turns down within a few seconds; the other stays up
        stopping = time.monotonic()
        route.stop()
        wait_for("the stopped processor shown down", lambda: health("route") == "down", 10)
        took = time.monotonic() - stopping
        assert health("enrich") != "down"
        page.screenshot(path=str(SHOTS / "stopped.png"))
        lap(f"route shown down {took:.1f}s after its SIGTERM")
        assert not errors, errors
    finally:
        dash.terminate(20)
        lap("dashboard stopped")
    assert "streamflow dashboard of" in dash.output()
