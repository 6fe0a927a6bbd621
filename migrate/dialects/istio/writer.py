"""IstioWriter: the IR of a source mesh -> Istio 1.26-1.30 manifests, sorted into plan phases.

Routing (VirtualServices or, with ``routes_api="gateway-api"``, Gateway API HTTPRoutes with
Service parents; DestinationRules) goes to ``routing``: only Istio proxies read it, so it is
inert for the source mesh. mTLS and authorization go to ``policy_staged`` in a form that still
admits plaintext callers from the source mesh, and to ``policy_enforced`` in their final form
(write_security.py). External services become ServiceEntries and egress modes Sidecars
(write_egress.py).
"""

from __future__ import annotations

from migrate.dialects.base import TargetConfig
from migrate.dialects.istio.write_common import WriteContext
from migrate.dialects.istio.write_destinations import withdraw_default_lb, write_destination_rules
from migrate.dialects.istio.write_egress import write_egress
from migrate.dialects.istio.write_gatewayapi import write_http_routes
from migrate.dialects.istio.write_routes import write_virtual_services
from migrate.dialects.istio.write_security import write_security
from migrate.ir.graph import MeshGraph
from migrate.losses import LossLog
from migrate.mappings import CapabilityTable
from migrate.names import NameRegistry

ROUTES_APIS = ("virtualservice", "gateway-api")


class IstioWriter:
    """Writes Istio configuration (networking.istio.io/v1, security.istio.io/v1)."""

    MESH = "istio"

    def __init__(self, losses: LossLog, table: CapabilityTable, version: str,
                 trust_domain: str = "cluster.local", root_namespace: str = "istio-system",
                 routes_api: str = "virtualservice", cluster_domain: str = "cluster.local",
                 istio_root_namespace: str = "istio-system"):
        if routes_api not in ROUTES_APIS:
            raise ValueError(f"routes_api must be one of {', '.join(ROUTES_APIS)}, "
                             f"not {routes_api!r}")
        self.losses = losses
        self.table = table
        self.version = version
        self.trust_domain = trust_domain
        self.root_namespace = root_namespace
        self.routes_api = routes_api
        self.cluster_domain = cluster_domain
        self.istio_root_namespace = istio_root_namespace
        """Istio's own root namespace (``root_namespace`` is the source mesh's)."""

    def write(self, graph: MeshGraph, namespaces: list[str]) -> TargetConfig:
        """Everything Istio needs for ``namespaces``, by phase."""
        out = TargetConfig(self.MESH)
        ctx = WriteContext(graph, self.losses, NameRegistry(), out,
                           lambda f: self.table.supports(f, self.version),
                           self.trust_domain, self.cluster_domain)
        ctx.index_policies()
        if ctx.supports("route.http") and self.routes_api == "gateway-api":
            write_http_routes(ctx)
            write_virtual_services(ctx, include_http=False)
        else:
            write_virtual_services(ctx, include_http=ctx.supports("route.http"))
        write_destination_rules(ctx)
        withdraw_default_lb(ctx)
        write_security(ctx, namespaces, self.root_namespace)
        write_egress(ctx, namespaces, self.istio_root_namespace)
        return out
