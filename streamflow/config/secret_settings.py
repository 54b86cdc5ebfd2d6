"""Which setting keys hold secrets: one answer for ``config show`` and ``deploy k8s``.

``config show`` masks their values; ``deploy k8s`` reads them from the Secret
``<topology>-secrets`` instead of writing them into the ConfigMap. Both ask
:func:`is_secret`, so a key one of them hides the other cannot leak.

A key is secret when it holds a credential word (:data:`SECRET_WORDS`: ``sasl.password``,
``ssl.key.password``, ``ssl.keystore.password``, ``ssl.key.pem``,
``sasl.oauthbearer.client.secret``, ``sasl.oauthbearer.config``, ``basic.auth.user.info``,
``bearer.auth.token``, ``bearer.auth.client.secret``, ``sasl.jaas.config``...), unless it names
where a credential is or how one is obtained rather than the credential itself
(:data:`NOT_SECRET_ENDINGS`): a file's path (``ssl.key.location``,
``sasl.oauthbearer.assertion.private.key.file``), an address
(``sasl.oauthbearer.token.endpoint.url``) or the choice of a mechanism
(``basic.auth.credentials.source``, ``bearer.auth.credentials.source``). A path is not a
secret: the file it names is mounted (a Secret volume), and its contents never pass through
settings. Nor are ``security.protocol``, ``sasl.mechanism``, ``sasl.username``,
``ssl.certificate.pem`` (public) or the ``encryption_keys`` setting (a key file's path or a
key-provider plug-in's name).

A value is secret whatever its key when it is an address with a password in it
(``https://user:password@registry:8081``, which the registry client accepts):
:func:`without_password` is what ``config show`` prints of it.

>>> [k for k in ("sasl.password", "ssl.key.location", "ssl.key.pem", "sasl.mechanism",
...              "basic.auth.user.info", "bearer.auth.credentials.source") if is_secret(k)]
['sasl.password', 'ssl.key.pem', 'basic.auth.user.info']
>>> is_secret("url", "https://sr:s3cret@registry:8081"), is_secret("url", "http://registry:8081")
(True, False)
>>> without_password("https://sr:s3cret@registry:8081,https://sr:s3cret@backup:8081", "***")
'https://sr:***@registry:8081,https://sr:***@backup:8081'
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["NOT_SECRET_ENDINGS", "SECRET_WORDS", "is_secret", "without_password"]

# parts of a key (lower case) that make it a credential: passwords and passphrases, client
# secrets, tokens, credentials, "user:password" pairs, JAAS configurations, private keys in
# PEM or binary, and the OAUTHBEARER configuration (its format is up to the token provider)
SECRET_WORDS = ("password", "passphrase", "secret", "token", "credential", "user.info", "jaas",
                "key.pem", "private.key", "ssl_key", "oauthbearer.config")
# endings of keys that name where a credential is or how it is found, not the credential
NOT_SECRET_ENDINGS = (".location", ".file", ".url", ".credentials.source")


# "scheme://user:password@": the password of an address's user information (RFC 3986)
_PASSWORD_IN_ADDRESS = re.compile(r"(?P<user>[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:,]*):[^/@\s,]*@")


def is_secret(key: str, value: Any = None) -> bool:
    """True when the setting ``key`` holds a secret, or its ``value`` is an address with one.

    ``key``: a librdkafka, registry or streamflow key.
    """
    k = key.lower()
    if any(w in k for w in SECRET_WORDS) and not k.endswith(NOT_SECRET_ENDINGS):
        return True
    return isinstance(value, str) and _PASSWORD_IN_ADDRESS.search(value) is not None


def without_password(value: str, mask: str) -> str:
    """``value`` with the password of every address in it replaced by ``mask``."""
    return _PASSWORD_IN_ADDRESS.sub(lambda m: f"{m['user']}:{mask}@", value)
