"""Check a kubeconfig before the client loads it, and keep its secrets out of every message.

The ``kubernetes`` client's loader turns some broken kubeconfigs into exceptions that name
no field (bad base64 in ``certificate-authority-data`` is a bare ``binascii.Error``), and
the errors of a connection can carry the server URL with its ``user:password@``. This module
has no client import: it reads the file as YAML, names the field that is wrong, and collects
the values that must never be printed so that :class:`Redactor` can remove them.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import unquote, urlsplit

import yaml

from migrate.errors import ClusterUnreachable

# Fields of a kubeconfig holding base64 data. kubectl decodes them as Go []byte values, i.e.
# base64.StdEncoding, which refuses anything but the standard alphabet and padding (line
# breaks aside): client-go tools/clientcmd/api/v1/types.go (Cluster.CertificateAuthorityData,
# AuthInfo.ClientCertificateData, AuthInfo.ClientKeyData, all ``[]byte``), decoded by
# encoding/json (https://pkg.go.dev/encoding/json#Unmarshal: "[]byte ... base64-encoded").
CLUSTER_DATA = ("certificate-authority-data",)
USER_DATA = ("client-certificate-data", "client-key-data")
# A user's fields whose values are credentials (client-go AuthInfo: token, password,
# client-key-data; auth-provider config holds id-token, refresh-token, client-secret).
USER_SECRETS = ("token", "password", "client-key-data")

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")
_AUTH_HEADER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
REDACTED = "[redacted]"


def safe_url(url: str) -> str:
    """``url`` without its ``user:password@`` part."""
    return _USERINFO.sub(r"\1", url)


class Redactor:
    """Removes credentials from a message: URL userinfo, auth headers and known secrets."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: frozenset[str] = frozenset()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Also remove these values (very short ones would blank ordinary words: skipped)."""
        # A new set replaces the old one: readers in other threads see one or the other.
        self._secrets = self._secrets | {s for s in secrets if isinstance(s, str) and len(s) >= 4}

    def __call__(self, text: str) -> str:
        text = _AUTH_HEADER.sub(rf"\1 {REDACTED}", safe_url(text))
        # Longest first, so a secret containing another is removed whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text


def check_kubeconfig(path: str, context: str | None) -> Redactor:
    """Refuse a kubeconfig the client would choke on; return a redactor for its secrets.

    Only the context in use (``context`` or ``current-context``) is checked for bad data, as
    kubectl does; the secrets of every user and server are collected.

    Raises:
        ClusterUnreachable: the file cannot be read, is not YAML, or a data field of the
            context in use is not valid base64 (the message names the field).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ClusterUnreachable(f"cannot read kubeconfig {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ClusterUnreachable(f"kubeconfig {path} is not UTF-8 text") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Only the position and the problem: the YAML error's snippet could show a token.
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ClusterUnreachable(f"kubeconfig {path}{where} is not valid YAML: {problem}") \
            from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ClusterUnreachable(f"kubeconfig {path} is not a kubeconfig (its top level is not "
                                 "a mapping)")
    redactor = Redactor(_secrets(doc))
    name = context or doc.get("current-context")
    if not name:
        return redactor  # the client's loader says which key is missing
    ctx = _named(path, doc, "contexts", "context", name)
    if ctx is None:
        return redactor  # an unknown context is reported by the caller, with the choices
    for section, field, keys in (("clusters", "cluster", CLUSTER_DATA),
                                 ("users", "user", USER_DATA)):
        ref = ctx.get(field)
        entry = _named(path, doc, section, field, ref) if isinstance(ref, str) else None
        for key in keys:
            if entry is not None and key in entry:
                _check_base64(path, f"{section}[{ref}].{field}.{key}", entry[key])
    return redactor


def _named(path: str, doc: dict[str, Any], section: str, field: str,
           name: str) -> dict[str, Any] | None:
    """The ``field`` mapping of the entry called ``name`` in ``doc[section]``."""
    entries = doc.get(section) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ClusterUnreachable(f"kubeconfig {path}: {section} is not a list of entries with "
                                 f"a name and a {field}")
    for entry in entries:
        if entry.get("name") == name:
            body = entry.get(field)
            if body is None:
                return {}
            if not isinstance(body, dict):
                raise ClusterUnreachable(f"kubeconfig {path}: {section}[{name}].{field} is not "
                                         "a mapping")
            return body
    return None


def _check_base64(path: str, where: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ClusterUnreachable(f"kubeconfig {path}: {where} is not a string of base64 data")
    try:
        base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ClusterUnreachable(f"kubeconfig {path}: {where} is not valid base64 ({exc})") \
            from None


def _secrets(doc: dict[str, Any]) -> list[str]:
    """Every credential the kubeconfig holds, as it could appear in a message."""
    found: list[str] = []
    for entry in _entries(doc.get("users")):
        user = entry.get("user")
        if not isinstance(user, dict):
            continue
        found += [str(user[k]) for k in USER_SECRETS if user.get(k)]
        provider = user.get("auth-provider")
        if isinstance(provider, dict) and isinstance(provider.get("config"), dict):
            found += [str(v) for v in provider["config"].values() if isinstance(v, str)]
        plugin = user.get("exec")
        if isinstance(plugin, dict):
            found += [str(e.get("value")) for e in _entries(plugin.get("env")) if e.get("value")]
    for entry in _entries(doc.get("clusters")):
        cluster = entry.get("cluster")
        if isinstance(cluster, dict):
            for key in ("server", "proxy-url"):
                found += _userinfo(cluster.get(key))
    return found


def _entries(value: Any) -> list[dict[str, Any]]:
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def _userinfo(url: Any) -> list[str]:
    """The user and password of a URL, raw and percent-decoded."""
    if not isinstance(url, str) or "@" not in url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    info = parts.netloc.rpartition("@")[0]
    values = [info, unquote(info)]
    if parts.password:
        values += [parts.password, unquote(parts.password)]
    return values
