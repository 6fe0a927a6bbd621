"""State shared by the Consul writer's modules: Consul service names, protocols, manifests.

Consul facts used here (../shared/reference/mapping-consul-others.md sections 1.3 and 1.6):
- the Consul service name of a pod is its Kubernetes Service's ``metadata.name``; Consul CE has
  one Consul namespace, so same-named Services of different Kubernetes namespaces are one
  Consul service (``CONSUL_NAME_COLLISION``);
- ServiceDefaults, ServiceRouter, ServiceSplitter and ServiceResolver objects must be named
  after the Consul service they configure;
- the protocol is not read from ``appProtocol``: L7 entries need ServiceDefaults ``protocol``
  (http, http2 or grpc) on every service they involve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from migrate.dialects.base import Manifest, TargetConfig
from migrate.ir.graph import MeshGraph
from migrate.ir.model import DestinationPolicy, Service, ServiceKey
from migrate.losses import LossLog, ObjectRef, Severity

API = "consul.hashicorp.com/v1alpha1"
L7 = ("http", "http2", "grpc")
CONTROL_NAMESPACE = "consul"
"""Where consul-k8s runs; the cluster-wide Mesh entry is filed there."""


@dataclass
class ConsulContext:
    """What every Consul writer module needs, plus the decisions they share."""

    graph: MeshGraph
    losses: LossLog
    out: TargetConfig
    namespaces: list[str]
    supports: Callable[[str], bool] = lambda feature: True
    """Whether the chosen consul-k8s version has a feature (mappings/consul.yaml)."""
    trust_domain: str = "cluster.local"
    owners: dict[str, ServiceKey] = field(default_factory=dict)
    """Consul service name -> the Kubernetes Service whose configuration is written for it."""
    taken: set[str] = field(default_factory=set)
    """Every Consul service name in use (real Services and generated virtual services)."""
    policies: dict[ServiceKey, DestinationPolicy] = field(default_factory=dict)
    l7: dict[ServiceKey, str] = field(default_factory=dict)
    """Services that receive L7 configuration -> the protocol their ServiceDefaults declare."""
    virtual: dict[str, tuple[ServiceKey, str, ObjectRef]] = field(default_factory=dict)
    """Virtual (splitter-only) service name -> (the routed host, its protocol, the route)."""
    restricted: dict[ServiceKey, ObjectRef] = field(default_factory=dict)
    """Services whose intentions narrow who may call (-> a policy that does it)."""

    def owns(self, key: ServiceKey) -> bool:
        """Whether this Service's configuration is written: consul-k8s registers its pods (it
        is not an ExternalName) and it has no same-named rival."""
        return self.owners.get(key.name) == key

    def migrated(self, key: ServiceKey) -> bool:
        """Whether the Service's namespace moves to Consul in this plan."""
        return key.namespace in self.namespaces

    def add(self, bucket: dict[str, list[Manifest]], kind: str, namespace: str, name: str,
            spec: dict[str, Any], sources: set[ObjectRef] | tuple[ObjectRef, ...],
            annotations: dict[str, str] | None = None) -> Manifest:
        """File one consul.hashicorp.com object in a phase bucket."""
        meta: dict[str, Any] = {"name": name, "namespace": namespace}
        if annotations:
            meta["annotations"] = annotations
        body = {"apiVersion": API, "kind": kind, "metadata": meta, "spec": spec}
        manifest = Manifest(body, tuple(sorted(set(sources))))
        self.out.add(bucket, manifest)
        return manifest

    def add_prerequisite(self, kind: str, namespace: str, name: str, spec: dict[str, Any],
                         sources: set[ObjectRef]) -> None:
        """A cluster-wide object applied before any namespace moves."""
        body = {"apiVersion": API, "kind": kind,
                "metadata": {"name": name, "namespace": namespace}, "spec": spec}
        self.out.prerequisites.append(Manifest(body, tuple(sorted(sources))))


def build_context(graph: MeshGraph, losses: LossLog, out: TargetConfig, namespaces: list[str],
                  supports: Callable[[str], bool], trust_domain: str) -> ConsulContext:
    """A context with Consul names decided and collisions reported."""
    ctx = ConsulContext(graph, losses, out, sorted(namespaces), supports, trust_domain)
    for dp in graph.of(DestinationPolicy):
        if dp.service:
            ctx.policies.setdefault(dp.service, dp)
    by_name: dict[str, list[Service]] = {}
    for svc in graph.of(Service):
        ctx.taken.add(svc.key.name)
        if ctx.migrated(svc.key) and svc.raw_spec_type != "ExternalName":
            by_name.setdefault(svc.key.name, []).append(svc)
    # One loss per Service that loses its name (the first by namespace keeps it). The fix is
    # a rename, or Consul Enterprise namespaces: consul-k8s registers each Kubernetes
    # namespace's pods into the Consul namespace of the same name with Helm
    # global.enableConsulNamespaces and connectInject.consulNamespaces.mirroringK8S
    # (developer.hashicorp.com/consul/docs/multi-tenant/namespace/k8s). The equivalence check
    # attributes every divergence on the shared name to this loss (migrate/verify/compare.py
    # _NAME_WIDE), the winner's included: its instances merge too.
    for name in sorted(by_name):
        rivals = sorted(by_name[name], key=lambda s: s.key)
        ctx.owners[name] = rivals[0].key
        for svc in rivals[1:]:
            losses.report(
                "CONSUL_NAME_COLLISION", Severity.MANUAL, "route.http", svc.origin.ref,
                "metadata.name",
                f"Service {svc.key} and Service {rivals[0].key} are the same Consul service "
                f"{name!r} in Consul CE (one Consul namespace): their instances and intentions "
                f"merge; configuration is written for {rivals[0].key} only",
                "Rename one of the Services (with ACLs also its ServiceAccount, which must equal "
                "the Consul service name) and re-run. On Consul Enterprise, mirroring Kubernetes "
                "namespaces into Consul namespaces keeps them apart instead (Helm "
                "global.enableConsulNamespaces=true, connectInject.consulNamespaces."
                "mirroringK8S=true; developer.hashicorp.com/consul/docs/multi-tenant/namespace/"
                f"k8s); this plan targets Consul CE, so then write {svc.key}'s config entries "
                "in its own namespace by hand.")
    return ctx


def service_protocol(ctx: ConsulContext, key: ServiceKey) -> str:
    """The Service's protocol as Istio reads its ports: http, http2, grpc, tcp, tls or unknown.

    A protocol the source mesh declared for the whole Service wins. Otherwise: consul-k8s
    registers one port per Service, so one protocol stands for the Service: a single declared
    L7 protocol wins; mixed HTTP flavours fall back to http.
    """
    svc = ctx.graph.service(key)
    if svc is not None and svc.mesh_protocol:
        return svc.mesh_protocol  # declared by the source mesh for the whole Service
    found = {p.l7 for p in svc.ports} if svc else set()
    if not found:
        return "unknown"
    if len(found) == 1:
        return next(iter(found))
    l7 = found & set(L7)
    if len(l7) == 1 and found <= set(L7) | {"unknown"}:
        return next(iter(l7))
    if l7 and found <= set(L7) | {"unknown"}:
        return "http"
    return "mixed"


# Istio sniffs the protocol of a port that declares none
# (istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/); Linkerd's
# proxy detects HTTP on any port not marked opaque (linkerd.io/2.20/features/protocol-detection/).
_DETECTS = {"istio": "Istio", "linkerd": "Linkerd"}


def need_l7(ctx: ConsulContext, key: ServiceKey, ref: ObjectRef, path: str,
            feature: str) -> str | None:
    """Declare that a service gets L7 configuration; its protocol, or None when it is TCP.

    Istio and Linkerd detect HTTP on undeclared ports, so an unknown protocol is assumed to be
    http (the loss says so, in words that fit either source); a declared TCP or TLS port cannot carry routers or L7 intentions.
    """
    if key in ctx.l7:
        return ctx.l7[key]
    proto = service_protocol(ctx, key)
    if proto in L7:
        ctx.l7[key] = proto
        return proto
    svc = ctx.graph.service(key)
    if proto == "unknown":
        ctx.l7[key] = "http"
        detector = _DETECTS.get(ctx.graph.mesh, "the source mesh")
        ctx.losses.report(
            "CONSUL_PROTOCOL", Severity.DEGRADED, feature, ref, path,
            f"Service {key} " + (f"declares no protocol ({detector} detected it on each connection)" if svc else
                                 "is not in the input, so its protocol is unknown")
            + "; its ServiceDefaults declare http so that the L7 configuration applies",
            "Name the Service port http-*/grpc-* (or set appProtocol) and check that it speaks "
            "HTTP; a TCP service with protocol http breaks.")
        return "http"
    ctx.losses.report(
        "CONSUL_PROTOCOL", Severity.MANUAL, feature, ref, path,
        f"Service {key} speaks {proto if svc else 'an unknown protocol (not in the input)'}; "
        "Consul applies routers, splitters and L7 intentions only to http, http2 or grpc "
        "services, so this configuration was left out",
        "Split the HTTP port into its own Service, or express the intent at L4.")
    return None

