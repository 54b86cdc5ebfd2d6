"""The testcontainers path: the integration fixtures' Kafka and registry are containers.

``make test-containers`` runs this beside the smoke, Avro and exactly-once tests it selects
from tests/integration, with STREAMFLOW_TEST_CLUSTER=docker; this test proves those ran against
the containers (on the host network, from the locally built images) and not another cluster.
"""

from __future__ import annotations

import json
import os

import pytest

from streamflow.testing.cluster import ENV_CLUSTER, Cluster
from streamflow.testing.containers import LABEL
from tests.containers.conftest import docker

pytestmark = pytest.mark.integration


def test_the_fixture_cluster_is_two_host_network_containers_of_the_local_images(
    docker_engine: None, images: dict[str, str], streamflow_cluster: Cluster
) -> None:
    if os.environ.get(ENV_CLUSTER) != "docker":
        pytest.skip(f"needs {ENV_CLUSTER}=docker (as `make test-containers` sets)")
    assert streamflow_cluster.source == "testcontainers"
    assert streamflow_cluster.bootstrap_servers.startswith("127.0.0.1:")
    ids = docker("ps", "-q", "--filter", f"label={LABEL}").split()
    found = [json.loads(docker("inspect", "--format", "{{json .}}", i)) for i in ids]
    registry_port = str(streamflow_cluster.schema_registry_url).split("/")[2].rsplit(":", 1)[1]
    marks = {f"KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://{streamflow_cluster.bootstrap_servers}",
             f"QUARKUS_HTTP_PORT={registry_port}"}
    ours = [c for c in found if marks & set(c["Config"]["Env"])]
    assert sorted(c["Config"]["Image"].split(":")[0] for c in ours) == [
        "streamflow/apicurio-registry", "streamflow/kafka"]
    for container in ours:
        assert container["HostConfig"]["NetworkMode"] == "host"
        assert container["Config"]["User"] not in {"", "root", "0"}
