"""Testing streamflow topologies: ``TopologyTestDriver`` and pytest fixtures.

``TopologyTestDriver`` needs no broker; the fixtures give a real Kafka (the ``streamflow``
pytest plugin: ``kafka_bootstrap``, ``schema_registry_url``, ``new_topic``, ``name_suffix``,
``streamflow_app``). ``unique_suffix()`` makes a suffix for
``topology.with_name_suffix(...)``, so that tests sharing a cluster share no topic or group.
"""

from streamflow.testing.cluster import unique_suffix
from streamflow.testing.driver import TestInput, TestOutput, TopologyTestDriver

__all__ = ["TestInput", "TestOutput", "TopologyTestDriver", "unique_suffix"]
