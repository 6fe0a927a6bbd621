"""consul-k8s pod-template annotations and namespace labels (consul-k8s "Annotations and
Labels" reference; mapping-consul-others.md 1.3 and 1.5).

Injection is per pod (``connect-inject``) unless Helm ``connectInject.default`` injects every
pod; consul-k8s has no namespace injection label (Helm selectors decide), so namespaces follow
that install setting. ``connect-inject: "true"`` does not override the namespace scope
(``connectInject.k8sAllowNamespaces`` / ``k8sDenyNamespaces``, kube-system and kube-public):
outside it nothing is injected; only ``"false"`` always wins (consul-k8s
control-plane/connect-inject/webhook/mesh_webhook.go ``shouldInject``; fact
``consul.connect-inject-scope``). Registration annotations (service name, metadata, tags, explicit
upstreams) are kept on the Workload record and resolved once every Service is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migrate.dialects.consul.names import (
    META_PREFIX,
    PREFIX,
    SERVICE_ANNOTATION,
    TAGS_ANNOTATION,
    UPSTREAMS_ANNOTATION,
)
from migrate import facts
from migrate.dialects.fields import Fields

INJECT = PREFIX + "connect-inject"
TPROXY = PREFIX + "transparent-proxy"

# Set by consul-k8s itself; they describe state, not configuration.
_STATE = frozenset({PREFIX + "connect-inject-status", PREFIX + "connect-k8s-version",
                    PREFIX + "consul-k8s-version", PREFIX + "original-pod",
                    PREFIX + "connect-inject-network-status"})
# Registration data read in the finishing pass (names, subsets, call edges).
_REGISTRATION = frozenset({INJECT, SERVICE_ANNOTATION, UPSTREAMS_ANNOTATION, TAGS_ANNOTATION,
                           PREFIX + "kubernetes-service", PREFIX + "connect-service-port"})
_TELEMETRY = ("enable-metrics", "enable-metrics-merging", "merged-metrics-port",
              "prometheus-scrape-port", "prometheus-scrape-path", "service-metrics-port",
              "service-metrics-path", "prometheus-", "enable-sidecar-proxy-lifecycle")
_CAPTURE = ("transparent-proxy-exclude-", "transparent-proxy-overwrite-probes")


@dataclass(frozen=True)
class Upstream:
    """One entry of ``connect-service-upstreams``."""

    service: str
    namespace: str
    """Enterprise namespace (mirrored to a Kubernetes namespace); empty in CE."""
    port: str
    remote: str
    """Why the upstream is outside this cluster's Consul namespace (peer, dc...), or ''."""


def parse_upstreams(value: str) -> list[Upstream]:
    """``svc:port[:dc]``, ``svc.ns[.partition]:port`` or the labelled form
    ``svc.svc[.ns.ns][.peer.peer|.ap.ap|.dc.dc]:port``; ``prepared_query:name:port``."""
    out = []
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            continue
        parts = entry.split(":")
        if parts[0] == "prepared_query":
            name = parts[1] if len(parts) > 1 else ""
            out.append(Upstream(name, "", parts[2] if len(parts) > 2 else "",
                                "prepared query"))
            continue
        port = parts[1] if len(parts) > 1 else ""
        remote = f"datacenter {parts[2]}" if len(parts) > 2 and parts[2] else ""
        labels = parts[0].split(".")
        namespace = ""
        if len(labels) > 1 and labels[1] == "svc":
            pairs = dict(zip(labels[3::2], labels[2::2]))
            namespace = pairs.get("ns", "")
            for kind, what in (("peer", "peer"), ("ap", "partition"), ("dc", "datacenter")):
                if kind in pairs:
                    remote = f"{what} {pairs[kind]}"
        elif len(labels) > 1:
            namespace = labels[1]
            if len(labels) > 2:
                remote = f"partition {labels[2]}"
        out.append(Upstream(labels[0], "" if namespace == "default" else namespace, port,
                            remote))
    return out


def in_inject_scope(namespace: str, allow: tuple[str, ...], deny: tuple[str, ...]) -> bool:
    """Whether consul-k8s may inject pods of ``namespace`` at all: not a Kubernetes system
    namespace, not in ``k8sDenyNamespaces``, and in ``k8sAllowNamespaces`` (or that is ``*``).
    The pod annotation is only asked after this (``shouldInject``)."""
    # fact: consul.connect-inject-scope
    if namespace in facts.value("consul.connect-inject-scope", "system_namespaces"):
        return False
    if namespace in deny:
        return False
    return "*" in allow or namespace in allow


def pod_prefix_of(kind: str) -> str:
    """Where the pod template's metadata lives in a workload kind."""
    if kind == "Pod":
        return "metadata"
    if kind == "CronJob":
        return "spec.jobTemplate.spec.template.metadata"
    return "spec.template.metadata"


def workload_annotations(f: Fields, ann: dict[str, Any]) -> None:
    """Feature uses for the Consul annotations that change proxy behaviour."""
    prefix = pod_prefix_of(f.ref.kind)
    for key in sorted(ann, key=str):
        key = str(key)
        if not key.startswith(PREFIX) or key in _STATE:
            continue
        path = f"{prefix}.annotations.{key}"
        value = str(ann[key])
        short = key[len(PREFIX):]
        if key in _REGISTRATION or key.startswith(META_PREFIX):
            if key == UPSTREAMS_ANNOTATION and value.strip():
                f.use("workload.explicit_upstreams", path, value)
            continue
        if key == TPROXY:
            if value.lower() == "false":
                f.use("workload.capture_annotations", path, "transparent proxy disabled")
            continue
        if short.startswith(_CAPTURE):
            f.use("workload.capture_annotations", path, f"{key}={value}")
        elif short.startswith(_TELEMETRY):
            f.use("telemetry", path, f"{key}={value}")
        else:
            f.use("workload.proxy_annotations", path, f"{key}={value}")


def namespace_labels(f: Fields, labels: dict[str, Any]) -> None:
    """Namespace labels consul-k8s reads: transparent proxy and Consul DNS per namespace."""
    if str(labels.get(TPROXY, "")).lower() == "false":
        f.use("workload.capture_annotations", f"metadata.labels.{TPROXY}",
              "transparent proxy disabled for the namespace")
    if PREFIX + "consul-dns" in labels:
        f.use("workload.proxy_annotations", f"metadata.labels.{PREFIX}consul-dns",
              "Consul DNS for the namespace")
