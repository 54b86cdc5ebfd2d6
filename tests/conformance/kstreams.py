"""Build and run the Kafka Streams side of the conformance suite (``java/Scenarios.java``).

The build fetches Kafka Streams and its ``TopologyTestDriver`` from Maven Central (cached in
``~/.m2``) into ``tests/conformance/build/libs`` and compiles ``Scenarios.java`` with ``javac``
(Java 17+). A stamp (the hash of the pom, the source and the JDK) skips both when nothing
changed. ``python -m tests.conformance.kstreams build`` is what ``make conformance-build`` runs.

``run(scenarios)`` writes every scenario's inputs to one JSON file and runs all scenarios in one
JVM (a JVM start costs seconds): ``{scenario name: [output record, ...]}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
JAVA_DIR = HERE / "java"
POM = JAVA_DIR / "pom.xml"
SOURCE = JAVA_DIR / "Scenarios.java"
BUILD = HERE / "build"
LIBS = BUILD / "libs"
CLASSES = BUILD / "classes"
STAMP = BUILD / "stamp"


class BuildError(RuntimeError):
    """The Java side could not be built; the message says what to install or read."""


@dataclass(frozen=True)
class Output:
    """One record Kafka Streams (or streamflow) wrote to an output topic."""

    topic: str
    key: Any
    value: Any
    timestamp: int


def _jdk_tool(name: str) -> str:
    """``javac``/``java`` of ``JAVA_HOME`` if set, else the one on PATH; Java 17+ is required."""
    home = os.environ.get("JAVA_HOME")
    tool = str(Path(home) / "bin" / name) if home else shutil.which(name)
    if not tool or not Path(tool).exists():
        raise BuildError(
            f"no '{name}' found (JAVA_HOME or PATH): the conformance suite runs Kafka Streams "
            "and needs a JDK 17+ (e.g. apt-get install openjdk-17-jdk-headless)"
        )
    return tool


def _java_major(javac: str) -> int:
    out = subprocess.run([javac, "-version"], capture_output=True, text=True, check=True)
    m = re.search(r"(\d+)", out.stdout + out.stderr)
    return int(m.group(1)) if m else 0


def _stamp(javac: str) -> str:
    h = hashlib.sha256()
    for path in (POM, SOURCE):
        h.update(path.read_bytes())
    h.update(str(Path(javac).resolve()).encode())
    return h.hexdigest()


def build() -> float:
    """Fetch the jars and compile ``Scenarios.java`` unless already done; the seconds it took."""
    javac = _jdk_tool("javac")
    if _java_major(javac) < 17:
        raise BuildError(f"{javac} is older than Java 17; Kafka Streams 4.x needs Java 17+")
    stamp = _stamp(javac)
    if STAMP.exists() and STAMP.read_text() == stamp and (CLASSES / "Scenarios.class").exists():
        return 0.0
    t0 = time.monotonic()
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BuildError(
            "Maven ('mvn') is needed to fetch Kafka Streams from Maven Central once (cached in "
            "~/.m2): apt-get install maven"
        )
    BUILD.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(LIBS, ignore_errors=True)
    env = dict(os.environ, JAVA_HOME=str(Path(javac).resolve().parent.parent))
    fetched = subprocess.run(
        [mvn, "-B", "-q", "-f", str(POM), f"-Dout.dir={BUILD}",
         "dependency:copy-dependencies@libs"],
        capture_output=True, text=True, env=env,
    )
    if fetched.returncode != 0:
        raise BuildError("Maven could not fetch Kafka Streams:\n"
                         + (fetched.stdout + fetched.stderr)[-3000:])
    shutil.rmtree(CLASSES, ignore_errors=True)
    CLASSES.mkdir(parents=True)
    compiled = subprocess.run(
        [javac, "-nowarn", "-d", str(CLASSES), "-cp", str(LIBS / "*"), str(SOURCE)],
        capture_output=True, text=True,
    )
    if compiled.returncode != 0:
        raise BuildError("javac failed on Scenarios.java:\n" + compiled.stderr[-3000:])
    STAMP.write_text(stamp)
    return time.monotonic() - t0


@dataclass(frozen=True)
class Results:
    """What one run of ``Scenarios.java`` printed."""

    outputs: dict[str, list[Output]]  # scenario name -> its output records, in order
    defined: list[str]  # the scenarios Scenarios.java defines


def run(scenarios: list[dict[str, Any]]) -> Results:
    """Run the scenarios (``{"name", "topics", "outputs", "records"}``) in one JVM.

    Raises ``RuntimeError`` naming the scenario when one failed in Kafka Streams.
    """
    with tempfile.TemporaryDirectory(prefix="streamflow-conformance-") as tmp:
        inputs = Path(tmp) / "inputs.json"
        inputs.write_text(json.dumps({"scenarios": scenarios}))
        proc = subprocess.run(
            [_jdk_tool("java"), "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-cp", f"{CLASSES}{os.pathsep}{LIBS / '*'}", "Scenarios", str(inputs)],
            capture_output=True, text=True, timeout=300,
        )
    if proc.returncode != 0:
        msg = f"Scenarios.java exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        raise RuntimeError(msg)
    results: dict[str, list[Output]] = {s["name"]: [] for s in scenarios}
    defined: list[str] = []
    for line in proc.stdout.splitlines():
        row = json.loads(line)
        if "defined" in row:
            defined = row["defined"]
        elif "error" in row:
            msg = f"Kafka Streams failed scenario {row['scenario']!r}: {row['error']}"
            raise RuntimeError(msg)
        else:
            results[row["scenario"]].append(
                Output(row["topic"], row["key"], row["value"], row["timestamp"]))
    return Results(results, defined)


if __name__ == "__main__":
    if sys.argv[1:] != ["build"]:
        sys.exit("usage: python -m tests.conformance.kstreams build")
    try:
        took = build()
    except BuildError as e:
        sys.exit(str(e))
    print("conformance: Kafka Streams side " + (f"built in {took:.1f} s" if took else "up to date"))
