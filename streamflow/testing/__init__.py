"""Testing streamflow topologies: ``TopologyTestDriver`` and pytest fixtures.

``TopologyTestDriver`` needs no broker; the fixtures give a real Kafka (the ``streamflow``
pytest plugin: ``kafka_bootstrap``, ``schema_registry_url``, ``new_topic``).
"""

from streamflow.testing.driver import TestInput, TestOutput, TopologyTestDriver

__all__ = ["TestInput", "TestOutput", "TopologyTestDriver"]
