"""``deploy k8s`` mounts the key file of field-level encryption, and the key-file provider
accepts the files Kubernetes mounts (root-owned 0440 under fsGroup, the ``..data`` symlinks).

Manifests are parsed back from the YAML text and validated against the Kubernetes API schema.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

import streamflow as sf
from streamflow.cli import main
from streamflow.config import Config
from streamflow.ops import k8s
from streamflow.serde.keyfile import KeyFileError, LocalKeyFile, new_key_file, too_open

yaml = pytest.importorskip("yaml")

KEY_PATH = "/etc/streamflow/keys/keys.json"


def _shop() -> sf.Topology:
    """raw -> [ingest] -> cards (encrypted) -> [mask] -> masked -> [count] -> counts."""
    t = sf.Topology("shop")
    raw = t.topic("raw", value=sf.Json(), external=True)
    cards = t.topic("cards", value=sf.Json(encrypt=["pan", "email"]))
    masked = t.topic("masked", value=sf.Json())
    t.processor("ingest").stream(raw).to(cards)
    t.processor("mask").stream(cards).map(lambda v: {"n": 1}).to(masked)
    t.processor("count").stream(masked).to(t.topic("counts"))
    return t


def _render(topology: sf.Topology, setting: str = "", **opts: Any) -> tuple[
        dict[str, dict[str, Any]], list[str]]:
    """({processor: its StatefulSet's pod spec}, warnings), parsed from the YAML text."""
    config = Config(bootstrap_servers="kafka.prod:9092", encryption_keys=setting)
    r = k8s.render(topology, "shop_module", k8s.K8sOptions(**opts), config)
    kv = pytest.importorskip("kubernetes_validate")
    pods = {}
    for doc in yaml.safe_load_all(r.yaml()):
        kv.validate(doc, "1.30", strict=True)
        if doc["kind"] == "StatefulSet":
            processor = doc["spec"]["template"]["metadata"]["annotations"][
                "streamflow.io/processor"]
            pods[processor] = doc["spec"]["template"]["spec"]
    return pods, r.warnings


def _keys(pod: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(the keys volume, its mount, the STREAMFLOW_ENCRYPTION_KEYS value), None where absent."""
    (container,) = pod["containers"]
    volume = next((v for v in pod["volumes"] if "secret" in v), None)
    mount = next((m for m in container["volumeMounts"]
                  if volume is not None and m["name"] == volume["name"]), None)
    env = {e["name"]: e.get("value") for e in container["env"]}
    return volume, mount, env.get("STREAMFLOW_ENCRYPTION_KEYS")


def test_processors_using_encrypted_fields_mount_the_key_secret_read_only() -> None:
    pods, warnings = _render(_shop(), setting="secrets/keys.json", namespace="prod")
    for processor in ("ingest", "mask"):  # writes, reads the encrypted topic
        volume, mount, setting = _keys(pods[processor])
        assert volume["secret"] == {"secretName": "shop-keys", "defaultMode": 0o400,
                                    "items": [{"key": "keys.json", "path": "keys.json"}]}
        assert mount == {"name": volume["name"], "mountPath": "/etc/streamflow/keys",
                         "readOnly": True}
        assert "subPath" not in mount  # a subPath mount never sees an updated Secret
        assert setting == KEY_PATH
        assert setting.startswith(mount["mountPath"] + "/")
    assert _keys(pods["count"]) == (None, None, None)
    (note,) = [w for w in warnings if "Secret 'shop-keys'" in w]
    assert "kubectl create secret generic shop-keys -n prod " \
        "--from-file=keys.json=secrets/keys.json" in note
    assert "'ingest', 'mask'" in note and "cards value: pan, email" in note


def test_a_topology_without_encryption_mounts_nothing_unless_asked() -> None:
    orders = sf.Topology("plain")
    src = orders.topic("in", external=True)
    orders.processor("p").stream(src).to(orders.topic("out"))
    pods, warnings = _render(orders)
    assert _keys(pods["p"]) == (None, None, None)
    assert not [w for w in warnings if "encryption" in w]
    pods, warnings = _render(orders, mount_keys="all", keys_secret="kek")
    volume, mount, setting = _keys(pods["p"])
    assert volume["secret"]["secretName"] == "kek" and mount["readOnly"] is True
    assert setting == KEY_PATH
    (note,) = [w for w in warnings if "Secret 'kek'" in w]
    assert "--from-file=keys.json=keys.json (a new key file: streamflow keys new keys.json)" \
        in note


def test_mount_keys_all_and_none() -> None:
    pods, _ = _render(_shop(), mount_keys="all")
    assert all(_keys(pod)[2] == KEY_PATH for pod in pods.values())
    pods, warnings = _render(_shop(), mount_keys="none")
    assert all(_keys(pod) == (None, None, None) for pod in pods.values())
    assert any("'ingest', 'mask' use encrypted fields but get no key" in w for w in warnings)


def test_a_key_provider_plugin_is_passed_on_without_a_mount() -> None:
    pods, warnings = _render(_shop(), setting="mycompany.kms:keys")
    assert _keys(pods["mask"]) == (None, None, "mycompany.kms:keys")
    assert _keys(pods["count"]) == (None, None, None)
    assert not [w for w in warnings if "kubectl create secret generic shop-keys" in w]


def test_windowed_keys_and_store_values_count_as_encrypted_fields() -> None:
    from streamflow.ops.k8s_keys import encrypted_fields
    from streamflow.serde.windowed import TimeWindowedSerde

    t = sf.Topology("w")
    src = t.topic("in", external=True)
    out = t.topic("out", key=TimeWindowedSerde(sf.Json(encrypt=["user"]), window_size=1000))
    (t.processor("agg").stream(src).group_by_key()
     .aggregate(dict, lambda a, v: a, name="agg", value_serde=sf.Json(encrypt=["secret"]))
     .to_stream().to(out))
    assert encrypted_fields(t.processors["agg"]) == ["out key: user", "store agg value: secret"]


def test_cli_flags_choose_the_secret_and_which_processors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "sf_k8s_keys_topo.py").write_text(textwrap.dedent("""
        import streamflow as sf
        topology = sf.Topology("cli")
        cards = topology.topic("cards", value=sf.Json(encrypt=["pan"]), external=True)
        topology.processor("mask").stream(cards).to(topology.topic("masked"))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("STREAMFLOW_ENCRYPTION_KEYS", raising=False)
    assert main(["deploy", "k8s", "sf_k8s_keys_topo", "--keys-secret", "cli-kek"]) == 0
    out, err = capsys.readouterr()
    (sts,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "StatefulSet"]
    volume, mount, setting = _keys(sts["spec"]["template"]["spec"])
    assert volume["secret"]["secretName"] == "cli-kek" and setting == KEY_PATH
    assert mount["mountPath"] == "/etc/streamflow/keys"
    assert "kubectl create secret generic cli-kek --from-file=keys.json=" in err
    assert main(["deploy", "k8s", "sf_k8s_keys_topo", "--mount-keys", "none"]) == 0
    out, err = capsys.readouterr()
    assert "STREAMFLOW_ENCRYPTION_KEYS" not in out and "get no key" in err


# -- the key-file provider and what Kubernetes mounts ------------------------------------------


@pytest.mark.parametrize(("mode", "owner", "euid", "refused"), [
    (0o600, 1000, 1000, False),  # streamflow keys new
    (0o400, 1000, 1000, False),
    (0o640, 1000, 1000, True),  # the process's own file: owner-only
    (0o440, 0, 10001, False),  # a Secret under fsGroup: root-owned, group-readable
    (0o640, 0, 10001, False),
    (0o460, 0, 10001, True),  # group-writable
    (0o444, 0, 10001, True),  # readable by others
    (0o404, 0, 10001, True),
    (0o440, 0, 0, True),  # root reading its own file: owner-only
    (0o440, 1000, 10001, True),  # group-readable only when root owns it
])
def test_key_file_permission_rule(mode: int, owner: int, euid: int, refused: bool) -> None:
    assert too_open(mode, owner, euid) is refused


def _secret_volume(mount: Path, keys: Path, stamp: str, mode: int) -> None:
    """Write ``keys`` into ``mount`` the way the kubelet's atomic writer lays out a Secret:
    ``keys.json -> ..data/keys.json``, ``..data -> ..<timestamp>`` (swapped atomically)."""
    folder = mount / f"..{stamp}"
    folder.mkdir(parents=True)
    (folder / "keys.json").write_bytes(keys.read_bytes())
    (folder / "keys.json").chmod(mode)
    old = (mount / "..data").resolve() if (mount / "..data").exists() else None
    (mount / "..data_tmp").symlink_to(folder.name)
    os.replace(mount / "..data_tmp", mount / "..data")
    if not (mount / "keys.json").is_symlink():
        (mount / "keys.json").symlink_to("..data/keys.json")
    if old is not None:
        (old / "keys.json").unlink()
        old.rmdir()


def test_the_provider_reads_a_secret_volume_and_follows_its_updates(tmp_path: Path) -> None:
    from streamflow.serde.keyfile import rotate_key_file

    local = tmp_path / "local.json"
    new_key_file(local)
    mount = tmp_path / "mount"
    _secret_volume(mount, local, "2026_11_26_13_00_00.000000001", 0o400)
    keys = LocalKeyFile(mount / "keys.json")
    assert keys.current_key_id() == "v1"
    wrapped = keys.wrap("v1", bytes(range(32)))
    # `kubectl apply` of the rotated file: the kubelet writes a new folder and swaps ..data
    rotate_key_file(local)
    _secret_volume(mount, local, "2026_11_26_13_05_00.000000002", 0o400)
    assert keys.current_key_id() == "v2"
    assert keys.unwrap("v1", wrapped) == bytes(range(32))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0,
                    reason="needs a root-owned file, as the kubelet writes it")
def test_a_root_owned_group_readable_secret_file_is_accepted_for_a_non_root_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = tmp_path / "local.json"
    new_key_file(local)
    mount = tmp_path / "mount"
    _secret_volume(mount, local, "2026_11_26_13_00_00.000000001", 0o440)
    os.chown(mount / "..data" / "keys.json", 0, 10001)  # fsGroup
    with pytest.raises(KeyFileError, match=r"may be read by other users.*owner uid 0"):
        LocalKeyFile(mount / "keys.json")  # as root: its own file must be owner-only
    monkeypatch.setattr(os, "geteuid", lambda: 10001)  # as the pod's user
    assert LocalKeyFile(mount / "keys.json").current_key_id() == "v1"
    (mount / "..data" / "keys.json").chmod(0o444)
    with pytest.raises(KeyFileError, match=r"chmod 600"):
        LocalKeyFile(mount / "keys.json")
