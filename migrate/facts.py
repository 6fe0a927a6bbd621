"""The fact register (mappings/facts.yaml): the mesh behaviour meshmigrate decides on, each fact
with the versions it holds for and the upstream source it was checked against.

Code that decides on a fact names its id in a comment (``# fact: linkerd.route-match-order``);
where a fact carries data (an order, a default), the code reads it here with :func:`value`, so
a wrong fact is wrong in one place. ``tests/test_facts.py`` checks that every id named in code
exists and every fact is named somewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from migrate.mappings import MappingError, _load

MESHES = ("linkerd", "istio", "consul", "gateway-api", "kubernetes")
ID = re.compile(r"^(linkerd|istio|consul|gateway-api|kubernetes)\.[a-z0-9]+(-[a-z0-9]+)*$")
_SOURCE_REPO_KEYS = ("repo", "ref", "path")
_BLOGS = ("blog", "medium.com", "dev.to", "buoyant.io", "tetrate.io", "solo.io")


@dataclass(frozen=True)
class Source:
    """Where a fact was checked: a repository path at a tag, or an official documentation URL."""

    repo: str = ""
    ref: str = ""
    path: str = ""
    symbol: str = ""
    url: str = ""

    def cite(self) -> str:
        """One line: ``owner/repo@ref path (symbol)`` or the URL."""
        if self.url:
            return self.url
        return f"{self.repo}@{self.ref} {self.path}" + (f" ({self.symbol})" if self.symbol
                                                          else "")


@dataclass(frozen=True)
class Fact:
    """One register entry."""

    id: str
    mesh: str
    statement: str
    versions: str
    source: Source
    value: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@lru_cache(maxsize=None)
def register() -> dict[str, Fact]:
    """Every fact, by id, validated (:class:`~migrate.mappings.MappingError` when malformed)."""
    data = _load("facts.yaml")
    raw = data.get("facts")
    if not isinstance(raw, dict) or not raw:
        raise MappingError("facts.yaml: no facts")
    return {key: _fact(str(key), entry) for key, entry in raw.items()}


def _fact(key: str, entry: Any) -> Fact:
    where = f"facts.yaml: {key}"
    if not ID.match(key):
        raise MappingError(f"{where}: an id is <mesh>.<kebab-case-name>")
    if not isinstance(entry, dict):
        raise MappingError(f"{where}: not a mapping")
    for required in ("mesh", "statement", "versions", "source"):
        if not entry.get(required):
            raise MappingError(f"{where}: no {required}")
    mesh = str(entry["mesh"])
    if mesh not in MESHES or not key.startswith(mesh + "."):
        raise MappingError(f"{where}: mesh {mesh!r} must be one of {MESHES} and prefix the id")
    src = entry["source"]
    if not isinstance(src, dict):
        raise MappingError(f"{where}: source must be a mapping")
    source = Source(**{k: str(v) for k, v in src.items()
                       if k in ("repo", "ref", "path", "symbol", "url")})
    if source.url:
        if not source.url.startswith("https://") or any(b in source.url for b in _BLOGS):
            raise MappingError(f"{where}: a source URL is official documentation or an "
                               "upstream issue over https, never a blog")
    elif not all(getattr(source, k) for k in _SOURCE_REPO_KEYS):
        raise MappingError(f"{where}: source needs repo, ref and path, or a url")
    value = entry.get("value") or {}
    if not isinstance(value, dict):
        raise MappingError(f"{where}: value must be a mapping")
    return Fact(key, mesh, " ".join(str(entry["statement"]).split()), str(entry["versions"]),
                source, dict(value), " ".join(str(entry.get("note") or "").split()))


def fact(fact_id: str) -> Fact:
    """One fact (KeyError names the id when it is not registered)."""
    try:
        return register()[fact_id]
    except KeyError:
        raise KeyError(f"fact {fact_id!r} is not in mappings/facts.yaml") from None


def value(fact_id: str, key: str) -> Any:
    """A datum a fact carries (``value: {key: ...}`` in the register)."""
    data = fact(fact_id).value
    if key not in data:
        raise KeyError(f"fact {fact_id!r} has no value {key!r}")
    return data[key]
