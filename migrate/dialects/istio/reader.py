"""IstioReader: Istio 1.2x-1.30 objects (and the Kubernetes kinds around them) into the IR.

API versions follow Istio 1.30.3's CRDs (manifests/charts/base/files/crd-all.gen.yaml):
networking.istio.io v1, v1beta1, v1alpha3; security.istio.io v1, v1beta1;
telemetry.istio.io v1, v1alpha1; extensions.istio.io v1alpha1.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from migrate.dialects.istio import install
from migrate.dialects.base import Reader, ReadResult
from migrate.dialects.fields import Fields
from migrate.dialects.istio.multicluster import NETWORK_LABEL
from migrate.dialects.istio.destinationrule import read_destination_rule
from migrate.dialects.istio.egress import mesh_config_egress, read_service_entry, read_sidecar
from migrate.dialects.istio.gamma import GAMMA_KINDS, read_gateway_route
from migrate.dialects.istio.opaque import read_gateway_api, read_opaque
from migrate.dialects.istio.security import (
    read_authorization_policy,
    read_peer_authentication,
    read_request_authentication,
)
from migrate.dialects.istio.virtualservice import read_virtual_service
from migrate.errors import InputProblem
from migrate.install import InstallSetting
from migrate.ir.graph import MeshGraph
from migrate.ir.model import Route, ServiceKey
from migrate.losses import LossLog, ObjectRef, Severity
from migrate.sources.model import RawObject, SourceResult

NET, SEC, TEL, EXT, GW = ("networking.istio.io", "security.istio.io", "telemetry.istio.io",
                          "extensions.istio.io", "gateway.networking.k8s.io")

# Pod/namespace metadata prefixes that belong to Istio and their feature keys.
_WORKLOAD_ANNOTATIONS = (
    ("traffic.sidecar.istio.io/", "workload.capture_annotations"),
    ("sidecar.istio.io/", "workload.proxy_annotations"),
    ("proxy.istio.io/config", "extension.proxy_config"),
)
# Written by Istio's own injector and CNI; they describe state, not configuration.
_STATUS_KEYS = ("sidecar.istio.io/status", "ambient.istio.io/redirection",
                "sidecar.istio.io/inject", "istio.io/rev")


class IstioReader(Reader):
    """Reads Istio configuration."""

    MESH = "istio"
    MESH_GROUPS = (NET, SEC, TEL, EXT)
    """Groups whose presence in a cluster means Istio is installed."""
    GROUPS = {
        NET: frozenset({"v1", "v1beta1", "v1alpha3"}),
        SEC: frozenset({"v1", "v1beta1"}),
        TEL: frozenset({"v1", "v1alpha1"}),
        EXT: frozenset({"v1alpha1"}),
        GW: frozenset({"v1", "v1beta1", "v1alpha2", "v1alpha3"}),
    }
    HANDLERS = {
        (NET, "VirtualService"): read_virtual_service,
        (NET, "DestinationRule"): read_destination_rule,
        (NET, "Gateway"): read_opaque,
        (NET, "ServiceEntry"): read_service_entry,
        (NET, "Sidecar"): read_sidecar,
        (NET, "WorkloadEntry"): read_opaque,
        (NET, "WorkloadGroup"): read_opaque,
        (NET, "EnvoyFilter"): read_opaque,
        (NET, "ProxyConfig"): read_opaque,
        (SEC, "PeerAuthentication"): read_peer_authentication,
        (SEC, "AuthorizationPolicy"): read_authorization_policy,
        (SEC, "RequestAuthentication"): read_request_authentication,
        (TEL, "Telemetry"): read_opaque,
        (EXT, "WasmPlugin"): read_opaque,
        (EXT, "TrafficExtension"): read_opaque,
        **{(GW, kind): read_gateway_api for kind in ("Gateway", "ReferenceGrant")},
        # Service-parented routes are mesh routing (GAMMA, gamma.py); the others stay opaque.
        **{(GW, kind): read_gateway_route for kind in (
            "HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute", "UDPRoute")},
    }

    SETTINGS = ("trust_domain", "root_namespace", "istio_outbound_policy")
    # The default revision's mesh config (a revision's is istio-<rev>, found only in dumps).
    INSTALL_CONFIGMAPS = (("istio-system", "istio"),)

    @classmethod
    def install_settings(cls, objects: list[RawObject]) -> list[InstallSetting]:
        """The mesh's install configuration in the input (``install.py``)."""
        return install.install_settings(objects)

    def __init__(self, losses: LossLog, problems: list[InputProblem],
                 root_namespace: str = "istio-system", cluster_domain: str = "cluster.local",
                 outbound_policy: str = "ALLOW_ANY"):
        super().__init__(losses, problems)
        self.root_namespace = root_namespace
        """Istio's root namespace: policies there apply mesh-wide."""
        self.cluster_domain = cluster_domain
        self.outbound_policy = outbound_policy
        """The mesh config's ``outboundTrafficPolicy.mode`` (an install setting)."""
        self.gamma_routes: list[Route] = []
        """Routes read from Service-parented Gateway API routes, added by :meth:`finish`."""

    def read(self, source: SourceResult) -> ReadResult:
        """Read a source; the collected GAMMA routes start empty for every run."""
        self.gamma_routes = []
        return super().read(source)

    def finish(self, graph: MeshGraph) -> None:
        """Add the GAMMA routes and the mesh config's egress mode; report hosts that several
        mesh VirtualServices route, or a VirtualService and a Service-parented route
        (ROUTE_HOST_CONFLICT)."""
        self._gamma(graph)
        mesh_config_egress(self, graph)
        by_host: dict[ServiceKey, list[Route]] = {}
        for route in graph.of(Route):
            if route.mesh and route.protocol == "http" and \
                    route.origin.ref.kind == "VirtualService":
                for host in set(route.hosts):
                    by_host.setdefault(host, []).append(route)
        for host, routes in sorted(by_host.items(), key=lambda kv: str(kv[0])):
            if len(routes) < 2:
                continue
            names = sorted(f"{r.namespace}/{r.name}" for r in routes)
            # Istio merges mesh VirtualServices of one host only as delegates; otherwise
            # it picks one (istio.io/docs/reference/config/analysis/ist0109), so every one
            # of them is part of the conflict.
            for route in sorted(routes, key=lambda r: (r.namespace, r.name)):
                self.losses.report(
                    "ROUTE_HOST_CONFLICT", Severity.DEGRADED, "route.http", route.origin.ref,
                    "spec.hosts",
                    f"VirtualServices {', '.join(names)} all route {host} for sidecars: Istio "
                    "applies only one of them (which one is not defined, istioctl analyze "
                    "IST0109) while the target merges their rules",
                    "Merge them into one VirtualService (rules in the order Istio should try "
                    "them) and re-run.")

    # -- injection, called by the core-kinds reader ---------------------------------------
    def namespace_injection(self, f: Fields, labels: dict[str, Any], ann: dict[str, Any]) -> str:
        """Injection state of a namespace from Istio's labels (legacy label wins)."""
        # fact: istio.injection-labels
        mode = labels.get("istio.io/dataplane-mode")
        if labels.get(NETWORK_LABEL):
            # The mesh spans networks: a multicluster sign (multicluster.py), reported.
            f.use("multicluster", f"metadata.labels.{NETWORK_LABEL}",
                  f"network {labels[NETWORK_LABEL]} of a multi-network mesh")
        if labels.get("istio.io/use-waypoint"):
            f.use("injection.waypoint", "metadata.labels.istio.io/use-waypoint")
        if labels.get("istio-injection") == "enabled":
            return "sidecar"
        if labels.get("istio-injection") == "disabled":
            return "none"
        if labels.get("istio.io/rev"):
            return f"revision:{labels['istio.io/rev']}"
        if mode == "ambient":
            f.use("injection.ambient", "metadata.labels.istio.io/dataplane-mode")
            return "ambient"
        return "none"

    def workload_injection(self, f: Fields, labels: dict[str, Any], ann: dict[str, Any]) -> str:
        """Injection override on a pod template (label wins over the deprecated annotation)."""
        prefix = "spec.template.metadata" if f.ref.kind != "Pod" else "metadata"
        if f.ref.kind == "CronJob":
            prefix = "spec.jobTemplate.spec.template.metadata"
        for key in sorted(ann):
            if key in _STATUS_KEYS:
                continue
            for start, feature in _WORKLOAD_ANNOTATIONS:
                if key.startswith(start):
                    f.use(feature, f"{prefix}.annotations.{key}", f"{key}={ann[key]}")
                    break
        inject = str(labels.get("sidecar.istio.io/inject", ann.get("sidecar.istio.io/inject", "")))
        if inject.lower() == "false":
            return "none"
        if labels.get("istio.io/dataplane-mode") == "none":
            return "none"
        if inject.lower() == "true" or labels.get("istio.io/rev"):
            return "sidecar"
        if labels.get("istio.io/dataplane-mode") == "ambient":
            f.use("injection.ambient", f"{prefix}.labels.istio.io/dataplane-mode")
            return "ambient"
        return "inherit"

    # -- GAMMA routes ----------------------------------------------------------------------
    def _gamma(self, graph: MeshGraph) -> None:
        """Add the GAMMA routes under names no VirtualService's route has taken, and report
        every host on which Istio keeps more than one mesh VirtualService because of them."""
        taken = {(r.namespace, r.name, r.protocol) for r in graph.of(Route)}
        for route in sorted(self.gamma_routes, key=lambda r: (r.namespace, r.origin.ref.kind,
                                                              r.name)):
            name, n = route.name, 1
            while (route.namespace, name, route.protocol) in taken:
                # A VirtualService (or another route kind) of the same name came first.
                name = f"{route.name}-{route.origin.ref.kind.lower()}" + (f"-{n}" if n > 1 else "")
                n += 1
            taken.add((route.namespace, name, route.protocol))
            graph.add(replace(route, name=name) if name != route.name else route)
        # Istio makes one mesh VirtualService per route kind, route namespace, parent port and
        # host out of Service-parented HTTPRoutes and GRPCRoutes (route_collections.go
        # HTTPRouteCollection / GRPCRouteCollection: routeKey, then mergeHTTPRoutes), one per
        # TCPRoute (TCPRouteCollection does not merge), and applies only one mesh
        # VirtualService per host (IST0109). Which one is not read here.
        units: dict[ServiceKey, dict[tuple[str, ...], set[ObjectRef]]] = {}
        for route in graph.of(Route):
            kind = route.origin.ref.kind
            if not route.mesh or kind not in ("VirtualService", *GAMMA_KINDS):
                continue
            for host in set(route.hosts):
                if kind == "VirtualService":
                    unit: tuple[str, ...] = (kind, route.namespace, route.name)
                elif kind == "TCPRoute":
                    unit = ("gamma", kind, route.namespace, route.origin.ref.name)
                else:
                    ports = {m.port for r in route.rules for m in r.matches}
                    unit = ("gamma", kind, route.namespace, str(sorted(ports, key=str)))
                units.setdefault(host, {}).setdefault(unit, set()).add(route.origin.ref)
        for host, found in sorted(units.items(), key=lambda kv: str(kv[0])):
            if len(found) < 2 or not any(u[0] == "gamma" for u in found):
                continue
            refs = sorted({ref for group in found.values() for ref in group},
                          key=lambda r: (r.namespace, r.kind, r.name))
            names = ", ".join(f"{r.kind} {r.namespace}/{r.name}" for r in refs)
            for ref in refs:
                self.losses.report(
                    "ROUTE_HOST_CONFLICT", Severity.DEGRADED, "route.http", ref,
                    "spec.hosts" if ref.kind == "VirtualService" else "spec.parentRefs",
                    f"{names} all route {host} for sidecars: Istio turns a Service-parented "
                    "route into a mesh VirtualService of its own (one per route kind, namespace "
                    "and parent port) and applies only one mesh VirtualService per host (istioctl "
                    "analyze IST0109; which one is not defined here), while the target gets "
                    "the rules of all of them",
                    "Check which one Istio applies (istioctl proxy-config routes), keep only "
                    "that one (or merge them into one route) and re-run.")
