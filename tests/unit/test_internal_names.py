"""A topology's internal topics are recognised by name under a name suffix too: ``check
--against-cluster`` finds the state a deploy would orphan in a renamed (per-test, per-branch)
topology, and names the step to rename."""

from __future__ import annotations

from typing import Any

import pytest

import streamflow as sf
from streamflow.cli import main
from streamflow.kafka import client
from streamflow.ops.check import check_topology
from streamflow.ops.internal_names import InternalName, declared_name, internal_name
from streamflow.ops.state_names import orphan_fix, state_diff
from tests.unit import state_names_fixture as fx


def _fk_topology() -> sf.Topology:
    t = sf.Topology("shop")
    orders = t.topic("orders", key=sf.String(), value=sf.Json(), external=True)
    customers = t.topic("customers", key=sf.Long(), value=sf.Json(), external=True)
    p = t.processor("enrich")
    (p.materialize(t.table(orders))
     .join(t.table(customers), lambda o, c: o, foreign_key=lambda o: o["customer"], name="oc")
     .to_stream().to(t.topic("enriched", value=sf.Json())))
    (p.stream(orders).group_by(lambda o: o["customer"], name="by-customer")
     .count(name="n").to_stream().to(t.topic("counts")))
    return t


@pytest.mark.parametrize("suffix", ["", "-t1", "_pr42"])
def test_every_declared_internal_topic_is_recognised_with_its_owner_and_kind(suffix: str) -> None:
    t = _fk_topology().with_name_suffix(suffix)
    internal = {n for n, topic in t.topics.items() if topic.internal}
    kinds = {internal_name(t, n).kind for n in internal}  # type: ignore[union-attr]
    assert kinds == {"changelog", "repartition", "subscription-registration",
                     "subscription-response"}
    assert [n for n in t.topics if internal_name(t, n) is not None] == sorted(
        internal, key=list(t.topics).index)
    assert internal_name(t, f"shop-enrich-n-changelog{suffix}") == InternalName(
        f"shop-enrich-n-changelog{suffix}", "enrich-n", "changelog")
    assert internal_name(t, f"shop-enrich-oc-subscription-response{suffix}") == InternalName(
        f"shop-enrich-oc-subscription-response{suffix}", "enrich-oc", "subscription-response")
    assert declared_name(t) == "shop"


def test_names_of_other_suffixes_and_of_no_suffix_are_not_the_renamed_topologys() -> None:
    t = _fk_topology().with_name_suffix("-t1")
    assert t.name == "shop-t1"
    for other in ("shop-enrich-n-changelog",  # the unsuffixed run
                  "shop-enrich-n-changelog-t2", "shop-enrich-n-changelog-xt1",
                  "shop-enrich-n-changelog-a-t1",  # suffix "-a-t1": the kind must end first
                  "shop-t1-enrich-n-changelog",  # the suffix is at the end, not after 'shop'
                  "shop-changelog-t1",  # no owner
                  "shop.enrich.dlq-t1", "orders-t1"):
        assert internal_name(t, other) is None, other
    twice = t.with_name_suffix("-b")
    assert (twice.name, twice.name_suffix, declared_name(twice)) == ("shop-t1-b", "-t1-b", "shop")
    assert internal_name(twice, "shop-enrich-n-changelog-t1-b") is not None


def test_state_diff_under_a_suffix_finds_orphans_of_renamed_steps_and_keeps_the_rest() -> None:
    v2 = fx.v2.with_name_suffix("-t1")
    old = f"{fx.NAME}-count-per-user-changelog-t1"
    gone = f"{fx.NAME}-gone-old-repartition-t1"
    kept = f"{fx.NAME}-count-by-user-repartition-t1"
    cluster = [old, gone, kept, f"{fx.NAME}.clicks-t1",
               f"{fx.NAME}-count-per-user-changelog",  # the unsuffixed run's: not ours
               f"{fx.NAME}-count-per-user-changelog-t2"]
    diff = state_diff(v2, cluster)
    assert diff.orphaned == [old, gone]
    assert diff.kept == [kept]
    assert diff.to_create == [f"{fx.NAME}-count-per-customer-changelog-t1"]
    fix = orphan_fix(v2, old)
    assert "processor 'count'" in fix and "name='per-user'" in fix
    assert "no processor of this version" in orphan_fix(v2, gone)


def test_orphan_fix_under_a_suffix_names_a_join_by_its_step() -> None:
    t = _fk_topology().with_name_suffix("-t1")
    fix = orphan_fix(t, "shop-enrich-old-subscriptions-changelog-t1")
    assert "name='old' (a join, whose store was 'old-subscriptions')" in fix
    assert "name='before'," in orphan_fix(t, "shop-enrich-before-subscription-response-t1")


def test_check_against_cluster_with_the_name_suffix_setting_reports_the_orphan(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    for var in ("STREAMFLOW_CONFIG", "STREAMFLOW_SCHEMA_REGISTRY_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STREAMFLOW_NAME_SUFFIX", "-t1")
    cluster = [f"{fx.NAME}.clicks-t1", f"{fx.NAME}-count-by-user-repartition-t1",
               f"{fx.NAME}-count-per-user-changelog-t1", f"{fx.NAME}-count-per-user-changelog"]
    admins: list[dict[str, Any]] = []
    monkeypatch.setattr(client, "make_admin", lambda conf: admins.append(conf) or object())
    monkeypatch.setattr(client, "topic_names", lambda _admin, _timeout: cluster)
    assert main(["check", "tests.unit.state_names_fixture:v2", "--against-cluster"]) == 3
    out = capsys.readouterr().out
    problems = [line for line in out.splitlines() if line.startswith("problem: ")]
    assert problems == [
        f"problem: [orphaned-state] topic '{fx.NAME}-count-per-user-changelog-t1' in the "
        f"cluster holds state of topology '{fx.NAME}-t1' that this version no longer uses: a "
        "deploy would orphan it. Fix: if a step of processor 'count' was renamed (or a step "
        "inserted before an unnamed one), give it its old name, name='per-user', to keep this "
        f"state; if that state is no longer needed, delete the topic "
        f"'{fx.NAME}-count-per-user-changelog-t1'"]
    assert (f"note: a deploy would create internal topic "
            f"'{fx.NAME}-count-per-customer-changelog-t1'") in out
    assert "1 internal topic(s) kept, 1 to create, 1 orphaned" in out
    assert len(admins) == 1


def test_checks_advice_names_the_topology_as_declared_not_as_suffixed() -> None:
    t = sf.Topology("loop")
    a, b = t.topic("a"), t.topic("b")
    t.processor("p").stream(a).to(b)
    t.processor("q").stream(b).to(a)
    (cycle,) = check_topology(t.with_name_suffix("-t1")).problems
    assert "Topology('loop', allow_cycles=True)" in cycle.fix
