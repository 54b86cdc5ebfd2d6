"""``streamflow stack``: the local Kafka and schema registry shipped with the package.

The same stack as a checkout's ``deploy/local/stack`` (a single-node Kafka and an Apicurio
Registry as plain JVMs from Maven Central), with its state in ``./.streamflow/stack`` (or
``STREAMFLOW_STACK_RUN_DIR``). The integration fixtures of :mod:`streamflow.testing.plugin`
find it from any project.
"""

from __future__ import annotations

import argparse
import subprocess
from typing import Any

from streamflow.cli.common import err
from streamflow.errors import EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from streamflow.testing.cluster import LocalStack, find_local_stack

__all__ = ["add_commands"]

ACTIONS = {
    "up": "start (or reuse) the stack; print its endpoints and write <run dir>/stack.env",
    "down": "stop it (topics, offsets and schemas are kept)",
    "restart": "down, then up (topics, offsets and schemas are kept)",
    "wipe": "down, then delete every topic, offset and schema",
    "status": "exit 0 only when Kafka and the registry are healthy",
    "logs": "the services' logs ([kafka|registry] [-f])",
    "env": "`export ...` lines for the running stack: eval \"$(streamflow stack env)\"",
}


def add_commands(sub: Any) -> None:
    """Register ``stack``."""
    actions = "\n".join(f"  {k:<8} {v}" for k, v in ACTIONS.items())
    p = sub.add_parser(
        "stack", help="start, stop or wipe the local Kafka and schema registry",
        description="A single-node Kafka and an Apicurio schema registry (Confluent API) as "
        "plain JVMs from Maven Central (Java 17+, Java 21+ and Maven needed). State in "
        "./.streamflow/stack, or STREAMFLOW_STACK_RUN_DIR; the integration test fixtures find "
        "it from any project.",
        epilog=f"actions:\n{actions}\n\nExit codes: 0 ok, 2 usage, 4 the stack did not start "
        "or is not healthy.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=list(ACTIONS), metavar="ACTION", help="see below")
    p.add_argument("--secure", action="store_true",
                   help="the secured stack instead: a separate Kafka with a SASL_SSL listener "
                   "(SCRAM users admin and app), TLS and ACLs enforced, no registry; state in "
                   "<run dir>-secure, env files stack.env (admin) and app.env (app)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="for logs: kafka|registry, -f")
    p.set_defaults(func=stack_command)


def stack_command(args: argparse.Namespace) -> int:
    """Run the stack script; its output goes straight to the terminal."""
    if "--secure" in args.args:  # after the action, REMAINDER takes it
        args.args = [a for a in args.args if a != "--secure"]
        args.secure = True
    if args.args and args.action != "logs":
        err(f"stack {args.action} takes no arguments (got {' '.join(args.args)})")
        return EXIT_USAGE
    stack = LocalStack(find_local_stack())
    secure = ["--secure"] if args.secure else []
    rc = subprocess.call(["bash", str(stack.script), args.action, *secure, *args.args],
                         env=stack.env())
    if rc == 0:
        return EXIT_OK
    return rc if args.action == "logs" else EXIT_UNREACHABLE
