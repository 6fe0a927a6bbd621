"""ConsulWriter: the IR of a source mesh -> consul-k8s config entries, sorted into plan phases.

Phases (migrate/dialects/base.py ``TargetConfig``):
- ``prerequisites``: the Mesh entry allowing permissive mTLS (write_defaults.py);
- ``routing``: ServiceRouters, ServiceSplitters (with their virtual services' ServiceDefaults),
  ServiceResolvers and the pod-template annotations their subsets filter on. Routing is
  compiled into the *callers'* discovery chains, and callers still on the source mesh never
  read these entries, so they are inert until callers move (write_routing.py);
- ``policy_staged``: ServiceDefaults with ``mutualTLSMode: permissive`` plus the final
  ServiceIntentions, which Consul does not apply to the plaintext of source-mesh callers
  (write_intentions.py);
- ``policy_enforced``: ServiceDefaults with the final mTLS mode (write_defaults.py);
- external services: destinations, their intentions and the TerminatingGateway entry are
  prerequisites too; a mesh-wide egress restriction is a Mesh entry in ``routing_final``,
  applied at cleanup once no callee is outside Consul's catalog (write_egress.py).
Nothing is staging-only (``remove_at_enforce`` stays empty): the permissive form is the same
ServiceDefaults object, replaced by its enforced form.
"""

from __future__ import annotations

from migrate.dialects.base import TargetConfig
from migrate.dialects.consul.write_context import build_context
from migrate.dialects.consul.write_defaults import write_defaults
from migrate.dialects.consul.write_egress import write_egress
from migrate.dialects.consul.write_intentions import write_intentions
from migrate.dialects.consul.write_routing import write_routing
from migrate.dialects.consul.write_subsets import write_resolvers
from migrate.ir.graph import MeshGraph
from migrate.losses import LossLog
from migrate.mappings import CapabilityTable


class ConsulWriter:
    """Writes consul-k8s 1.2-2.0 configuration (consul.hashicorp.com/v1alpha1)."""

    MESH = "consul"

    def __init__(self, losses: LossLog, table: CapabilityTable, version: str,
                 trust_domain: str = "cluster.local", root_namespace: str = "istio-system"):
        self.losses = losses
        self.table = table
        self.version = version
        self.trust_domain = trust_domain
        self.root_namespace = root_namespace

    def write(self, graph: MeshGraph, namespaces: list[str]) -> TargetConfig:
        """Everything Consul needs for ``namespaces``, by phase."""
        out = TargetConfig(self.MESH)
        moving = sorted(ns for ns in namespaces if ns != self.root_namespace)
        ctx = build_context(graph, self.losses, out, moving,
                            lambda f: self.table.supports(f, self.version), self.trust_domain)
        if ctx.supports("destination.subsets"):
            write_resolvers(ctx)
        if ctx.supports("route.http"):
            write_routing(ctx)
        if ctx.supports("authz.allow"):
            write_intentions(ctx)
        write_defaults(ctx)
        if ctx.supports("egress.external"):
            write_egress(ctx)
        return out
