"""Every example topology works with every tool: describe (all formats), check, deploy k8s
(manifests valid against the Kubernetes API schema); topics and run are covered against the
broker in tests/integration/test_examples_tooling.py and the end-to-end example tests."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

import streamflow as sf
from streamflow.cli import main

EXAMPLES = ["topologies.orders", "topologies.clickstream", "topologies.payments"]

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")


@pytest.fixture(autouse=True)
def _no_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMFLOW_SCHEMA_REGISTRY_URL", raising=False)


@pytest.mark.parametrize("module", EXAMPLES)
@pytest.mark.parametrize("fmt", ["text", "mermaid", "dot"])
def test_describe_prints_every_processor(module: str, fmt: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", module, "--format", fmt]) == 0
    out = capsys.readouterr().out
    topology = importlib.import_module(module).topology
    assert isinstance(topology, sf.Topology)
    for name in topology.processors:
        assert name in out


@pytest.mark.parametrize("module", EXAMPLES)
def test_check_passes_on_the_examples(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", module]) == 0, capsys.readouterr()
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("module", EXAMPLES)
def test_deploy_k8s_renders_valid_manifests_for_every_processor(
    module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deploy", "k8s", module, "--image", "registry.example/app:1.0"]) == 0
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    topology = importlib.import_module(module).topology
    sets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "StatefulSet"}
    assert len(sets) == len(topology.processors)
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)
    for sts in sets.values():
        container = sts["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        argv = [*container.get("command", []), *container.get("args", [])]
        assert argv[argv.index("--processor") + 1] in topology.processors
