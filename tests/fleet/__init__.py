"""Fleet tests driven by the rendered Kubernetes manifests (issue 19).

:mod:`~tests.fleet.pods` turns ``streamflow deploy k8s`` output into local pod processes,
:mod:`~tests.fleet.harness` runs the scenarios (scale 1 -> 3 -> 2, rolling restart, kill -9,
two hosts each with ``--workers 2``) and verifies them with the chaos verifier;
``python -m tests.fleet --help`` is the soak runner, ``tests/integration/test_fleet.py`` the
bounded CI version.
"""
