"""One list of secret setting keys: what ``config show`` masks is exactly what ``deploy k8s``
reads from the Secret rather than writing into the ConfigMap."""

from __future__ import annotations

import pytest

import streamflow as sf
from streamflow.config import Config
from streamflow.config.secret_settings import is_secret
from streamflow.ops import effective, k8s

# librdkafka's and the schema registry client's credentials, in the table they belong to
SECRETS = {
    "kafka": ["sasl.password", "ssl.key.password", "ssl.key.pem", "ssl.keystore.password",
              "sasl.oauthbearer.client.secret", "sasl.oauthbearer.config", "sasl.jaas.config",
              "sasl.oauthbearer.assertion.private.key.passphrase",
              "sasl.oauthbearer.assertion.private.key.pem", "ssl_key"],
    "consumer": ["sasl.password"],
    "producer": ["ssl.key.pem"],
    "schema_registry": ["basic.auth.user.info", "bearer.auth.token", "bearer.auth.client.secret",
                        "ssl.key.password"],
}
# paths (the file is mounted, its contents never pass through settings), addresses,
# mechanism choices, names and public certificates
ORDINARY = {
    "kafka": ["security.protocol", "sasl.mechanism", "sasl.username", "ssl.key.location",
              "ssl.keystore.location", "ssl.certificate.location", "ssl.certificate.pem",
              "ssl.ca.location", "sasl.kerberos.keytab", "sasl.oauthbearer.client.id",
              "sasl.oauthbearer.token.endpoint.url", "sasl.oauthbearer.method",
              "sasl.oauthbearer.assertion.private.key.file"],
    "schema_registry": ["basic.auth.credentials.source", "bearer.auth.credentials.source",
                        "bearer.auth.client.id", "bearer.auth.issuer.endpoint.url",
                        "ssl.key.location", "ssl.certificate.location"],
}


def _config(keys: dict[str, list[str]]) -> Config:
    return Config(**{table: {k: f"value-of-{k}" for k in names}
                     for table, names in keys.items()})


def _topology() -> sf.Topology:
    t = sf.Topology("shop")
    t.processor("copy").stream(t.topic("orders", external=True)).to(t.topic("out"))
    return t


def _in_k8s(config: Config) -> tuple[dict[str, str], set[str]]:
    """(ConfigMap data, env vars read from the Secret) of ``deploy k8s``."""
    docs = k8s.render(_topology(), "shop", k8s.K8sOptions(), config).documents
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    (sts,) = [d for d in docs if d["kind"] == "StatefulSet"]
    env = sts["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["name"] for e in env
            if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "shop-secrets"}
    return cm["data"], refs


def _shown(config: Config) -> dict[tuple[str, str], object]:
    return {(r.section, r.key): r.value for r in effective.rows(config)}


def _var(table: str, key: str) -> str:
    return f"STREAMFLOW_{table.upper()}_{key.replace('.', '_').upper()}"


def test_every_credential_is_masked_by_config_show_and_kept_out_of_the_configmap() -> None:
    config = _config(SECRETS)
    data, refs = _in_k8s(config)
    shown = _shown(config)
    for table, keys in SECRETS.items():
        for key in keys:
            assert is_secret(key), key
            assert shown[table, key] == effective.MASK, (table, key)
            assert _var(table, key) in refs and _var(table, key) not in data, (table, key)
    assert not any(v.startswith("value-of-") for v in data.values())


def test_ordinary_keys_are_shown_and_rendered_in_the_configmap() -> None:
    config = _config(ORDINARY)
    data, refs = _in_k8s(config)
    shown = _shown(config)
    for table, keys in ORDINARY.items():
        for key in keys:
            assert not is_secret(key), key
            assert shown[table, key] == f"value-of-{key}", (table, key)
            assert data[_var(table, key)] == f"value-of-{key}" and _var(table, key) not in refs


@pytest.mark.parametrize("key", ["SASL.PASSWORD", "Bearer.Auth.Token", "ssl.key.password"])
def test_case_does_not_hide_a_secret(key: str) -> None:
    assert is_secret(key)


def test_the_encryption_keys_setting_is_a_path_shown_as_deploy_k8s_renders_it() -> None:
    config = Config(encryption_keys="secrets/keys.json")
    assert _shown(config)["streamflow", "encryption_keys"] == "secrets/keys.json"
    secret_settings = [n for n in Config.model_fields if is_secret(n)]
    assert secret_settings == []


def test_a_registry_address_with_a_password_is_a_secret_whatever_its_key() -> None:
    url = "https://sr-user:s3cret@registry.example:8081"
    config = Config(schema_registry={"url": url})
    data, refs = _in_k8s(config)
    assert "STREAMFLOW_SCHEMA_REGISTRY_URL" in refs
    assert "s3cret" not in str(data)
    assert _shown(config)["schema_registry", "url"] == \
        f"https://sr-user:{effective.MASK}@registry.example:8081"
    plain = Config(schema_registry={"url": "https://registry.example:8081"})
    assert _in_k8s(plain)[0]["STREAMFLOW_SCHEMA_REGISTRY_URL"] == "https://registry.example:8081"
    assert _shown(plain)["schema_registry", "url"] == "https://registry.example:8081"


def test_registry_messages_name_the_address_without_its_password() -> None:
    from streamflow.kafka.registry import make_registry_client

    client = make_registry_client({"url": "http://sr-user:s3cret@127.0.0.1:9",
                                   "max.retries": 0, "timeout": 1})
    assert client.url == "http://sr-user:***@127.0.0.1:9"
    with pytest.raises(Exception) as failed:  # nothing listens on port 9
        client.subjects()
    assert "s3cret" not in str(failed.value) and "127.0.0.1:9" in str(failed.value)
