"""``streamflow describe --format png|svg``: drawn by Graphviz when installed, else a clear
error that says how to install it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streamflow.cli import main

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz `dot` is not installed (apt-get install graphviz)")


@needs_dot
@pytest.mark.parametrize(("fmt", "magic"), [("png", b"\x89PNG\r\n\x1a\n"), ("svg", b"<svg")])
def test_describe_draws_the_topology(tmp_path: Path, fmt: str, magic: bytes) -> None:
    out = tmp_path / f"orders.{fmt}"
    assert main(["describe", "topologies.orders", "--format", fmt, "--output", str(out)]) == 0
    data = out.read_bytes()
    assert magic in data[:400]
    if fmt == "svg":
        text = data.decode()
        for name in ("orders.priced", "enrich", "route", "orders.large"):
            assert name in text


def test_describe_image_without_graphviz_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on it
    out = tmp_path / "x.png"
    assert main(["describe", "topologies.orders", "-f", "png", "-o", str(out)]) == 3
    assert "apt-get install graphviz" in capsys.readouterr().err
    assert not out.exists()
