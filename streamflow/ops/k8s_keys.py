"""The key file of field-level encryption in ``streamflow deploy k8s`` manifests.

A processor that reads or writes a topic whose serdes encrypt fields (``sf.Avro(...,
encrypt=[...])``, ``sf.Json(encrypt=[...])``) needs the key-encryption keys: without them it
passes ciphertexts through and refuses to write plaintext into an encrypted field. Its pods
mount the key file from a Secret you create (never rendered; default name
``<topology>-keys``, key ``keys.json``)::

    kubectl create secret generic shop-keys --from-file=keys.json=secrets/keys.json

read-only at :data:`KEYS_DIR` with ``defaultMode: 0400``, and ``STREAMFLOW_ENCRYPTION_KEYS``
names the mounted file. With the pod's ``fsGroup`` the kubelet makes the file root-owned and
group-readable (0440), which the local key-file provider accepts for a root-owned file
(:func:`streamflow.serde.keyfile.too_open`). The directory is mounted, not the file alone
(``subPath``), so an updated Secret reaches running pods and a rotation is picked up.

When the ``encryption_keys`` setting names a plug-in (``module:attribute``, a cloud KMS),
nothing is mounted: the processors get the setting as it is.

>>> import streamflow as sf
>>> t = sf.Topology("shop")
>>> cards = t.topic("cards", value=sf.Json(encrypt=["pan"]), external=True)
>>> t.processor("mask").stream(cards).to(t.topic("masked"))
>>> t.processor("other").stream(t.topic("misc", external=True)).to(t.topic("out"))
>>> keys = plan(t, "auto", "shop-keys", "")
>>> keys.secret, keys.processors, keys.setting
('shop-keys', ('mask',), '/etc/streamflow/keys/keys.json')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from streamflow.dsl.topology import Processor, Topology

__all__ = ["KEYS_DIR", "KEY_FILE", "MOUNT_CHOICES", "KeyMount", "MountKeys", "apply",
           "encrypted_fields", "plan"]

KEYS_DIR = "/etc/streamflow/keys"
KEY_FILE = "keys.json"
VOLUME = "encryption-keys"
MountKeys = Literal["auto", "all", "none"]
MOUNT_CHOICES: tuple[MountKeys, ...] = ("auto", "all", "none")


@dataclass(frozen=True)
class KeyMount:
    """Which processors get the keys, from where, and what ``encryption_keys`` says in them.

    ``secret`` is None when the setting names a plug-in (nothing to mount).
    """

    secret: str | None
    processors: tuple[str, ...]
    setting: str
    warnings: tuple[str, ...] = ()


def _serde_fields(serde: Any) -> tuple[str, ...]:
    """The fields ``serde`` encrypts (a windowed serde's inner one's too)."""
    own = tuple(getattr(serde, "encrypt", ()) or ())
    inner = getattr(serde, "inner", None)
    return own + (_serde_fields(inner) if inner is not None else ())


def encrypted_fields(processor: Processor) -> list[str]:
    """``"<topic> <key|value>: <field>, ..."`` for each topic or store it uses that encrypts.

    Every topic the processor touches (inputs, global tables, outputs, dead letters, internal
    topics: :func:`streamflow.runtime.permissions.topic_roles`) and its stores' values.
    """
    from streamflow.runtime.permissions import topic_roles

    topics = processor.topology.topics
    out: list[str] = []
    for name in topic_roles(processor):
        topic = topics.get(name)
        if topic is None:
            continue
        for side, serde in (("key", topic.key), ("value", topic.value)):
            fields = _serde_fields(serde)
            if fields:
                out.append(f"{name} {side}: {', '.join(fields)}")
    for store in processor.stores.values():
        fields = _serde_fields(store.value_serde)
        if fields:
            out.append(f"store {store.name} value: {', '.join(fields)}")
    return out


def plan(topology: Topology, mode: MountKeys, secret: str, setting: str,
         namespace: str | None = None) -> KeyMount | None:
    """The key mount of ``topology``'s pods (None: no processor gets the keys).

    ``mode`` "auto" gives the keys to the processors that use encrypted fields, "all" to every
    processor (e.g. for serdes of your own), "none" to none. ``setting`` is the
    ``encryption_keys`` setting of the rendering configuration: a plug-in is passed on, a key
    file's local path only appears in the ``kubectl`` command that creates the Secret
    ``secret``.
    """
    from streamflow.serde.keyfile import names_plugin  # cryptography: not on --help

    using = {name: encrypted_fields(p) for name, p in topology.processors.items()}
    using = {name: fields for name, fields in using.items() if fields}
    if mode == "none":
        if using:
            names = ", ".join(map(repr, using))
            return KeyMount(None, (), "", (
                f"processors {names} use encrypted fields but get no key (--mount-keys none): "
                "they pass ciphertexts through and refuse to write new plaintext into an "
                "encrypted field",))
        return None
    chosen = tuple(topology.processors) if mode == "all" else tuple(using)
    if not chosen:
        return None
    if names_plugin(setting):
        return KeyMount(None, chosen, setting)
    source = setting or KEY_FILE
    ns = f" -n {namespace}" if namespace else ""
    fields = "; ".join(f for p in chosen for f in using.get(p, ()))
    why = f" (they use encrypted fields: {fields})" if fields else ""
    warning = (
        f"processors {', '.join(map(repr, chosen))} mount the encryption key file from Secret "
        f"{secret!r}{why}; create it with: kubectl create secret generic {secret}{ns} "
        f"--from-file={KEY_FILE}={source}"
        + ("" if setting else f" (a new key file: streamflow keys new {KEY_FILE})"))
    return KeyMount(secret, chosen, f"{KEYS_DIR}/{KEY_FILE}", (warning,))


def apply(statefulset: dict[str, Any], processor: str, keys: KeyMount | None) -> None:
    """Give the processor's StatefulSet the keys: the Secret's volume, its mount, the setting."""
    if keys is None or processor not in keys.processors:
        return
    pod = statefulset["spec"]["template"]["spec"]
    container = pod["containers"][0]
    container["env"].append({"name": "STREAMFLOW_ENCRYPTION_KEYS", "value": keys.setting})
    if keys.secret is None:
        return
    container["volumeMounts"].append({"name": VOLUME, "mountPath": KEYS_DIR, "readOnly": True})
    pod["volumes"].append({"name": VOLUME, "secret": {
        "secretName": keys.secret,
        "defaultMode": 0o400,
        "items": [{"key": KEY_FILE, "path": KEY_FILE}],
    }})
