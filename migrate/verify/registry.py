"""Which evaluator and which probe generator each mesh has.

Every evaluator reads one mesh's own manifests (never the IR) and answers the same two
questions, so any mesh can be the source or the target of a comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from migrate.verify import consul_probes, linkerd_probes, probes
from migrate.verify.consul_eval import ConsulEvaluator
from migrate.verify.istio_eval import IstioEvaluator
from migrate.verify.linkerd_eval import LinkerdEvaluator
from migrate.verify.model import Outcome, Probe, probe_order
from migrate.verify.world import World


class Evaluator(Protocol):
    """What a mesh does with a request."""

    def route(self, probe: Probe) -> Outcome:
        """Where the client's proxy sends the request, with timeout and retries."""
        ...

    def allowed(self, probe: Probe, workload_id: str, port: int) -> tuple[bool, tuple[str, ...]]:
        """Whether the workload's proxy admits the request, and the deciding objects."""
        ...


@dataclass(frozen=True)
class Settings:
    """Mesh-wide facts that are not in the manifests."""

    trust_domain: str = "cluster.local"
    root_namespace: str = "istio-system"
    linkerd_default_policy: str = "all-unauthenticated"
    """Linkerd's cluster default inbound policy (Helm ``proxy.defaultInboundPolicy``)."""
    consul_default_allow: bool = False
    """Consul's default intention behaviour (deny when the Helm chart manages ACLs)."""
    consul_mirror_namespaces: bool = False
    """Consul Enterprise namespace mirroring (CE: every namespace is one)."""
    consul_inject_default: bool = False
    """Consul's Helm ``connectInject.default``: pods without the connect-inject annotation are
    injected."""


Factory = Callable[[list[dict[str, Any]], World, Settings], Evaluator]
ProbeGen = Callable[[list[dict[str, Any]], World], list[Probe]]

EVALUATORS: dict[str, Factory] = {
    "istio": lambda objs, world, s: IstioEvaluator(objs, world, s.root_namespace,
                                                   s.trust_domain),
    "linkerd": lambda objs, world, s: LinkerdEvaluator(
        objs, world, cluster_default=s.linkerd_default_policy, trust_domain=s.trust_domain),
    "consul": lambda objs, world, s: ConsulEvaluator(
        objs, world, default_allow=s.consul_default_allow,
        mirror_namespaces=s.consul_mirror_namespaces, inject_default=s.consul_inject_default),
}
"""Mesh name -> evaluator over that mesh's manifests."""

PROBES: dict[str, tuple[ProbeGen, ...]] = {
    "istio": (probes.routing_probes, probes.authz_probes),
    "linkerd": (linkerd_probes.routing_probes, linkerd_probes.authz_probes),
    "consul": (consul_probes.routing_probes, consul_probes.authz_probes),
}
"""Source mesh name -> probe generators over that mesh's configuration."""


def generate(mesh: str, objects: list[dict[str, Any]], world: World) -> list[Probe]:
    """All probes for a source configuration, sorted and without duplicates."""
    return sorted({p for gen in PROBES[mesh] for p in gen(objects, world)}, key=probe_order)
