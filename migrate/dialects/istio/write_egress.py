"""IR external services and egress policies -> Istio ServiceEntries and Sidecars.

- Every :class:`ExternalService` becomes a ServiceEntry (``location: MESH_EXTERNAL``). One the
  source scoped to its namespace stays there, with ``exportTo: ["."]``; one visible to every
  namespace goes to Istio's root namespace, because the namespace that declared it may belong
  to the source mesh (Linkerd's ``linkerd-egress``, Consul's own) and go away with it. They go
  to the prerequisites: a ServiceEntry is read by Istio proxies only, so it is inert for the
  source mesh, and any namespace that moves may call these hosts.
- Every :class:`EgressPolicy` becomes a Sidecar named ``default`` with only
  ``outboundTrafficPolicy`` set. A Sidecar without ``egress`` keeps the default scope (every
  service visible to the namespace), so nothing but the egress mode changes
  (istio.io/latest/docs/reference/config/networking/sidecar/). A mesh-wide policy goes to the
  root namespace, where a selector-less Sidecar is the default of every namespace without its
  own; it goes to the prerequisites too (no Istio proxy runs before the first move). A
  namespace policy goes with that namespace's routing, applied before its pods move.

Kubernetes Services stay reachable under ``REGISTRY_ONLY``: Istio's registry holds every
Service of the cluster, meshed or not, so callees still on the source mesh are not cut off.
"""

from __future__ import annotations

from typing import Any

from migrate.dialects.base import Manifest
from migrate.dialects.istio.write_common import NETWORKING_API, WriteContext
from migrate.ir.hosts import ip_network
from migrate.ir.model import EgressPolicy, ExternalService, Service
from migrate.losses import Severity

_PROTOCOLS = frozenset({"HTTP", "HTTPS", "HTTP2", "GRPC", "TLS", "TCP", "MONGO"})


def write_egress(ctx: WriteContext, namespaces: list[str], root_namespace: str) -> None:
    """ServiceEntries for external services, Sidecars for egress modes."""
    for svc in ctx.graph.of(ExternalService):
        body = _service_entry(ctx, svc, root_namespace if svc.exported else svc.namespace)
        if body is not None:
            ctx.out.prerequisites.append(Manifest(body, (svc.origin.ref,)))
    moving = set(namespaces)
    for policy in ctx.graph.of(EgressPolicy):
        ns = root_namespace if policy.mesh_wide else policy.namespace
        if not policy.mesh_wide and ns not in moving:
            continue  # the namespace stays where it is: its proxies are not Istio's
        name = ctx.names.claim("Sidecar", ns, "default", f"{policy.origin.ref}")
        body = {"apiVersion": NETWORKING_API, "kind": "Sidecar",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"outboundTrafficPolicy": {"mode": policy.mode}}}
        manifest = Manifest(body, (policy.origin.ref,))
        if policy.mesh_wide:
            ctx.out.prerequisites.append(manifest)
        else:
            ctx.out.add(ctx.out.routing, manifest)


def _service_entry(ctx: WriteContext, svc: ExternalService, ns: str) -> dict[str, Any] | None:
    """The ServiceEntry for one external service, or None (reported) when it has no host."""
    hosts = _external_hosts(ctx, svc)
    if svc.hosts and not hosts:
        return None  # every host names the cluster's own Services: reported
    resolution = svc.resolution
    if any("/" in a for a in svc.addresses) and resolution not in ("NONE", "STATIC"):
        # The CRD admits CIDR addresses only with NONE or STATIC resolution.
        resolution = "NONE"
    if resolution == "STATIC":
        resolution = "NONE"  # STATIC needs endpoints, which the model does not carry
    if resolution == "DNS" and any(h.startswith("*") for h in hosts):
        resolution = "NONE"  # a wildcard cannot be resolved; Istio requires NONE for it
    if not hosts:
        if not svc.addresses:
            ctx.losses.report(
                "EGRESS_EXTERNAL", Severity.MANUAL, "egress.external", svc.origin.ref,
                svc.origin.path, "the external service names neither hosts nor addresses; "
                "no ServiceEntry was written", "Write the ServiceEntry by hand.")
            return None
        # ServiceEntry.hosts is required; for address-only egress (a Linkerd EgressNetwork
        # CIDR) Istio matches on the addresses and the host is only a name.
        hosts = [f"{svc.name}.{svc.namespace}.external"]
    ports = [_port(p.number, p.protocol, p.name) for p in svc.ports] or \
        [_port(443, "TLS", ""), _port(80, "HTTP", "")]
    spec: dict[str, Any] = {"hosts": hosts}
    if svc.addresses:
        spec["addresses"] = [_address(a) for a in svc.addresses]
    spec.update({"location": "MESH_EXTERNAL", "ports": ports, "resolution": resolution})
    if not svc.exported:
        spec["exportTo"] = ["."]
    if not svc.ports:
        ctx.losses.report(
            "EGRESS_EXTERNAL", Severity.DEGRADED, "egress.external", svc.origin.ref,
            svc.origin.path, "the source names no port for these hosts; the ServiceEntry "
            "declares 80 (HTTP) and 443 (TLS)", "Add the ports the callers use to the "
            "ServiceEntry.")
    name = ctx.names.claim("ServiceEntry", ns, svc.name, f"{svc.origin.ref}")
    return {"apiVersion": NETWORKING_API, "kind": "ServiceEntry",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def _external_hosts(ctx: WriteContext, svc: ExternalService) -> list[str]:
    """The hosts of an external service that cannot name an in-cluster Service.

    A ServiceEntry host is not qualified with a namespace (unlike a VirtualService host), and
    Istio gives each Kubernetes Service the virtual-host domains ``name`` (for callers in its
    namespace), ``name.ns``, ``name.ns.svc``; ``dedupeDomains`` keeps the first virtual host
    that claims a domain, so a ServiceEntry for ``smiley`` or ``web.shop`` can take the calls a
    pod makes to its own Service and send them out of the mesh, in plaintext. The source mesh
    never treated those names as external (Linkerd's EgressNetwork sees only traffic to
    addresses outside the cluster networks; the name resolves inside), so such hosts are left
    out and reported.
    """
    # fact: istio.serviceentry-short-host
    kept, dropped = [], []
    for host in svc.hosts:
        (dropped if _names_cluster_service(ctx, host) else kept).append(host)
    if dropped:
        ctx.losses.report(
            "EGRESS_HOST_IN_CLUSTER", Severity.MANUAL, "egress.external", svc.origin.ref,
            svc.origin.path,
            f"egress host{'s' if len(dropped) > 1 else ''} {', '.join(dropped)} can name a "
            "Service of this cluster (a short or namespace-relative name): an Istio "
            "ServiceEntry for it would capture in-mesh calls to that Service and send them "
            "out of the mesh, so " + ("it was" if len(dropped) == 1 else "they were")
            + " left out" + ("" if kept else " and no ServiceEntry was written"),
            "Name the external host by its fully qualified DNS name in a ServiceEntry "
            "(exportTo only the namespaces that call it).")
    return kept


def _names_cluster_service(ctx: WriteContext, host: str) -> bool:
    """Whether a host is a name the cluster's DNS search path resolves to a Service."""
    host = host.lower().rstrip(".")
    if host.startswith("*") or not host:
        return False
    if "." not in host:
        return True  # a single label: the pod's search domains make it name.<ns>.svc...
    if host.endswith((".svc", ".cluster.local")) or ".svc." in host:
        return True
    # Every cluster has the namespaces Kubernetes creates, whether the input shows them or not.
    namespaces = {s.key.namespace for s in ctx.graph.of(Service)} | \
        {n.name for n in ctx.graph.namespaces_declared()} | \
        {"default", "kube-system", "kube-public", "kube-node-lease"}
    return host.partition(".")[2] in namespaces  # name.<namespace>


def _port(number: int, protocol: str, name: str) -> dict[str, Any]:
    proto = protocol.upper() if protocol.upper() in _PROTOCOLS else "TCP"
    return {"name": name or f"{proto.lower()}-{number}", "number": number, "protocol": proto}


def _address(text: str) -> str:
    """An address as Istio writes it: a plain IP for a /32 or /128 block."""
    net = ip_network(text)
    if net is None:
        return text
    return str(net.network_address) if net.num_addresses == 1 else str(net)
