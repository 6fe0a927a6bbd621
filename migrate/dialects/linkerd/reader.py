"""LinkerdReader: Linkerd edge-26.x / 2.20 configuration (and the Kubernetes kinds around it)
into the mesh-neutral IR.

API versions follow the CRDs of linkerd edge-26.8.3 (../shared/crds/linkerd), linkerd-smi
v0.2.7 (TrafficSplit; the SMI spec also published v1alpha3/v1alpha4) and Gateway API (the
route kinds Linkerd reads for GAMMA). Objects are read one by one (``read_*`` modules record
what they found in :class:`LinkerdState`); :func:`read_finish.finish` resolves the names
they use for each other and adds the IR records.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from migrate.dialects import kube
from migrate.dialects.linkerd import install
from migrate.dialects.base import Reader, ReadResult
from migrate.dialects.fields import Fields
from migrate.dialects.kube import POD_TEMPLATE
from migrate.dialects.linkerd import read_annotations as ann
from migrate.dialects.linkerd.read_egress import (
    EgressNetworkFacts,
    EgressRoute,
    finish_egress,
    read_egress_network,
)
from migrate.dialects.linkerd.read_finish import finish
from migrate.dialects.linkerd.read_multicluster import GROUP as MULTICLUSTER
from migrate.dialects.linkerd.read_multicluster import (
    exported_detail,
    mirrored_detail,
    read_link,
    split_mirrored,
)
from migrate.dialects.linkerd.read_opaque import read_opaque
from migrate.dialects.linkerd.read_policy import (
    read_authorization_policy,
    read_mesh_tls_authentication,
    read_network_authentication,
    read_server,
    read_server_authorization,
)
from migrate.dialects.linkerd.read_routes import read_gateway_object, read_route
from migrate.dialects.linkerd.read_serviceprofile import read_service_profile, read_traffic_split
from migrate.dialects.linkerd.read_state import (
    LinkerdState,
    NamespaceFacts,
    ServiceFacts,
    WorkloadFacts,
)
from migrate.errors import InputProblem
from migrate.install import InstallSetting
from migrate.ir.graph import MeshGraph
from migrate.ir.model import FeatureUse, ServiceKey
from migrate.losses import LossLog, Severity
from migrate.sources.model import CLUSTER_SCOPED, RawObject, SourceResult
from migrate.wording import counted

POLICY, LINKERD, WORKLOAD, SPLIT, GW = ("policy.linkerd.io", "linkerd.io", "workload.linkerd.io",
                                        "split.smi-spec.io", "gateway.networking.k8s.io")

# linkerd2 charts/linkerd-control-plane/values.yaml ``clusterNetworks`` (the install default);
# the cluster-* default policies admit exactly these client networks.
_OPAQUE_APP_PROTOCOLS = ("linkerd.io/opaque", "linkerd.io/tcp")
DEFAULT_CLUSTER_NETWORKS = ("10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16",
                            "fd00::/8")


class LinkerdReader(Reader):
    """Reads Linkerd configuration."""

    MESH = "linkerd"
    MESH_GROUPS = (POLICY, LINKERD, WORKLOAD)
    """Groups whose presence in a cluster means Linkerd is installed (SMI and Gateway API
    are installed for other meshes too)."""
    GROUPS = {
        POLICY: frozenset({"v1alpha1", "v1beta1", "v1beta2", "v1beta3"}),
        LINKERD: frozenset({"v1alpha1", "v1alpha2"}),
        WORKLOAD: frozenset({"v1alpha1", "v1beta1"}),
        SPLIT: frozenset({"v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4"}),
        GW: frozenset({"v1", "v1beta1", "v1alpha2", "v1alpha3"}),
        MULTICLUSTER: frozenset({"v1alpha1", "v1alpha2", "v1alpha3"}),
    }
    HANDLERS = {
        (POLICY, "Server"): read_server,
        (POLICY, "ServerAuthorization"): read_server_authorization,
        (POLICY, "AuthorizationPolicy"): read_authorization_policy,
        (POLICY, "MeshTLSAuthentication"): read_mesh_tls_authentication,
        (POLICY, "NetworkAuthentication"): read_network_authentication,
        (POLICY, "HTTPRoute"): read_route,
        (POLICY, "GRPCRoute"): read_route,
        (POLICY, "HTTPLocalRateLimitPolicy"): read_opaque,
        (POLICY, "EgressNetwork"): read_egress_network,
        (WORKLOAD, "ExternalWorkload"): read_opaque,
        (LINKERD, "ServiceProfile"): read_service_profile,
        (SPLIT, "TrafficSplit"): read_traffic_split,
        (MULTICLUSTER, "Link"): read_link,
        **{(GW, kind): read_route for kind in (
            "HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute", "UDPRoute")},
        **{(GW, kind): read_gateway_object for kind in (
            "Gateway", "GatewayClass", "ListenerSet", "ReferenceGrant")},
    }

    SETTINGS = ("trust_domain", "linkerd_default_policy")
    INSTALL_CONFIGMAPS = (("linkerd", "linkerd-config"),)

    @classmethod
    def install_settings(cls, objects: list[RawObject]) -> list[InstallSetting]:
        """The mesh's install configuration in the input (``install.py``)."""
        return install.install_settings(objects)

    def __init__(self, losses: LossLog, problems: list[InputProblem],
                 cluster_default_policy: str = "all-unauthenticated",
                 trust_domain: str = "cluster.local", cluster_domain: str = "cluster.local",
                 control_plane_namespace: str = "linkerd",
                 cluster_networks: tuple[str, ...] = DEFAULT_CLUSTER_NETWORKS) -> None:
        super().__init__(losses, problems)
        if cluster_default_policy not in ann.POLICIES:
            raise ValueError(f"unknown default inbound policy {cluster_default_policy!r} "
                             f"(one of {', '.join(ann.POLICIES)})")
        self.cluster_default_policy = cluster_default_policy
        """The install's ``proxy.defaultInboundPolicy``."""
        self.trust_domain = trust_domain
        """Linkerd's ``identityTrustDomain``; IR principals are written in it."""
        self.cluster_domain = cluster_domain
        self.control_plane_namespace = control_plane_namespace
        self.cluster_networks = tuple(cluster_networks)
        self.state = LinkerdState()
        self.egress_networks: dict[tuple[str, str], EgressNetworkFacts] = {}
        """(namespace, name) -> EgressNetwork, for the routes attached to it."""
        self.egress_routes: list[EgressRoute] = []
        """Routes with an EgressNetwork parent, resolved by :func:`finish_egress`."""
        self.mirrored: list[FeatureUse] = []
        """A ``multicluster`` use for each mirrored or federated Service left out."""

    def read(self, source: SourceResult) -> ReadResult:
        """Read a source; the collected state starts empty for every run."""
        self.state = LinkerdState()
        self.egress_networks, self.egress_routes = {}, []
        # Mirrored and federated Services belong to other clusters: never read as local ones
        # (read_multicluster.py); their uses are added in finish().
        kept, self.mirrored = split_mirrored(source.objects)
        result = super().read(dataclasses.replace(source, objects=kept))
        result.set_aside = [raw for raw in source.objects if mirrored_detail(raw) is not None]
        self._namespace_less(result)
        return result

    def _namespace_less(self, result: ReadResult) -> None:
        """Say so when files mix objects without a namespace with objects in other namespaces.

        Objects without ``metadata.namespace`` are read into ``default``, as ``kubectl apply``
        in a default context puts them. Sets published to be applied with ``kubectl apply -n
        <ns>`` (booksapp, the linkerd2 integration fixtures) then have their workloads in
        ``default`` while their Servers and profiles name another namespace, so those select
        nothing. The reader does not guess the namespace; it reports it once, on the first
        such object, so the user can set the namespace in the files and re-run.
        """
        bare = sorted((raw for raw in result.objects if raw.source != "cluster"
                       and raw.kind not in CLUSTER_SCOPED
                       and not (raw.body.get("metadata") or {}).get("namespace")
                       and ((raw.group, raw.kind) in kube.HANDLERS
                            or (raw.group, raw.kind) in self.HANDLERS)),
                      key=lambda raw: (raw.ref.kind, raw.ref.name, raw.source, raw.line))
        explicit = sorted({str((raw.body.get("metadata") or {}).get("namespace"))
                           for raw in result.objects
                           if (raw.body.get("metadata") or {}).get("namespace")} - {"default"})
        if not bare or not explicit:
            return
        files = sorted({raw.source for raw in bare})
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        self.losses.report(
            "INPUT_NAMESPACE_MISSING", Severity.MANUAL, "input", bare[0].ref,
            "metadata.namespace",
            f"{counted(len(bare), 'object')} {'has' if len(bare) == 1 else 'have'} no namespace and "
            f"{'was' if len(bare) == 1 else 'were'} read into default (in {shown}), "
            f"while other objects name {', '.join(explicit)}; if these files are applied with "
            "kubectl apply -n, the plan puts their workloads and policies in the wrong namespace "
            "and Servers or profiles there select nothing",
            "Set metadata.namespace in the files (or render them with kustomize's namespace:) "
            "and re-run.")

    def finish(self, graph: MeshGraph) -> None:
        """Resolve cross-object references into IR records."""
        finish(self, graph)
        finish_egress(self, graph)
        for use in self.mirrored:
            graph.use(use)

    # -- injection, called by the core-kinds reader ---------------------------------------
    def namespace_injection(self, f: Fields, labels: dict[str, Any], ann_: dict[str, Any]) -> str:
        """Injection state of a namespace from ``linkerd.io/inject``."""
        return ann.injection(f, "metadata", "none")

    def workload_injection(self, f: Fields, labels: dict[str, Any], ann_: dict[str, Any]) -> str:
        """Injection override on a pod template (``inherit`` when it has none)."""
        return ann.injection(f, _meta(f), "inherit")

    # -- annotations on core kinds, called by the core-kinds reader -------------------------
    def core_extras(self, f: Fields, graph: MeshGraph) -> None:
        """Linkerd's annotations on Namespaces, Services and pod templates."""
        kind = f.ref.kind
        if kind == "Namespace":
            ann.config_uses(f, "metadata")
            self.state.namespaces[f.ref.name] = NamespaceFacts(
                f.ref, ann.default_policy(f, "metadata"), _identity_ports(f, "metadata"))
        elif kind == "Service":
            self._service(f)
        elif kind in POD_TEMPLATE:
            meta = _meta(f)
            ann.config_uses(f, meta)
            spec = f.peek(f"{meta.rsplit('metadata', 1)[0]}spec") or {}
            named, numbers = _container_ports(spec)
            pod_labels = f.peek(f"{meta}.labels") or {}
            self.state.workloads.append(WorkloadFacts(
                f.ref, {str(k): str(v) for k, v in pod_labels.items()}
                if isinstance(pod_labels, dict) else {},
                ann.default_policy(f, meta), _identity_ports(f, meta), named, numbers, meta))

    def _service(self, f: Fields) -> None:
        before = len(f.uses)
        policy = ann.route_policy(f, "metadata")
        outlier = ann.failure_accrual(f, "metadata")
        uses = f.uses[before:]
        del f.uses[before:]
        opaque = (f.peek("metadata.annotations") or {}).get("config.linkerd.io/opaque-ports") \
            if isinstance(f.peek("metadata.annotations"), dict) else None
        if opaque is not None:
            f.use("protocol.opaque", ann.ann_path("metadata", "config.linkerd.io/opaque-ports"),
                  str(opaque))
        exported = exported_detail(f)
        if exported:
            f.use("multicluster", exported[0], exported[1])
        selector = f.peek("spec.selector") or {}
        ports = []
        raw_ports = f.peek("spec.ports")
        for i, p in enumerate(raw_ports if isinstance(raw_ports, list) else []):
            if isinstance(p, dict) and isinstance(p.get("port"), int):
                target = p.get("targetPort")
                ports.append((p["port"], target if isinstance(target, (int, str)) else None))
                if p.get("appProtocol") in _OPAQUE_APP_PROTOCOLS:
                    # Linkerd 2.18+: these skip protocol detection for meshed clients.
                    f.use("protocol.opaque", f"spec.ports[{i}].appProtocol",
                          f"{p['appProtocol']} on port {p['port']}")
        self.state.services[ServiceKey(f.ref.namespace, f.ref.name)] = ServiceFacts(
            f.ref, {str(k): str(v) for k, v in selector.items()}
            if isinstance(selector, dict) else {}, tuple(ports), policy, outlier, uses)


def _meta(f: Fields) -> str:
    base = POD_TEMPLATE.get(f.ref.kind, "")
    return f"{base}.metadata" if base else "metadata"


def _identity_ports(f: Fields, meta: str) -> tuple[int, ...]:
    annotations = f.peek(f"{meta}.annotations") or {}
    if not isinstance(annotations, dict) or ann.REQUIRE_IDENTITY not in annotations:
        return ()
    path = ann.ann_path(meta, ann.REQUIRE_IDENTITY)
    ports = []
    for part in f.string(path).split(","):
        part = part.strip()
        if part.isdigit():
            ports.append(int(part))
        elif "-" in part and all(x.strip().isdigit() for x in part.split("-", 1)):
            low, high = (int(x) for x in part.split("-", 1))
            ports += list(range(low, min(high, low + 1024) + 1))
        elif part:
            f.invalid(path, f"{part!r} is not a port or port range")
    return tuple(sorted(set(ports)))


def _container_ports(spec: Any) -> tuple[dict[str, int], frozenset[int]]:
    named: dict[str, int] = {}
    numbers: set[int] = set()
    if not isinstance(spec, dict):
        return named, frozenset()
    for kind in ("containers", "initContainers"):
        containers = spec.get(kind)
        for c in containers if isinstance(containers, list) else []:
            if not isinstance(c, dict) or (kind == "initContainers"
                                           and c.get("restartPolicy") != "Always"):
                continue
            if str(c.get("name", "")).startswith("linkerd-"):
                continue  # the injected proxy's own ports are not the application's
            ports = c.get("ports")
            for p in ports if isinstance(ports, list) else []:
                if isinstance(p, dict) and isinstance(p.get("containerPort"), int):
                    numbers.add(p["containerPort"])
                    if p.get("name"):
                        named[str(p["name"])] = p["containerPort"]
    return named, frozenset(numbers)
