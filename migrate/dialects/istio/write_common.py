"""What the Istio writer's modules share: the write context, host names and durations.

Host names follow Istio's short-name rule (istio/istio pilot/pkg/model/config.go
``ResolveShortnameToFQDN``): a name without a dot is completed with the namespace of the object
that holds it and ``svc.<domain>``; a name with a dot is taken as written. So a Service in the
object's own namespace is written by its short name, any other one by its full name
(``reviews.shop`` would NOT be expanded by Istio).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from migrate.dialects.base import TargetConfig
from migrate.durations import to_millis
from migrate.ir.graph import MeshGraph
from migrate.ir.model import DestinationPolicy, Labels, ServiceKey
from migrate.losses import LossLog
from migrate.names import NameRegistry

NETWORKING_API = "networking.istio.io/v1"
SECURITY_API = "security.istio.io/v1"
GATEWAY_ROUTE_API = "gateway.networking.k8s.io/v1"
RULES_ANNOTATION = "meshmigrate.io/rules"
"""Which source rule each emitted rule came from, in order (as the Linkerd writer records)."""


@dataclass
class WriteContext:
    """State shared while writing one graph as Istio configuration."""

    graph: MeshGraph
    losses: LossLog
    names: NameRegistry
    out: TargetConfig
    supports: Callable[[str], bool] = lambda feature: True
    """Whether the chosen Istio version has a feature (mappings/istio.yaml)."""
    trust_domain: str = "cluster.local"
    cluster_domain: str = "cluster.local"
    policies: dict[ServiceKey, DestinationPolicy] = field(default_factory=dict)
    """The destination policy of each Service (the first by key when there are several)."""

    @property
    def source_mesh(self) -> str:
        """The mesh the IR was read from (``istio``, ``linkerd``, ``consul``)."""
        return self.graph.mesh

    def host(self, key: ServiceKey, namespace: str) -> str:
        """How an object in ``namespace`` names a Service (short in its own namespace)."""
        if key.namespace == namespace:
            return key.name
        return self.fqdn(key)

    def fqdn(self, key: ServiceKey) -> str:
        """The Service's fully qualified name."""
        return f"{key.name}.{key.namespace}.svc.{self.cluster_domain}"

    def principal(self, namespace: str, service_account: str) -> str:
        """An identity in Istio's principal form (SPIFFE id without ``spiffe://``)."""
        return f"{self.trust_domain}/ns/{namespace}/sa/{service_account}"

    def index_policies(self) -> None:
        """Remember each Service's destination policy (sorted: the first by key wins)."""
        for dp in self.graph.of(DestinationPolicy):
            if dp.service:
                self.policies.setdefault(dp.service, dp)


def match_labels(selector: Labels | None) -> dict[str, dict[str, str]]:
    """A ``selector`` member (``{matchLabels: ...}``), empty for namespace-wide objects."""
    if not selector:
        return {}
    return {"selector": {"matchLabels": dict(selector)}}


def istio_duration(text: str) -> str | None:
    """A duration in protobuf's canonical form (``1.5s``, ``0.1s``), or None when it does not
    parse or is under the 1 ms the Istio 1.30 CRDs accept (``duration(self) >= 1ms``)."""
    ms = to_millis(text)
    if ms is None or ms < 1:
        return None
    seconds, millis = divmod(ms, 1000)
    return f"{seconds}s" if millis == 0 else f"{seconds}.{millis:03d}".rstrip("0") + "s"
