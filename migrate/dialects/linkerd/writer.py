"""LinkerdWriter: the IR of a source mesh -> Linkerd manifests, sorted into plan phases."""

from __future__ import annotations

from migrate.dialects.base import Manifest, TargetConfig
from migrate.dialects.linkerd.deny_subsumed import report_subsumed_denies
from migrate.dialects.linkerd.policy import PolicyContext, write_policy
from migrate.dialects.scope import report_headless
from migrate.dialects.linkerd.route_policy import failure_accrual_annotations
from migrate.dialects.linkerd.routes import RouteContext, write_routes
from migrate.dialects.linkerd.write_egress import EgressContext, write_egress
from migrate.ir.graph import MeshGraph
from migrate.ir.model import DestinationPolicy, Service
from migrate.losses import LossLog, ObjectRef
from migrate.mappings import CapabilityTable
from migrate.names import NameRegistry

# Linkerd's default opaque ports (config.linkerd.io/opaque-ports replaces this list).
LINKERD_OPAQUE_DEFAULT = frozenset({25, 587, 3306, 4444, 5432, 6379, 9300, 11211})


class LinkerdWriter:
    """Writes Linkerd 2.14-2.20 configuration."""

    MESH = "linkerd"

    def __init__(self, losses: LossLog, table: CapabilityTable, version: str,
                 trust_domain: str = "cluster.local", root_namespace: str = "istio-system",
                 staging: str = "strict"):
        self.losses = losses
        self.table = table
        self.version = version
        self.trust_domain = trust_domain
        self.root_namespace = root_namespace
        self.staging = staging

    def write(self, graph: MeshGraph, namespaces: list[str]) -> TargetConfig:
        """Everything Linkerd needs for ``namespaces``, by phase."""
        out = TargetConfig(self.MESH, staging_mode=self.staging)
        names = NameRegistry()
        if self.table.supports("route.http", self.version):
            write_routes(RouteContext(graph, self.losses, names, out,
                                      lambda f: self.table.supports(f, self.version)))
        if self.table.supports("destination.outlier_detection", self.version):
            self._failure_accrual(graph, out)
        if self.table.supports("authz.allow", self.version):
            write_policy(PolicyContext(graph, self.losses, names, out, self.trust_domain),
                         namespaces, self.root_namespace)
            report_subsumed_denies(graph, self.losses)
        self._opaque_ports(graph, namespaces, out)
        report_headless(graph, self.losses, namespaces, "Linkerd")
        if self.table.supports("egress.mesh_only", self.version):
            write_egress(EgressContext(graph, self.losses, names, out), namespaces)
        return out

    @staticmethod
    def _opaque_ports(graph: MeshGraph, namespaces: list[str], out: TargetConfig) -> None:
        """Ports the source declared non-HTTP become opaque on the namespace's pods.

        Istio clients reach migrated pods without Linkerd's protocol hints, so ports where the
        server speaks first must be marked opaque on the callee pods; the annotation replaces
        Linkerd's default list, which is kept (mapping-istio-linkerd.md sections 1.2 and 5).
        """
        for ns in namespaces:
            ports, l7 = set(), set()
            declared: dict[int, set[ObjectRef]] = {}
            for svc in graph.in_namespace(Service, ns):
                for p in svc.ports:
                    if p.protocol != "TCP":
                        continue
                    target = p.target_port if isinstance(p.target_port, int) else p.port
                    # A protocol the source declares for the whole Service (Consul
                    # ServiceDefaults) wins over the port's name.
                    if (svc.mesh_protocol or p.l7) == "tcp":
                        ports.add(target)
                        # The object that declared tcp (Consul ServiceDefaults), else the
                        # Service whose port name or appProtocol said it.
                        declared.setdefault(target, set()).add(
                            (svc.protocol_origin or svc.origin).ref)
                    elif svc.mesh_protocol in ("http", "http2", "grpc"):
                        l7.add(target)
            # The annotation covers every pod of the namespace: a port another Service
            # declares HTTP stays out (the tcp Service's own Server is opaque all the same).
            ports -= l7
            if ports - LINKERD_OPAQUE_DEFAULT:
                out.namespace_staged.setdefault(ns, {})["config.linkerd.io/opaque-ports"] = \
                    ",".join(str(x) for x in sorted(ports | LINKERD_OPAQUE_DEFAULT))
                out.namespace_sources[(ns, "config.linkerd.io/opaque-ports")] = tuple(sorted(
                    {ref for port in ports - LINKERD_OPAQUE_DEFAULT for ref in declared[port]}))

    def _failure_accrual(self, graph: MeshGraph, out: TargetConfig) -> None:
        """Outlier detection -> failure accrual annotations on the Service itself."""
        for dp in graph.of(DestinationPolicy):
            annotations = failure_accrual_annotations(dp)
            if not annotations or dp.service is None:
                continue
            body = {"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": dp.service.name, "namespace": dp.service.namespace,
                                 "annotations": annotations}}
            out.add(out.routing, Manifest(body, (dp.origin.ref,), patch=True))
