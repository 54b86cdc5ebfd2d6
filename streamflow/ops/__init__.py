"""Operator tooling behind the CLI: ``check``, ``topics``, ``deploy k8s`` and pictures.

Each module takes a :class:`~streamflow.dsl.topology.Topology` (and, where Kafka or the
registry is involved, a configuration or client) and returns plain results; printing and
exit codes stay in :mod:`streamflow.cli`.
"""
