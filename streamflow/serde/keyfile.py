"""Key providers for field-level encryption: a local key file, in-memory keys, plug-ins.

A **key file** (for development and small deployments) is JSON, readable by its owner only::

    {"current": "v2", "keys": {"v1": "<base64 of 32 random bytes>", "v2": "..."}}

``streamflow keys new FILE`` creates one (mode 0600), ``streamflow keys rotate FILE`` adds a
version and makes it current; old versions stay, so old ciphertexts still decrypt. Data keys are
wrapped with AES key wrap (RFC 3394) under the KEK version named in each ciphertext. A file
that group or others may read is refused, naming the ``chmod`` that fixes it, with one
exception (PostgreSQL's rule for its TLS key): a file owned by root may also be readable by its
group, which is how Kubernetes mounts a Secret for a non-root pod (``defaultMode: 0400`` plus
the pod's ``fsGroup`` gives root-owned 0440 files; kubernetes/kubernetes#57923).

The ``encryption_keys`` setting (``STREAMFLOW_ENCRYPTION_KEYS``) names either a key file or a
plug-in as ``module:attribute`` (an object implementing
:class:`~streamflow.serde.encryption.KeyProvider`, or a function of no arguments returning
one), e.g. a cloud-KMS provider; :func:`provider_from_setting` resolves it.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "keys.json"
>>> new_key_file(path)
'v1'
>>> rotate_key_file(path)
'v2'
>>> keys = LocalKeyFile(path)
>>> keys.current_key_id()
'v2'
>>> keys.unwrap("v1", keys.wrap("v1", bytes(32))) == bytes(32)
True
"""

from __future__ import annotations

import base64
import binascii
import importlib
import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from streamflow.serde.base import SerdeError
from streamflow.serde.encryption import KeyProvider

__all__ = [
    "KeyFileError",
    "LocalKeyFile",
    "StaticKeys",
    "names_plugin",
    "new_key_file",
    "provider_from_setting",
    "rotate_key_file",
    "too_open",
]

_PLUGIN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class KeyFileError(SerdeError):
    """A key file cannot be used: missing, unreadable, too open, or malformed."""


class StaticKeys:
    """KEK versions held in memory (tests, examples, or keys fetched by your own code).

    >>> keys = StaticKeys({"k1": bytes(32)}, "k1")
    >>> keys.unwrap("k1", keys.wrap("k1", bytes(range(32)))) == bytes(range(32))
    True
    """

    def __init__(self, keks: Mapping[str, bytes], current: str) -> None:
        for kid, kek in keks.items():
            if len(kek) != 32:
                msg = f"key-encryption key {kid!r} has {len(kek)} bytes; AES-256 needs 32"
                raise KeyFileError(msg)
        if current not in keks:
            msg = f"the current key id {current!r} is not one of {sorted(keks)}"
            raise KeyFileError(msg)
        self._keks = dict(keks)
        self._current = current

    def current_key_id(self) -> str:
        """The newest KEK version."""
        return self._current

    def _kek(self, key_id: str) -> bytes:
        kek = self._keks.get(key_id)
        if kek is None:
            msg = (f"no key-encryption key {key_id!r} (this process knows "
                   f"{', '.join(sorted(self._keks))}): the record was encrypted with a key "
                   "this processor was not given")
            raise SerdeError(msg)
        return kek

    def wrap(self, key_id: str, data_key: bytes) -> bytes:
        """``data_key`` wrapped (RFC 3394) with KEK ``key_id``."""
        return aes_key_wrap(self._kek(key_id), data_key)

    def unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        """The data key in ``wrapped``; SerdeError when it does not open."""
        try:
            return aes_key_unwrap(self._kek(key_id), wrapped)
        except InvalidUnwrap:
            msg = f"the wrapped data key does not open with key-encryption key {key_id!r}"
            raise SerdeError(msg) from None

    def __repr__(self) -> str:  # never the keys
        return f"{type(self).__name__}(versions={sorted(self._keks)}, current={self._current!r})"


class LocalKeyFile(StaticKeys):
    """The KEK versions of a key file (see the module doc), reloaded when it changes.

    A rotation made while processors run is picked up: writers ask for the current version
    every 30 s, and a reader meeting an unknown version reads the file again.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        super().__init__(*_read(self.path))
        self._stamp = _stamp(self.path)

    def _reload(self) -> None:
        stamp = _stamp(self.path)
        if stamp != self._stamp:
            keks, current = _read(self.path)
            self._keks, self._current, self._stamp = keks, current, stamp

    def current_key_id(self) -> str:
        """The file's current version (the file is read again if it changed)."""
        self._reload()
        return self._current

    def _kek(self, key_id: str) -> bytes:
        if key_id not in self._keks:
            self._reload()
        return super()._kek(key_id)

    def __repr__(self) -> str:
        return f"LocalKeyFile({str(self.path)!r})"


def _stamp(path: Path) -> tuple[int, int, int]:
    # the inode too: a Kubernetes Secret update swaps the ..data symlink to new files
    try:
        st = path.stat()
    except OSError as e:
        msg = f"cannot read key file {path}: {e}"
        raise KeyFileError(msg) from e
    return st.st_ino, st.st_mtime_ns, st.st_size


def too_open(mode: int, owner: int, euid: int) -> bool:
    """Whether a key file with permission bits ``mode``, owned by ``owner``, is too open.

    Owner-only (0600, 0400) is what ``streamflow keys new`` makes. A file owned by root may
    also be readable by its group when this process is not root (a Kubernetes Secret mounted
    with the pod's ``fsGroup`` is root-owned 0440): root granted the group, and the process
    reads through it. Never writable by the group, never open to others.

    >>> too_open(0o600, 1000, 1000), too_open(0o440, 0, 10001), too_open(0o640, 1000, 1000)
    (False, False, True)
    """
    allowed = 0o040 if owner == 0 and euid != 0 else 0
    return bool(mode & 0o077 & ~allowed)


def _read(path: Path) -> tuple[dict[str, bytes], str]:
    """(KEK versions, current version) of a key file, after checking its permissions."""
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        msg = f"cannot read key file {path}: {e} (create one with `streamflow keys new {path}`)"
        raise KeyFileError(msg) from e
    if os.name == "posix" and too_open(st.st_mode, st.st_uid, os.geteuid()):
        msg = (f"key file {path} may be read by other users (mode "
               f"{stat.filemode(st.st_mode)}, owner uid {st.st_uid}); make it owner-only: "
               f"chmod 600 {path} (a root-owned file may be readable by its group: 0440)")
        raise KeyFileError(msg)
    try:
        data = json.loads(text)
        current = data["current"]
        keks = {str(k): base64.b64decode(v, validate=True) for k, v in data["keys"].items()}
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as e:
        msg = (f"key file {path} is not a streamflow key file ({type(e).__name__}: "
               'expected {"current": "v1", "keys": {"v1": "<base64 of 32 bytes>"}})')
        raise KeyFileError(msg) from None
    if not isinstance(current, str) or current not in keks:
        msg = f"key file {path}: current version {current!r} is not one of its keys"
        raise KeyFileError(msg)
    for kid, kek in keks.items():
        if len(kek) != 32:
            msg = f"key file {path}: key {kid!r} has {len(kek)} bytes; AES-256 needs 32"
            raise KeyFileError(msg)
    return keks, current


def _write(path: Path, keks: Mapping[str, bytes], current: str, *, new: bool) -> None:
    """Write the key file owner-only: created exclusively, or replaced atomically."""
    body = json.dumps({"current": current, "keys": {
        k: base64.b64encode(v).decode("ascii") for k, v in keks.items()}}, indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path if new else path.with_name(f".{path.name}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if new else os.O_TRUNC)
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        msg = f"key file {path} already exists (rotate it with `streamflow keys rotate {path}`)"
        raise KeyFileError(msg) from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(body)
    if not new:
        os.replace(target, path)


def new_key_file(path: str | Path) -> str:
    """Create a key file with one random KEK version (``v1``); return its id."""
    _write(Path(path), {"v1": os.urandom(32)}, "v1", new=True)
    return "v1"


def rotate_key_file(path: str | Path) -> str:
    """Add a random KEK version to the key file and make it current; return its id.

    Versions are ``v<n>``; the new one is one past the highest. Old versions stay, so
    records encrypted under them still decrypt.
    """
    p = Path(path)
    keks, _ = _read(p)
    numbers = [int(k[1:]) for k in keks if re.fullmatch(r"v\d+", k)]
    kid = f"v{max(numbers, default=0) + 1}"
    _write(p, {**keks, kid: os.urandom(32)}, kid, new=False)
    return kid


def names_plugin(value: str) -> bool:
    """Whether an ``encryption_keys`` value has a plug-in's form, ``module:attribute``.

    >>> names_plugin("mycompany.kms:keys"), names_plugin("secrets/keys.json")
    (True, False)
    """
    return _PLUGIN.match(value) is not None


def provider_from_setting(value: str) -> KeyProvider | None:
    """The key provider the ``encryption_keys`` setting names (None when it is empty).

    ``module:attribute`` imports a plug-in (a :class:`KeyProvider`, or a function of no
    arguments returning one); anything else is a key file path.
    """
    if not value:
        return None
    if names_plugin(value) and not Path(value).exists():
        module, _, attr = value.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as e:
            msg = f"encryption_keys names the plug-in {value!r}, which cannot be loaded: {e}"
            raise KeyFileError(msg) from e
        provider = obj if isinstance(obj, KeyProvider) and not isinstance(obj, type) else obj()
        if not isinstance(provider, KeyProvider):
            msg = (f"encryption_keys plug-in {value!r} gave {type(provider).__name__}, which "
                   "lacks current_key_id/wrap/unwrap (streamflow.serde.encryption.KeyProvider)")
            raise KeyFileError(msg)
        return provider
    return LocalKeyFile(value)
