"""Checks that a JSON document is an OpenLineage event, for the lineage tests.

No installable package ships the OpenLineage JSON schema (``OpenLineage.json``): the
openlineage-python client generates its classes from it instead. So an event is checked in two
ways: against the spec's required fields and formats (as the schema states them: 2-0-2), and
by rebuilding it with the client's own classes, whose validators run, and serialising it back
to the same document.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    JobEvent,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.serde import Serde

SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/"
RUN_STATES = {"START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"}


def _uri(value: Any) -> bool:
    return isinstance(value, str) and bool(urlparse(value).scheme)


def _facets(facets: Any, where: str) -> None:
    assert isinstance(facets, dict), where
    for name, facet in facets.items():
        assert _uri(facet.get("_producer")), f"{where}.{name}: _producer must be a URI"
        assert _uri(facet.get("_schemaURL")), f"{where}.{name}: _schemaURL must be a URI"


def _dataset(doc: Any, where: str) -> None:
    assert isinstance(doc.get("namespace"), str) and doc["namespace"], where
    assert isinstance(doc.get("name"), str) and doc["name"], where
    _facets(doc.get("facets", {}), where)


def check_event(doc: dict[str, Any]) -> None:
    """Assert that ``doc`` is a RunEvent or JobEvent as the OpenLineage spec defines them."""
    # BaseEvent: eventTime (date-time), producer (uri), schemaURL (uri)
    time = doc["eventTime"]
    assert "T" in time, time
    datetime.fromisoformat(time.replace("Z", "+00:00"))
    assert _uri(doc["producer"]) and _uri(doc["schemaURL"])
    assert doc["schemaURL"].startswith(SPEC)
    kind = doc["schemaURL"].removeprefix(SPEC)
    assert kind in ("RunEvent", "JobEvent"), kind
    job = doc["job"]
    assert isinstance(job["namespace"], str) and isinstance(job["name"], str)
    _facets(job.get("facets", {}), "job")
    for i, d in enumerate(doc.get("inputs", [])):
        _dataset(d, f"inputs[{i}]")
    for i, d in enumerate(doc.get("outputs", [])):
        _dataset(d, f"outputs[{i}]")
    if kind == "RunEvent":
        uuid.UUID(doc["run"]["runId"])
        _facets(doc["run"].get("facets", {}), "run")
        assert doc.get("eventType") in RUN_STATES
    # the client's own classes accept it and give it back unchanged (facets aside, whose
    # classes the checks above cover)
    inputs = [InputDataset(namespace=d["namespace"], name=d["name"])
              for d in doc.get("inputs", [])]
    outputs = [OutputDataset(namespace=d["namespace"], name=d["name"])
               for d in doc.get("outputs", [])]
    job_obj = Job(namespace=job["namespace"], name=job["name"])
    if kind == "RunEvent":
        event: Any = RunEvent(eventType=RunState(doc["eventType"]), eventTime=time,
                              run=Run(runId=doc["run"]["runId"]), job=job_obj, inputs=inputs,
                              outputs=outputs, producer=doc["producer"])
    else:
        event = JobEvent(eventTime=time, job=job_obj, inputs=inputs, outputs=outputs,
                         producer=doc["producer"])
    rebuilt = Serde.to_dict(event)
    assert rebuilt["schemaURL"] == doc["schemaURL"]
    for key in ("eventTime", "producer", "eventType"):
        assert rebuilt.get(key) == doc.get(key), key
    for side in ("inputs", "outputs"):
        assert [(d["namespace"], d["name"]) for d in rebuilt.get(side, [])] == [
            (d["namespace"], d["name"]) for d in doc.get(side, [])]
