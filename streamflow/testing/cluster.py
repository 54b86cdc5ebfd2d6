"""A real Kafka broker and schema registry for integration tests.

Used by the ``streamflow`` pytest plugin (:mod:`streamflow.testing.plugin`), usable on its own.
:func:`acquire_cluster` picks, in this order:

1. an external cluster named in the environment: ``STREAMFLOW_TEST_BOOTSTRAP_SERVERS`` and
   ``STREAMFLOW_TEST_SCHEMA_REGISTRY_URL``;
2. testcontainers (a KRaft Kafka and an Apicurio Registry container on the host's network, see
   :mod:`streamflow.testing.containers`) when a Docker engine answers;
3. the local JVM stack (``streamflow stack``): reused when already up and healthy (and left
   running), otherwise started now and stopped by the returned teardown. In a streamflow
   checkout that is ``deploy/local/stack`` (state in ``deploy/local/.run``); anywhere else the
   stack shipped in the package (state in ``./.streamflow/stack``).

``STREAMFLOW_TEST_CLUSTER`` = ``auto`` (default) | ``docker`` | ``local`` restricts steps 2-3,
``STREAMFLOW_LOCAL_STACK`` points at another stack script (or the folder holding ``stack``),
``STREAMFLOW_STACK_RUN_DIR`` at another state folder, ``STREAMFLOW_TEST_KEEP_STACK=1`` leaves
a stack started by the tests running.

Nothing here imports ``confluent_kafka``, ``docker`` or ``testcontainers`` at module level.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamflow.errors import UnreachableError

__all__ = [
    "ENV_BOOTSTRAP",
    "ENV_CLUSTER",
    "ENV_KEEP_STACK",
    "ENV_LOCAL_STACK",
    "ENV_REGISTRY",
    "PACKAGED_STACK",
    "Cluster",
    "ClusterUnavailable",
    "LocalStack",
    "acquire_cluster",
    "docker_engine_available",
    "find_local_stack",
    "read_env_file",
    "registry_ready",
    "unique_topic_name",
]

ENV_BOOTSTRAP = "STREAMFLOW_TEST_BOOTSTRAP_SERVERS"
ENV_REGISTRY = "STREAMFLOW_TEST_SCHEMA_REGISTRY_URL"
ENV_CLUSTER = "STREAMFLOW_TEST_CLUSTER"
ENV_LOCAL_STACK = "STREAMFLOW_LOCAL_STACK"
ENV_KEEP_STACK = "STREAMFLOW_TEST_KEEP_STACK"

STACK_ENV_BOOTSTRAP = "STREAMFLOW_BOOTSTRAP_SERVERS"
STACK_ENV_REGISTRY = "STREAMFLOW_SCHEMA_REGISTRY_URL"

PACKAGED_STACK = Path(__file__).parent / "localstack" / "stack.sh"
"""The stack script shipped in the package (``streamflow stack`` runs it)."""

# a cold `stack up` downloads ~220 MB from Maven Central before the JVMs start
STACK_UP_TIMEOUT_S = 900.0
STACK_DOWN_TIMEOUT_S = 120.0

Teardown = Callable[[], None]


class ClusterUnavailable(UnreachableError, RuntimeError):
    """No Kafka / schema registry could be found or started; the message says what to do."""


@dataclass(frozen=True)
class Cluster:
    """Where the integration tests' Kafka and schema registry are."""

    bootstrap_servers: str
    schema_registry_url: str | None
    source: str
    """``env``, ``testcontainers``, ``local-stack (reused)`` or ``local-stack (started)``."""
    detail: str = ""

    def describe(self) -> str:
        """One line for logs and reports: where the cluster came from and its endpoints."""
        registry = self.schema_registry_url or "(no schema registry)"
        extra = f" [{self.detail}]" if self.detail else ""
        return f"{self.source}: kafka {self.bootstrap_servers}, registry {registry}{extra}"


# ----------------------------------------------------------------------------------------------
# topic names (the admin helper itself is streamflow.testing.admin.TopicAdmin)
# ----------------------------------------------------------------------------------------------

_TOPIC_CHARS = re.compile(r"[^a-zA-Z0-9._-]+")


def unique_suffix(hint: str = "") -> str:
    """A name suffix unique to one test: ``-<hint>-<8 hex digits>`` (``-<8 hex>`` without hint).

    For :meth:`~streamflow.dsl.topology.Topology.with_name_suffix` and the ``name_suffix``
    setting; the hint (a test's name) is cut to 40 legal characters.

    >>> import re; bool(re.fullmatch(r"-test_x-[0-9a-f]{8}", unique_suffix("test_x")))
    True
    """
    base = _TOPIC_CHARS.sub("-", hint).strip("-._")[:40]
    return f"-{base}-{uuid.uuid4().hex[:8]}" if base else f"-{uuid.uuid4().hex[:8]}"


def unique_topic_name(hint: str = "topic", prefix: str = "sf-test") -> str:
    """A legal, unique topic name such as ``sf-test-test_roundtrip-3f9c1a2b``."""
    base = _TOPIC_CHARS.sub("-", hint).strip("-._") or "topic"
    return f"{prefix}-{base[:180]}-{uuid.uuid4().hex[:8]}"


# ----------------------------------------------------------------------------------------------
# schema registry (plain HTTP, no client library needed)
# ----------------------------------------------------------------------------------------------


def _http(
    method: str, url: str, body: Mapping[str, Any] | None = None, timeout: float = 5.0
) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/vnd.schemaregistry.v1+json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode("utf-8", "replace")


def registry_ready(url: str, timeout: float = 3.0) -> bool:
    """True when ``GET <url>/subjects`` answers 200 (``url`` is the ccompat base URL)."""
    try:
        return _http("GET", url.rstrip("/") + "/subjects", timeout=timeout)[0] == 200
    except (OSError, urllib.error.URLError):
        return False


def wait_for_registry(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not registry_ready(url):
        if time.monotonic() >= deadline:
            msg = f"schema registry at {url} not ready after {timeout:.0f}s"
            raise ClusterUnavailable(msg)
        time.sleep(0.5)


def ensure_global_compatibility(url: str, level: str = "BACKWARD") -> None:
    """Make the registry's global compatibility ``level`` (Apicurio enforces none by default)."""
    base = url.rstrip("/")
    status, body = _http("GET", base + "/config")
    if status == 200 and level in body:
        return
    status, body = _http("PUT", base + "/config", {"compatibility": level})
    if status != 200:
        msg = f"could not set compatibility {level} on {url}: {status} {body}"
        raise ClusterUnavailable(msg)


# ----------------------------------------------------------------------------------------------
# the deploy/local stack
# ----------------------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (optionally prefixed with ``export``); comments ignored."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def find_local_stack(start: Path | None = None) -> Path:
    """The ``stack`` script to use.

    From ``STREAMFLOW_LOCAL_STACK``, else a checkout's ``deploy/local/stack`` found by walking
    up from ``start`` and the working directory, else the one shipped in the package.
    """
    named = os.environ.get(ENV_LOCAL_STACK)
    if named:
        path = Path(named).expanduser().resolve()
        script = path / "stack" if path.is_dir() else path
        if not script.is_file():
            msg = f"{ENV_LOCAL_STACK}={named}: no stack script at {script}"
            raise ClusterUnavailable(msg)
        return script
    starts = [start] if start is not None else []
    starts.append(Path.cwd())
    for origin in starts:
        for directory in (origin.resolve(), *origin.resolve().parents):
            script = directory / "deploy" / "local" / "stack"
            if script.is_file():
                return script
    return PACKAGED_STACK


@dataclass(frozen=True)
class LocalStack:
    """The local stack script driven from Python."""

    script: Path

    @property
    def run_dir(self) -> Path:
        """Where the stack keeps its state.

        ``STREAMFLOW_STACK_RUN_DIR``, else ``.run`` beside a checkout's ``deploy/local/stack``,
        else ``./.streamflow/stack`` (as the script itself decides).
        """
        run_dir = os.environ.get("STREAMFLOW_STACK_RUN_DIR")
        if run_dir:
            return Path(run_dir)
        if self.script.resolve() == PACKAGED_STACK.resolve():
            return Path.cwd() / ".streamflow" / "stack"
        return self.script.parent / ".run"

    @property
    def env_file(self) -> Path:
        """The env file the running stack writes its endpoints to."""
        return self.run_dir / "stack.env"

    def _run(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                ["bash", str(self.script), command],
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            msg = f"`{self.script} {command}` did not finish within {timeout:.0f}s"
            raise ClusterUnavailable(msg) from exc

    def env(self) -> dict[str, str]:
        """The script's environment: this run dir, and this Python for its health check."""
        return {**os.environ, "STREAMFLOW_STACK_RUN_DIR": str(self.run_dir),
                "STREAMFLOW_PYTHON": os.environ.get("STREAMFLOW_PYTHON", sys.executable)}

    def healthy(self) -> bool:
        """Whether ``stack status`` reports the stack up."""
        return self._run("status", timeout=60.0).returncode == 0

    def up(self, timeout: float = STACK_UP_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """Start the stack; raise ``ClusterUnavailable`` with its log's tail if it fails."""
        result = self._run("up", timeout=timeout)
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).splitlines()[-40:])
            msg = (
                f"`{self.script} up` failed (exit {result.returncode}):\n{tail}\n"
                f"Logs: {self.run_dir / 'logs'}; try it by hand: {self.script} up"
            )
            raise ClusterUnavailable(msg)
        return result

    def down(self, timeout: float = STACK_DOWN_TIMEOUT_S) -> None:
        """Stop the stack."""
        self._run("down", timeout=timeout)

    def endpoints(self) -> tuple[str, str]:
        """``(bootstrap servers, schema registry URL)`` of the running stack."""
        values = read_env_file(self.env_file)
        try:
            return values[STACK_ENV_BOOTSTRAP], values[STACK_ENV_REGISTRY]
        except KeyError as exc:
            msg = f"{self.env_file} lacks {exc.args[0]}"
            raise ClusterUnavailable(msg) from exc


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _local_stack_cluster(start: Path | None) -> tuple[Cluster, Teardown]:
    script = find_local_stack(start)
    missing = [tool for tool in ("bash", "java") if shutil.which(tool) is None]
    if missing:
        msg = (
            f"the local stack ({script}) needs {', '.join(missing)} on PATH: install a JDK 17+ "
            "(Kafka), a JDK 21+ (Apicurio Registry) and Maven, or point "
            f"{ENV_BOOTSTRAP}/{ENV_REGISTRY} at an existing cluster"
        )
        raise ClusterUnavailable(msg)
    stack = LocalStack(script)
    if stack.env_file.is_file() and stack.healthy():
        bootstrap, registry = stack.endpoints()
        return Cluster(bootstrap, registry, "local-stack (reused)", str(script)), lambda: None
    started = time.monotonic()
    stack.up()
    bootstrap, registry = stack.endpoints()
    detail = f"{script}, started in {time.monotonic() - started:.1f}s"

    def teardown() -> None:
        if not _truthy(ENV_KEEP_STACK):
            stack.down()

    return Cluster(bootstrap, registry, "local-stack (started)", detail), teardown


# ----------------------------------------------------------------------------------------------
# testcontainers
# ----------------------------------------------------------------------------------------------


def docker_engine_available(timeout: float = 3.0) -> bool:
    """True when a Docker engine answers a ping within ``timeout`` (the CLI alone is not enough)."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=max(1, int(timeout)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


# ----------------------------------------------------------------------------------------------
# choosing
# ----------------------------------------------------------------------------------------------


def acquire_cluster(start: Path | None = None) -> tuple[Cluster, Teardown]:
    """Find or start a Kafka + schema registry; returns it and a teardown to call at the end.

    Raises :class:`ClusterUnavailable` (with a message saying what was tried) when nothing works.
    """
    bootstrap = os.environ.get(ENV_BOOTSTRAP, "").strip()
    registry = os.environ.get(ENV_REGISTRY, "").strip()
    if bootstrap:
        from streamflow.testing.admin import TopicAdmin

        cluster = Cluster(bootstrap, registry or None, "env", f"{ENV_BOOTSTRAP}")
        TopicAdmin(bootstrap).ping(timeout=15.0)
        if registry and not registry_ready(registry, timeout=10.0):
            msg = f"{ENV_REGISTRY}={registry} does not answer GET /subjects"
            raise ClusterUnavailable(msg)
        return cluster, lambda: None
    if registry:
        msg = f"{ENV_REGISTRY} is set but {ENV_BOOTSTRAP} is not; set both"
        raise ClusterUnavailable(msg)

    mode = os.environ.get(ENV_CLUSTER, "auto").strip().lower() or "auto"
    if mode not in {"auto", "docker", "local"}:
        msg = f"{ENV_CLUSTER}={mode}: expected auto, docker or local"
        raise ClusterUnavailable(msg)
    tried: list[str] = []
    if mode in {"auto", "docker"}:
        if docker_engine_available():
            try:
                from streamflow.testing.containers import testcontainers_cluster

                cluster, teardown = testcontainers_cluster()
            except Exception as exc:
                if mode == "docker":
                    msg = f"testcontainers failed: {exc}"
                    raise ClusterUnavailable(msg) from exc
                tried.append(f"testcontainers failed ({type(exc).__name__}: {exc})")
            else:
                _check_kafka(cluster, teardown)
                return cluster, teardown
        else:
            tried.append("no Docker engine answers (docker info / ping)")
            if mode == "docker":
                msg = f"{ENV_CLUSTER}=docker but no Docker engine answers"
                raise ClusterUnavailable(msg)
    try:
        cluster, teardown = _local_stack_cluster(start)
    except ClusterUnavailable as exc:
        tried.append(f"local stack: {exc}")
        raise ClusterUnavailable(
            "no Kafka / schema registry for integration tests. Tried:\n  - "
            + "\n  - ".join(tried)
            + f"\nFix one of: set {ENV_BOOTSTRAP} and {ENV_REGISTRY}; start a Docker engine; or "
            "make `streamflow stack up` work (Java 17+, Java 21+, Maven; see "
            "deploy/local/README.md)."
        ) from exc
    if tried:
        cluster = Cluster(
            cluster.bootstrap_servers,
            cluster.schema_registry_url,
            cluster.source,
            f"{cluster.detail}; {'; '.join(tried)}",
        )
    _check_kafka(cluster, teardown)
    return cluster, teardown


def _check_kafka(cluster: Cluster, teardown: Teardown) -> None:
    from streamflow.testing.admin import TopicAdmin

    try:
        TopicAdmin(cluster.bootstrap_servers).ping(timeout=30.0)
    except BaseException:
        teardown()
        raise
