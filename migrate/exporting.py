"""What ``export`` writes and what ``rbac`` prints: plain renderers, no cluster access."""

from __future__ import annotations

from typing import Any

from migrate.dialects import kube
from migrate.pipeline import SOURCES
from migrate.sources.model import RawObject
from migrate.yamlio import dump_documents


def export_dump(objects: list[RawObject]) -> str:
    """A sorted, noise-free multi-document dump (the same objects give the same bytes)."""
    def key(o: RawObject) -> tuple[str, str, str, str]:
        ref = o.ref
        return (o.group, ref.kind, ref.namespace, ref.name)

    return dump_documents([o.body for o in sorted(objects, key=key)]) if objects else ""


# Plurals a CRD names itself and no English rule gives: consul-k8s keeps these kinds' names
# already plural (spec.names.plural in control-plane/config/crd/bases/
# consul.hashicorp.com_{servicedefaults,proxydefaults,serviceintentions,exportedservices}.yaml).
IRREGULAR_PLURALS = {
    "ExportedServices": "exportedservices",
    "ProxyDefaults": "proxydefaults",
    "ServiceDefaults": "servicedefaults",
    "ServiceIntentions": "serviceintentions",
}


def plural(kind: str) -> str:
    """The resource name of a kind as RBAC names it (``Gateway`` -> ``gateways``)."""
    if kind in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[kind]
    lower = kind.lower()
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return lower[:-1] + "ies"
    # Sibilant endings take -es, as in the CRDs' own names (Mesh -> meshes).
    return lower + ("es" if lower.endswith(("s", "x", "z", "ch", "sh")) else "s")


def rbac_cluster_role(source: str) -> str:
    """A read-only ClusterRole covering every kind the source reader takes (never Secrets)."""
    reader = SOURCES[source]
    by_group: dict[str, set[str]] = {}
    for group, kind in [*kube.HANDLERS, *reader.HANDLERS]:
        by_group.setdefault(group, set()).add(plural(kind))
    # --validate-with cluster reads the target's CRDs.
    by_group.setdefault("apiextensions.k8s.io", set()).add("customresourcedefinitions")
    rules: list[dict[str, Any]] = [
        {"apiGroups": [group], "resources": sorted(res), "verbs": ["get", "list"]}
        for group, res in sorted(by_group.items())]
    # The install ConfigMaps, by name only: a wider grant would read every app's configuration.
    names = sorted({name for _, name in reader.INSTALL_CONFIGMAPS})
    if names:
        rules.append({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
                      "resourceNames": names})
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": f"meshmigrate-read-{source}"}, "rules": rules}
    return dump_documents([role])
