"""The application image serves the dashboard with its graph library (issue 18 left it out).

``streamflow dashboard`` runs in a container of the image ``make images`` built (host network,
the image's non-root user, no broker needed to serve the page): the page and both files of the
graph library answer 200, so the page draws instead of saying `make dashboard-assets`.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid

import pytest

from streamflow.dashboard.server import ASSETS
from streamflow.testing.containers import LABEL, free_port
from tests.containers.conftest import docker

pytestmark = pytest.mark.integration


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def test_the_app_image_serves_the_dashboard_with_its_graph_library(
    images: dict[str, str],
) -> None:
    port = free_port()
    name = f"sf-dashboard-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--rm", "--name", name, "--network", "host", "--label", f"{LABEL}=1",
           "-e", f"STREAMFLOW_BOOTSTRAP_SERVERS=127.0.0.1:{free_port()}",
           images["app"], "dashboard", "topologies.orders", "--port", str(port))
    try:
        deadline = time.monotonic() + 60.0
        status, page = _fetch(f"http://127.0.0.1:{port}/")
        while status == 0 and time.monotonic() < deadline:
            time.sleep(0.3)
            status, page = _fetch(f"http://127.0.0.1:{port}/")
        assert status == 200, page.decode(errors="replace")[:500]
        for asset in ASSETS:
            status, body = _fetch(f"http://127.0.0.1:{port}/assets/{asset}")
            assert status == 200, asset
            assert len(body) > 10_000, asset  # the minified library, not an error text
        assert docker("exec", name, "id", "-u").strip() == "10001"
    finally:
        docker("rm", "-f", name, check=False)
