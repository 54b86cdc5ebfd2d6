"""``streamflow check --against-cluster`` against a real broker: the state a deploy of a new
version would orphan (a renamed aggregation's changelog) fails the check."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from streamflow.cli import main
from streamflow.kafka import client
from tests.unit import state_names_fixture as fx

pytestmark = pytest.mark.integration

V1 = "tests.unit.state_names_fixture:v1"
V2 = "tests.unit.state_names_fixture:v2"


def _wait_until(admin: object, done: Callable[[set[str]], bool], what: str,
                timeout: float = 30.0) -> None:
    """Wait until ``done(topic names)``: topic creation and deletion are asynchronous."""
    deadline = time.monotonic() + timeout
    while not done(set(client.topic_names(admin, 10.0))):
        assert time.monotonic() < deadline, f"{what} after {timeout}s"
        time.sleep(0.2)


@pytest.fixture
def v1_deployed(monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str,
                capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """v1's topics (changelog and repartition included) created on the cluster."""
    monkeypatch.delenv("STREAMFLOW_CONFIG", raising=False)
    monkeypatch.delenv("STREAMFLOW_SCHEMA_REGISTRY_URL", raising=False)
    monkeypatch.setenv("STREAMFLOW_BOOTSTRAP_SERVERS", kafka_bootstrap)
    admin = client.make_admin({"bootstrap.servers": kafka_bootstrap})
    created = [*fx.v1.topics, *fx.v2.topics, f"{fx.NAME}.count.dlq"]  # all either could make
    try:
        assert main(["topics", "create", V1]) == 0
        capsys.readouterr()
        _wait_until(admin, lambda listed: set(fx.v1.topics) <= listed, "v1 topics not listed")
        yield
    finally:  # both tests use the same names: the next one starts once these are gone
        client.delete_topics(admin, created)
        _wait_until(admin, lambda listed: not listed & set(created), "topics not deleted")


def test_renamed_aggregation_orphans_v1_changelog_and_exits_3(
    v1_deployed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", V2, "--against-cluster"]) == 3
    out = capsys.readouterr().out
    orphaned = f"{fx.NAME}-count-per-user-changelog"
    assert (f"problem: [orphaned-state] topic {orphaned!r} in the cluster holds state of "
            f"topology {fx.NAME!r} that this version no longer uses") in out
    assert "name='per-user'" in out
    assert f"note: a deploy would create internal topic '{fx.NAME}-count-per-customer-changelog'" \
        in out
    assert f"{fx.NAME}-count-by-user-repartition" not in out.split("note: cluster")[0]
    assert "1 internal topic(s) kept, 1 to create, 1 orphaned" in out


def test_the_deployed_version_against_itself_exits_0(
    v1_deployed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", V1, "--against-cluster"]) == 0
    out = capsys.readouterr().out
    assert "orphaned-state" not in out and "would create" not in out
    assert "2 internal topic(s) kept, 0 to create, 0 orphaned" in out
    assert out.rstrip().splitlines()[-1].startswith("OK: ")
