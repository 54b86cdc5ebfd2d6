"""topologies/clickstream.py through the TopologyTestDriver (mock schema registry)."""

from __future__ import annotations

import datetime as dt

import pytest

import streamflow as sf
from streamflow.testing import TopologyTestDriver
from topologies import clickstream

MIN = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % (10 * MIN)


def _view(user: str, url: str, ts: int, duration: int = 1000) -> dict[str, object]:
    return {"user_id": user, "url": url, "referrer": None, "duration_ms": duration,
            "ts": dt.datetime.fromtimestamp(ts / 1000, dt.UTC), "tags": {}}


@pytest.fixture
def driver() -> TopologyTestDriver:
    return TopologyTestDriver(clickstream.topology, config={"store": "memory"})


def test_views_are_enriched_with_the_user_profile_or_unknown(driver: TopologyTestDriver) -> None:
    with driver:
        driver.input("clickstream.users").send({"country": "NL", "plan": "pro"}, key="ann")
        driver.input("clickstream.page-views").send(_view("ann", "/a", T0), key="ann",
                                                    timestamp=T0)
        driver.input("clickstream.page-views").send(_view("bob", "/b", T0), key="bob",
                                                    timestamp=T0)
        out = driver.output("clickstream.views-enriched").read_values()
    assert [(v["user_id"], v["country"], v["plan"]) for v in out] == [
        ("ann", "NL", "pro"), ("bob", "unknown", "unknown")]
    assert out[0]["ts"] == T0


def test_sessions_close_after_the_gap_and_merge_bridged_ones(driver: TopologyTestDriver) -> None:
    views = driver.input("clickstream.page-views")
    with driver:
        views.send(_view("ann", "/a", T0), key="ann", timestamp=T0)
        # 31 minutes later: a second session (the gap is 30), the first still open (grace 1)
        views.send(_view("ann", "/b", T0 + 31 * MIN), key="ann", timestamp=T0 + 31 * MIN)
        # bridges the two sessions (within 30 minutes of each)
        views.send(_view("ann", "/c", T0 + 15 * MIN), key="ann", timestamp=T0 + 15 * MIN)
        assert driver.output("clickstream.sessions").read_values() == []
        # a view 2 hours later moves stream time past gap + grace: the session closes
        views.send(_view("ann", "/d", T0 + 120 * MIN), key="ann", timestamp=T0 + 120 * MIN)
        closed = driver.output("clickstream.sessions").read_records()
    assert len(closed) == 1
    assert closed[0].key == "ann"
    assert closed[0].value["start"] == T0 and closed[0].value["end"] == T0 + 31 * MIN
    assert closed[0].value["value"] == {"views": 3, "pages": ["/a", "/b", "/c"],
                                        "time_on_pages_ms": 3000}


def test_popular_pages_count_views_in_hopping_windows(driver: TopologyTestDriver) -> None:
    views = driver.input("clickstream.page-views")
    with driver:
        for i in range(3):
            views.send(_view(f"u{i}", "/home", T0 + i * 1000), key=f"u{i}", timestamp=T0)
        views.send(_view("u9", "/rare", T0), key="u9", timestamp=T0)
        # far later: every window holding the first views has closed
        views.send(_view("u1", "/home", T0 + 60 * MIN), key="u1", timestamp=T0 + 60 * MIN)
        out = driver.output("clickstream.popular-pages").read_values()
    # ten 10-minute windows advancing by a minute hold T0; /rare (1 view) is filtered out
    assert len(out) == 10
    assert {v["key"] for v in out} == {"/home"}
    assert all(v["value"] == 3 for v in out)
    assert sorted(v["start"] for v in out) == [T0 - k * MIN for k in range(9, -1, -1)]


def test_quiet_partitions_close_their_windows_on_wall_clock_time() -> None:
    with TopologyTestDriver(clickstream.topology, config={"store": "memory"}) as driver:
        driver.input("clickstream.page-views").send(_view("ann", "/a", T0), key="ann",
                                                    timestamp=T0)
        driver.advance_wall_clock(clickstream.IDLE_MS + 1000)
        closed = driver.output("clickstream.sessions").read_values()
    assert [(c["key"], c["value"]["views"]) for c in closed] == [("ann", 1)]


def test_the_dag_connects_enrich_to_popularity_through_a_topic() -> None:
    t = clickstream.topology
    assert "clickstream.views-enriched" in t.processors["enrich"].sink_topics()
    assert "clickstream.views-enriched" in t.processors["popularity"].source_topics()
    assert isinstance(t.topics["clickstream.page-views"].value, sf.Avro)
