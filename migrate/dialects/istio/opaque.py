"""Istio kinds with no mesh-neutral model (gateways, egress, extensions, telemetry) and the
Gateway API kinds Istio also reads that are not mesh routes (those are in ``gamma.py``). Each
becomes an :class:`~migrate.ir.model.Opaque` record plus one feature use for the whole spec,
so the capability check reports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from migrate.dialects.fields import Fields
from migrate.dialects.istio.multicluster import east_west_detail
from migrate.ir.graph import MeshGraph
from migrate.ir.model import Opaque

if TYPE_CHECKING:
    from migrate.dialects.istio.reader import IstioReader

FEATURE_OF_KIND = {
    "Gateway": "ingress.gateway",
    "ServiceEntry": "egress.service_entry",
    "Sidecar": "egress.sidecar",
    "WorkloadEntry": "workload.vm",
    "WorkloadGroup": "workload.vm",
    "EnvoyFilter": "extension.envoy_filter",
    "WasmPlugin": "extension.wasm",
    "TrafficExtension": "extension.wasm",
    "ProxyConfig": "extension.proxy_config",
    "Telemetry": "telemetry",
}

_UNSUPPORTED_FILTERS = ("URLRewrite", "RequestMirror", "ExtensionRef", "CORS", "ExternalAuth")


def read_opaque(reader: IstioReader, f: Fields, graph: MeshGraph) -> None:
    """An Istio object reported whole (the feature table says what to do instead)."""
    hosts = f.strings("spec.hosts")
    feature, role = FEATURE_OF_KIND[f.ref.kind], ""
    detail = ", ".join(hosts)
    east_west = east_west_detail(f.ref.kind, f.peek("spec"), f.peek("metadata.labels"))
    if east_west:
        feature, detail = "multicluster", east_west  # neither ingress nor egress
    elif f.ref.kind == "Gateway":
        role = "egress" if is_egress_gateway(f.peek("spec.selector")) else "ingress"
        feature = "egress.gateway" if role == "egress" else feature
    f.use(feature, "spec", detail)
    graph.add(Opaque(f.ref.kind, f.ref.namespace, f.ref.name, f.origin("spec"), hosts, role))


def is_egress_gateway(selector: object) -> bool:
    """Whether a Gateway's selector picks Istio's egress gateway pods.

    The istio/gateway chart and istioctl's ``egressGateways`` label those pods
    ``istio: egressgateway`` (and ``app: istio-egressgateway``); Istio's egress-gateway task
    selects them that way (istio.io/latest/docs/tasks/traffic-management/egress/egress-gateway/).
    A Gateway picking them carries traffic out of the mesh: it takes no DNS and no clients
    from outside, so it is not the ingress the plan's ingress step replaces.
    """
    return isinstance(selector, dict) and any(
        isinstance(v, str) and "egressgateway" in v for v in selector.values())


def read_gateway_api(reader: IstioReader, f: Fields, graph: MeshGraph) -> None:
    """A gateway.networking.k8s.io object in an Istio cluster that has no model here.

    Service-parented HTTPRoutes, GRPCRoutes and TCPRoutes are mesh routes (``gamma.py``);
    what reaches this function is a Gateway, a ReferenceGrant, a route with only Gateway
    parents (ingress: it belongs to the ingress controller, which the migration replaces) or
    a Service-parented TLSRoute or UDPRoute, which Istio programs into sidecars and which are
    reported as kept (Linkerd reads the same objects; TLS and UDP routes have no filters, so
    the unsupported-filter check only matters for other kinds).
    """
    kind = f.ref.kind
    east_west = east_west_detail(kind, None, f.peek("metadata.labels"))
    if east_west and kind == "Gateway":
        f.use("multicluster", "spec", east_west)
    elif kind in ("Gateway", "GatewayClass", "ListenerSet"):
        f.use("ingress.gateway", "spec", "Gateway API")
    elif kind == "ReferenceGrant":
        f.use("gateway_api.kept", "spec", kind)
    else:
        parents = f.peek("spec.parentRefs") or []
        to_service = [p for p in parents if isinstance(p, dict) and p.get("kind") == "Service"]
        if len(to_service) < len(parents) or not parents:
            f.use("ingress.route", "spec.parentRefs", "Gateway API")
        if to_service:
            text = repr(f.peek("spec.rules"))
            bad = sorted(flt for flt in _UNSUPPORTED_FILTERS if f"'{flt}'" in text)
            f.use("gateway_api.unsupported_filter" if bad else "gateway_api.kept", "spec",
                  ", ".join(bad) or kind)
        f.get("spec", whole=True)
    graph.add(Opaque(kind, f.ref.namespace, f.ref.name, f.origin("spec"),
                     tuple(str(h) for h in (f.peek("spec.hostnames") or [])),
                     "ingress" if kind == "Gateway" and not east_west else ""))
