"""Linkerd EgressNetworks and the routes attached to them -> egress policies and external
services (Linkerd 2.17+, policy.linkerd.io/v1alpha1).

An EgressNetwork matches traffic to ``networks`` (by default everything outside the cluster
networks) and lets it out (``trafficPolicy: Allow``) or refuses it (``Deny``) unless a route
attached to it (``parentRefs: [{kind: EgressNetwork, port}]``) admits it; an HTTPRoute or
TLSRoute admits the ``hostnames`` it lists, a TCPRoute the whole port. It applies to the
clients of its own namespace, or to every client when it lives in the global egress namespace
(``linkerd-egress`` by default). Source: linkerd.io/2-edge/reference/egress-network/ and
linkerd.io/2-edge/tasks/managing-egress-traffic/; mapping-istio-linkerd.md 2.3.

In the model: ``Deny`` is an :class:`EgressPolicy` ``REGISTRY_ONLY`` (approximate: Linkerd
refuses only the traffic to ``networks``; Istio's registry mode refuses every unknown host,
so explicit ``networks`` are reported), ``Allow`` an ``ALLOW_ANY`` one, and every (route,
port) an :class:`ExternalService` for the hosts it admits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from migrate.dialects.fields import Fields, join
from migrate.ir.graph import MeshGraph
from migrate.ir.model import EgressPolicy, ExternalPort, ExternalService, Origin
from migrate.losses import ObjectRef

if TYPE_CHECKING:
    from migrate.dialects.linkerd.reader import LinkerdReader

GLOBAL_EGRESS_NAMESPACE = "linkerd-egress"
"""Linkerd's default ``egress.globalEgressNetworkNamespace`` (Helm value)."""

_PROTOCOL_OF_ROUTE = {"HTTPRoute": "HTTP", "GRPCRoute": "GRPC", "TLSRoute": "TLS",
                      "TCPRoute": "TCP"}


@dataclass(frozen=True)
class EgressNetworkFacts:
    """What one EgressNetwork says, for the routes attached to it."""

    ref: ObjectRef
    networks: tuple[str, ...]
    """CIDRs it matches; empty: everything outside the cluster networks."""


@dataclass(frozen=True)
class EgressRoute:
    """A route attached to an EgressNetwork on one port."""

    ref: ObjectRef
    network: tuple[str, str]
    """(namespace, name) of the EgressNetwork."""
    port: int | None
    hostnames: tuple[str, ...]
    path: str


def read_egress_network(reader: LinkerdReader, f: Fields, graph: MeshGraph) -> None:
    """An EgressNetwork: its traffic policy as an egress policy of its namespace or the mesh."""
    policy = f.string("spec.trafficPolicy")
    if policy not in ("Allow", "Deny"):
        f.invalid("spec.trafficPolicy", f"expected Allow or Deny, found {policy!r}")
        return
    networks = []
    for i, net in enumerate(f.list("spec.networks")):
        path = join("spec.networks", i)
        cidr = f.string(join(path, "cidr")) if isinstance(net, dict) else ""
        if not cidr:
            f.invalid(path, "expected a network with a cidr")
            continue
        networks.append(cidr)
        if isinstance(net, dict) and net.get("except"):
            f.use("egress.network", join(path, "except"), f"exceptions inside {cidr}")
    mesh_wide = f.ref.namespace == GLOBAL_EGRESS_NAMESPACE
    if policy == "Deny":
        f.note("egress.mesh_only", "spec.trafficPolicy",
               "every namespace" if mesh_wide else f"namespace {f.ref.namespace}")
        if networks:
            # Registry mode refuses unknown hosts everywhere, not only in these networks.
            f.note("egress.network", "spec.networks",
                   "Deny limited to " + ", ".join(networks))
    reader.egress_networks[(f.ref.namespace, f.ref.name)] = \
        EgressNetworkFacts(f.ref, tuple(networks))
    graph.add(EgressPolicy(f.ref.namespace, f.ref.name,
                           "REGISTRY_ONLY" if policy == "Deny" else "ALLOW_ANY", mesh_wide,
                           f.origin("spec.trafficPolicy")))


def note_egress_route(reader: LinkerdReader, f: Fields, path: str, parent: dict[str, object],
                      name: str) -> None:
    """Remember a route's EgressNetwork parent; :func:`finish_egress` turns it into an
    external service once every EgressNetwork is read."""
    namespace = str(parent.get("namespace") or f.ref.namespace)
    port = parent.get("port")
    hostnames = tuple(str(h) for h in f.peek("spec.hostnames") or [] if isinstance(h, str))
    f.note("egress.external", path, ", ".join(hostnames) or f"port {port}")
    rules = f.peek("spec.rules")
    if isinstance(rules, list) and any(isinstance(r, dict) and (r.get("matches") or
                                       r.get("filters")) for r in rules):
        # The model admits hosts and ports; per-request conditions of an egress route are not.
        f.note("egress.network", "spec.rules", "matches or filters on an egress route")
    reader.egress_routes.append(EgressRoute(
        f.ref, (namespace, name), port if isinstance(port, int) else None, hostnames, path))


def finish_egress(reader: LinkerdReader, graph: MeshGraph) -> None:
    """One external service per (route, EgressNetwork parent)."""
    for route in sorted(reader.egress_routes, key=lambda r: (r.ref, r.path)):
        network = reader.egress_networks.get(route.network)
        ports = (ExternalPort(route.port, _PROTOCOL_OF_ROUTE.get(route.ref.kind, "TCP")),) \
            if route.port else ()
        # A TCPRoute admits the whole port: the networks are what it reaches.
        addresses = network.networks if network and not route.hostnames else ()
        exported = route.network[0] == GLOBAL_EGRESS_NAMESPACE
        name = route.ref.name if route.path.endswith("[0]") else \
            f"{route.ref.name}-{route.path.rsplit('[', 1)[-1].rstrip(']')}"
        graph.add(ExternalService(route.ref.namespace, name, route.hostnames, addresses,
                                  ports, "DNS" if route.hostnames else "NONE", exported,
                                  Origin(route.ref, route.path)))
