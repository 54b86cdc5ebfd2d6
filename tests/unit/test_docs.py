"""The documentation: README.md and docs/ run their Python examples; the generated references
(docs/hooks.py, run by mkdocs at build time) cover every setting, command and option.

A ```python block runs; a block right after a ``<!-- norun -->`` line (one that needs a broker,
say) and blocks in other languages (```text, ```sh) do not. Each page's blocks run in order in
one namespace, so a later block can use what an earlier one defined.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from streamflow.cli import build_parser
from streamflow.config import Config

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
NORUN = "<!-- norun -->"
_FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """(first line of the code, code, whether it runs) of each ```python block of a page."""
    out = []
    for m in _FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        out.append((text.count("\n", 0, m.start(1)), m.group(1), before != NORUN))
    return out


def run_page(page: Path) -> int:
    """Run a page's runnable Python blocks in order; return how many ran."""
    module = ModuleType(f"streamflow_docs_page_{page.stem.lower()}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    ran = 0
    try:
        for line, code, runs in python_blocks(page.read_text()):
            if runs:
                # padded with blank lines so a traceback names the line in the page
                exec(compile("\n" * line + code, str(page), "exec"), module.__dict__)
                ran += 1
    finally:
        del sys.modules[module.__name__]
    return ran


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_of_the_page_run_in_order(page: Path) -> None:
    run_page(page)


def test_readme_and_docs_keep_their_examples() -> None:
    ran = {p.relative_to(ROOT).as_posix(): len([b for b in python_blocks(p.read_text()) if b[2]])
           for p in PAGES}
    assert ran["README.md"] >= 3, "README lost its examples"
    for page in ("docs/index.md", "docs/concepts.md", "docs/windows.md", "docs/joins.md",
                 "docs/guarantees.md", "docs/testing.md"):
        assert ran[page] >= 1, f"{page} has no running example"


def test_norun_marker_skips_only_the_next_block() -> None:
    text = "a\n```python\nx = 1\n```\n<!-- norun -->\n```python\nbroker()\n```\n```text\nno\n```\n"
    assert python_blocks(text) == [(2, "x = 1\n", True), (6, "broker()\n", False)]


def test_a_failing_example_fails_with_the_page_line(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# t\n\n```python\nx = 1\n```\n\ntext\n\n```python\nassert x == 2\n```\n")
    with pytest.raises(AssertionError) as info:
        run_page(page)
    assert info.traceback[-1].lineno + 1 == 10  # 0-based in pytest's traceback


def _load(name: str) -> ModuleType:
    """A module of docs/ (not a package), as mkdocs loads it."""
    spec = importlib.util.spec_from_file_location(f"streamflow_docs_{name}", DOCS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_docstrings_lose_their_rest_roles_and_literal_markers() -> None:
    to_markdown = _load("griffe_rst").to_markdown
    assert to_markdown("a :class:`~streamflow.errors.SerdeError`, :func:`f.g`") == (
        "a `SerdeError`, `f.g`")
    assert to_markdown("e.g.::\n\n    x = 1\n") == "e.g.:\n\n    x = 1\n"
    assert to_markdown("a::b and ``x``") == "a::b and ``x``"


# -- the generated references ------------------------------------------------------------------
@pytest.fixture(scope="module")
def hooks() -> ModuleType:
    return _load("hooks")


def test_configuration_reference_lists_every_setting_with_its_key_and_variable(
        hooks: ModuleType) -> None:
    page = hooks.config_reference()
    names = list(Config.model_fields)
    for name in names:
        if name in hooks.TABLES:
            assert f"| `[{name}]` | `STREAMFLOW_{name.upper()}_<KEY>` |" in page
        else:
            row = f"| `{name}` | `[streamflow] {name}` | `STREAMFLOW_{name.upper()}` |"
            assert row in page, f"no row for {name}"
    defaults = Config()
    assert f"`{defaults.commit_interval_ms}`" in page


def test_every_setting_has_a_description(hooks: ModuleType) -> None:
    missing = [s.name for s in hooks.settings() if not s.description]
    assert not missing, f"give these fields of Config a description=: {missing}"


def test_the_reference_shows_each_settings_type_and_checks(hooks: ModuleType) -> None:
    page = hooks.config_reference()
    assert ("| `health_port` | `[streamflow] health_port` | `STREAMFLOW_HEALTH_PORT` | `int` | "
            "`0` | &gt;= 0, &lt;= 65535 |") in page
    assert '| `str` | `"classic"` | one of "classic", "consumer" |' in page
    assert "| `commit_interval_ms` |" in page and "| &gt; 0 |" in page
    assert "`STREAMFLOW_TEST_`" in page and "`STREAMFLOW_CONFIG`" in page


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    out = [("streamflow", build_parser())]
    for prefix, parser in out:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                out += [(f"{prefix} {n}", p) for n, p in action.choices.items()]
    return out


def test_cli_reference_shows_every_command_with_its_options_and_the_exit_codes(
        hooks: ModuleType) -> None:
    page = hooks.cli_reference()
    parsers = _parsers()
    assert len(parsers) > 10
    for name, _ in parsers[1:]:
        assert re.search(rf"^#+ {re.escape(name)}$", page, re.M), f"no section for {name}"
    for _, parser in parsers:
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:  # internal (e.g. run --worker-id)
                continue
            for option in action.option_strings:
                assert option in page, f"{option} missing"
    for code in range(5):
        assert re.search(rf"^\| {code} \| ", page, re.M)
