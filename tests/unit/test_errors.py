"""Every error class in ``streamflow/`` derives from ``StreamflowError`` and carries the
exit code the command line used for it before the root existed."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

import streamflow
from streamflow.errors import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    ProcessingError,
    StreamflowError,
)

# defined in modules the runtime split rewrites: each derives from its family when it lands
# (none left: the plan's StepError is a ProcessingError since plan/context.py)
PENDING: dict[str, type[BaseException]] = {}


def _modules() -> list[str]:
    """Every module under streamflow/ (runtime/ and state/ have no __init__.py, which
    pkgutil would not walk into)."""
    root = Path(streamflow.__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def _error_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_name in _modules():
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException)
                    and obj.__module__ == module_name):
                found[f"{module_name}.{name}"] = obj
    return found


def test_every_error_class_derives_from_the_root() -> None:
    classes = _error_classes()
    outside = sorted(n for n, c in classes.items()
                     if not issubclass(c, StreamflowError) and n not in PENDING)
    assert outside == [], "derive these from a family in streamflow/errors.py"


def test_a_failed_step_is_a_processing_error() -> None:
    from streamflow.plan.compile import StepError

    e = StepError("double", ValueError("bad"))
    assert isinstance(e, ProcessingError)
    assert e.exit_code == EXIT_FAILED and e.step == "double"


def test_pending_classes_are_listed_until_they_derive() -> None:
    classes = _error_classes()
    done = sorted(n for n, family in PENDING.items()
                  if n not in classes or issubclass(classes[n], family))
    assert done == [], "delete these from PENDING (and from cli/run.py's except clause)"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("streamflow.dsl.topology.TopologyError", EXIT_CONFIG),
        ("streamflow.config.model.ConfigError", EXIT_CONFIG),
        ("streamflow.runtime.topics.TopicMismatch", EXIT_CONFIG),
        ("streamflow.runtime.contracts.ContractError", EXIT_CONFIG),
        ("streamflow.ops.draw.GraphvizError", EXIT_CONFIG),
        ("streamflow.serde.compat.InvalidSchema", EXIT_CONFIG),
        ("streamflow.kafka.client.Unreachable", EXIT_UNREACHABLE),
        ("streamflow.serde.base.SerdeUnavailable", EXIT_UNREACHABLE),
        ("streamflow.kafka.registry.RegistryError", EXIT_UNREACHABLE),
        ("streamflow.kafka.registry.SchemaRejected", EXIT_UNREACHABLE),
        ("streamflow.testing.cluster.ClusterUnavailable", EXIT_UNREACHABLE),
        ("streamflow.serde.base.SerdeError", EXIT_FAILED),
        ("streamflow.kafka.client.TxnError", EXIT_FAILED),
    ],
)
def test_each_error_keeps_its_exit_code(path: str, code: int) -> None:
    cls = _error_classes()[path]
    assert issubclass(cls, StreamflowError)
    assert cls.exit_code == code


def test_errors_that_were_value_or_runtime_errors_still_are() -> None:
    classes = _error_classes()
    for name in ("streamflow.dsl.topology.TopologyError", "streamflow.config.model.ConfigError",
                 "streamflow.serde.compat.InvalidSchema"):
        assert issubclass(classes[name], ValueError), name
    for name in ("streamflow.ops.draw.GraphvizError",
                 "streamflow.testing.cluster.ClusterUnavailable"):
        assert issubclass(classes[name], RuntimeError), name


def test_an_instance_may_carry_its_own_exit_code() -> None:
    from streamflow.cli import CliError

    assert StreamflowError("x").exit_code == EXIT_FAILED
    assert StreamflowError("x", exit_code=EXIT_USAGE).exit_code == EXIT_USAGE
    assert CliError("x").exit_code == EXIT_CONFIG
    assert CliError("x", EXIT_USAGE).exit_code == EXIT_USAGE
