"""The fleet scenarios of issue 19, bounded for CI: pods started from the rendered ``deploy
k8s`` manifests (the container's command and environment, ``POD_NAME`` = the pod's name, a
state folder per pod) are scaled 1 -> 3 -> 2, rolling-restarted, killed with SIGKILL, run as
two hosts each with ``--workers 2``, joined by a twin with a live pod's name, killed while
restoring, and made to restore for longer than ``max.poll.interval.ms`` while they process
seeded input; the chaos verifier
then recomputes every output (read_committed: no duplicate, no loss, exact sums and window
finals). ``_FENCED`` lines: at most one per kill, none otherwise (the twin: a few, then one
of the two exits 5 and is not restarted). With static membership a
rolling restart rebalances none of the members that stay up, and the restarted member
resumes from its checkpoint.

Size knobs (environment): ``STREAMFLOW_FLEET_RECORDS`` (default 16000), ``STREAMFLOW_FLEET_RATE``
(records/s, default 1600). Longer soaks: ``python -m tests.fleet --help``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fleet.harness import config_for, run_scenario

pytestmark = pytest.mark.integration


@pytest.mark.timeout(240)
@pytest.mark.parametrize("scenario", ["rolling", "scale", "kill", "hosts", "duplicate",
                                      "kill-restore", "long-restore"])
def test_fleet_scenario_is_exactly_once_without_fencing_loops(
        scenario: str, kafka_bootstrap: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config_for(kafka_bootstrap,
                     records=int(os.environ.get("STREAMFLOW_FLEET_RECORDS", "16000")),
                     rate=float(os.environ.get("STREAMFLOW_FLEET_RATE", "1600")),
                     warmup_s=3.0, kills=1, workdir=tmp_path / scenario)
    result = run_scenario(cfg, scenario)
    with capsys.disabled():
        print("\n" + result.summary(), flush=True)
    assert result.report.ok, result.report.details()
    assert not +result.report.duplicates and not +result.report.losses, result.summary()
    assert result.ok, result.summary()
    assert sum(result.fenced.values()) <= result.kills + result.expected_fences, result.summary()
    if scenario == "rolling":
        assert len(result.steps) == 3
        assert all(not s.others_rebalanced for s in result.steps), result.summary()
        assert all(s.restores and not s.rebuilt for s in result.steps), result.summary()
    if scenario in ("kill", "kill-restore"):
        assert result.kills == 1
    if scenario in ("kill-restore", "long-restore"):
        (step,) = result.steps
        assert step.rebuilt and not step.others_rebalanced, result.summary()
