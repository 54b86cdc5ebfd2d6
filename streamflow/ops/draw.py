"""Pictures of a topology: its DOT rendering turned into PNG or SVG by Graphviz ``dot``.

>>> import shutil
>>> import streamflow as sf
>>> t = sf.Topology("shop")
>>> if shutil.which("dot"):
...     assert render_image(t, "svg").lstrip().startswith(b"<")
"""

from __future__ import annotations

import shutil
import subprocess

from streamflow.dsl.topology import Topology
from streamflow.errors import ConfigurationError

__all__ = ["FORMATS", "GraphvizError", "render_image"]

FORMATS = ("png", "svg")


class GraphvizError(ConfigurationError, RuntimeError):
    """Graphviz's ``dot`` is not installed (or failed); the message says what to do."""


def render_image(topology: Topology, fmt: str, *, dot: str | None = None,
                 timeout: float = 60.0) -> bytes:
    """The topology's DAG as ``png`` or ``svg`` bytes, drawn by Graphviz ``dot``."""
    from streamflow.dsl.render import describe_dot

    if fmt not in FORMATS:
        msg = f"unknown image format {fmt!r}; use one of {', '.join(FORMATS)}"
        raise ValueError(msg)
    exe = dot or shutil.which("dot")
    if exe is None:
        msg = (
            f"--format {fmt} needs Graphviz's `dot`, which is not installed: install it with "
            "`apt-get install graphviz` (Debian/Ubuntu) or `brew install graphviz`, or use "
            "--format dot and render the output elsewhere"
        )
        raise GraphvizError(msg)
    try:
        done = subprocess.run([exe, f"-T{fmt}"], input=describe_dot(topology).encode(),
                              capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        msg = f"running Graphviz `{exe}` failed: {e}"
        raise GraphvizError(msg) from e
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        msg = f"Graphviz `{exe} -T{fmt}` failed ({done.returncode}): {err}"
        raise GraphvizError(msg)
    return done.stdout
