"""The implementations under test: how to probe and start each framework, in which
interpreter (the project's .venv for raw and streamflow, bench/.venvs/ for the peers)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import BENCH, IMPLS, ROOT
from bench.scenarios import Scenario

VERSIONS_SNIPPET = r"""
import importlib.metadata as m, json, sys
out = {"python": sys.version.split()[0]}
for d in @DISTS@:
    try:
        out[d] = m.version(d)
    except m.PackageNotFoundError:
        pass
try:
    import confluent_kafka
    out["librdkafka"] = confluent_kafka.libversion()[0]
except Exception:
    pass
@EXTRA@
print(json.dumps(out))
"""

STREAMFLOW_PROBE = r"""
import importlib.util, os
os.environ.setdefault("BENCH_INPUT", "probe-in")
os.environ.setdefault("BENCH_OUTPUT", "probe-out")
import streamflow
missing = [n for n in ("Topology", "String", "Json") if not hasattr(streamflow, n)]
if missing:
    raise SystemExit("streamflow lacks " + ", ".join(missing))
import importlib
importlib.import_module(@MODULE@)
if importlib.util.find_spec("streamflow.__main__") is not None:
    out["launcher"] = "module"
elif importlib.util.find_spec("streamflow.cli") is not None:
    import streamflow.cli
    if not hasattr(streamflow.cli, "main"):
        raise SystemExit("streamflow.cli has no main()")
    out["launcher"] = "cli"
else:
    raise SystemExit("no streamflow CLI (streamflow.__main__ or streamflow.cli.main)")
"""


@dataclass(frozen=True)
class Framework:
    name: str
    python: Path
    dists: tuple[str, ...]
    setup_hint: str
    # a variant of another implementation (its scenario files), with extra environment
    impl: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    scrape_s: float = 0.0  # > 0: serve health/metrics and scrape /metrics this often

    @property
    def impl_name(self) -> str:
        """The implementation this runs, as ``Scenario.impls`` names it."""
        return self.impl or self.name

    def probe(self, scenario: Scenario) -> tuple[dict[str, str] | None, str]:
        """Return (versions, "") if runnable here, else (None, reason)."""
        if not self.python.exists():
            return None, f"{self.python} missing ({self.setup_hint})"
        extra = ""
        if self.impl_name == "streamflow":
            extra = STREAMFLOW_PROBE.replace(
                "@MODULE@", repr(impl_module(scenario.impls[self.impl_name]))
            )
        code = VERSIONS_SNIPPET.replace("@DISTS@", repr(list(self.dists))).replace("@EXTRA@", extra)
        proc = subprocess.run(
            [str(self.python), "-c", code],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            return None, (lines[-1] if lines else f"probe exited {proc.returncode}")
        return json.loads(proc.stdout.strip().splitlines()[-1]), ""

    def command(self, scenario: Scenario, versions: dict[str, str]) -> list[str]:
        target = scenario.impls[self.impl_name]
        py = str(self.python)
        if self.impl_name == "streamflow":
            module = impl_module(target)
            if versions.get("launcher") == "module":
                return [py, "-m", "streamflow", "run", module]
            return [
                py,
                "-c",
                "import sys; from streamflow.cli import main; sys.exit(main())",
                "run",
                module,
            ]
        script = str(IMPLS / target)
        if self.name == "faust":
            return [py, script, "worker", "-l", "info"]
        return [py, script]


def impl_module(target: str) -> str:
    return "bench.impls." + target.removesuffix(".py").replace("/", ".")


MAIN_PY = ROOT / ".venv" / "bin" / "python"


def _streamflow_variant(name: str, *, metrics: bool, stats_ms: int, scrape_s: float
                        ) -> Framework:
    """``streamflow`` with its metrics settings; ``scrape_s`` > 0 serves and scrapes /metrics."""
    env = {"STREAMFLOW_METRICS": str(metrics).lower(),
           "STREAMFLOW_STATISTICS_INTERVAL_MS": str(stats_ms)}
    if not scrape_s:
        env["STREAMFLOW_HEALTH_PORT"] = "0"
    return Framework(name, MAIN_PY, ("streamflow", "confluent-kafka", "orjson"),
                     "create the project .venv", impl="streamflow", env=env, scrape_s=scrape_s)
FRAMEWORKS: dict[str, Framework] = {
    f.name: f
    for f in (
        Framework("raw", MAIN_PY, ("confluent-kafka", "orjson"), "create the project .venv"),
        Framework(
            "streamflow",
            MAIN_PY,
            ("streamflow", "confluent-kafka", "orjson"),
            "create the project .venv",
        ),
        # metrics overhead (bench/README.md, "Metrics overhead"): every metrics piece off, all
        # on with /metrics scraped every second, and all on less one piece
        _streamflow_variant("streamflow_off", metrics=False, stats_ms=0, scrape_s=0.0),
        _streamflow_variant("streamflow_metrics", metrics=True, stats_ms=5000, scrape_s=1.0),
        # ... and scraped at Prometheus' default interval
        _streamflow_variant("streamflow_metrics_15s", metrics=True, stats_ms=5000,
                            scrape_s=15.0),
        _streamflow_variant("streamflow_metrics_nostats", metrics=True, stats_ms=0,
                            scrape_s=1.0),
        _streamflow_variant("streamflow_metrics_noscrape", metrics=True, stats_ms=5000,
                            scrape_s=0.0),
        _streamflow_variant("streamflow_metrics_loop", metrics=True, stats_ms=0, scrape_s=0.0),
        # join_table against a topology.global_table instead of a partitioned table
        Framework("streamflow_global", MAIN_PY, ("streamflow", "confluent-kafka", "orjson"),
                  "create the project .venv", impl="streamflow",
                  env={"BENCH_JOIN_GLOBAL": "1"}),
        Framework(
            "quix",
            BENCH / ".venvs" / "quix" / "bin" / "python",
            ("quixstreams", "confluent-kafka", "orjson"),
            "run bench/setup_peers.sh",
        ),
        Framework(
            "faust",
            BENCH / ".venvs" / "faust" / "bin" / "python",
            ("faust-streaming", "aiokafka", "orjson"),
            "run bench/setup_peers.sh",
        ),
    )
}


def version_label(name: str, versions: dict[str, str] | None) -> str:
    if not versions:
        return ""
    keys = {
        "raw": ["confluent-kafka", "librdkafka"],
        "streamflow": ["streamflow", "confluent-kafka", "librdkafka"],
        "quix": ["quixstreams", "confluent-kafka", "librdkafka"],
        "faust": ["faust-streaming", "aiokafka"],
    }.get(FRAMEWORKS[name].impl_name if name in FRAMEWORKS else name, [])
    return ", ".join(f"{k} {versions[k]}" for k in keys if k in versions)
