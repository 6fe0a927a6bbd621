"""Values for shell completion: meshes, target versions, kubeconfig contexts and namespaces.

Plain functions over strings so the CLI (the only click user) wraps them. Completion runs on
every Tab press, so nothing here talks to a cluster or imports ``kubernetes``: contexts and
namespaces come from the kubeconfig file alone, and a file that cannot be read completes
nothing rather than failing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from migrate import mappings
from migrate.pipeline import SOURCES, TARGETS


def source_meshes(auto: bool = True) -> list[str]:
    """What ``--from`` takes: every source mesh, and ``auto`` where the command detects one."""
    return sorted(SOURCES) + (["auto"] if auto else [])


def target_meshes() -> list[str]:
    """What ``--to`` takes."""
    return sorted(TARGETS)


def target_versions(target: str | None) -> list[str]:
    """``--target-version`` values for the chosen ``--to`` (every target's when none is)."""
    targets = [target] if target in TARGETS else sorted(TARGETS)
    versions: list[str] = []
    for name in targets:
        versions += [v for v in mappings.table(name).versions if v not in versions]
    return versions


def kubeconfig_paths(kubeconfig: str | None) -> list[Path]:
    """The files kubectl would read: ``--kubeconfig``, else every file in ``$KUBECONFIG``
    (kubectl merges them), else ``~/.kube/config``."""
    if kubeconfig:
        return [Path(kubeconfig).expanduser()]
    listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return [Path(p).expanduser() for p in listed] or [Path("~/.kube/config").expanduser()]


def _contexts(kubeconfig: str | None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in kubeconfig_paths(kubeconfig):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # completion offers what it can; the command itself reports bad files
        contexts = data.get("contexts") if isinstance(data, dict) else None
        found += [c for c in contexts or [] if isinstance(c, dict) and c.get("name")]
    return found


def kubeconfig_contexts(kubeconfig: str | None) -> list[str]:
    """Context names in the kubeconfig file(s), sorted."""
    return sorted({str(c["name"]) for c in _contexts(kubeconfig)})


def kubeconfig_namespaces(kubeconfig: str | None, context: str | None = None) -> list[str]:
    """Namespaces the kubeconfig's contexts name (only ``context``'s when given), sorted.
    The cluster's own namespace list is not read: completion never makes a request."""
    names = set()
    for c in _contexts(kubeconfig):
        namespace = (c.get("context") or {}).get("namespace") if isinstance(
            c.get("context"), dict) else None
        if namespace and (context is None or c["name"] == context):
            names.add(str(namespace))
    return sorted(names)
