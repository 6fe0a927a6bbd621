"""ConsulReader: consul-k8s 2.0 objects (consul.hashicorp.com/v1alpha1) and the Kubernetes
kinds around them into the IR.

Every kind in consul-k8s 2.0's CRDs (../shared/crds/consul) has a handler: the config entries
the IR can carry are parsed (read_defaults, read_routing, read_intentions), the rest are
reported whole (read_gateways), as are Gateway API objects (Consul's API gateway). Config
entries name Consul services, so the IR records are built in :meth:`ConsulReader.finish`
once every Kubernetes Service and pod is known (read_finish). ``auth.consul.hashicorp.com``
(TrafficPermissions, the abandoned v2 catalog) is not read: nothing in the v1 catalog applies
it (mapping-consul-others.md 1.1).
"""

from __future__ import annotations

from typing import Any

from migrate.dialects.base import Reader, ReadResult
from migrate.dialects.consul.read_common import GROUP
from migrate.dialects.consul.read_defaults import (
    read_mesh,
    read_proxy_defaults,
    read_service_defaults,
)
from migrate.dialects.consul.read_finish import finish
from migrate.dialects.consul.read_gateways import (
    FEATURE_OF_KIND,
    GATEWAY_API,
    GATEWAY_API_KINDS,
    read_gateway_api,
    read_opaque,
    read_terminating_gateway,
)
from migrate.dialects.consul.read_intentions import read_service_intentions
from migrate.dialects.consul.read_jwt import read_jwt_provider
from migrate.dialects.consul.read_routing import (
    read_service_resolver,
    read_service_router,
    read_service_splitter,
)
from migrate.dialects.consul.read_state import ConsulState
from migrate.dialects.consul.read_workloads import (
    INJECT,
    in_inject_scope,
    namespace_labels,
    workload_annotations,
)
from migrate.dialects.fields import Fields
from migrate.errors import InputProblem
from migrate.ir.graph import MeshGraph
from migrate.ir.model import Workload
from migrate.losses import LossLog, ObjectRef, Severity
from migrate.sources.model import SourceResult

DEFAULT_INTENTIONS = ("allow", "deny")


class ConsulReader(Reader):
    """Reads Consul service mesh (consul-k8s) configuration."""

    MESH = "consul"
    MESH_GROUPS = (GROUP,)
    """Groups whose presence in a cluster means consul-k8s is installed."""
    GROUPS = {
        GROUP: frozenset({"v1alpha1"}),
        # consul-k8s 2.0 ships Gateway API v1.5.1 for its API gateway.
        GATEWAY_API: frozenset({"v1", "v1beta1", "v1alpha2", "v1alpha3"}),
    }
    HANDLERS = {
        (GROUP, "ServiceDefaults"): read_service_defaults,
        (GROUP, "ProxyDefaults"): read_proxy_defaults,
        (GROUP, "Mesh"): read_mesh,
        (GROUP, "ServiceIntentions"): read_service_intentions,
        (GROUP, "ServiceRouter"): read_service_router,
        (GROUP, "ServiceSplitter"): read_service_splitter,
        (GROUP, "ServiceResolver"): read_service_resolver,
        **{(GROUP, kind): read_opaque for kind in FEATURE_OF_KIND},
        (GROUP, "TerminatingGateway"): read_terminating_gateway,
        (GROUP, "JWTProvider"): read_jwt_provider,
        **{(GATEWAY_API, kind): read_gateway_api for kind in GATEWAY_API_KINDS},
    }

    # Consul keeps these in its Helm values and ACL configuration, which a dump of the
    # cluster's objects does not hold: they come from flags (or their defaults), recorded
    # in the plan as such.
    SETTINGS = ("trust_domain", "consul_default_intention", "consul_inject_default",
                "consul_allow_namespaces", "consul_deny_namespaces")

    def __init__(self, losses: LossLog, problems: list[InputProblem],
                 default_intention: str = "deny", trust_domain: str = "cluster.local",
                 inject_default: bool = False, allow_namespaces: tuple[str, ...] = ("*",),
                 deny_namespaces: tuple[str, ...] = ()) -> None:
        super().__init__(losses, problems)
        if default_intention not in DEFAULT_INTENTIONS:
            raise ValueError(f"default_intention must be allow or deny, not {default_intention!r}")
        self.default_intention = default_intention
        """What Consul does with traffic no intention matches: the ACL default policy (deny
        when the Helm chart manages ACLs) -- an install setting, not an object."""
        self.trust_domain = trust_domain
        """Trust domain written into IR principals (``<td>/ns/<ns>/sa/<sa>``)."""
        self.inject_default = inject_default
        """Helm ``connectInject.default``: every pod is injected unless it opts out."""
        self.allow_namespaces = tuple(allow_namespaces)
        """Helm ``connectInject.k8sAllowNamespaces`` (the chart's default: ``*``)."""
        self.deny_namespaces = tuple(deny_namespaces)
        """Helm ``connectInject.k8sDenyNamespaces`` (the chart's default: none)."""
        self.state = ConsulState()

    def read(self, source: SourceResult) -> ReadResult:
        """Read the objects, then resolve Consul names (see :meth:`finish`)."""
        self.state = ConsulState()
        return super().read(source)

    def finish(self, graph: MeshGraph) -> None:
        """Build the records that depend on several objects (names resolved)."""
        finish(self, graph)

    def found_mesh(self, result: ReadResult) -> bool:
        """Consul's own objects, or a workload Consul injects (``connect-inject: "true"``, or
        the Helm default ``--consul-inject-default`` asserts).

        Namespaces do not count: consul-k8s has no namespace label, and with
        ``--consul-inject-default`` every namespace would look injected, whatever the input.
        """
        return self.has_own_objects(result) or any(
            w.injection == "sidecar" for w in result.graph.of(Workload))

    # -- injection, called by the core-kinds reader ---------------------------------------
    def namespace_injection(self, f: Fields, labels: dict[str, Any], ann: dict[str, Any]) -> str:
        """consul-k8s has no namespace injection label: the Helm default decides, within the
        namespaces the injector may touch."""
        namespace_labels(f, labels)
        if not in_inject_scope(f.ref.name, self.allow_namespaces, self.deny_namespaces):
            return "none"
        return "sidecar" if self.inject_default else "none"

    def workload_injection(self, f: Fields, labels: dict[str, Any], ann: dict[str, Any]) -> str:
        """``consul.hashicorp.com/connect-inject`` on the pod template: ``"false"`` always
        wins, ``"true"`` only inside the namespaces the injector may touch."""
        workload_annotations(f, ann)
        inject = str(ann.get(INJECT, "")).strip().lower()
        if inject == "false":
            return "none"
        # fact: consul.connect-inject-scope
        if not in_inject_scope(f.ref.namespace, self.allow_namespaces, self.deny_namespaces):
            return "none"
        if inject == "true":
            return "sidecar"
        # consul-k8s has no namespace-level injection marker: without the annotation the Helm
        # connectInject.default decides, whether or not the input shows the Namespace.
        return "sidecar" if self.inject_default else "none"

    # -- shared reporting -----------------------------------------------------------------
    def unresolved(self, ref: ObjectRef, path: str, name: str, consequence: str) -> None:
        """A Consul service name with no Kubernetes Service in the input."""
        self.losses.report(
            "CONSUL_SERVICE_UNRESOLVED", Severity.MANUAL, "input", ref, path,
            f"Consul service '{name}' matches no Kubernetes Service in the input (consul-k8s "
            f"registers pods under their Service's name or connect-service); {consequence}",
            "Add the Service and its Deployment to the input (or delete the stale config "
            "entry) and re-run.")
