"""``streamflow schemas check|register`` against the real schema registry."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamflow.cli import main
from streamflow.kafka.registry import RegistryClient, make_registry_client
from tests.integration.kafka_helpers import write_module

pytestmark = pytest.mark.integration


def rec(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "Reading", "namespace": "it.schemas",
            "fields": list(fields)}


V1 = rec({"name": "host", "type": "string"}, {"name": "value", "type": "double"})
NO_DEFAULT = rec(*V1["fields"], {"name": "unit", "type": "string"})
WITH_DEFAULT = rec(*V1["fields"], {"name": "unit", "type": "string", "default": "ms"})
DROPPED = rec({"name": "host", "type": "string"})  # `value` has no default
RETYPED = rec({"name": "host", "type": "string"}, {"name": "value", "type": "string"},
              {"name": "unit", "type": "string", "default": "ms"})

MODULE = """
import json
import streamflow as sf
from streamflow.serde.avro import Avro

SCHEMA = json.loads({schema!r})
topology = sf.Topology("schemas-it")
readings = topology.topic({src!r}, key=sf.String(), value=Avro(SCHEMA), external=True)
out = topology.topic({out!r}, key=sf.String(), value=Avro(SCHEMA))
topology.processor("copy").stream(readings).to(out)
"""


@pytest.fixture
def registry(schema_registry_url: str) -> Iterator[RegistryClient]:
    client = make_registry_client({"url": schema_registry_url})
    yield client
    client.close()


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schema_registry_url: str,
        registry: RegistryClient) -> Iterator[dict[str, Any]]:
    tag = uuid.uuid4().hex[:8]
    src, out = f"schemas-{tag}-readings", f"schemas-{tag}-out"
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("STREAMFLOW_CONFIG", raising=False)
    monkeypatch.setenv("STREAMFLOW_SCHEMA_REGISTRY_URL", schema_registry_url)

    def module(schema: dict[str, Any]) -> str:
        name = f"schemas_app_{uuid.uuid4().hex[:8]}"
        return write_module(tmp_path, name, MODULE.format(schema=json.dumps(schema), src=src,
                                                          out=out))

    yield {"src": src, "out": out, "module": module}
    for subject in (f"{src}-value", f"{out}-value"):
        registry.delete_subject(subject, permanent=True)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_incompatible_change_fails_schemas_check_with_an_explanation(
    app: dict[str, Any], registry: RegistryClient, capsys: pytest.CaptureFixture[str],
) -> None:
    registry.register(f"{app['src']}-value", json.dumps(V1))
    registry.register(f"{app['out']}-value", json.dumps(V1))
    code, out = run(capsys, "schemas", "check", app["module"](NO_DEFAULT))
    assert code == 3, out
    level = registry.compatibility(f"{app['out']}-value")
    assert f"FAIL       {app['out']}-value (topic {app['out']!r} value" in out
    assert f"the registry would refuse it under {level}" in out
    assert "- Reading.unit: field added without a default" in out
    # the external topic is judged as a reader: it cannot read v1 data without a default
    assert f"FAIL       {app['src']}-value" in out
    assert "processor(s) 'copy' read with it" in out
    assert "2 subject(s): 2 fail" in out

    code, out = run(capsys, "schemas", "check", app["module"](WITH_DEFAULT))
    assert code == 0, out
    assert f"OK         {app['out']}-value" in out and f"compatible under {level} with v1" in out


def test_forward_level_on_the_subject_is_applied(
    app: dict[str, Any], registry: RegistryClient, capsys: pytest.CaptureFixture[str],
) -> None:
    subject = f"{app['out']}-value"
    registry.register(subject, json.dumps(V1))
    registry.set_compatibility("FORWARD", subject)
    code, out = run(capsys, "schemas", "check", app["module"](DROPPED))
    assert code == 3, out
    assert "refuse it under FORWARD" in out and "Reading.value" in out
    registry.set_compatibility("NONE", subject)
    code, out = run(capsys, "schemas", "check", app["module"](DROPPED))
    assert code == 0, out


def test_register_then_a_refused_registration_exits_3_with_the_registrys_message(
    app: dict[str, Any], registry: RegistryClient, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = run(capsys, "schemas", "check", app["module"](V1))
    assert code == 0 and f"NEW        {app['out']}-value" in out, out
    code, out = run(capsys, "schemas", "register", app["module"](V1))
    assert code == 0, out
    assert f"REGISTERED {app['out']}-value" in out and "registered as version 1" in out
    assert f"SKIPPED    {app['src']}-value" in out
    assert registry.versions(f"{app['src']}-value") == []
    code, out = run(capsys, "schemas", "register", app["module"](WITH_DEFAULT))
    assert code == 0 and "registered as version 2" in out, out
    code, out = run(capsys, "schemas", "register", app["module"](WITH_DEFAULT))
    assert code == 0 and f"EXISTS     {app['out']}-value" in out, out

    code, out = run(capsys, "schemas", "register", app["module"](RETYPED))
    assert code == 3, out
    assert f"REFUSED    {app['out']}-value" in out
    assert "refused schema it.schemas.Reading" in out
    assert "Reading.value: type changed from double to string" in out
    assert "1 subject(s) refused or invalid" in out
    assert [v.version for v in registry.versions(f"{app['out']}-value")] == [1, 2]
