"""Kubernetes name rules for generated objects.

Generated names must stay valid (RFC 1123 labels, at most 63 characters; Service names also
start with a letter, RFC 1035) and unique once suffixed. Long names are cut and given a
stable hash suffix so two different long inputs never collide.
"""

from __future__ import annotations

import hashlib
import re

MAX_LABEL = 63
_INVALID = re.compile(r"[^a-z0-9-]+")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DASHES = re.compile(r"-{2,}")
# Already what k8s_name would make of it: a letter first, single dashes between lowercase
# letters and digits (``[a-z](?:-?[a-z0-9])*``). Most generated names are, and skip the
# rewriting below. Written as one character class plus two substring tests: sre runs a
# class repetition in one tight loop, while the grouped form above took several times as
# long per name (hundreds of thousands of names on a large mesh).
_PLAIN_CHARS = re.compile(r"[a-z][a-z0-9-]*")


def k8s_name(*parts: object, max_len: int = MAX_LABEL) -> str:
    """A valid RFC 1035/1123 label built from ``parts`` joined by ``-``."""
    if len(parts) == 1 and parts[0].__class__ is str:
        raw = parts[0]  # NameRegistry.claim passes one name, most often valid already
    else:
        raw = "-".join(filter(None, map(str, parts)))  # empty parts left out
    if len(raw) <= max_len and _PLAIN_CHARS.fullmatch(raw) and raw[-1] != "-" \
            and "--" not in raw:
        return raw
    name = _INVALID.sub("-", raw.lower()).strip("-")
    name = _DASHES.sub("-", name) or "x"
    if not name[0].isalpha():
        name = "x-" + name
    if len(name) > max_len:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = f"{name[: max_len - 9].rstrip('-')}-{digest}"
    return name


class NameRegistry:
    """Hands out unique names per (kind, namespace)."""

    def __init__(self) -> None:
        self._taken: dict[tuple[str, str], dict[str, str]] = {}

    def claim(self, kind: str, namespace: str, wanted: str, owner: str) -> str:
        """A unique valid name for ``owner`` (the same owner always gets the same name)."""
        taken = self._taken.setdefault((kind, namespace), {})
        name = k8s_name(wanted)
        if taken.get(name, owner) == owner:
            taken[name] = owner
            return name
        digest = hashlib.sha256(owner.encode()).hexdigest()[:6]
        name = k8s_name(f"{name[: MAX_LABEL - 7]}-{digest}")
        taken[name] = owner
        return name


def valid_name(name: str, service: bool = False) -> bool:
    """Whether a name obeys the label rules (RFC 1035 for Services)."""
    pattern = DNS1035_LABEL if service else DNS1123_LABEL
    return len(name) <= MAX_LABEL and bool(pattern.match(name))


# -- names and metadata as read ----------------------------------------------------------------
# What the API server accepts in an object's name, namespace, labels and annotation keys
# (k8s.io/apimachinery pkg/util/validation/validation.go: IsDNS1123Subdomain,
# IsDNS1123Label, IsDNS1035Label, IsQualifiedName, IsValidLabelValue;
# pkg/api/validation/objectmeta.go: ValidateAnnotations checks IsQualifiedName on the
# lower-cased key; pkg/apis/meta/v1/validation ValidateLabels). An input value outside these
# rules could never be in a cluster, so the reader refuses the object rather than plan it.
MAX_SUBDOMAIN = 253
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
MAX_QUALIFIED_NAME = 63
MAX_LABEL_VALUE = 63


def valid_subdomain(name: str) -> bool:
    """Whether ``name`` is a DNS-1123 subdomain (most object names)."""
    return len(name) <= MAX_SUBDOMAIN and bool(DNS1123_SUBDOMAIN.match(name))


def valid_qualified_name(key: str) -> bool:
    """Whether ``key`` is a qualified name (``[prefix/]name``): a label key, or a lower-cased
    annotation key."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or not valid_subdomain(prefix)):
        return False
    return len(name) <= MAX_QUALIFIED_NAME and bool(_QUALIFIED_NAME.match(name))


def valid_label_value(value: str) -> bool:
    """Whether ``value`` is a label value (empty, or a qualified name's name part)."""
    return value == "" or (len(value) <= MAX_LABEL_VALUE and bool(_QUALIFIED_NAME.match(value)))


def metadata_problems(kind: str, api_version: str, meta: object,
                      namespaced: bool) -> list[tuple[str, str]]:
    """(field, what is wrong) for each value of an object's metadata the API server would
    reject: its name (a DNS-1123 label for a Namespace, a DNS-1035 label for a Service, a
    DNS-1123 subdomain otherwise), its namespace (a DNS-1123 label), label keys and values,
    and annotation keys. Annotation values may be anything."""
    if not isinstance(meta, dict):
        return []
    out: list[tuple[str, str]] = []
    name = meta.get("name")
    if isinstance(name, str):
        core = api_version == "v1"
        if core and kind == "Namespace":
            ok, rule = valid_name(name), "a DNS-1123 label"
        elif core and kind == "Service":
            ok, rule = valid_name(name, service=True), "a DNS-1035 label"
        else:
            ok, rule = valid_subdomain(name), "a DNS-1123 subdomain"
        if not ok:
            out.append(("metadata.name", f"{shown(name)} is not {rule}"))
    namespace = meta.get("namespace")
    if namespaced and isinstance(namespace, str) and namespace and not valid_name(namespace):
        out.append(("metadata.namespace", f"{shown(namespace)} is not a DNS-1123 label"))
    out += labels_problems("metadata", meta)
    return out


def labels_problems(path: str, meta: object) -> list[tuple[str, str]]:
    """Label and annotation-key problems of one ``metadata`` mapping (an object's, or a pod
    template's) at ``path``."""
    if not isinstance(meta, dict):
        return []
    out: list[tuple[str, str]] = []
    labels = meta.get("labels")
    for key, value in labels.items() if isinstance(labels, dict) else ():
        if not valid_qualified_name(str(key)):
            out.append((f"{path}.labels", f"key {shown(str(key))} is not a qualified name"))
        elif isinstance(value, str) and not valid_label_value(value):
            out.append((f"{path}.labels[{key}]", f"{shown(value)} is not a label value"))
    annotations = meta.get("annotations")
    for key in annotations if isinstance(annotations, dict) else ():
        if not valid_qualified_name(str(key).lower()):
            out.append((f"{path}.annotations", f"key {shown(str(key))} is not a qualified name"))
    return sorted(out)  # the same order whatever order the input's keys came in


def shown(value: str, limit: int = 80) -> str:
    """A value as a message quotes it: Python's quoting (control characters escaped), cut."""
    return repr(value if len(value) <= limit else value[:limit] + "...")
