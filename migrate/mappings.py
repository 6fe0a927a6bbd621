"""Capability tables (mappings/*.yaml) loaded, validated and queried.

The tables live outside the package in the source tree and inside it (``migrate/_mappings``)
in an installed wheel; :func:`tables_dir` finds either.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from migrate.errors import MigrateError, UsageError
from migrate.losses import Severity

STATUSES = ("supported", "degraded", "unsupported")


class MappingError(MigrateError):
    """A capability table is malformed (a bug in meshmigrate's data, not in the input)."""


def tables_dir() -> Path:
    """Where the YAML tables are: the installed copy first, else the source tree."""
    installed = resources.files("migrate").joinpath("_mappings")
    if installed.is_dir():
        return Path(str(installed))
    source = Path(__file__).resolve().parent.parent / "mappings"
    if source.is_dir():
        return source
    raise MappingError("capability tables not found (neither migrate/_mappings nor mappings/)")


@dataclass(frozen=True)
class Feature:
    """A feature of the model, from features.yaml."""

    key: str
    code: str
    group: str
    title: str


@dataclass(frozen=True)
class Capability:
    """What one target mesh does with one feature."""

    status: str
    since: str
    severity: Severity
    note: str
    action: str


@lru_cache(maxsize=256)  # asked for every feature use written; a table has a few versions
def version_key(version: str) -> tuple[int, ...]:
    """``"2.16"`` -> ``(2, 16)`` for comparisons; ``edge-`` versions are not accepted here."""
    return tuple(int(p) for p in version.split(".") if p.isdigit())


@dataclass(frozen=True)
class CapabilityTable:
    """One target mesh's table."""

    mesh: str
    default_version: str
    versions: tuple[str, ...]
    entries: dict[str, Capability]

    def get(self, feature: str) -> Capability:
        """The entry of a feature (every feature has one; validated at load)."""
        return self.entries[feature]

    def supports(self, feature: str, version: str) -> bool:
        """Whether the writer may emit this feature for this target version."""
        cap = self.entries[feature]
        if cap.status == "unsupported":
            return False
        return not cap.since or version_key(version) >= version_key(cap.since)


@lru_cache(maxsize=None)
def features() -> dict[str, Feature]:
    """Every feature of the model, by key."""
    data = _load("features.yaml")
    out = {}
    for key, entry in (data.get("features") or {}).items():
        for required in ("code", "group", "title"):
            if not entry.get(required):
                raise MappingError(f"features.yaml: {key} has no {required}")
        out[key] = Feature(key, entry["code"], entry["group"], entry["title"])
    codes = [f.code for f in out.values()]
    if len(codes) != len(set(codes)):
        raise MappingError("features.yaml: two features share a loss code")
    return out


@lru_cache(maxsize=None)
def table(mesh: str) -> CapabilityTable:
    """The validated capability table of a target mesh."""
    path = tables_dir() / f"{mesh}.yaml"
    if not path.is_file():
        raise UsageError(f"no capability table for mesh {mesh!r}")
    data = _load(f"{mesh}.yaml")
    known = features()
    entries: dict[str, Capability] = {}
    raw = data.get("features") or {}
    unknown = sorted(set(raw) - set(known))
    missing = sorted(set(known) - set(raw))
    if unknown or missing:
        raise MappingError(f"{mesh}.yaml: unknown features {unknown}, missing {missing}")
    for key, entry in raw.items():
        status = entry.get("status")
        if status not in STATUSES:
            raise MappingError(f"{mesh}.yaml: {key}: status must be one of {STATUSES}")
        severity = entry.get("severity") or ("info" if status == "supported" else "dropped")
        entries[key] = Capability(status, str(entry.get("since") or ""), Severity(severity),
                                  str(entry.get("note") or ""), str(entry.get("action") or ""))
    versions = tuple(str(v) for v in data.get("versions") or ())
    return CapabilityTable(mesh, str(data["default_version"]), versions, entries)


def _load(name: str) -> dict[str, Any]:
    with open(tables_dir() / name, encoding="utf-8") as fh:
        # libyaml's loader when present: the tables are read at every run, and the Python
        # loader took a visible share of a small plan.
        data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(data, dict):
        raise MappingError(f"{name}: not a mapping")
    return data
