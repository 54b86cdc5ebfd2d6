"""The examples of docs/observability.md hold: its Python runs, its config loads, and the
`streamflow lineage` output it shows is what the command prints."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from streamflow.cli import main
from streamflow.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "observability.md").read_text()


def test_python_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)
    assert blocks, "docs/observability.md lost its example"
    for block in blocks:
        exec(compile(block, "docs/observability.md", "exec"), {})


def test_config_example_loads(tmp_path: Path) -> None:
    (block,) = re.findall(r"```toml\n(.*?)```", DOC, flags=re.S)
    path = tmp_path / "streamflow.toml"
    path.write_text(block)
    config = load_config(path, env={})
    assert (config.log_format, config.tracing, config.lineage) == ("json", True, True)
    assert config.lineage_interval_s == 60.0 and config.client_log_interval_s == 10.0


def test_lineage_example_shows_what_the_command_prints(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    shown = re.search(r"\$ streamflow lineage (\S+) -p (\S+) \|.*\n(.*)\n", DOC)
    assert shown is not None
    module, processor, expected = shown.groups()
    monkeypatch.chdir(ROOT)
    assert main(["lineage", module, "-p", processor]) == 0
    doc = json.loads(capsys.readouterr().out)
    summary = [doc["job"]["name"], [d["name"] for d in doc["inputs"]],
               [d["name"] for d in doc["outputs"]]]
    assert summary == json.loads(expected)
