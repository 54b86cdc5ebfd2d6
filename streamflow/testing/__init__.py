"""Testing streamflow topologies: ``TopologyTestDriver`` (no broker) and pytest fixtures for
a real Kafka (the ``streamflow`` pytest plugin: ``kafka_bootstrap``, ``schema_registry_url``,
``new_topic``)."""

from streamflow.testing.driver import TestInput, TestOutput, TopologyTestDriver

__all__ = ["TestInput", "TestOutput", "TopologyTestDriver"]
