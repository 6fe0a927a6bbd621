"""ServiceDefaults (protocol and mTLS mode) per Consul service, and the cluster-wide Mesh entry.

Coexistence (docs/coexistence.md; mapping-istio-linkerd.md section 5): namespaces move callees
first, so a moved service still has callers on the source mesh, whose sidecars reach it in
plaintext (Istio sends mTLS only to endpoints it injected). The staged ServiceDefaults is
therefore ``mutualTLSMode: permissive``, which Consul honours only with
``Mesh.spec.allowEnablingPermissiveMutualTLS: true`` (mapping-consul-others.md section 1.7;
Consul docs k8s/connect/onboarding-tproxy-mode.mdx, "Configure global settings"). The enforced
ServiceDefaults, applied once the last source-mesh caller has moved, carries the final mode:
- ``strict`` for STRICT, and wherever intentions narrow the callers: permissive mode does not
  enforce intentions on plaintext, so keeping it would let any plaintext client past them;
- ``strict`` where no mode was declared: Istio's default is PERMISSIVE, Consul's is strict, and
  the plan's end state is Consul's (reported once per namespace, ``CONSUL_MTLS_MODE``);
- ``permissive`` where the source declared PERMISSIVE (or DISABLE) and nothing narrows callers.
The protocol (section 1.6) is in both forms: it must be there before routers and L7
intentions, which are applied in the same step.

The Mesh entry is also where ``transparentProxy.meshDestinationsOnly`` lives: it is set false
so that moved pods can still reach callees outside Consul's catalog (cycles, ``--order``).

Opaque ports (Linkerd ``config.linkerd.io/opaque-ports``, ``appProtocol: linkerd.io/opaque``,
Server ``proxyProtocol: opaque``): Consul services are ``tcp`` unless a ServiceDefaults (or
ProxyDefaults) declares http, http2 or grpc, and ``tcp`` proxies bytes without parsing them
(section 1.6), which is what opaque means. So a declaration costs nothing where the Service's
ServiceDefaults stay tcp; Consul has one protocol per service, so it is lost (``PROTOCOL_OPAQUE``)
only where the same Service is written with an L7 protocol, because of its other ports or of L7
configuration for it.
"""

from __future__ import annotations

import re
from typing import Any

from migrate.dialects.consul.names import IGNORE_LABEL
from migrate.dialects.consul.write_context import (
    CONTROL_NAMESPACE,
    L7,
    ConsulContext,
    service_protocol,
)
from migrate.ir.graph import selects
from migrate.ir.hosts import service_of_host
from migrate.ir.model import FeatureUse, MTLSPolicy, Service, ServiceKey, ServicePort, Workload
from migrate.losses import ObjectRef, Severity

_KUBERNETES_SERVICE = "consul.hashicorp.com/kubernetes-service"
_LABELS_PATH = {"Pod": "metadata.labels",
                "CronJob": "spec.jobTemplate.spec.template.metadata.labels"}
_PORT_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def write_defaults(ctx: ConsulContext) -> None:
    """ServiceDefaults for every migrated Service and virtual service; the Mesh entry."""
    mesh_policy = next((p for p in ctx.graph.of(MTLSPolicy) if p.mesh_wide and p.mode != "UNSET"),
                       None)
    defaulted: set[str] = set()
    written: dict[ServiceKey, str] = {}
    for ns in ctx.namespaces:
        for svc in ctx.graph.in_namespace(Service, ns):
            if ctx.owns(svc.key):
                written[svc.key] = _service(ctx, svc, mesh_policy, defaulted)
        _shared_pods(ctx, ns)
    for use in ctx.graph.features:
        if use.feature == "protocol.opaque":
            _opaque(ctx, use, written)
    for name in sorted(ctx.virtual):
        host, proto, ref = ctx.virtual[name]
        ctx.add(ctx.out.routing, "ServiceDefaults", host.namespace, name, {"protocol": proto},
                {ref})
    if ctx.namespaces:
        refs = {ObjectRef("Namespace", "", ns, "v1") for ns in ctx.namespaces}
        ctx.add_prerequisite("Mesh", CONTROL_NAMESPACE, "mesh",
                             {"allowEnablingPermissiveMutualTLS": True,
                              "transparentProxy": {"meshDestinationsOnly": False}}, refs)


def _service(ctx: ConsulContext, svc: Service, mesh_policy: MTLSPolicy | None,
             defaulted: set[str]) -> str:
    """Write the Service's ServiceDefaults; the protocol they declare ("" for none: tcp)."""
    key = svc.key
    declared = service_protocol(ctx, key)
    proto = ctx.l7.get(key) or (declared if declared in (*L7, "tcp") else "")
    mode, policy = _mode(ctx, svc, mesh_policy)
    final = _final(ctx, svc, mode, policy, defaulted)
    refs = {svc.origin.ref} | ({policy.origin.ref} if policy else set())
    for bucket, tls in ((ctx.out.policy_staged, "permissive"), (ctx.out.policy_enforced, final)):
        spec: dict[str, Any] = {"protocol": proto} if proto else {}
        spec["mutualTLSMode"] = tls
        ctx.add(bucket, "ServiceDefaults", key.namespace, key.name, spec, refs)
    return proto


def _opaque(ctx: ConsulContext, use: FeatureUse, written: dict[ServiceKey, str]) -> None:
    """Report an opaque-port declaration only where Consul parses the port as L7 anyway."""
    ports = _declared_ports(use)
    hit = sorted((key, proto) for key in _opaque_services(ctx, use, ports)
                 if (proto := written.get(key, "")) in L7)
    if not hit:
        return  # every Service it covers stays tcp in Consul: opaque, as declared
    names = ", ".join(f"{key} as {proto}" for key, proto in hit)
    ctx.losses.report(
        "PROTOCOL_OPAQUE", Severity.DEGRADED, "protocol.opaque", use.origin.ref, use.origin.path,
        f"declared opaque ({use.detail}), but ServiceDefaults declare {names} (for other ports "
        "of the Service or for its routes) and Consul has one protocol per service: traffic to "
        "the opaque port is parsed as HTTP instead of passed through",
        "Give the opaque port its own Kubernetes Service (consul-k8s registers one Consul "
        "service per Service) so that its ServiceDefaults keep protocol tcp.")


def _declared_ports(use: FeatureUse) -> set[str]:
    """The ports an opaque declaration names, as strings (numbers, or port names): the
    annotation lists ``5432,8000-8002``; Server and appProtocol details end in ``on port P``.
    Ranges are expanded up to 1024 ports (as the reader does for identity ports)."""
    out: set[str] = set()
    for part in use.detail.rsplit(" on port ", 1)[-1].split(","):
        part = part.strip()
        m = _PORT_RANGE.match(part)
        if m and m.group(2):
            low, high = int(m.group(1)), int(m.group(2))
            out.update(str(n) for n in range(low, min(high, low + 1024) + 1))
        elif part:
            out.add(part)
    return out


def _opaque_services(ctx: ConsulContext, use: FeatureUse, ports: set[str]) -> set[ServiceKey]:
    """The migrated Services whose ports an opaque declaration covers.

    On a Service (annotation, ``appProtocol``) it is that Service; a ServiceProfile names its
    Service by host. On a Namespace, a pod template or a Server the ports are pod ports: the
    Services of the namespace (of the workload) whose ``targetPort`` is one of them.
    """
    ref = use.origin.ref
    if ref.kind == "Service":
        return {ServiceKey(ref.namespace, ref.name)}
    if ref.kind == "ServiceProfile":
        key = service_of_host(ref.name, ref.namespace)
        return {key} if key is not None else set()
    ns = ref.namespace or (ref.name if ref.kind == "Namespace" else "")
    candidates = ctx.graph.in_namespace(Service, ns)
    if ref.kind not in ("Namespace", "Server"):
        workload = next((w for w in ctx.graph.in_namespace(Workload, ns) if w.ref == ref), None)
        candidates = ctx.graph.services_of(workload) if workload is not None else []
    return {s.key for s in candidates if any(_pod_port_in(p, ports) for p in s.ports)}


def _pod_port_in(port: ServicePort, ports: set[str]) -> bool:
    """Whether a Service port's target (the pod port; the port itself when unset) is listed."""
    target = port.target_port if port.target_port not in (None, "") else port.port
    return str(target) in ports


def _shared_pods(ctx: ConsulContext, ns: str) -> None:
    """Report workloads that several Services select (``CONSUL_POD_SERVICES``).

    consul-k8s registers a pod once per selecting Service; connect-init then finds more than
    one proxy registration and fails (hashicorp/consul-k8s#764: keycloak-headless and
    keycloak-http), unless ``consul.hashicorp.com/kubernetes-service`` picks one
    (developer.hashicorp.com/consul/docs/k8s/annotations-and-labels).
    """
    # Headless Services register too (the keycloak case); service-ignore ones do not.
    services = sorted((s for s in ctx.graph.in_namespace(Service, ns)
                       if s.selector and dict(s.labels).get(IGNORE_LABEL) != "true"),
                      key=lambda s: s.key.name)
    for w in sorted(ctx.graph.in_namespace(Workload, ns), key=lambda w: (w.kind, w.name)):
        if w.injection == "none" or _KUBERNETES_SERVICE in dict(w.pod_annotations):
            continue
        names = [s.key.name for s in services if selects(s.selector, w.pod_labels)]
        if len(names) < 2:
            continue
        ctx.losses.report(
            "CONSUL_POD_SERVICES", Severity.MANUAL, "destination.subsets", w.ref,
            _LABELS_PATH.get(w.kind, "spec.template.metadata.labels"),
            f"{w.kind} {ns}/{w.name} is selected by Services {', '.join(names)}: consul-k8s "
            "would register its pods once per Service, and their connect-init fails with more "
            "than one registration",
            f"Annotate the pod template with {_KUBERNETES_SERVICE}: <the Service it registers "
            "under>, and route to versions with ServiceResolver subsets (service-meta "
            "annotations) instead of per-version Services; or delete the extra Services.")


def _mode(ctx: ConsulContext, svc: Service,
          mesh_policy: MTLSPolicy | None) -> tuple[str, MTLSPolicy | None]:
    """The source mode of a Service's pods: workload policy, else namespace, else mesh-wide.

    A STRICT port anywhere makes the whole service strict: Consul has one mode per service,
    and failing closed keeps the port's guarantee.
    """
    policies = ctx.graph.in_namespace(MTLSPolicy, svc.key.namespace)
    picked = ctx.graph.workloads_selected(svc.key.namespace, svc.selector) if svc.selector else []
    chain = [p for p in policies if p.selector is not None and not p.mesh_wide
             and any(selects(p.selector, w.pod_labels) for w in picked)]
    chain += [p for p in policies if p.selector is None and not p.mesh_wide]
    chain += [mesh_policy] if mesh_policy else []
    for p in chain:
        if any(m == "STRICT" for _, m in p.port_modes):
            return "STRICT", p
        if p.mode != "UNSET":
            return p.mode, p
    return "UNSET", None


def _final(ctx: ConsulContext, svc: Service, mode: str, policy: MTLSPolicy | None,
           defaulted: set[str]) -> str:
    """The enforced ``mutualTLSMode`` for a Service, with the loss that explains a change."""
    if mode == "STRICT":
        return "strict"
    if mode == "UNSET":
        ns = svc.key.namespace
        if ns not in defaulted:
            defaulted.add(ns)
            ctx.losses.report(
                "CONSUL_MTLS_MODE", Severity.INFO, "mtls.strict", ObjectRef("Namespace", "", ns,
                                                                            "v1"),
                "metadata", f"no mTLS mode is declared for {ns}: the source mesh's default "
                "(Istio PERMISSIVE without a PeerAuthentication, Linkerd's all-unauthenticated "
                "default inbound policy) accepted plaintext from clients outside the mesh; the "
                "enforced Consul services use Consul's default strict mTLS",
                "If clients outside the mesh must keep calling, set mutualTLSMode: permissive "
                "on their ServiceDefaults (intentions then do not apply to them).")
        return "strict"
    assert policy is not None
    if svc.key in ctx.restricted:
        ctx.losses.report(
            "CONSUL_MTLS_MODE", Severity.DEGRADED, "mtls.strict", policy.origin.ref,
            policy.origin.path,
            f"{svc.key} was {mode} in {ctx.graph.mesh.capitalize()} but has authorization: Consul does not apply "
            "intentions to plaintext in permissive mode, so it enforces strict mTLS; plaintext "
            "clients from outside the mesh are refused",
            "Mesh the clients that called in plaintext, or accept that they lose access.")
        return "strict"
    ctx.losses.report(
        "CONSUL_MTLS_MODE", Severity.INFO, "mtls.strict", policy.origin.ref, policy.origin.path,
        f"{svc.key} stays permissive as in {ctx.graph.mesh.capitalize()} ({mode}); Mesh.allowEnablingPermissiveMutualTLS "
        "must therefore stay true after the migration",
        "Switch to strict once no client outside the mesh calls it.")
    return "permissive"
