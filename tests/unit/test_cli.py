"""The ``streamflow`` command line, in-process (``main([...])``) and as ``python -m streamflow``."""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamflow.cli import EXIT_CONFIG, EXIT_OK, EXIT_USAGE, build_parser, load_topology, main
from streamflow.errors import ConfigurationError

TOPOLOGY_SOURCE = """
import streamflow as sf

topology = sf.Topology("cli-demo")
src = topology.topic("in.events", key=sf.String(), value=sf.Json(), external=True)
out = topology.topic("out.events", key=sf.String(), value=sf.Json())
topology.processor("copy").stream(src).filter(lambda v: v, name="non-empty").to(out)

not_a_topology = 42


def make():
    t = sf.Topology("from-factory")
    t.topic("x", external=True)
    return t
"""

_counter = itertools.count()


def _subcommands() -> list[str]:
    actions = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(actions[0].choices)


HELP_ARGVS = [["--help"], *([cmd, "--help"] for cmd in _subcommands())]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No STREAMFLOW_* settings from the surrounding shell leak into ``load_config``."""
    for var in list(os.environ):
        if var.startswith("STREAMFLOW_"):
            monkeypatch.delenv(var)


@pytest.fixture
def module_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> Iterator[Callable[[str], str]]:
    """Write a uniquely named module into tmp_path (on sys.path) and return its name."""
    monkeypatch.syspath_prepend(str(tmp_path))  # also restores sys.path afterwards
    monkeypatch.chdir(tmp_path)
    written: list[str] = []

    def write(source: str) -> str:
        name = f"sf_cli_topo_{os.getpid()}_{next(_counter)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


def subprocess_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("STREAMFLOW_")}


# -- help ----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", HELP_ARGVS, ids=" ".join)
def test_help_exits_zero_and_prints_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    assert "usage: streamflow" in capsys.readouterr().out


def test_top_level_help_lists_subcommands_and_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert {"run", "describe"} <= set(_subcommands())
    for cmd in _subcommands():
        assert cmd in out
    assert "Exit codes" in out


@pytest.mark.parametrize("argv", HELP_ARGVS, ids=" ".join)
def test_python_dash_m_streamflow_help_exits_zero(argv: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "streamflow", *argv], capture_output=True,
                          text=True, timeout=60, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr
    assert "usage: streamflow" in proc.stdout


def test_version_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    import streamflow

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"streamflow {streamflow.__version__}"


# -- usage errors --------------------------------------------------------------------------

def test_no_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == EXIT_USAGE
    assert "required" in capsys.readouterr().err


def test_unknown_describe_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["describe", "x", "--format", "nonsense"])
    assert e.value.code == EXIT_USAGE
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err


def test_zero_workers_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["run", "x", "--workers", "0"])
    assert e.value.code == EXIT_USAGE
    assert "--workers must be at least 1" in capsys.readouterr().err


# -- loading the topology ------------------------------------------------------------------

def test_unknown_module_exits_3_with_a_hint(
    module_in: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["describe", "no_such_module_xyz"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "streamflow: error: cannot import module 'no_such_module_xyz'" in err
    assert "dotted path" in err


def test_unknown_submodule_of_a_package_exits_3(
    module_in: Callable[[str], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = module_in("")  # an empty module, made a package below
    (tmp_path / package).mkdir()
    (tmp_path / f"{package}.py").rename(tmp_path / package / "__init__.py")
    assert main(["describe", f"{package}.no_such_thing"]) == EXIT_CONFIG
    assert f"cannot import module '{package}.no_such_thing'" in capsys.readouterr().err


def test_module_with_a_missing_dependency_exits_3_with_the_real_import_error_and_line(
    module_in: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = module_in("x = 1\nimport sf_cli_missing_dependency  # noqa\n")
    assert main(["describe", name]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert (f"importing {name!r} failed: ModuleNotFoundError: "
            "No module named 'sf_cli_missing_dependency'") in err
    assert f"{name}.py, line 2: import sf_cli_missing_dependency" in err
    assert "Traceback" not in err


def test_missing_dependency_whose_name_prefixes_the_module_is_not_masked(
    module_in: Callable[[str], str],
) -> None:
    name = module_in("import sf_cli  # noqa\n")  # 'sf_cli' is a prefix of the module's name
    assert name.startswith("sf_cli")
    with pytest.raises(ConfigurationError, match="No module named 'sf_cli'") as info:
        load_topology(name)
    assert "cannot import module" not in str(info.value)


def test_module_with_a_syntax_error_exits_3_naming_file_and_line(
    module_in: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = module_in("import streamflow as sf\n\ntopology = sf.Topology('x'\n")
    assert main(["describe", name]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"importing {name!r} failed: SyntaxError:" in err
    assert f"{name}.py, line 3" in err
    assert "Traceback" not in err


def test_module_raising_at_import_exits_3_naming_the_users_line(
    module_in: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = module_in("def f():\n    return {}['missing']\n\nf()\n")
    assert main(["run", name]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"importing {name!r} failed: KeyError: 'missing'" in err
    assert f"{name}.py, line 2: return {{}}['missing']" in err


def test_topology_function_that_raises_exits_3(
    module_in: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = module_in("def make():\n    raise RuntimeError('no config')\n")
    assert main(["describe", f"{name}:make"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"building the topology with '{name}:make' failed: RuntimeError: no config" in err
    assert f"{name}.py, line 2" in err


def test_missing_attribute_exits_3_naming_it(
    module_in: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = module_in(TOPOLOGY_SOURCE)
    assert main(["describe", f"{name}:nope"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"module {name!r} has no attribute 'nope'" in err
    assert f"{name}:NAME" in err


def test_module_without_a_topology_attribute_exits_3(
    module_in: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = module_in("x = 1\n")
    assert main(["describe", name]) == EXIT_CONFIG
    assert "has no attribute 'topology'" in capsys.readouterr().err


def test_attribute_that_is_not_a_topology_exits_3(
    module_in: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = module_in(TOPOLOGY_SOURCE)
    assert main(["describe", f"{name}:not_a_topology"]) == EXIT_CONFIG
    assert "is a int, not a streamflow.Topology" in capsys.readouterr().err


def test_attribute_may_be_a_function_returning_the_topology(
    module_in: Callable[[str], str],
) -> None:
    name = module_in(TOPOLOGY_SOURCE)
    assert load_topology(f"{name}:make").name == "from-factory"


def test_invalid_topology_in_the_module_exits_3(
    module_in: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = module_in("""
        import streamflow as sf
        topology = sf.Topology("bad")
        topology.processor("p").stream("undeclared")
    """)
    assert main(["describe", name]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "streamflow: error: invalid topology: topic 'undeclared' is not declared" in err


def test_modules_are_found_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"sf_cli_cwd_{os.getpid()}_{next(_counter)}"
    (tmp_path / f"{name}.py").write_text(TOPOLOGY_SOURCE)
    monkeypatch.syspath_prepend(os.fspath(tmp_path.parent))  # only to have sys.path restored
    monkeypatch.chdir(tmp_path)
    try:
        assert load_topology(name).name == "cli-demo"
    finally:
        sys.modules.pop(name, None)


# -- run: checks before touching Kafka ----------------------------------------------------

def test_run_with_an_unknown_processor_exits_3_listing_the_known_ones(
    module_in: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = module_in(TOPOLOGY_SOURCE)
    assert main(["run", name, "--processor", "nope"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "topology 'cli-demo' has no processor 'nope'; it has copy" in err


def test_run_with_an_unknown_module_exits_3(
    module_in: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "no_such_module_xyz"]) == EXIT_CONFIG
    assert "cannot import module" in capsys.readouterr().err


def test_run_of_a_topology_without_processors_exits_3(
    module_in: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = module_in(TOPOLOGY_SOURCE)
    assert main(["run", f"{name}:make"]) == EXIT_CONFIG
    assert "topology 'from-factory' declares no processors" in capsys.readouterr().err


def test_run_with_a_missing_config_file_exits_3(
    module_in: Callable[[str], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = module_in(TOPOLOGY_SOURCE)
    assert main(["run", name, "--config", str(tmp_path / "none.toml")]) == EXIT_CONFIG
    assert "does not exist" in capsys.readouterr().err


def test_run_with_a_bad_config_value_exits_3_naming_the_setting(
    module_in: Callable[[str], str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = module_in(TOPOLOGY_SOURCE)
    monkeypatch.setenv("STREAMFLOW_BATCH_SIZE", "many")
    assert main(["run", name]) == EXIT_CONFIG
    assert "batch_size must be an integer, got 'many' (env STREAMFLOW_BATCH_SIZE)" in (
        capsys.readouterr().err)


# -- describe ------------------------------------------------------------------------------

def test_describe_prints_the_text_form_by_default(
    module_in: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = module_in(TOPOLOGY_SOURCE)
    assert main(["describe", name]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("Topology cli-demo\n")
    assert "in.events (external): key=String, value=Json" in out
    assert "Processor copy (group cli-demo.copy, at_least_once, on_error=fail)" in out
    assert "non-empty: filter(" in out


def test_describe_prints_mermaid(
    module_in: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = module_in(TOPOLOGY_SOURCE)
    assert main(["describe", name, "--format", "mermaid"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("flowchart LR\n")
    assert '(["in.events"])' in out and '["copy<br/>at_least_once"]' in out
    assert out.count(" --> ") == 2


def test_describe_prints_dot(
    module_in: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = module_in(TOPOLOGY_SOURCE)
    assert main(["describe", name, "-f", "dot"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith('digraph "cli-demo" {')
    assert 'label="in.events", shape=ellipse' in out
    assert out.count(" -> ") == 2


def test_describe_accepts_module_colon_attribute(
    module_in: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    name = module_in(TOPOLOGY_SOURCE)
    assert main(["describe", f"{name}:make"]) == EXIT_OK
    assert capsys.readouterr().out.startswith("Topology from-factory\n")


@pytest.mark.parametrize(
    ("fmt", "start"),
    [("text", "Topology cli-demo\n"), ("mermaid", "flowchart LR\n"),
     ("dot", 'digraph "cli-demo" {\n')],
)
def test_python_dash_m_streamflow_describe_finds_modules_in_the_working_directory(
    tmp_path: Path, fmt: str, start: str
) -> None:
    (tmp_path / "cli_demo_topology.py").write_text(TOPOLOGY_SOURCE)
    proc = subprocess.run(
        [sys.executable, "-m", "streamflow", "describe", "cli_demo_topology", "--format", fmt],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=subprocess_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(start)


def test_python_dash_m_streamflow_unknown_module_exits_3(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "streamflow", "describe", "no_such_module_xyz"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=subprocess_env(),
    )
    assert proc.returncode == EXIT_CONFIG
    assert "cannot import module 'no_such_module_xyz'" in proc.stderr
    assert "Traceback" not in proc.stderr
