"""``streamflow deploy k8s``: Kubernetes manifests for a topology.

One StatefulSet per processor (the processor's consumer group; a volume claim per pod for
its state; liveness on ``/healthz``, readiness on ``/readyz``; the ``prometheus.io/scrape``,
``port`` and ``path`` annotations for ``/metrics``; ``streamflow run MODULE
--processor NAME``, the pod name as its instance id), a headless Service per StatefulSet, and
one ConfigMap with the ``STREAMFLOW_*`` settings. Secrets (SASL passwords, registry
credentials) are never rendered: pods read them from a Secret named ``<topology>-secrets``
that you create (``envFrom``, optional), and the settings ``config show`` masks
(:func:`streamflow.config.secret_settings.is_secret`) become ``secretKeyRef`` entries pointing
into it. Processors that use encrypted fields mount the key
file from the Secret ``<topology>-keys`` (:mod:`streamflow.ops.k8s_keys`).

Replicas are capped at the source topics' declared partitions: a consumer group member
beyond the partition count sits idle.

>>> import streamflow as sf
>>> t = sf.Topology("shop")
>>> src = t.topic("orders", partitions=2, external=True)
>>> t.processor("count").stream(src).to(t.topic("out"))
>>> r = render(t, "topologies.shop", K8sOptions(replicas=5))
>>> [d["kind"] for d in r.documents]
['ConfigMap', 'StatefulSet', 'Service']
>>> r.documents[1]["spec"]["replicas"], r.warnings[-1][:41]
(2, "processor 'count': --replicas 5 capped to")
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamflow.config import Config
from streamflow.config.secret_settings import is_secret
from streamflow.dsl.topology import Processor, Topology
from streamflow.ops import k8s_keys

__all__ = ["K8sOptions", "Rendered", "render", "to_yaml", "write"]

STATE_DIR = "/var/lib/streamflow/state"
HEALTH_PORT = 8080


@dataclass(frozen=True)
class K8sOptions:
    """What to render: image, namespace, replicas per processor, resources, state size."""

    image: str = "streamflow:latest"
    namespace: str | None = None
    replicas: int = 1
    cpu_request: str = "250m"
    memory_request: str = "256Mi"
    memory_limit: str = "512Mi"
    storage: str = "1Gi"
    storage_class: str | None = None
    health_port: int = HEALTH_PORT
    # the Strimzi Kafka cluster to render one KafkaUser per processor for (None: none): its
    # least-privilege ACLs (streamflow acls), and the pods log in as it (SCRAM-SHA-512, the
    # password from the Secret Strimzi's user operator creates under the user's name)
    kafka_users: str | None = None
    # which processors mount the key file of field-level encryption (k8s_keys.plan), and the
    # Secret holding it (None: <topology>-keys)
    mount_keys: k8s_keys.MountKeys = "auto"
    keys_secret: str | None = None


@dataclass(frozen=True)
class Rendered:
    """Manifests (plain dicts, in apply order) and warnings for the operator."""

    documents: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def yaml(self) -> str:
        """All documents as one multi-document YAML stream."""
        return "".join(f"---\n{to_yaml(d)}" for d in self.documents)


def dns_name(*parts: str, limit: int = 52) -> str:
    """A DNS-1123 name (lowercase, digits, '-') from ``parts``; long names get a hash suffix.

    StatefulSet names stay within 52 characters so pod names and their controller labels
    fit Kubernetes' 63-character limit.
    """
    raw = "-".join(parts)
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name) or "x"
    if len(name) > limit:
        digest = hashlib.sha1(raw.encode()).hexdigest()[:6]
        name = f"{name[:limit - 7].rstrip('-')}-{digest}"
    return name


def _label(value: str) -> str:
    v = re.sub(r"[^A-Za-z0-9._-]+", "-", value)[:63]
    return v.strip("-._") or "x"


def _env_name(section: str, key: str) -> str:
    return f"STREAMFLOW_{section.upper()}_{re.sub(r'[^A-Za-z0-9]', '_', key).upper()}"


def _settings(config: Config, opts: K8sOptions) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """(ConfigMap data, [(env var, secret key)]) from the configuration."""
    data = {
        "STREAMFLOW_BOOTSTRAP_SERVERS": config.bootstrap_servers,
        "STREAMFLOW_STATE_DIR": STATE_DIR,
        "STREAMFLOW_HEALTH_PORT": str(opts.health_port),
        "STREAMFLOW_LOG_LEVEL": config.log_level,
        "STREAMFLOW_COMMIT_INTERVAL_MS": str(config.commit_interval_ms),
        "STREAMFLOW_SHUTDOWN_TIMEOUT_S": str(config.shutdown_timeout_s),
        "STREAMFLOW_STATIC_MEMBERSHIP": config.static_membership,
        "STREAMFLOW_STATIC_SESSION_TIMEOUT_MS": str(config.static_session_timeout_ms),
    }
    secrets: list[tuple[str, str]] = []
    for section in ("kafka", "consumer", "producer", "schema_registry"):
        for key, value in sorted(getattr(config, section).items()):
            var = _env_name(section, key)
            if is_secret(key, value):
                secrets.append((var, dns_name(section, key, limit=253)))
            else:
                data[var] = str(value)
    return data, secrets


def _labels(topology: Topology, processor: Processor | None) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": "streamflow",
        "app.kubernetes.io/instance": _label(topology.name),
        "app.kubernetes.io/managed-by": "streamflow",
    }
    if processor is not None:
        labels["app.kubernetes.io/component"] = _label(processor.name)
    return labels


def _meta(name: str, labels: Mapping[str, str], opts: K8sOptions) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if opts.namespace:
        meta["namespace"] = opts.namespace
    meta["labels"] = dict(labels)
    return meta


def _replicas(topology: Topology, p: Processor, wanted: int) -> tuple[int, list[str]]:
    sources = [topology.topics[t] for t in p.source_topics()
               if t in topology.topics and not topology.topics[t].internal]
    unknown = [t.name for t in sources if t.partitions is None]
    if unknown:
        return wanted, [
            f"processor {p.name!r}: replicas not capped because {', '.join(map(repr, unknown))} "
            "declare(s) no partitions; declare partitions=N so extra replicas are not left idle"
        ]
    cap = max((t.partitions or 0 for t in sources), default=0)
    if cap and wanted > cap:
        return cap, [
            f"processor {p.name!r}: --replicas {wanted} capped to {cap}, the most partitions of "
            "its source topics (more consumers than partitions would sit idle)"
        ]
    return wanted, []


def _statefulset(topology: Topology, module: str, p: Processor, name: str, replicas: int,
                 config_map: str, secret: str, secret_env: list[tuple[str, str]],
                 opts: K8sOptions, config: Config) -> dict[str, Any]:
    labels = _labels(topology, p)
    probe_port = "health"
    container: dict[str, Any] = {
        "name": "streamflow",
        "image": opts.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["streamflow", "run", module, "--processor", p.name],
        "ports": [{"name": probe_port, "containerPort": opts.health_port, "protocol": "TCP"}],
        "envFrom": [
            {"configMapRef": {"name": config_map}},
            {"secretRef": {"name": secret, "optional": True}},
        ],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            # the pod name (<statefulset>-<ordinal>) is the worker's instance id: unique in
            # the group and stable per slot, so it names the transactional id and the static
            # group member, and a restarted pod gets its own partitions (and state) back
            {"name": "STREAMFLOW_INSTANCE_ID",
             "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            *[
                {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
                for var, key in secret_env
            ],
        ],
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": probe_port},
            "periodSeconds": 5,
            "failureThreshold": max(12, int(config.startup_timeout_s // 5) + 6),
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": probe_port},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": probe_port},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": opts.cpu_request, "memory": opts.memory_request},
            "limits": {"memory": opts.memory_limit},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "state", "mountPath": STATE_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": opts.storage}},
    }
    if opts.storage_class:
        claim_spec["storageClassName"] = opts.storage_class
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(name, labels, opts),
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {
                    "labels": dict(labels),
                    "annotations": {
                        "streamflow.io/topology": topology.name,
                        "streamflow.io/processor": p.name,
                        "streamflow.io/group-id": p.group_id,
                        **_scrape_annotations(config, opts),
                    },
                },
                "spec": {
                    "terminationGracePeriodSeconds": int(config.shutdown_timeout_s) + 15,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                    },
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
            "volumeClaimTemplates": [{"metadata": {"name": "state"}, "spec": claim_spec}],
        },
    }


def _scrape_annotations(config: Config, opts: K8sOptions) -> dict[str, str]:
    """What Prometheus' kubernetes-pods scrape config looks for (when metrics are on)."""
    if not config.metrics:
        return {}
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(opts.health_port),
            "prometheus.io/path": "/metrics"}


def _service(topology: Topology, p: Processor, name: str, opts: K8sOptions) -> dict[str, Any]:
    labels = _labels(topology, p)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, labels, opts),
        "spec": {
            "clusterIP": "None",
            "selector": dict(labels),
            "ports": [{"name": "health", "port": opts.health_port, "targetPort": "health",
                       "protocol": "TCP"}],
        },
    }


def render(topology: Topology, module: str, options: K8sOptions | None = None,
           config: Config | None = None) -> Rendered:
    """The manifests for every processor of ``topology`` (``module`` is what pods run)."""
    opts = options or K8sOptions()
    config = config or Config()
    if opts.replicas < 1:
        msg = "replicas must be at least 1"
        raise ValueError(msg)
    base = dns_name(topology.name)
    config_map, secret = f"{base}-config", f"{base}-secrets"
    data, secret_env = _settings(config, opts)
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(config_map, _labels(topology, None), opts),
        "data": data,
    }
    docs: list[dict[str, Any]] = [cm]
    files: dict[str, list[dict[str, Any]]] = {"00-config.yaml": [cm]}
    warnings: list[str] = []
    host = config.bootstrap_servers.split(",")[0].rsplit(":", 1)[0]
    if host in ("127.0.0.1", "localhost", "::1", "[::1]"):
        warnings.append(
            f"bootstrap servers {config.bootstrap_servers!r} are a loopback address, which pods "
            "cannot reach; pass --config with the cluster's address (or edit the ConfigMap)"
        )
    if not topology.processors:
        warnings.append(f"topology {topology.name!r} declares no processors; nothing to run")
    if secret_env:
        keys = " ".join(f"--from-literal={key}=..." for _, key in secret_env)
        warnings.append(
            f"secret settings are read from Secret {secret!r}; create it with: kubectl create "
            f"secret generic {secret} {keys}"
        )
    key_mount = k8s_keys.plan(topology, opts.mount_keys, opts.keys_secret or f"{base}-keys",
                              config.encryption_keys, opts.namespace)
    warnings += key_mount.warnings if key_mount else ()
    for i, p in enumerate(topology.processors.values(), start=1):
        name = dns_name(topology.name, p.name)
        replicas, notes = _replicas(topology, p, opts.replicas)
        warnings += notes
        sts = _statefulset(topology, module, p, name, replicas, config_map, secret,
                           secret_env, opts, config)
        k8s_keys.apply(sts, p.name, key_mount)
        svc = _service(topology, p, name, opts)
        objects = [sts, svc]
        if opts.kafka_users:
            objects.insert(0, _kafka_user(p, name, sts, opts, config))
        docs += objects
        files[f"{i:02d}-{dns_name(p.name, limit=60)}.yaml"] = objects
    return Rendered(docs, warnings, files)


def _kafka_user(p: Processor, name: str, sts: dict[str, Any], opts: K8sOptions,
                config: Config) -> dict[str, Any]:
    """The processor's Strimzi KafkaUser ``name``; its pods log in as that user."""
    from streamflow.ops.acls import strimzi_users
    from streamflow.runtime.permissions import required_acls

    assert opts.kafka_users is not None
    acls = required_acls(p, f"User:{name}", create_topics=config.create_topics)
    user = strimzi_users({p.name: acls}, opts.kafka_users, opts.namespace)[0]
    user["metadata"]["labels"] = {**_labels(p.topology, p), **user["metadata"]["labels"]}
    container = sts["spec"]["template"]["spec"]["containers"][0]
    container["env"] += [
        {"name": "STREAMFLOW_KAFKA_SASL_MECHANISM", "value": "SCRAM-SHA-512"},
        {"name": "STREAMFLOW_KAFKA_SASL_USERNAME", "value": name},
        {"name": "STREAMFLOW_KAFKA_SASL_PASSWORD",
         "valueFrom": {"secretKeyRef": {"name": name, "key": "password"}}},
    ]
    return user


def write(rendered: Rendered, directory: str | Path) -> list[Path]:
    """Write one YAML file per processor (plus the ConfigMap) into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for filename, docs in rendered.files.items():
        path = out / filename
        path.write_text("".join(f"---\n{to_yaml(d)}" for d in docs))
        paths.append(path)
    return paths


# -- a small YAML emitter (block style; every string double-quoted, so JSON-safe) -------------

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_RESERVED = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n"})


def _scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    return _NOT_PRINTABLE.sub(_escape, json.dumps(str(v), ensure_ascii=False))


# characters YAML does not allow unescaped or reads as line breaks (json.dumps already
# escapes those below 0x20)
_NOT_PRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")


def _escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def _key(k: Any) -> str:
    k = str(k)
    plain = _PLAIN_KEY.fullmatch(k) and k.lower() not in _RESERVED
    return k if plain else _scalar(k)


def _emit(v: Any, indent: int, lines: list[str]) -> None:
    pad = " " * indent
    if isinstance(v, Mapping):
        for k, item in v.items():
            if isinstance(item, Mapping) and item:
                lines.append(f"{pad}{_key(k)}:")
                _emit(item, indent + 2, lines)
            elif isinstance(item, (list, tuple)) and item:
                lines.append(f"{pad}{_key(k)}:")
                _emit(item, indent, lines)
            else:
                lines.append(f"{pad}{_key(k)}: {_inline(item)}")
    elif isinstance(v, (list, tuple)):
        for item in v:
            if isinstance(item, Mapping) and item:
                sub: list[str] = []
                _emit(item, indent + 2, sub)
                first = sub[0][indent + 2:]
                lines.append(f"{pad}- {first}")
                lines.extend(sub[1:])
            elif isinstance(item, (list, tuple)) and item:
                lines.append(f"{pad}-")
                _emit(item, indent + 2, lines)
            else:
                lines.append(f"{pad}- {_inline(item)}")
    else:
        lines.append(f"{pad}{_inline(v)}")


def _inline(v: Any) -> str:
    if isinstance(v, Mapping):
        return "{}"
    if isinstance(v, (list, tuple)):
        return "[]"
    return _scalar(v)


def to_yaml(doc: Any) -> str:
    """``doc`` (dicts, lists, strings, numbers, booleans, None) as block-style YAML."""
    if isinstance(doc, (Mapping, list, tuple)) and not doc:
        return _inline(doc) + "\n"
    lines: list[str] = []
    _emit(doc, 0, lines)
    return "\n".join(lines) + "\n"
