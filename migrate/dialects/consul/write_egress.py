"""IR external services and egress policies -> Consul destinations, the terminating gateway
and ``Mesh.transparentProxy.meshDestinationsOnly``.

Consul facts (mapping-consul-others.md section 1.5; developer.hashicorp.com/consul/docs/
connect/gateways/terminating-gateway, "destinations"; the ServiceDefaults CRD in
../shared/crds/consul):
- a ServiceDefaults with ``destination {addresses, port}`` makes a Consul service of an
  external endpoint: transparent-proxy callers that dial one of the addresses on that port are
  sent through a terminating gateway, which enforces intentions. One port per destination, so
  a multi-port external service becomes one Consul service per port;
- addresses are IPs or host names. The caller's proxy knows only what the application sends:
  a host name is matched by the Host header when the service's protocol is http, http2 or
  grpc, and by TLS SNI when it is tcp. A plain TCP port on a host name therefore cannot be
  matched (reported); CIDR blocks are not addresses Consul accepts (reported);
- the gateway serves the services listed in the ``TerminatingGateway`` entry named after it
  (``terminating-gateway``, the Helm chart's default gateway), and must be enabled in the
  install (Helm ``terminatingGateways.enabled``); with managed ACLs the consul-k8s controller
  grants the gateway ``service:write`` on the linked services (hashicorp/consul-k8s#4468
  adjusts "the Terminating Gateway policies applied by the TerminatingGateway resource
  controller");
- intentions decide who may use a destination. The sources reached these hosts from any
  namespace (Istio ServiceEntry, Linkerd egress routes), so each destination gets an intention
  allowing ``*``; one the source scoped to its namespace is reported, since Consul CE has one
  catalog for every namespace;
- ``meshDestinationsOnly: true`` (fact ``consul.mesh-destinations-only``) refuses every
  destination that is neither in the catalog nor a destination. It is mesh-wide only, and it
  must wait until every namespace has moved: until then moved pods still call callees that are
  outside Consul's catalog (write_defaults.py sets it false for the coexistence window), so the
  restricting Mesh entry is applied at cleanup.

Placement: destinations, their intentions and the gateway entry are prerequisites, read by
Consul proxies only, so inert until the first namespace moves.
"""

from __future__ import annotations

from typing import Any

from migrate.dialects.consul.write_context import CONTROL_NAMESPACE, ConsulContext
from migrate.ir.hosts import ip_network
from migrate.ir.model import EgressPolicy, ExternalPort, ExternalService, Service
from migrate.losses import ObjectRef, Severity
from migrate.names import k8s_name
from migrate.plan.commands import run

GATEWAY_NAME = "terminating-gateway"
"""The Helm chart's default terminating gateway (``terminatingGateways.gateways[0].name``)."""
ENABLE_GATEWAY = run("helm", "upgrade", "consul", "hashicorp/consul", "-n", "consul",
                     "--reuse-values", "--set", "terminatingGateways.enabled=true",
                     note="the exit for external destinations")
_L7_PROTOCOL = {"HTTP": "http", "HTTP2": "http2", "GRPC": "grpc"}
_TLS = ("HTTPS", "TLS")


def write_egress(ctx: ConsulContext) -> None:
    """Destinations for external services, the gateway serving them, and the egress mode."""
    linked: list[str] = []
    refs: set[ObjectRef] = set()
    for svc in sorted(ctx.graph.of(ExternalService), key=lambda s: (s.namespace, s.name)):
        for name in _destinations(ctx, svc):
            linked.append(name)
            refs.add(svc.origin.ref)
    if linked:
        ctx.add_prerequisite("TerminatingGateway", CONTROL_NAMESPACE, GATEWAY_NAME,
                             {"services": [{"name": n} for n in sorted(linked)]}, refs)
        ctx.out.install_extra.append(ENABLE_GATEWAY)
    _egress_mode(ctx)


def _destinations(ctx: ConsulContext, svc: ExternalService) -> list[str]:
    """One ServiceDefaults destination (and its intention) per port; the names written."""
    ref, path = svc.origin.ref, svc.origin.path
    ips = [ip for a in svc.addresses if (ip := _single_ip(a))]
    blocks = [a for a in svc.addresses if not _single_ip(a)]
    if blocks:
        ctx.losses.report(
            "EGRESS_EXTERNAL", Severity.MANUAL, "egress.external", ref, path,
            f"address blocks {', '.join(blocks)} have no Consul form: a destination lists "
            "single IPs or host names", "List the IPs callers dial (or the host names) in a "
            "ServiceDefaults destination, or keep meshDestinationsOnly false.")
    hosts = [h for h in svc.hosts if not h.startswith("*")]
    if len(hosts) < len(svc.hosts):
        ctx.losses.report(
            "EGRESS_EXTERNAL", Severity.MANUAL, "egress.external", ref, path,
            f"wildcard hosts {', '.join(h for h in svc.hosts if h.startswith('*'))} have no "
            "Consul form: a destination lists exact host names",
            "List the host names callers use in a ServiceDefaults destination.")
    if not svc.ports:
        ctx.losses.report(
            "EGRESS_EXTERNAL", Severity.MANUAL, "egress.external", ref, path,
            f"the source names no port for {', '.join(svc.hosts or svc.addresses)}, and a "
            "Consul destination is one address list on one port; none was written",
            "Write a ServiceDefaults destination per port the callers use.")
        return []
    names = []
    for port in svc.ports:
        addresses = hosts + ips
        if port.protocol.upper() not in (*_L7_PROTOCOL, *_TLS) and hosts:
            kept = "only the listed IPs are matched" if ips else \
                "no destination was written for the port"
            ctx.losses.report(
                "EGRESS_EXTERNAL", Severity.DEGRADED, "egress.external", ref, path,
                f"port {port.number} ({port.protocol}) carries neither a Host header nor TLS "
                f"SNI, so Consul cannot match {', '.join(hosts)} on it: {kept}",
                "Use TLS or HTTP for the port, or list the IPs the host names resolve to.")
            addresses = ips
        if addresses:
            names.append(_destination(ctx, svc, port, addresses))
    if names and not svc.exported:
        ctx.losses.report(
            "EGRESS_EXTERNAL", Severity.INFO, "egress.external", ref, path,
            f"the source let only namespace {svc.namespace} reach it; Consul CE has one "
            f"catalog for every namespace, so the intention for {', '.join(names)} allows "
            "every service", "Narrow the ServiceIntentions sources to the services that call it.")
    return names


def _destination(ctx: ConsulContext, svc: ExternalService, port: ExternalPort,
                 addresses: list[str]) -> str:
    """The ServiceDefaults destination and its allow-all intention; the Consul name."""
    base = svc.name if len(svc.ports) == 1 else k8s_name(svc.name, port.number)
    name, n = base, 1
    while name in ctx.taken:  # a Consul service name is global (one catalog)
        n += 1
        name = k8s_name(base, "external" if n == 2 else f"external{n}")
    ctx.taken.add(name)
    protocol = _L7_PROTOCOL.get(port.protocol.upper(), "tcp")
    spec: dict[str, Any] = {"protocol": protocol,
                            "destination": {"addresses": addresses, "port": port.number}}
    refs = {svc.origin.ref}
    ctx.add_prerequisite("ServiceDefaults", CONTROL_NAMESPACE, name, spec, refs)
    ctx.add_prerequisite("ServiceIntentions", CONTROL_NAMESPACE, name,
                         {"destination": {"name": name},
                          "sources": [{"name": "*", "action": "allow"}]}, refs)
    return name


def _egress_mode(ctx: ConsulContext) -> None:
    """A mesh-wide restriction becomes ``meshDestinationsOnly: true`` at cleanup."""
    policies = ctx.graph.of(EgressPolicy)
    for policy in policies:
        if not policy.mesh_wide and policy.mode == "REGISTRY_ONLY":
            ctx.losses.report(
                "EGRESS_MESH_ONLY", Severity.MANUAL, "egress.mesh_only", policy.origin.ref,
                policy.origin.path,
                f"egress of namespace {policy.namespace} only was restricted; Consul's "
                "meshDestinationsOnly applies to the whole mesh, so it was not set",
                "Set Mesh transparentProxy.meshDestinationsOnly: true once every namespace "
                "may be restricted, or limit this namespace's egress with a NetworkPolicy.")
    mesh = next((p for p in policies if p.mesh_wide), None)
    if mesh is None or mesh.mode != "REGISTRY_ONLY" or not ctx.namespaces:
        return
    ctx.add(ctx.out.routing_final, "Mesh", CONTROL_NAMESPACE, "mesh",
            {"allowEnablingPermissiveMutualTLS": True,
             "transparentProxy": {"meshDestinationsOnly": True}}, {mesh.origin.ref})
    ctx.losses.report(
        "EGRESS_MESH_ONLY", Severity.INFO, "egress.mesh_only", mesh.origin.ref,
        mesh.origin.path,
        "Consul restricts egress only from the cleanup step on: until then moved pods may "
        "reach any external host, as meshDestinationsOnly must stay false while callees are "
        "outside Consul's catalog",
        "If external access must stay closed during the move, block it with a NetworkPolicy "
        "(egress to the cluster and the destinations' addresses only) for that time.")
    outside = sorted(str(s.key) for s in ctx.graph.of(Service)
                     if s.key.namespace not in ctx.namespaces and
                     s.raw_spec_type != "ExternalName")
    if outside:
        # Istio's registry holds every Kubernetes Service; Consul's catalog only those with
        # injected pods (or registered), so these become unreachable for meshed callers.
        shown = ", ".join(outside[:5]) + (f" and {len(outside) - 5} more" if len(outside) > 5
                                           else "")
        ctx.losses.report(
            "EGRESS_MESH_ONLY", Severity.DEGRADED, "egress.mesh_only", mesh.origin.ref,
            mesh.origin.path,
            f"meshDestinationsOnly also refuses Kubernetes Services outside Consul's catalog, "
            f"which the source let through: {shown}",
            "Inject those Services' pods, register them (Registration), or make them "
            "destinations before the cleanup step sets meshDestinationsOnly.")


def _single_ip(text: str) -> str:
    """The address of an IP, or of a CIDR block of exactly one address; "" otherwise."""
    net = ip_network(text)
    return str(net.network_address) if net is not None and net.num_addresses == 1 else ""
