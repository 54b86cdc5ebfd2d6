"""Chaos verification of streamflow's guarantees: workers killed with SIGKILL and restarted
with SIGTERM while they process seeded input; a verifier recomputes every output.

``tests.chaos.harness`` is the library, ``python -m tests.chaos.run --help`` the standalone
soak, ``tests/integration/test_chaos.py`` the bounded CI version.
"""
