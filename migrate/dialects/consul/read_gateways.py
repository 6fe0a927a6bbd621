"""Consul kinds with no mesh-neutral model: gateways, multi-cluster export and peering,
JWT providers, control-plane limits, catalog registrations and the API-gateway extensions.

Each becomes an :class:`~migrate.ir.model.Opaque` record plus one feature use for the whole
spec, so the capability check reports it against the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from migrate.dialects.fields import Fields
from migrate.ir.graph import MeshGraph
from migrate.ir.model import Backend, Opaque, Route, Rule, ServiceKey
from migrate.losses import ObjectRef

if TYPE_CHECKING:
    from migrate.dialects.consul.reader import ConsulReader


@dataclass(frozen=True)
class IngressService:
    """A service an IngressGateway listener sends traffic to."""

    port: int
    protocol: str
    name: str
    namespace: str
    path: str


@dataclass
class IngressFacts:
    """An IngressGateway: its listeners' services (for the ingress namespaces of the plan)."""

    ref: ObjectRef
    services: list[IngressService] = field(default_factory=list)


def _listeners(spec: dict[str, Any]) -> list[IngressService]:
    """Listener services, read without consuming (the whole spec is one feature use)."""
    out = []
    listeners = spec.get("listeners")
    for i, listener in enumerate(listeners if isinstance(listeners, list) else []):
        if not isinstance(listener, dict):
            continue
        port = listener.get("port")
        protocol = str(listener.get("protocol") or "tcp")
        services = listener.get("services")
        for j, svc in enumerate(services if isinstance(services, list) else []):
            if isinstance(svc, dict) and isinstance(svc.get("name"), str) and \
                    isinstance(port, int) and not isinstance(port, bool):
                namespace = str(svc.get("namespace") or "")
                out.append(IngressService(port, protocol, svc["name"],
                                          "" if namespace == "default" else namespace,
                                          f"spec.listeners[{i}].services[{j}]"))
    return out

FEATURE_OF_KIND = {
    "IngressGateway": "ingress.gateway",
    "Registration": "egress.service_entry",
    "ExportedServices": "multicluster",
    "SamenessGroup": "multicluster",
    "PeeringAcceptor": "multicluster",
    "PeeringDialer": "multicluster",
    "JWTProvider": "authn.jwt",
    "ControlPlaneRequestLimit": "control_plane.rate_limit",
    "RateLimit": "control_plane.rate_limit",
    "GatewayClassConfig": "ingress.gateway",
    "GatewayPolicy": "ingress.gateway",
    "MeshService": "ingress.route",
    "RouteAuthFilter": "ingress.route",
    "RouteRetryFilter": "ingress.route",
    "RouteTimeoutFilter": "ingress.route",
    "RouteTLSSDSFilter": "ingress.route",
    "RouteExtProc": "ingress.route",
}
"""The API-gateway kinds extend Gateway API routes on Consul's API gateway (north-south),
MeshService names a mesh service as such a route's backend."""


def _names(value: Any, key: str = "name") -> list[str]:
    """``name`` fields found anywhere in a value (service names of gateways and exports)."""
    found: list[str] = []
    if isinstance(value, dict):
        if isinstance(value.get(key), str):
            found.append(value[key])
        for child in value.values():
            if isinstance(child, (dict, list)):
                found += _names(child, key)
    elif isinstance(value, list):
        for child in value:
            found += _names(child, key)
    return found


def read_terminating_gateway(reader: ConsulReader, f: Fields, graph: MeshGraph) -> None:
    """A TerminatingGateway: the exit its linked services take out of the mesh.

    An entry that only names a service (and its namespace) is a plain link: when the service
    is a ServiceDefaults destination, the destination is the model's external service and the
    link comes with it (:mod:`read_finish` decides once every object is read). Entries with
    TLS origination (``caFile``, ``certFile``, ``keyFile``, ``sni``), other settings and the
    2.0 ``deployment`` are reported as they are.
    """
    for i, entry in enumerate(f.list("spec.services")):
        path = f"spec.services[{i}]"
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            f.invalid(path, "expected a service entry with a name")
            continue
        extra = sorted(set(entry) - {"name", "namespace"})
        if extra:
            f.use("egress.service_entry", path, f"{name}: {', '.join(extra)}")
            continue
        f.get(f"{path}.name")
        f.get(f"{path}.namespace")
        reader.state.terminating.append((f.origin(path), name))
    for key in f.mapping("spec"):
        if key != "services":
            f.use("egress.service_entry", f"spec.{key}", f"TerminatingGateway {key}")
    names = tuple(sorted({name for origin, name in reader.state.terminating
                          if origin.ref == f.ref}))
    graph.add(Opaque(f.ref.kind, f.ref.namespace, f.ref.name, f.origin("spec"), names,
                     "egress"))


def read_opaque(reader: ConsulReader, f: Fields, graph: MeshGraph) -> None:
    """A Consul object reported whole (the feature table says what to do instead)."""
    kind = f.ref.kind
    spec = f.peek("spec")
    names: tuple[str, ...] = ()
    if isinstance(spec, dict) and kind in ("IngressGateway", "ExportedServices"):
        listed = spec.get("listeners") if kind == "IngressGateway" else spec.get("services")
        names = tuple(sorted({n for n in _names(listed) if n}))
    if kind == "IngressGateway" and isinstance(spec, dict):
        reader.state.ingress.append(IngressFacts(f.ref, _listeners(spec)))
    detail = f"{kind}: {', '.join(names)}" if names else kind
    f.use(FEATURE_OF_KIND[kind], "spec", detail)
    graph.add(Opaque(kind, f.ref.namespace, f.ref.name, f.origin("spec"), names,
                     "ingress" if kind == "IngressGateway" else ""))


GATEWAY_API = "gateway.networking.k8s.io"
GATEWAY_API_KINDS = ("Gateway", "GatewayClass", "HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute",
                     "UDPRoute", "ReferenceGrant")


def read_gateway_api(reader: ConsulReader, f: Fields, graph: MeshGraph) -> None:
    """A Gateway API object in a Consul cluster: Consul's API gateway (north-south).

    Consul implements no GAMMA (routes with a Service parent) in consul-k8s 2.0
    (mapping-consul-others.md 1.1), so every Gateway API object belongs to the API gateway,
    which the migration replaces with the target's ingress. A Service parent has no effect
    under Consul; it is left unconsumed so the ledger reports it (a target mesh would start
    applying that route).
    """
    kind = f.ref.kind
    if kind in ("Gateway", "GatewayClass"):
        f.use("ingress.gateway", "spec", f"Gateway API {kind}")
    elif kind == "ReferenceGrant":
        f.use("ingress.route", "spec", kind)
    else:
        parents = f.list("spec.parentRefs")
        for i, parent in enumerate(parents):
            if not (isinstance(parent, dict) and parent.get("kind") == "Service"):
                f.get(f"spec.parentRefs[{i}]", whole=True)
        for key in f.mapping("spec"):
            if key != "parentRefs":
                f.get(f"spec.{key}", whole=True)
        f.note("ingress.route", "spec", f"Gateway API {kind}")
    hostnames = f.peek("spec.hostnames")
    graph.add(Opaque(kind, f.ref.namespace, f.ref.name, f.origin("spec"),
                     tuple(str(h) for h in hostnames) if isinstance(hostnames, list) else (),
                     "ingress" if kind == "Gateway" else ""))
    if kind in ("HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute"):
        _gateway_backends(f, graph)


def _gateway_backends(f: Fields, graph: MeshGraph) -> None:
    """A Gateway-parented route's Service backends as an ingress-only route: they tell the
    planner which namespaces the API gateway sends traffic to (ingress-facing, enforced after
    the ingress step). Not mesh routing: the writers skip it."""
    parents = f.peek("spec.parentRefs")
    if not isinstance(parents, list) or not any(
            isinstance(p, dict) and p.get("kind", "Gateway") == "Gateway" for p in parents):
        return
    rules = f.peek("spec.rules")
    backends = []
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        refs = rule.get("backendRefs") if isinstance(rule, dict) else None
        for j, ref in enumerate(refs if isinstance(refs, list) else []):
            if isinstance(ref, dict) and ref.get("kind", "Service") == "Service" and \
                    ref.get("group", "") in ("", "core") and isinstance(ref.get("name"), str):
                ns = str(ref.get("namespace") or f.ref.namespace)
                backends.append(Backend(service=ServiceKey(ns, ref["name"]), host=ref["name"],
                                        origin_path=f"spec.rules[{i}].backendRefs[{j}]"))
    if backends:
        graph.add(Route(f.ref.namespace, f.ref.name, "http", (), (Rule(
            index=0, name="", matches=(), backends=tuple(backends), origin_path="spec.rules"),),
            ingress=True, mesh=False, gateways=(), origin=f.origin("spec")))
