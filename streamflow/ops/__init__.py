r"""Operator tooling behind the CLI.

``check``, ``topics``, ``schemas``, ``deploy k8s``, pictures, loading a topology and stable
state names; operating a running topology: ``status``, ``tail``, ``reset`` and ``dlq`` (whose
admin calls are in :mod:`streamflow.kafka.groups` and :mod:`streamflow.kafka.reading`).

Each module takes a :class:`~streamflow.dsl.topology.Topology` (and, where Kafka or the
registry is involved, a configuration or client), returns plain results and raises
:class:`~streamflow.errors.StreamflowError`\ s; printing and exit codes are
:mod:`streamflow.cli`'s (which ``ops`` never imports).
"""
