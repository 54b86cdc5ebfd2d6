"""Fixtures for the tests that need a Docker engine and the images ``make images`` builds.

``make test-containers`` runs them (with STREAMFLOW_REQUIRE_INTEGRATION=1: a missing engine or
image fails them); elsewhere they skip, saying what to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "deploy" / "containers" / "images.sh"


def _unavailable(reason: str) -> None:
    if os.environ.get("STREAMFLOW_REQUIRE_INTEGRATION") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def docker(*args: str, timeout: float = 120.0, check: bool = True) -> str:
    """Run the docker CLI; its stdout."""
    cli = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")
    assert cli, "no docker CLI"
    result = subprocess.run([cli, *args], capture_output=True, text=True, timeout=timeout,
                            check=False)
    if check and result.returncode != 0:
        msg = f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
        raise AssertionError(msg)
    return result.stdout


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A Docker engine answers (DOCKER_HOST: `eval "$(deploy/containers/engine.sh env)"`)."""
    if shutil.which("docker") is None and not Path("/usr/bin/docker").exists():
        _unavailable("no docker CLI; run `make containers-up` (deploy/containers/engine.sh)")
    try:
        docker("version", "--format", "{{.Server.Version}}", timeout=15)
    except (AssertionError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"no Docker engine answers ({exc}); run `make containers-up`")


@pytest.fixture(scope="session")
def images(docker_engine: None) -> dict[str, str]:
    """``{"kafka": tag, "registry": tag, "app": tag}`` of the current inputs, all built."""
    out = subprocess.run(["bash", str(IMAGES), "tags"], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    tags = dict(line.split("=", 1) for line in out.split())
    wanted = {"kafka": tags["STREAMFLOW_IMAGE_KAFKA"],
              "registry": tags["STREAMFLOW_IMAGE_REGISTRY"],
              "app": tags["STREAMFLOW_IMAGE_APP"]}
    missing = [tag for tag in wanted.values()
               if not docker("image", "ls", "-q", tag).strip()]
    if missing:
        _unavailable(f"images not built for the current sources: {missing}; run `make images`")
    return wanted
