"""The finishing pass: once every object is read, Consul names are resolved to Kubernetes
Services and the collected config entries become IR records.

Order matters only for readability: names, then protocols and mTLS (per service), explicit
upstreams (call edges), the discovery chain (routes, subsets), and intentions (policies).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from migrate.dialects.consul.names import UPSTREAMS_ANNOTATION, ConsulNames, annotation
from migrate.dialects.consul.read_chain import ChainCompiler, reached_from_others
from migrate.dialects.consul.read_intentions import IntentionCompiler
from migrate.dialects.consul.read_workloads import parse_upstreams, pod_prefix_of
from migrate.ir.graph import MeshGraph
from migrate.ir.model import (
    Backend,
    DestinationPolicy,
    ExternalService,
    FeatureUse,
    MTLSPolicy,
    Origin,
    OutlierDetection,
    Route,
    Rule,
    Service,
    Workload,
)
from migrate.losses import ObjectRef, Severity

if TYPE_CHECKING:
    from migrate.dialects.consul.reader import ConsulReader


def finish(reader: ConsulReader, graph: MeshGraph) -> None:
    """Resolve names and build every record that depends on more than one object."""
    names = ConsulNames(graph, reader.inject_default)
    names.report_collisions(reader.losses)
    _protocols(reader, names, graph)
    _mtls(reader, names, graph)
    _upstream_policies(reader, names, graph)
    _explicit_upstreams(reader, names, graph)
    ChainCompiler(reader, names, graph).compile()
    IntentionCompiler(reader, names, graph).compile()
    _ingress_routes(reader, names, graph)
    _terminating_links(reader, graph)


def _protocols(reader: ConsulReader, names: ConsulNames, graph: MeshGraph) -> None:
    """Every Kubernetes Service behind a Consul service carries Consul's protocol for it."""
    registered: dict[str, list[str]] = {}
    for name in names.registered():
        for inst in names.instances(name):
            registered.setdefault(str(inst.key), []).append(name)
    # A virtual service (a splitter behind another service's router) has no Service; its
    # protocol is what lets Consul accept the split, credited on the routes through it.
    declared = {name for name, sd in reader.state.service_defaults.items()
                if sd.protocol} - reached_from_others(reader.state)
    for svc in graph.of(Service):
        own = registered.get(str(svc.key), [])
        if svc.key.name in own or (not own and svc.key.name in reader.state.service_defaults):
            name = svc.key.name
        elif own:
            name = own[0]  # pods renamed by connect-service: their Consul name decides
        else:
            continue  # not in the mesh
        graph.add(replace(svc, mesh_protocol=reader.state.protocol(name),
                          protocol_origin=reader.state.protocol_origin(name)))
        declared.discard(name)
    for name in sorted(declared):
        # A protocol for a service the input does not show governs nothing that is planned.
        reader.unresolved(reader.state.service_defaults[name].ref, "spec.protocol", name,
                          "its protocol was not carried over")


def _global_mode(reader: ConsulReader) -> tuple[str, Origin | None]:
    """The cluster-wide mTLS mode and where it was set (None: Consul's default, strict)."""
    pd = reader.state.proxy_defaults
    if pd is None or not pd.mtls_mode:
        return "STRICT", None
    origin = Origin(pd.ref, "spec.mutualTLSMode")
    if pd.mtls_mode == "permissive" and not _permissive_allowed(reader, pd.ref,
                                                                 "spec.mutualTLSMode"):
        return "STRICT", origin
    return pd.mtls_mode.upper(), origin


def _permissive_allowed(reader: ConsulReader, ref: ObjectRef, path: str) -> bool:
    """Consul accepts permissive mode only with Mesh allowEnablingPermissiveMutualTLS."""
    mesh = reader.state.mesh
    if mesh is not None and mesh.allow_permissive:
        return True
    reader.losses.report(
        "FIELD_INVALID", Severity.MANUAL, "input", ref, path,
        "mutualTLSMode permissive needs Mesh spec.allowEnablingPermissiveMutualTLS: true, which "
        "the input does not set; Consul rejects the entry, so strict mTLS was planned",
        "Check the live Consul config (consul config read) and set the Mesh field if "
        "permissive mode is really in use.")
    return False


def _mtls(reader: ConsulReader, names: ConsulNames, graph: MeshGraph) -> None:
    """Consul mesh traffic is always mTLS: strict per namespace unless set permissive."""
    mode, origin = _global_mode(reader)
    if mode == "PERMISSIVE" and origin is not None:
        _report_permissive(reader, origin.ref, origin.path, "every Consul service")
    namespaces = sorted({i.key.namespace for n in names.registered()
                         for i in names.instances(n)})
    for ns in namespaces:
        where = origin or Origin(ObjectRef("Namespace", "", ns, "v1"), "metadata.name")
        graph.add(MTLSPolicy(ns, "consul-mtls", None, mode, (), False, where))
        if mode == "STRICT":
            graph.use(FeatureUse("mtls.strict", where, "Consul service mesh mTLS"))
    for name, sd in sorted(reader.state.service_defaults.items()):
        if not sd.mtls_mode or sd.mtls_mode.upper() == mode:
            continue
        path = "spec.mutualTLSMode"
        service_mode = sd.mtls_mode.upper()
        if service_mode == "PERMISSIVE" and not _permissive_allowed(reader, sd.ref, path):
            service_mode = "STRICT"
            if service_mode == mode:
                continue
        instances = names.instances(name)
        if not instances:
            reader.unresolved(sd.ref, path, name, "its mTLS mode was not converted")
        elif service_mode == "PERMISSIVE":
            _report_permissive(reader, sd.ref, path, name)
        for inst in instances:
            policy = name if inst.key.name == name else f"{name}-{inst.key.name}"
            graph.add(MTLSPolicy(inst.key.namespace, policy, inst.service.selector,
                                 service_mode, (), False, sd.origin(path)))
            if service_mode == "STRICT":
                graph.use(FeatureUse("mtls.strict", sd.origin(path)))


def _report_permissive(reader: ConsulReader, ref: ObjectRef, path: str, name: str) -> None:
    """The target carries the permissive mode but not what comes with it in Consul: plaintext
    admitted without intentions (fact consul.permissive-mtls)."""
    # fact: consul.permissive-mtls
    reader.losses.report(
        "CONSUL_PERMISSIVE_PLAINTEXT", Severity.DEGRADED, "mtls.permissive", ref, path,
        f"{name} is permissive: Consul admits plaintext callers without checking its "
        "intentions, while the target's authorization still applies to them, so plaintext "
        "callers no rule admits without an identity are refused",
        "If plaintext callers must keep reaching it, add a rule admitting callers without a "
        "peer identity to its target policy (Istio: source.notPrincipals [\"*\"]; Linkerd: a "
        "NetworkAuthentication); otherwise mesh those callers.")


def _upstream_policies(reader: ConsulReader, names: ConsulNames, graph: MeshGraph) -> None:
    """``upstreamConfig.overrides[]`` passive health checks as destination policies."""
    for client, sd in sorted(reader.state.service_defaults.items()):
        for up in sd.overrides:
            keys = names.keys(up.name, up.namespace)
            if not keys:
                reader.unresolved(sd.ref, f"{up.path}.name", up.name,
                                  "its passive health check was not converted")
            for key in keys:
                graph.add(DestinationPolicy(
                    namespace=key.namespace, name=f"{client}-to-{key.name}", service=key,
                    host=up.name, subsets=(), tls_mode="",
                    outlier=OutlierDetection(up.max_failures, up.base_ejection_time,
                                             f"{up.path}.passiveHealthCheck"),
                    origin=sd.origin("spec")))


def _explicit_upstreams(reader: ConsulReader, names: ConsulNames, graph: MeshGraph) -> None:
    """``connect-service-upstreams`` are real calls: they join the workload's call list."""
    for w in graph.of(Workload):
        value = annotation(w, UPSTREAMS_ANNOTATION)
        if not value.strip():
            continue
        path = f"{pod_prefix_of(w.kind)}.annotations.{UPSTREAMS_ANNOTATION}"
        calls = set(w.calls)
        for up in parse_upstreams(value):
            if up.remote:
                graph.use(FeatureUse("multicluster", Origin(w.ref, path),
                                     f"upstream {up.service} ({up.remote})"))
                continue
            keys = names.keys(up.service, up.namespace)
            if not keys:
                reader.unresolved(w.ref, path, up.service, "the call to it is not in the "
                                  "namespace dependency graph")
            calls.update((f"{k.name}.{k.namespace}", path) for k in keys)
        if calls != set(w.calls):
            graph.add(replace(w, calls=tuple(sorted(calls))))


def _ingress_routes(reader: ConsulReader, names: ConsulNames, graph: MeshGraph) -> None:
    """IngressGateway listeners as ingress-only routes (one per listener port).

    They are not mesh routing (the ingress.gateway feature use reports the gateway); they
    tell the planner which namespaces receive ingress traffic.
    """
    for gw in reader.state.ingress:
        ports = sorted({s.port for s in gw.services})
        for port in ports:
            rules = []
            protocol = "tcp"
            for svc in (s for s in gw.services if s.port == port):
                protocol = "http" if svc.protocol in ("http", "http2", "grpc") else "tcp"
                if svc.name == "*":
                    continue  # every service with an L7 protocol: no single backend
                keys = names.keys(svc.name, svc.namespace)
                if not keys:
                    reader.unresolved(gw.ref, svc.path, svc.name,
                                      "its ingress namespace is unknown to the plan")
                rules += [Rule(index=len(rules), name="", matches=(), backends=(Backend(
                    service=k, host=svc.name, origin_path=svc.path),), origin_path=svc.path)
                    for k in keys]
            if rules:
                graph.add(Route(gw.ref.namespace, f"{gw.ref.name}-{port}", protocol, (),
                                tuple(rules), ingress=True, mesh=False,
                                gateways=(gw.ref.name,), origin=Origin(gw.ref, "spec")))


def _terminating_links(reader: ConsulReader, graph: MeshGraph) -> None:
    """A gateway link to a ServiceDefaults destination travels with the destination's external
    service; a link to anything else (a service registered in the catalog by hand or by a
    Registration) has no model and is reported."""
    destinations = {s.name for s in graph.of(ExternalService)
                    if s.origin.ref.kind == "ServiceDefaults"}
    for origin, name in reader.state.terminating:
        if name in destinations:
            graph.use(FeatureUse("egress.external", origin,
                                 f"{name} leaves the mesh through the terminating gateway"))
        else:
            graph.use(FeatureUse("egress.service_entry", origin, name))

