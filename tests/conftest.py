"""Suite-wide guards: under ``make test`` (STREAMFLOW_REQUIRE_INTEGRATION=1) a run in which no
integration test ran, or in which one was skipped, fails instead of passing quietly. And the
doctests (``--doctest-modules`` in pyproject.toml) are streamflow/'s, not tests/'s."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_stats = {"integration_passed": 0, "integration_skipped": 0}


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect only test modules under tests/: with ``--doctest-modules`` pytest would import
    every module here, among them the broken topologies that CLI tests load on purpose and the
    chaos topology that reads its topics from the environment."""
    name = collection_path.name
    if collection_path.suffix != ".py" or name == "conftest.py":
        return None
    if name.startswith("test_") or name.endswith("_test.py"):
        return None
    return True


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "integration" not in report.keywords:
        return
    if report.when == "call" and report.passed:
        _stats["integration_passed"] += 1
    elif report.skipped:
        _stats["integration_skipped"] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("STREAMFLOW_REQUIRE_INTEGRATION") != "1" or exitstatus != 0:
        return
    if _stats["integration_skipped"] or not _stats["integration_passed"]:
        print(
            f"\nstreamflow: {_stats['integration_passed']} integration tests passed and "
            f"{_stats['integration_skipped']} were skipped; integration tests must run against "
            "a real broker and registry here, so this run fails"
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
