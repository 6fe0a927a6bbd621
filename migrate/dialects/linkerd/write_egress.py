"""IR egress policies and external services -> Linkerd EgressNetworks and the routes that
admit external hosts (Linkerd 2.17+; mapping-istio-linkerd.md 2.3).

Linkerd lets traffic to hosts outside the cluster out unless an EgressNetwork with
``trafficPolicy: Deny`` captures it, so only a ``REGISTRY_ONLY`` policy needs writing:
- a mesh-wide one becomes an EgressNetwork in the global egress namespace (``linkerd-egress``,
  Helm ``egress.globalEgressNetworkNamespace``), which applies to clients in every namespace;
- a namespace one, or an ``ALLOW_ANY`` exception under a mesh-wide restriction, becomes an
  EgressNetwork in that namespace: namespace-local EgressNetworks take priority over the
  global one (linkerd.io/2-edge/reference/egress-network/).
Without ``networks`` an EgressNetwork captures everything outside the cluster networks, so
traffic between pods (either mesh) is never affected.

Each Deny network then admits the external services its clients could reach in the source:
the exported ones, and those declared in its own namespace. HTTP ports become HTTPRoutes,
gRPC ports GRPCRoutes, TLS ports TLSRoutes (by SNI), each with the service's hosts as
``hostnames``; routes attach to the EgressNetwork on the port and send traffic on to it
(``backendRefs`` kind EgressNetwork: the original destination), as in Linkerd's "Managing
egress traffic" task (linkerd.io/2-edge/tasks/managing-egress-traffic/). A TCP port admits
the whole port (a TCPRoute has no host names), and addresses without host names cannot be
named at all; both are reported.

Placement: the global EgressNetwork and its routes are prerequisites (inert until Linkerd
proxies run); a namespace's go with its routing, applied before its pods move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migrate.dialects.base import Manifest, TargetConfig
from migrate.dialects.linkerd.read_egress import GLOBAL_EGRESS_NAMESPACE
from migrate.ir.graph import MeshGraph
from migrate.ir.model import EgressPolicy, ExternalService
from migrate.losses import LossLog, ObjectRef, Severity
from migrate.names import NameRegistry, k8s_name

POLICY_API = "policy.linkerd.io/v1alpha1"
_ROUTE_OF_PROTOCOL = {
    "HTTP": ("HTTPRoute", "gateway.networking.k8s.io/v1"),
    "HTTP2": ("HTTPRoute", "gateway.networking.k8s.io/v1"),
    "GRPC": ("GRPCRoute", "gateway.networking.k8s.io/v1"),
    "HTTPS": ("TLSRoute", "gateway.networking.k8s.io/v1alpha2"),
    "TLS": ("TLSRoute", "gateway.networking.k8s.io/v1alpha2"),
}
_TCP_ROUTE = ("TCPRoute", "gateway.networking.k8s.io/v1alpha2")


@dataclass
class EgressContext:
    """What writing egress needs from the Linkerd writer."""

    graph: MeshGraph
    losses: LossLog
    names: NameRegistry
    out: TargetConfig


@dataclass(frozen=True)
class _Network:
    namespace: str
    policy: str
    """``Allow`` or ``Deny``."""
    sources: tuple[ObjectRef, ...]


def write_egress(ctx: EgressContext, namespaces: list[str]) -> None:
    """EgressNetworks for restricted egress and routes for the hosts they admit."""
    policies = ctx.graph.of(EgressPolicy)
    if not any(p.mode == "REGISTRY_ONLY" for p in policies):
        return  # Linkerd's default lets external traffic out, as the source did
    services = ctx.graph.of(ExternalService)
    networks = _networks(policies, services, set(namespaces))
    if any(n.namespace == GLOBAL_EGRESS_NAMESPACE for n in networks):
        # Created here in case the install did not: applying an existing Namespace is a no-op.
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": GLOBAL_EGRESS_NAMESPACE}}
        ctx.out.prerequisites.append(Manifest(body, networks[0].sources))
    for network in networks:
        name = ctx.names.claim("EgressNetwork", network.namespace, "registry-only",
                               f"egress/{network.namespace}")
        body = {"apiVersion": POLICY_API, "kind": "EgressNetwork",
                "metadata": {"name": name, "namespace": network.namespace},
                "spec": {"trafficPolicy": network.policy}}
        _place(ctx, network.namespace, Manifest(body, network.sources))
        if network.policy != "Deny":
            continue
        glob = network.namespace == GLOBAL_EGRESS_NAMESPACE
        for svc in services:
            if svc.exported or (not glob and svc.namespace == network.namespace):
                _admit(ctx, network.namespace, name, svc)


def _networks(policies: list[EgressPolicy], services: list[ExternalService],
              moving: set[str]) -> list[_Network]:
    """The EgressNetworks to write, global first, then per namespace (sorted)."""
    mesh = next((p for p in policies if p.mesh_wide), None)
    out: list[_Network] = []
    local: dict[str, EgressPolicy] = {p.namespace: p for p in policies
                                      if not p.mesh_wide and p.namespace in moving}
    if mesh is not None and mesh.mode == "REGISTRY_ONLY":
        out.append(_Network(GLOBAL_EGRESS_NAMESPACE, "Deny", (mesh.origin.ref,)))
        # A namespace with hosts of its own needs its own network to admit them: the local
        # network then takes priority over the global one for its clients.
        for svc in services:
            if not svc.exported and svc.namespace in moving and svc.namespace not in local:
                local[svc.namespace] = mesh
    for ns in sorted(local):
        policy = local[ns]
        if policy.mode == "ALLOW_ANY" and (mesh is None or mesh.mode != "REGISTRY_ONLY"):
            continue  # allowing is Linkerd's default: nothing to override
        out.append(_Network(ns, "Deny" if policy.mode == "REGISTRY_ONLY" else "Allow",
                            (policy.origin.ref,)))
    return out


def _admit(ctx: EgressContext, ns: str, network: str, svc: ExternalService) -> None:
    """Routes that let the service's hosts through a Deny network, one per port."""
    ref = svc.origin.ref
    if not svc.hosts:
        ctx.losses.report(
            "EGRESS_EXTERNAL", Severity.MANUAL, "egress.external", ref, svc.origin.path,
            f"{', '.join(svc.addresses) or 'the service'} has no host name, so no route can "
            f"admit it through the Deny EgressNetwork {ns}/{network}; its traffic is refused",
            "Write an EgressNetwork with trafficPolicy Allow whose networks are these "
            "addresses, or a TCPRoute for the port.")
        return
    named = [p for p in svc.ports if p.protocol.upper() in _ROUTE_OF_PROTOCOL]
    if svc.addresses and named:
        # Routes admit by Host or SNI; a client that dials an address with neither (or whose
        # SNI is not a listed host) falls through to the Deny network.
        ctx.losses.report(
            "EGRESS_EXTERNAL", Severity.DEGRADED, "egress.external", ref, svc.origin.path,
            f"{', '.join(svc.addresses)} are admitted through {ns}/{network} only under the "
            f"names {', '.join(svc.hosts)} on port(s) "
            f"{', '.join(str(p.number) for p in named)}; connections to the addresses without "
            "those names are refused", "Have clients use the host names, or add an "
            "EgressNetwork with trafficPolicy Allow whose networks are these addresses.")
    for port in svc.ports or ():
        kind, api = _ROUTE_OF_PROTOCOL.get(port.protocol.upper(), _TCP_ROUTE)
        parent = {"group": "policy.linkerd.io", "kind": "EgressNetwork", "name": network,
                  "namespace": ns, "port": port.number}
        backend = {"group": "policy.linkerd.io", "kind": "EgressNetwork", "name": network}
        spec: dict[str, Any] = {"parentRefs": [parent]}
        if kind == "TCPRoute":
            ctx.losses.report(
                "EGRESS_EXTERNAL", Severity.DEGRADED, "egress.external", ref, svc.origin.path,
                f"port {port.number} ({port.protocol}) carries no host name Linkerd can match: "
                f"the TCPRoute admits every external host on that port, not only "
                f"{', '.join(svc.hosts)}",
                "Use TLS or HTTP for the port if only these hosts may be reached.")
        else:
            spec["hostnames"] = list(svc.hosts)
        spec["rules"] = [{"backendRefs": [{**backend, "port": port.number}]}]
        name = ctx.names.claim(kind, ns, k8s_name(svc.name, port.number),
                               f"{ref}/{port.number}/{ns}")
        body = {"apiVersion": api, "kind": kind,
                "metadata": {"name": name, "namespace": ns}, "spec": spec}
        _place(ctx, ns, Manifest(body, (ref,)))
    if not svc.ports:
        ctx.losses.report(
            "EGRESS_EXTERNAL", Severity.MANUAL, "egress.external", ref, svc.origin.path,
            f"the source names no port for {', '.join(svc.hosts)}, and Linkerd routes attach "
            f"to an EgressNetwork by port; no route admits them through {ns}/{network}",
            "Add a route per port the callers use.")


def _place(ctx: EgressContext, ns: str, manifest: Manifest) -> None:
    if ns == GLOBAL_EGRESS_NAMESPACE:
        ctx.out.prerequisites.append(manifest)
    else:
        ctx.out.add(ctx.out.routing, manifest)
