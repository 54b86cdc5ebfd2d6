"""``streamflow keys new|rotate [FILE]``: the local key file of field-level encryption.

``new`` creates a key file (owner-only, mode 0600) with one random key-encryption key,
version ``v1``; ``rotate`` adds a version and makes it current. FILE defaults to the
``encryption_keys`` setting. Both append an audit record (never a key). The file format and
the provider are :mod:`streamflow.serde.keyfile`.
"""

from __future__ import annotations

import argparse
from typing import Any

from streamflow.cli.common import CONFIG_HELP, CliError, load_settings
from streamflow.errors import EXIT_OK
from streamflow.ops import audit
from streamflow.serde.keyfile import KeyFileError, new_key_file, rotate_key_file

__all__ = ["add_commands", "cmd_keys"]

_ACTIONS = {"new": new_key_file, "rotate": rotate_key_file}


def cmd_keys(args: argparse.Namespace) -> int:
    """``streamflow keys new|rotate [FILE]``."""
    config = load_settings(args.config)
    path = args.file or config.encryption_keys
    if not path:
        msg = ("name the key file: streamflow keys " f"{args.action} FILE (or set "
               "encryption_keys / STREAMFLOW_ENCRYPTION_KEYS)")
        raise CliError(msg)
    try:
        with audit.audited(f"keys.{args.action}", path, config=config) as details:
            version = _ACTIONS[args.action](path)
            details["key_version"] = version
    except KeyFileError as e:
        raise CliError(str(e)) from e
    done = "created with" if args.action == "new" else "rotated: new records now use"
    print(f"{path}: {done} key version {version}")
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Register ``keys new|rotate`` on the ``streamflow`` subparsers."""
    keys = sub.add_parser(
        "keys", help="create or rotate the key file of field-level encryption",
        description="The local key file holding the key-encryption keys of Avro/Json "
        "encrypt=[...] fields (for development and small deployments; a cloud KMS plugs in "
        "through the encryption_keys setting instead).",
    )
    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (
        ("new", "create a key file (mode 0600) with one random key version, v1"),
        ("rotate", "add a random key version and make it current; old versions stay, so "
                   "records encrypted before still decrypt"),
    ):
        cmd = actions.add_parser(
            action, help=text, description=f"{text[0].upper()}{text[1:]}. Recorded in the "
            "audit log (the file and the version, never a key).",
            epilog="Exit codes: 0 ok, 3 the file cannot be used (exists for new, missing, "
            "malformed or readable by others for rotate).",
        )
        cmd.add_argument("file", metavar="FILE", nargs="?",
                         help="the key file (default: the encryption_keys setting)")
        cmd.add_argument("--config", "-c", help=CONFIG_HELP)
        cmd.set_defaults(func=cmd_keys)
