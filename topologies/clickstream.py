"""Clickstream: enrich page views with user profiles, cut them into sessions, rank pages.

    clickstream.page-views (external; Avro com.example.PageView, key = user id)
    clickstream.users      (external; compacted JSON profiles, key = user id)
        -> [enrich]      left join with the users table   -> clickstream.views-enriched
        -> [sessions]    session windows per user (gap 30 min) -> clickstream.sessions
    clickstream.views-enriched
        -> [popularity]  views per page in 10-minute windows every minute
                                                          -> clickstream.popular-pages

Event time comes from the page view's own ``ts`` field. Windows of quiet users and pages
still close: every window spec sets ``close_after_idle``, so a partition that receives
nothing for that long emits its final results on wall-clock time.

Run: ``streamflow run topologies.clickstream``; draw: ``streamflow describe
topologies.clickstream --format svg``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import streamflow as sf

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
#: how long a quiet partition waits before it closes its windows on wall-clock time
IDLE_MS = int(os.environ.get("CLICKSTREAM_IDLE_MS", sf.seconds(30)))

topology = sf.Topology("clickstream")

views = topology.topic("clickstream.page-views", key=sf.String(),
                       value=sf.Avro(SCHEMAS / "page_view.avsc"), partitions=3, external=True)
users = topology.topic("clickstream.users", key=sf.String(), value=sf.Json(), partitions=3,
                       config={"cleanup.policy": "compact"}, external=True)
enriched = topology.topic("clickstream.views-enriched", key=sf.String(), value=sf.Json(),
                          partitions=3)
sessions = topology.topic("clickstream.sessions", key=sf.String(), value=sf.Json(),
                          partitions=3)
popular = topology.topic("clickstream.popular-pages", key=sf.String(), value=sf.Json(),
                         partitions=3)


def event_time(view: dict[str, Any]) -> int:
    """The view's own timestamp in epoch milliseconds."""
    ts = view["ts"]
    return int(ts.timestamp() * 1000) if isinstance(ts, dt.datetime) else int(ts)


def with_profile(view: dict[str, Any], user: dict[str, Any] | None) -> dict[str, Any]:
    """A JSON view carrying the user's country and plan (``unknown`` without a profile)."""
    user = user or {}
    return {
        "user_id": view["user_id"],
        "url": view["url"],
        "ts": event_time(view),
        "duration_ms": view["duration_ms"],
        "country": user.get("country", "unknown"),
        "plan": user.get("plan", "unknown"),
    }


def new_session() -> dict[str, Any]:
    """An empty session."""
    return {"views": 0, "pages": [], "time_on_pages_ms": 0}


def add_view(session: dict[str, Any], view: dict[str, Any]) -> dict[str, Any]:
    """The session with one more view."""
    pages = session["pages"] if view["url"] in session["pages"] else [*session["pages"],
                                                                       view["url"]]
    return {"views": session["views"] + 1, "pages": pages,
            "time_on_pages_ms": session["time_on_pages_ms"] + view["duration_ms"]}


def merge_sessions(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """One session out of two that a late view bridged."""
    return {"views": a["views"] + b["views"],
            "pages": a["pages"] + [p for p in b["pages"] if p not in a["pages"]],
            "time_on_pages_ms": a["time_on_pages_ms"] + b["time_on_pages_ms"]}


enrich = topology.processor("enrich")
(enrich.stream(views)
    .left_join(topology.table(users), with_profile, name="with-profile")
    .to(enriched))

per_user = topology.processor("sessions")
(per_user.stream(views)
    .group_by_key(name="by-user")
    .window(sf.Session(sf.minutes(30), grace=sf.minutes(1), close_after_idle=IDLE_MS),
            timestamp=event_time)
    .aggregate(new_session, add_view, merger=merge_sessions, name="session")
    .final(name="closed")
    .map_record(sf.with_window_in_value, name="flatten")
    .to(sessions))

popularity = topology.processor("popularity")
(popularity.stream(enriched)
    .group_by(lambda v: v["url"], name="by-page", key_serde=sf.String())
    # views reach this processor through a repartition topic written by several tasks, so
    # they arrive somewhat out of order: the grace period absorbs that
    .window(sf.Hopping(sf.minutes(10), sf.minutes(1), grace=sf.minutes(10),
                       close_after_idle=IDLE_MS),
            timestamp=lambda v: v["ts"])
    .count(name="views")
    .final(name="closed")
    .filter(lambda n: n >= 2, name="at-least-two")
    .map_record(sf.with_window_in_value, name="flatten")
    .to(popular))
