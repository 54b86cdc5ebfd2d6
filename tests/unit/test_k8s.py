"""``streamflow deploy k8s`` manifests, the Dockerfile and the compose file.

Manifests are parsed as YAML and validated against the Kubernetes API schema shipped by
``kubernetes-validate`` (offline), and their cross-references checked field by field.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamflow as sf
from streamflow.cli import main
from streamflow.config import Config
from streamflow.ops import k8s

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.30"


def _orders() -> sf.Topology:
    topology = importlib.import_module("topologies.orders").topology
    assert isinstance(topology, sf.Topology)
    return topology


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def _render(topology: sf.Topology | None = None, **opts: Any) -> tuple[list[dict[str, Any]],
                                                                        list[str]]:
    config = Config(bootstrap_servers="kafka.prod:9092",
                    kafka={"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                           "sasl.username": "app", "sasl.password": "hunter2"},
                    schema_registry={"url": "https://registry:8081",
                                     "basic.auth.user.info": "u:p"})
    r = k8s.render(topology or _orders(), "topologies.orders", k8s.K8sOptions(**opts), config)
    return _docs(r.yaml()), r.warnings


def test_manifests_validate_against_the_kubernetes_api_schema() -> None:
    kv = pytest.importorskip("kubernetes_validate")
    docs, _ = _render(namespace="streams", replicas=2)
    assert [d["kind"] for d in docs] == ["ConfigMap", "StatefulSet", "Service", "StatefulSet",
                                         "Service"]
    for doc in docs:
        kv.validate(doc, K8S_VERSION, strict=True)


def test_a_broken_manifest_fails_the_schema_validation() -> None:
    """The validator really validates: a misspelt field is rejected."""
    kv = pytest.importorskip("kubernetes_validate")
    docs, _ = _render()
    sts = docs[1]
    sts["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(sts, K8S_VERSION, strict=True)


def test_one_statefulset_and_headless_service_per_processor() -> None:
    docs, _ = _render(namespace="streams")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        assert d["apiVersion"] and d["metadata"]["name"]
        assert d["metadata"]["namespace"] == "streams"
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", d["metadata"]["name"])
        by_kind.setdefault(d["kind"], []).append(d)
    services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
    config_maps = {c["metadata"]["name"] for c in by_kind["ConfigMap"]}
    processors = []
    for sts in by_kind["StatefulSet"]:
        spec = sts["spec"]
        pod = spec["template"]["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        svc = services[spec["serviceName"]]
        assert svc["spec"]["clusterIP"] == "None"
        assert svc["spec"]["selector"] == spec["selector"]["matchLabels"]
        (container,) = pod["containers"]
        processor = container["command"][-1]
        processors.append(processor)
        assert container["command"] == ["streamflow", "run", "topologies.orders",
                                        "--processor", processor]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
        assert ports["health"] == 8080
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["limits"]["memory"]
        claims = {c["metadata"]["name"] for c in spec["volumeClaimTemplates"]}
        volumes = {v["name"] for v in pod.get("volumes", [])}
        for mount in container["volumeMounts"]:
            assert mount["name"] in claims | volumes
        state = next(m for m in container["volumeMounts"] if m["name"] == "state")
        env_from = container["envFrom"]
        assert {"configMapRef": {"name": "orders-config"}} in env_from
        assert env_from[0]["configMapRef"]["name"] in config_maps
        assert any(e.get("secretRef", {}).get("name") == "orders-secrets" for e in env_from)
        cm = by_kind["ConfigMap"][0]["data"]
        assert cm["STREAMFLOW_STATE_DIR"] == state["mountPath"]
        assert cm["STREAMFLOW_HEALTH_PORT"] == str(ports["health"])
        assert pod["securityContext"]["runAsNonRoot"] is True
    assert processors == ["enrich", "route"]


def test_secrets_stay_out_of_the_configmap_and_come_from_secret_key_refs() -> None:
    docs, warnings = _render()
    text = yaml.safe_dump_all(docs)
    assert "hunter2" not in text and "u:p" not in text
    cm = docs[0]["data"]
    assert cm["STREAMFLOW_BOOTSTRAP_SERVERS"] == "kafka.prod:9092"
    assert cm["STREAMFLOW_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert cm["STREAMFLOW_SCHEMA_REGISTRY_URL"] == "https://registry:8081"
    env = {e["name"]: e for e in docs[1]["spec"]["template"]["spec"]["containers"][0]["env"]}
    ref = env["STREAMFLOW_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "orders-secrets" and ref["key"]
    assert "STREAMFLOW_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO" in env
    assert any("kubectl create secret generic orders-secrets" in w for w in warnings)


def test_replicas_are_capped_at_the_source_partitions() -> None:
    docs, warnings = _render(replicas=10)
    partitions = {t.name: t.partitions for t in _orders().topics.values()}
    for sts in (d for d in docs if d["kind"] == "StatefulSet"):
        assert sts["spec"]["replicas"] == 3 <= max(p or 0 for p in partitions.values())
    assert sum("capped to 3" in w for w in warnings) == 2
    docs, warnings = _render(replicas=2)
    assert {d["spec"]["replicas"] for d in docs if d["kind"] == "StatefulSet"} == {2}
    assert not [w for w in warnings if "capped" in w]


def test_unknown_partitions_leave_replicas_uncapped_with_a_warning() -> None:
    t = sf.Topology("Big_Shop.v2")
    src = t.topic("in", external=True)
    t.processor("Count.Things").stream(src).to(t.topic("out"))
    docs, warnings = _render(t, replicas=4)
    sts = docs[1]
    assert sts["spec"]["replicas"] == 4
    assert sts["metadata"]["name"] == "big-shop-v2-count-things"
    assert any("not capped" in w and "'in'" in w for w in warnings)


def test_long_names_are_shortened_with_a_stable_hash() -> None:
    name = k8s.dns_name("a" * 40, "processor-with-a-long-name")
    assert len(name) <= 52 and name == k8s.dns_name("a" * 40, "processor-with-a-long-name")
    assert re.fullmatch(r"[a-z0-9-]+", name)


def test_cli_writes_one_file_per_processor(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "k8s"
    assert main(["deploy", "k8s", "topologies.orders", "--output", str(out), "--image",
                 "registry.example/orders:1.2", "--replicas", "2"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["00-config.yaml", "01-enrich.yaml", "02-route.yaml"]
    docs = _docs((out / "01-enrich.yaml").read_text())
    assert [d["kind"] for d in docs] == ["StatefulSet", "Service"]
    assert docs[0]["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "registry.example/orders:1.2"
    assert "wrote" in capsys.readouterr().err


def test_cli_prints_to_stdout_and_rejects_zero_replicas(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["deploy", "k8s", "topologies.orders"]) == 0
    assert len(_docs(capsys.readouterr().out)) == 5
    assert main(["deploy", "k8s", "topologies.orders", "--replicas", "0"]) == 2


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_scalars = st.none() | st.booleans() | st.integers(-10**9, 10**9) | _text
_docs_strategy = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(_docs_strategy)
def test_yaml_emitter_round_trips_through_a_yaml_parser(doc: Any) -> None:
    assert yaml.safe_load(k8s.to_yaml(doc)) == doc


@pytest.mark.parametrize("value", ["yes", "No", "ON", "True", "FALSE", "Null", "~", "\x85",
                                   "\u2028", "\x7f", "\ufeff", "\U0001f600", "1e3", "0x10", "010",
                                   "- a", "a: b", "#x", "'q'", '"q"', "", " ", "\n", "*a",
                                   "&a", "!tag", "%x", "@x", "`x", "?", "|", ">"])
def test_yaml_emitter_keeps_tricky_strings_as_strings(value: str) -> None:
    doc = {value: [value, {value: value}]}
    assert yaml.safe_load(k8s.to_yaml(doc)) == doc


# -- Dockerfile and docker-compose ------------------------------------------------------------


def test_compose_file_parses_and_runs_every_processor_of_the_orders_example() -> None:
    path = ROOT / "deploy" / "compose" / "docker-compose.yml"
    compose = yaml.safe_load(path.read_text())
    services = compose["services"]
    assert "apache/kafka" in services["kafka"]["image"]
    assert "apicurio/apicurio-registry" in services["registry"]["image"]
    processors = set(_orders().processors)
    runners = {name: s for name, s in services.items()
               if s.get("command", [None])[0] == "run"}
    assert {s["command"][s["command"].index("--processor") + 1] for s in runners.values()} \
        == processors
    declared_volumes = set(compose.get("volumes") or {})
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            context = (path.parent / build["context"]).resolve()
            assert context.is_dir(), name
            assert (context / build["dockerfile"]).is_file(), name
        for dep in svc.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown service {dep}"
        for vol in svc.get("volumes") or []:
            source = vol.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared_volumes, f"{name}: undeclared volume {source}"
    for name, svc in services.items():  # the daemon may have no bridge: loopback only
        assert svc["network_mode"] == "host", name
        assert "ports" not in svc, name
    for svc in runners.values():
        env = svc["environment"]
        assert env["STREAMFLOW_BOOTSTRAP_SERVERS"].startswith("127.0.0.1:${KAFKA_PORT")
        assert "127.0.0.1:${REGISTRY_PORT" in env["STREAMFLOW_SCHEMA_REGISTRY_URL"]
        assert svc["command"][1] == "topologies.orders"


def test_dockerfile_runs_streamflow_as_a_non_root_user_with_a_state_volume() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=python:3\.11-slim$", text, re.M)
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${BASE}", "${BASE}"]
    assert re.search(r'^ENTRYPOINT \["streamflow"\]', text, re.M)
    assert re.search(r"^USER (?!root|0\b)\S+", text, re.M)
    assert re.search(r"^VOLUME .*/var/lib/streamflow/state", text, re.M)
    assert f"STREAMFLOW_STATE_DIR={k8s.STATE_DIR}" in text
    assert f"STREAMFLOW_HEALTH_PORT={k8s.HEALTH_PORT}" in text
    for src in re.findall(r"^COPY (?:--\S+ )*(\S+) ", text, re.M):
        if not src.startswith("/"):
            assert (ROOT / src).exists(), src


def test_each_pod_runs_as_its_own_static_member_named_by_the_pod() -> None:
    """The pod name is the instance id (transactional id, static member, state folder): two
    replicas never share one, and a restarted pod is the same member again."""
    from streamflow.config import load_config
    from streamflow.runtime.identity import resolve_identity, static_membership

    docs, _ = _render(replicas=3)
    cm = docs[0]["data"]
    assert int(cm["STREAMFLOW_STATIC_SESSION_TIMEOUT_MS"]) >= 30000
    for sts in (d for d in docs if d["kind"] == "StatefulSet"):
        env = {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
        ref = env["STREAMFLOW_INSTANCE_ID"]["valueFrom"]["fieldRef"]
        assert ref["fieldPath"] == "metadata.name"
        # as Kubernetes would start replica i: the ConfigMap plus the pod's own name
        ids = set()
        for i in range(sts["spec"]["replicas"]):
            pod = f"{sts['metadata']['name']}-{i}"
            pod_env = {**cm, "STREAMFLOW_INSTANCE_ID": pod, "POD_NAME": pod}
            config = load_config(env=pod_env)
            identity = resolve_identity(config.instance_id, pod_env, None)
            assert identity.instance_id == pod
            assert static_membership(config, identity)
            ids.add(identity.instance_id)
        assert len(ids) == 3
