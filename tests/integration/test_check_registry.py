"""``streamflow check`` against the real schema registry of the integration cluster."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from streamflow.cli import main
from streamflow.kafka.registry import make_registry_client
from tests.integration.kafka_helpers import write_module

pytestmark = pytest.mark.integration

V1 = {"type": "record", "name": "Reading", "namespace": "it",
      "fields": [{"name": "host", "type": "string"}, {"name": "value", "type": "double"}]}
# adds a field without a default: cannot read v1 data, and BACKWARD rejects it
V2_BAD = {**V1, "fields": [*V1["fields"], {"name": "unit", "type": "string"}]}
V2_GOOD = {**V1, "fields": [*V1["fields"],
                            {"name": "unit", "type": "string", "default": "ms"}]}

MODULE = """
import streamflow as sf
from streamflow.serde.avro import Avro

topology = sf.Topology("check-it")
readings = topology.topic({src!r}, key=sf.String(), value=Avro({schema!r}), external=True)
alerts = topology.topic({out!r}, key=sf.String(), value=Avro({schema!r}))
topology.processor("copy").stream(readings).to(alerts)
"""


@pytest.mark.parametrize(("declared", "code"), [(V2_BAD, 3), (V2_GOOD, 0)])
def test_check_compares_declared_schemas_with_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    schema_registry_url: str, declared: dict[str, object], code: int,
) -> None:
    tag = uuid.uuid4().hex[:8]
    src, out = f"check-{tag}-readings", f"check-{tag}-alerts"
    registry = make_registry_client({"url": schema_registry_url})
    try:
        registry.register(f"{src}-value", json.dumps(V1))
        registry.register(f"{out}-value", json.dumps(V1))
        module = write_module(tmp_path, f"check_app_{tag}",
                              MODULE.format(src=src, out=out, schema=declared))
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("STREAMFLOW_CONFIG", raising=False)
        monkeypatch.setenv("STREAMFLOW_SCHEMA_REGISTRY_URL", schema_registry_url)
        assert main(["check", module]) == code
        text = capsys.readouterr().out
        if code:
            problems = [x for x in text.splitlines() if x.startswith("problem: [schema]")]
            assert len(problems) == 2, text
            assert any(f"topic {src!r}" in x and "unit" in x for x in problems)
            assert any(f"topic {out!r}" in x and "BACKWARD" in x for x in problems)
        else:
            assert text.startswith("OK: "), text
    finally:
        for subject in (f"{src}-value", f"{out}-value"):
            registry.delete_subject(subject, permanent=True)
        registry.close()
