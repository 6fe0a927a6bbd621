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
