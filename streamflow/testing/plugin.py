"""The ``streamflow`` pytest plugin: a real Kafka and schema registry for integration tests.

Registered through the ``pytest11`` entry point ``streamflow`` (``pip install -e .``). Without the
installed package use ``PYTHONPATH=. pytest -p streamflow.testing.plugin``; with it installed, do
not add that ``-p`` (pytest refuses the same module under two names) or block the entry point
first: ``-p no:streamflow -p streamflow.testing.plugin``. Fixtures:

``kafka_bootstrap`` (session, ``str``)
    bootstrap servers of the test cluster.
``schema_registry_url`` (session, ``str``)
    Confluent-compatible schema registry URL (``.../apis/ccompat/v7`` for Apicurio).
``streamflow_cluster`` (session, :class:`~streamflow.testing.cluster.Cluster`)
    both, plus where they came from.
``kafka_admin`` (session, :class:`~streamflow.testing.admin.TopicAdmin`)
    a small AdminClient wrapper.
``new_topic`` (function)
    factory ``new_topic(partitions=1, config=None, compacted=False) -> str`` creating uniquely
    named topics for one test (waits until they exist, deletes them afterwards).
``name_suffix`` (function, ``str``)
    a suffix unique to the test (``-<test name>-<8 hex digits>``) for
    ``topology.with_name_suffix(name_suffix)`` and ``streamflow_app(..., name_suffix=...)``:
    every topic and group of the topology gets it. When the test used the cluster, the topics
    and groups ending with it are deleted afterwards.
``streamflow_app`` (function)
    factory ``streamflow_app(module, processor=None, env=None, args=None, cwd=None,
    name_suffix="") ->`` :class:`~streamflow.testing.processes.TopologyApp`: runs ``streamflow
    run`` against the test cluster as a child process, returns once its readiness probe
    answers, stops it cleanly at the end of the test, and attaches its log to the report of a
    failed test.

Where the cluster comes from (see :func:`streamflow.testing.cluster.acquire_cluster`):
``STREAMFLOW_TEST_BOOTSTRAP_SERVERS`` / ``STREAMFLOW_TEST_SCHEMA_REGISTRY_URL``, else
testcontainers when a Docker engine answers, else ``deploy/local/stack`` (reused if already up,
otherwise started for the session and stopped at its end). If none works, every test using
these fixtures fails (never skips) with a message saying what was tried.

With pytest-xdist, start the stack first (``deploy/local/stack up``) so that the workers share
one stack instead of racing to start and stop it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from streamflow.testing.admin import TopicAdmin
    from streamflow.testing.cluster import Cluster
    from streamflow.testing.processes import TopologyApp

__all__ = [
    "NewTopic",
    "kafka_admin",
    "kafka_bootstrap",
    "name_suffix",
    "new_topic",
    "schema_registry_url",
    "streamflow_app",
    "streamflow_cluster",
]

_CLUSTER_KEY = pytest.StashKey["Cluster"]()
_APPS_KEY = pytest.StashKey[list["TopologyApp"]]()


class NewTopic(Protocol):
    """Type of the ``new_topic`` fixture."""

    def __call__(
        self,
        partitions: int = 1,
        config: Mapping[str, str] | None = None,
        compacted: bool = False,
    ) -> str:
        """Create a topic with a fresh name; return the name."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "integration: needs a real Kafka broker and schema registry "
        "(streamflow fixtures: kafka_bootstrap, schema_registry_url, new_topic)",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the logs of the test's ``streamflow_app`` processes to its report on failure."""
    outcome: Any = yield
    report = outcome.get_result()
    if report.failed:
        for app in item.stash.get(_APPS_KEY, []):
            report.sections.append((f"streamflow app {app.name} (log)", app.logs()[-20_000:]))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    cluster = terminalreporter.config.stash.get(_CLUSTER_KEY, None)
    if cluster is not None:
        terminalreporter.write_line(f"streamflow integration cluster: {cluster.describe()}")


@pytest.fixture(scope="session")
def streamflow_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The Kafka + schema registry for this session (found, reused or started)."""
    from streamflow.testing.cluster import ClusterUnavailable, acquire_cluster

    rootdir = Path(str(request.config.rootpath))
    problem = ""
    try:
        cluster, teardown = acquire_cluster(rootdir)
    except ClusterUnavailable as exc:
        problem = str(exc)
    if problem:  # outside the except block: no chained traceback in the report
        pytest.fail(f"streamflow integration cluster unavailable:\n{problem}", pytrace=False)
    request.config.stash[_CLUSTER_KEY] = cluster
    try:
        yield cluster
    finally:
        teardown()


@pytest.fixture(scope="session")
def kafka_bootstrap(streamflow_cluster: Cluster) -> str:
    """Bootstrap servers (``host:port,...``) of the integration-test Kafka."""
    return streamflow_cluster.bootstrap_servers


@pytest.fixture(scope="session")
def schema_registry_url(streamflow_cluster: Cluster) -> str:
    """URL of the Confluent-compatible schema registry of the integration-test cluster."""
    if streamflow_cluster.schema_registry_url is None:
        from streamflow.testing.cluster import ENV_BOOTSTRAP, ENV_REGISTRY

        pytest.fail(
            f"no schema registry: {ENV_BOOTSTRAP} is set but {ENV_REGISTRY} is not",
            pytrace=False,
        )
    return streamflow_cluster.schema_registry_url


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> TopicAdmin:
    """An AdminClient helper bound to the test cluster."""
    from streamflow.testing.admin import TopicAdmin

    return TopicAdmin(kafka_bootstrap)


@pytest.fixture
def new_topic(kafka_admin: TopicAdmin, request: pytest.FixtureRequest) -> Iterator[NewTopic]:
    """Factory creating uniquely named topics for one test; they are deleted afterwards."""
    from streamflow.testing.cluster import unique_topic_name

    created: list[str] = []

    def factory(
        partitions: int = 1,
        config: Mapping[str, str] | None = None,
        compacted: bool = False,
    ) -> str:
        settings = dict(config or {})
        if compacted:
            settings.setdefault("cleanup.policy", "compact")
        name = unique_topic_name(request.node.name)
        created.append(name)
        kafka_admin.create_topic(name, partitions, settings)
        return name

    yield factory
    if created:
        try:
            kafka_admin.delete_topics(created)
        except Exception as exc:  # never mask the test's own outcome with a cleanup error
            import warnings

            warnings.warn(f"could not delete test topics {created}: {exc}", stacklevel=1)


@pytest.fixture
def name_suffix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A name suffix unique to this test, for ``Topology.with_name_suffix`` and apps.

    When the test used the cluster, its topics and groups ending with the suffix are deleted
    afterwards (after its apps stopped).
    """
    from streamflow.testing.cluster import unique_suffix

    suffix = unique_suffix(request.node.name)
    yield suffix
    if "streamflow_cluster" not in request.fixturenames:
        return
    from streamflow.testing.admin import TopicAdmin

    cluster: Cluster = request.getfixturevalue("streamflow_cluster")  # set up already
    try:
        admin = TopicAdmin(cluster.bootstrap_servers)
        topics = [t for t in admin.topics() if t.endswith(suffix)]
        if topics:
            admin.delete_topics(topics)
        groups = [g for g in admin.groups() if g.endswith(suffix)]
        if groups:
            admin.delete_groups(groups)
    except Exception as exc:  # never mask the test's own outcome with a cleanup error
        import warnings

        warnings.warn(f"could not delete the test's topics and groups (*{suffix}): {exc}",
                      stacklevel=1)


@pytest.fixture
def streamflow_app(streamflow_cluster: Cluster, request: pytest.FixtureRequest,
                   tmp_path: Path, name_suffix: str) -> Iterator[Any]:
    """Factory running ``streamflow run MODULE [-p NAME]`` against the test cluster.

    Each app is ready when returned and stopped (SIGTERM) when the test ends (before the
    ``name_suffix`` fixture deletes the test's topics).
    """
    from streamflow.testing.processes import TopologyApp

    apps: list[TopologyApp] = []
    request.node.stash[_APPS_KEY] = apps

    def factory(module: str, processor: str | None = None, *, env: dict[str, str] | None = None,
                args: list[str] | None = None, cwd: Path | None = None,
                ready_timeout_s: float = 60.0, name_suffix: str = "") -> TopologyApp:
        app = TopologyApp(module, processor, bootstrap=streamflow_cluster.bootstrap_servers,
                          registry=streamflow_cluster.schema_registry_url,
                          workdir=tmp_path / "apps", cwd=cwd, env=env, args=args,
                          ready_timeout_s=ready_timeout_s, name_suffix=name_suffix)
        apps.append(app)
        return app.start()

    yield factory
    for app in reversed(apps):
        app.stop()
