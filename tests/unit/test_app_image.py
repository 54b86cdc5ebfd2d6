"""The application image carries the dashboard's graph library (issue 18 left it out).

The library is installed by npm (``make dashboard-assets``) into git-ignored files, so
``deploy/containers/images.sh`` adds the files the wheel carries (pyproject.toml's package-data)
to the build context, refusing to build without them, and ``deploy/Dockerfile`` checks the
installed package has them. Here: the build context of a scratch checkout, with and without the
files, and the Dockerfile's check run against both answers of ``missing_assets``. Building and
running the image is ``tests/containers/test_app_image.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import streamflow.dashboard
from streamflow.dashboard.server import ASSETS

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = "streamflow/dashboard/assets/node_modules"
WHEEL_ASSETS = [f"{NODE_MODULES}/{rel}" for rel in (
    "cytoscape/LICENSE", "cytoscape/dist/cytoscape.min.js",
    "cytoscape-dagre/LICENSE", "cytoscape-dagre/dist/cytoscape-dagre.min.js")]


def _checkout(repo: Path) -> Path:
    """A scratch git checkout at ``repo`` with what images.sh reads, node_modules git-ignored."""
    for rel in ("pyproject.toml", "deploy/Dockerfile", "deploy/containers/images.sh",
                "streamflow/testing/localstack/pom.xml"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, repo / rel)
    (repo / "streamflow" / "__init__.py").write_text("")
    (repo / ".gitignore").write_text(f"{NODE_MODULES}/\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return _checkout(tmp_path / "repo")


def _images(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    stub = repo.parent / "bin"  # images.sh wants a docker CLI; these commands never call it
    stub.mkdir(exist_ok=True)
    (stub / "docker").write_text("#!/bin/sh\nexit 1\n")
    (stub / "docker").chmod(0o755)
    env = {**os.environ, "PATH": f"{stub}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(repo / "deploy/containers/images.sh"), *args],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def _install_assets(repo: Path, body: str = "x") -> None:
    for rel in [*WHEEL_ASSETS, f"{NODE_MODULES}/cytoscape/package.json",
                f"{NODE_MODULES}/cytoscape/dist/cytoscape.esm.mjs"]:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(body)


def test_the_wheel_carries_every_file_the_dashboard_serves() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    carried = re.findall(r'"(dashboard/assets/node_modules/[^"]+)"', text)
    assert [f"streamflow/{c}" for c in carried] == WHEEL_ASSETS
    assert {f"{NODE_MODULES}/{rel}" for rel in ASSETS.values()} <= set(WHEEL_ASSETS)


def test_the_app_build_context_refuses_to_go_without_the_dashboards_library(
    checkout: Path,
) -> None:
    result = _images(checkout, "app-files")
    assert result.returncode == 1
    assert "run `make dashboard-assets` (npm ci) first" in result.stderr
    assert f"{NODE_MODULES}/cytoscape/dist/cytoscape.min.js" in result.stderr


def test_the_app_build_context_carries_the_library_and_its_hash_follows_it(
    checkout: Path,
) -> None:
    _install_assets(checkout)
    result = _images(checkout, "app-files")
    assert result.returncode == 0, result.stderr
    files = result.stdout.split()
    assert set(WHEEL_ASSETS) <= set(files)
    assert "streamflow/__init__.py" in files and "deploy/Dockerfile" in files
    assert f"{NODE_MODULES}/cytoscape/package.json" not in files  # only what the wheel takes

    def app_tag() -> str:
        tags = _images(checkout, "tags")
        assert tags.returncode == 0, tags.stderr
        return re.findall(r"^STREAMFLOW_IMAGE_APP=(\S+)$", tags.stdout, re.M)[0]

    before = app_tag()
    _install_assets(checkout, "a newer library")
    assert app_tag() != before  # a changed library rebuilds the image


def _dockerfile_check() -> str:
    """The Python the Dockerfile runs after installing streamflow into the image."""
    text = (ROOT / "deploy" / "Dockerfile").read_text().replace("\\\n", "")
    final = text[text.rindex("\nFROM "):]
    install = final.index("pip install --no-index")
    (code,) = re.findall(r'^RUN python -c "(.*)"$', final[install:], re.M)
    return code


@pytest.mark.parametrize("missing", [[], ["cytoscape/dist/cytoscape.min.js"]])
def test_the_dockerfile_fails_the_build_when_the_installed_package_lacks_the_library(
    monkeypatch: pytest.MonkeyPatch, missing: list[str],
) -> None:
    monkeypatch.setattr(streamflow.dashboard, "missing_assets", lambda: missing)
    with pytest.raises(SystemExit) as stop:
        exec(compile(_dockerfile_check(), "Dockerfile", "exec"), {})
    if missing:
        assert "run make dashboard-assets" in str(stop.value.code)
        assert "cytoscape/dist/cytoscape.min.js" in str(stop.value.code)
    else:
        assert stop.value.code == 0


def test_image_tags_do_not_depend_on_where_the_checkout_is(tmp_path: Path) -> None:
    """Worktrees and CI clones of one commit share the cached images (a tag of another
    checkout's inputs would be rebuilt, and the build would delete this one's)."""
    tags = []
    for where in ("a/repo", "elsewhere/deeper/repo"):
        repo = _checkout(tmp_path / where)
        _install_assets(repo)
        result = _images(repo, "tags")
        assert result.returncode == 0, result.stderr
        tags.append(result.stdout)
    assert tags[0] == tags[1]
    assert "STREAMFLOW_IMAGE_KAFKA=streamflow/kafka:" in tags[0]
