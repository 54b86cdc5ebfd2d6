"""Chaos verification of streamflow's guarantees: workers killed with SIGKILL and restarted
with SIGTERM while they process seeded input; a verifier recomputes every output.

``tests.chaos.harness`` runs one experiment (with :mod:`~tests.chaos.inputs` for the seeded
input, :mod:`~tests.chaos.topology` the topology under test, :mod:`~tests.chaos.fleet` the
workers and the killer, :mod:`~tests.chaos.verifier` the verifier), ``python -m
tests.chaos.run --help`` is the standalone soak, ``tests/integration/test_chaos.py`` the
bounded CI version, ``tests/unit/test_chaos_verifier.py`` the verifier's own tests.
"""
