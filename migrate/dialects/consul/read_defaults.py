"""ServiceDefaults, ProxyDefaults and Mesh: protocols, mTLS modes and proxy settings.

ServiceDefaults (one per Consul service) overrides ProxyDefaults (``global``, one per
cluster); Mesh (``mesh``) holds mesh-wide settings (mapping-consul-others.md 1.2, 1.6, 1.7).
Handlers account for every field and keep the facts the finishing pass needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from migrate.dialects.consul.read_common import (
    envoy_extensions,
    expose,
    mesh_gateway,
    present,
    use_if,
)
from migrate.dialects.fields import Fields, join
from migrate.ir.graph import MeshGraph
from migrate.ir.hosts import ip_network
from migrate.ir.model import EgressPolicy, ExternalPort, ExternalService, Origin
from migrate.losses import ObjectRef

if TYPE_CHECKING:
    from migrate.dialects.consul.reader import ConsulReader

PROTOCOLS = ("tcp", "http", "http2", "grpc")

# Proxy settings with no model: they tune the proxy, not what traffic is allowed or where it goes.
_PROXY_SETTINGS = ("mode", "transparentProxy", "localConnectTimeoutMs", "localRequestTimeoutMs",
                   "maxInboundConnections", "balanceInboundConnections")


@dataclass(frozen=True)
class UpstreamOverride:
    """A ServiceDefaults ``upstreamConfig.overrides[]`` entry the model can carry."""

    name: str
    namespace: str
    max_failures: int | None
    base_ejection_time: str
    path: str


@dataclass
class ServiceDefaultsFacts:
    """What one ServiceDefaults says about its Consul service."""

    ref: ObjectRef
    protocol: str
    mtls_mode: str
    """``strict``, ``permissive`` or empty."""
    overrides: list[UpstreamOverride] = field(default_factory=list)

    def origin(self, path: str) -> Origin:
        """An origin inside this object."""
        return Origin(self.ref, path)


@dataclass
class ProxyDefaultsFacts:
    """The cluster-wide ProxyDefaults ``global``."""

    ref: ObjectRef
    protocol: str
    mtls_mode: str


@dataclass
class MeshFacts:
    """The cluster-wide Mesh ``mesh``."""

    ref: ObjectRef
    allow_permissive: bool


def _protocol(f: Fields, path: str) -> str:
    value = f.string(path).lower()
    if value and value not in PROTOCOLS:
        f.invalid(path, f"protocol {value!r} is not one of {', '.join(PROTOCOLS)}")
        return ""
    return value


def _mtls_mode(f: Fields, path: str) -> str:
    value = f.string(path).lower()
    if value and value not in ("strict", "permissive"):
        f.invalid(path, f"mutualTLSMode {value!r} is not strict or permissive")
        return ""
    return value


def _proxy_settings(f: Fields) -> None:
    if f.peek("spec.mode") in ("", "default"):
        f.get("spec.mode")  # the default mode: nothing set
    for key in _PROXY_SETTINGS:
        use_if(f, f"spec.{key}", "extension.proxy_config", key)
    envoy_extensions(f, "spec.envoyExtensions")
    expose(f, "spec.expose")
    mesh_gateway(f, "spec.meshGateway")


def read_service_defaults(reader: ConsulReader, f: Fields, graph: MeshGraph) -> None:
    """One ServiceDefaults: protocol and mTLS mode are kept, the rest become feature uses."""
    facts = ServiceDefaultsFacts(f.ref, _protocol(f, "spec.protocol"),
                                 _mtls_mode(f, "spec.mutualTLSMode"))
    _proxy_settings(f)
    use_if(f, "spec.rateLimits", "ratelimit.inbound")
    use_if(f, "spec.externalSNI", "egress.service_entry", "externalSNI")
    _destination(f, graph, facts.protocol)
    _upstream_config(f, facts)
    reader.state.add_named(f, reader.state.service_defaults, f.ref.name, facts)


def _destination(f: Fields, graph: MeshGraph, protocol: str) -> None:
    """``destination {addresses, port}``: the Consul service is an external host that
    transparent-proxy callers reach through a terminating gateway
    (developer.hashicorp.com/consul/docs/connect/gateways/terminating-gateway, "destinations").
    Addresses may be host names or IPs; the service's protocol applies to its one port."""
    if f.peek("spec.destination") is None:
        return
    addresses = f.strings("spec.destination.addresses")
    port = f.integer("spec.destination.port")
    f.get("spec.destination")
    hosts = tuple(a for a in addresses if ip_network(a) is None)
    ips = tuple(a for a in addresses if ip_network(a) is not None)
    ports = (ExternalPort(port, (protocol or "tcp").upper()),) if port else ()
    f.note("egress.external", "spec.destination", ", ".join(addresses))
    graph.add(ExternalService(f.ref.namespace, f.ref.name, hosts, ips, ports,
                              "DNS" if hosts else "NONE", True, f.origin("spec.destination")))


def _upstream_config(f: Fields, facts: ServiceDefaultsFacts) -> None:
    """``upstreamConfig``: client-side settings this service applies to its upstreams.

    They are per client: Istio needs a DestinationRule with a workloadSelector for that, and
    Linkerd cannot scope them, hence ``destination.workload_selector`` on every entry.
    """
    base = "spec.upstreamConfig"
    entries = [join(base, "defaults")] if present(f, join(base, "defaults")) else []
    f.get(join(base, "defaults"))
    entries += [f"{base}.overrides[{i}]" for i in range(len(f.list(join(base, "overrides"))))]
    for path in entries:
        override = path != join(base, "defaults")
        name = f.string(join(path, "name"))
        if not override:
            name = ""  # meaningless on defaults (the schema shares the overrides' type)
        namespace = f.string(join(path, "namespace"))
        # The upstream's protocol as this client sees it: the upstream's own ServiceDefaults
        # decide it for the target meshes, so there is nothing to carry over.
        f.string(join(path, "protocol"))
        for key in ("peer", "partition"):
            use_if(f, join(path, key), "multicluster", f"upstream {key}")
        mesh_gateway(f, join(path, "meshGateway"))
        for key in ("envoyClusterJSON", "envoyListenerJSON"):
            use_if(f, join(path, key), "extension.envoy_filter", key)
        pool = [use_if(f, join(path, "limits"), "destination.connection_pool", "limits"),
                use_if(f, join(path, "connectTimeoutMs"), "destination.connection_pool",
                       "connectTimeoutMs")]
        health = join(path, "passiveHealthCheck")
        failures: int | None = None
        ejection = ""
        if present(f, health):
            failures = f.integer(join(health, "maxFailures"))
            ejection = f.string(join(health, "baseEjectionTime"))
            lost = sorted(k for k in f.mapping(health)
                          if k not in ("maxFailures", "baseEjectionTime"))
            f.use("destination.outlier_detection", health, ", ".join(lost))
        else:
            f.get(health)
        target = name or "every upstream"
        if any(pool) or failures is not None or ejection:
            f.use("destination.workload_selector", path,
                  f"only {facts.ref.name}'s calls to {target}")
        if override and (failures is not None or ejection) and name:
            facts.overrides.append(UpstreamOverride(name, namespace, failures, ejection, path))


def read_proxy_defaults(reader: ConsulReader, f: Fields, graph: MeshGraph) -> None:
    """ProxyDefaults ``global``: default protocol and mTLS mode, proxy-wide settings."""
    protocol = ""
    config = f.mapping("spec.config")
    for key in sorted(config, key=str):
        path = f"spec.config.{key}"
        if key == "protocol":
            protocol = _protocol(f, path)
        elif str(key).startswith("envoy_") and any(
                word in str(key) for word in ("stats", "prometheus", "dogstatsd", "tracing")):
            f.use("telemetry", path, str(key))
        elif str(key).startswith("envoy_"):
            f.use("extension.envoy_filter", path, str(key))
        else:
            f.use("extension.proxy_config", path, str(key))
    _proxy_settings(f)
    use_if(f, "spec.accessLogs", "telemetry", "accessLogs")
    use_if(f, "spec.failoverPolicy", "destination.lb.locality", "failoverPolicy")
    use_if(f, "spec.prioritizeByLocality", "destination.lb.locality", "prioritizeByLocality")
    facts = ProxyDefaultsFacts(f.ref, protocol, _mtls_mode(f, "spec.mutualTLSMode"))
    if reader.state.proxy_defaults is None:
        reader.state.proxy_defaults = facts
    else:
        f.invalid("metadata.name", "another ProxyDefaults was read first; Consul keeps one "
                                   "proxy-defaults entry per cluster")


def read_mesh(reader: ConsulReader, f: Fields, graph: MeshGraph) -> None:
    """Mesh ``mesh``: permissive-mTLS switch, egress restriction, TLS and HTTP settings."""
    allow = f.get("spec.allowEnablingPermissiveMutualTLS")
    if allow is not None and not isinstance(allow, bool):
        f.invalid("spec.allowEnablingPermissiveMutualTLS", "expected true or false")
        allow = False
    only = f.get("spec.transparentProxy.meshDestinationsOnly")
    f.get("spec.transparentProxy")
    if only is True:
        f.use("egress.mesh_only", "spec.transparentProxy.meshDestinationsOnly")
        # Transparent-proxy pods may then reach only catalog services (and destinations
        # behind a terminating gateway): Istio's REGISTRY_ONLY for the whole mesh.
        graph.add(EgressPolicy(f.ref.namespace, f.ref.name, "REGISTRY_ONLY", True,
                               f.origin("spec.transparentProxy.meshDestinationsOnly")))
    for key in ("tls", "http", "validateClusters"):
        use_if(f, f"spec.{key}", "extension.proxy_config", key)
    use_if(f, "spec.peering", "multicluster", "peering through mesh gateways")
    if reader.state.mesh is None:
        reader.state.mesh = MeshFacts(f.ref, bool(allow))
    else:
        f.invalid("metadata.name", "another Mesh was read first; Consul keeps one mesh entry")
