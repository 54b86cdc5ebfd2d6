"""The benchmark harness behind ``bench/run.py``: :mod:`~bench.harness.kafka` (topics, the
seeded input, reading an output back), :mod:`~bench.harness.frameworks` (how each
implementation starts), :mod:`~bench.harness.meter` (procfs metering),
:mod:`~bench.harness.runner` (one measured run) and :mod:`~bench.harness.report` (tables)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
IMPLS = BENCH / "impls"
RESULTS = BENCH / "results"
