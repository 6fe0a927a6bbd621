"""IR records: namespaces, services, workloads, routes, destination policies, mTLS and
authorization, each tied to the source object and field it came from (:class:`Origin`).

Records are frozen dataclasses holding tuples, so they can be shared, hashed and compared.
Features a record uses are listed as :class:`FeatureUse` entries; the capability check
(:mod:`migrate.check`) turns the ones a target lacks into losses, so a writer never has to
remember to warn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from migrate.losses import ObjectRef

Labels = tuple[tuple[str, str], ...]
"""A label set as sorted (key, value) pairs: hashable and order-stable."""


def labels(mapping: Mapping[str, object] | None) -> Labels:
    """Sorted, hashable labels from a mapping (values turned into strings)."""
    return tuple(sorted((str(k), str(v)) for k, v in (mapping or {}).items()))


@dataclass(frozen=True, order=True, slots=True)
class Origin:
    """Where a fact came from: the source object and the field path inside it."""

    ref: ObjectRef
    path: str
    """JSON-style path in the source's own vocabulary, e.g. ``spec.http[1].route[0]``."""


@dataclass(frozen=True, slots=True)
class FeatureUse:
    """A use of a model feature (a key of mappings/features.yaml) at one origin."""

    feature: str
    origin: Origin
    detail: str = ""
    """Specifics for the message, e.g. the mirror host."""


@dataclass(frozen=True, order=True, slots=True)
class ServiceKey:
    """A Kubernetes Service by namespace and name."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Namespace:
    """A namespace and its data-plane (injection) state in the source mesh."""

    name: str
    labels: Labels
    annotations: Labels
    injection: str
    """``sidecar``, ``ambient``, ``revision:<rev>`` or ``none``."""
    origin: Origin | None


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of a Service."""

    port: int
    name: str = ""
    target_port: int | str | None = None
    protocol: str = "TCP"
    app_protocol: str = ""

    @property
    def l7(self) -> str:
        """Application protocol as Istio infers it: http, http2, grpc, tcp, tls, or unknown."""
        proto = (self.app_protocol or self.name.split("-", 1)[0]).lower()
        for known in ("grpc-web", "grpc", "http2", "https", "http", "tls", "tcp", "mongo",
                      "mysql", "redis"):
            if proto == known or proto.startswith(known + "-"):
                return {"grpc-web": "http", "https": "tls", "mongo": "tcp", "mysql": "tcp",
                        "redis": "tcp", "kubernetes.io/h2c": "http2"}.get(known, known)
        if proto == "kubernetes.io/h2c":
            return "http2"
        return "unknown"


@dataclass(frozen=True, slots=True)
class Service:
    """A Kubernetes Service."""

    key: ServiceKey
    ports: tuple[ServicePort, ...]
    selector: Labels
    labels: Labels
    headless: bool
    origin: Origin
    raw_spec_type: str = "ClusterIP"
    mesh_protocol: str = ""
    """Protocol the source mesh declares for the whole Service (Consul ServiceDefaults /
    ProxyDefaults ``protocol``: http, http2, grpc or tcp); empty when the mesh infers it
    from the ports."""
    protocol_origin: Origin | None = None
    """Where ``mesh_protocol`` was declared (None: Consul's default, tcp, or no declaration):
    the object the ledger credits with what the target does about the protocol."""


@dataclass(frozen=True, slots=True)
class Probe:
    """An HTTP probe kubelet sends to a container (needs authorizing under Linkerd routes)."""

    path: str
    port: int | str


@dataclass(frozen=True, slots=True)
class Rollout:
    """How a workload's pods are replaced when it restarts: what decides whether a restart
    has downtime (``migrate.plan.disruption``)."""

    replicas: int | None
    """``spec.replicas``; None when not set (the API server's default is 1)."""
    strategy: str
    """``RollingUpdate``, ``Recreate`` or ``OnDelete`` (the kind's default when not set)."""
    max_surge: int | str | None = None
    max_unavailable: int | str | None = None
    partition: int = 0
    """A StatefulSet's ``rollingUpdate.partition``: pods below this ordinal are not updated."""


@dataclass(frozen=True, slots=True)
class DisruptionBudget:
    """A PodDisruptionBudget: which pods it covers and how many may be evicted."""

    namespace: str
    name: str
    selector: str
    """The label selector as canonical JSON (matchLabels and matchExpressions)."""
    min_available: int | str | None
    max_unavailable: int | str | None
    origin: Origin


@dataclass(frozen=True, slots=True)
class Workload:
    """A pod template owner (Deployment, StatefulSet, DaemonSet) or a bare Pod."""

    kind: str
    namespace: str
    name: str
    service_account: str
    pod_labels: Labels
    pod_annotations: Labels
    ports: tuple[tuple[str, int], ...]
    """Container ports as (name, number)."""
    probes: tuple[Probe, ...]
    injection: str
    """``sidecar``, ``ambient``, ``none`` or ``inherit`` (decided by the namespace)."""
    calls: tuple[tuple[str, str], ...]
    """Hosts named in container env values as (host, env var path)."""
    origin: Origin
    rollout: Rollout | None = None
    """How a restart replaces its pods (None for a bare Pod, a Job or a CronJob)."""

    @property
    def ref(self) -> ObjectRef:
        """The workload as a Kubernetes object."""
        return self.origin.ref


@dataclass(frozen=True, slots=True)
class StringMatch:
    """An exact, prefix or regex string match (Istio StringMatch)."""

    kind: str
    """``exact``, ``prefix``, ``regex`` or ``present``."""
    value: str = ""


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """One match block of a route rule; all present conditions must hold (AND)."""

    path: StringMatch | None = None
    ignore_case: bool = False
    method: StringMatch | None = None
    headers: tuple[tuple[str, StringMatch], ...] = ()
    query: tuple[tuple[str, StringMatch], ...] = ()
    port: int | None = None
    origin_path: str = ""


@dataclass(frozen=True, slots=True)
class HeaderOps:
    """Header changes: set (replace), add (append) and remove."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.set or self.add or self.remove)


@dataclass(frozen=True, slots=True)
class Backend:
    """A weighted destination of a rule."""

    service: ServiceKey | None
    """None when the host is not a Kubernetes Service (external or unknown)."""
    host: str
    subset: str = ""
    port: int | None = None
    weight: int | None = None
    request_headers: HeaderOps = field(default_factory=HeaderOps)
    response_headers: HeaderOps = field(default_factory=HeaderOps)
    origin_path: str = ""


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry policy of a rule."""

    attempts: int
    per_try_timeout: str = ""
    retry_on: tuple[str, ...] = ()
    origin_path: str = ""
    field_paths: tuple[tuple[str, str], ...] = ()
    """Source paths of single settings that are not ``origin_path`` plus Istio's key (Linkerd
    keeps each setting in its own annotation): (Istio key, path), e.g. ``("perTryTimeout",
    "metadata.annotations.retry.linkerd.io/timeout")``."""

    def path_of(self, key: str) -> str:
        """Where the source set one retry setting, named by its Istio key (``perTryTimeout``,
        ``retryOn``, ``attempts``): for losses about that setting."""
        return dict(self.field_paths).get(key) or f"{self.origin_path}.{key}"


@dataclass(frozen=True, slots=True)
class Redirect:
    """An HTTP redirect answered by the proxy."""

    path: str = ""
    authority: str = ""
    port: int | None = None
    scheme: str = ""
    code: int = 301
    origin_path: str = ""


@dataclass(frozen=True, slots=True)
class Rewrite:
    """Changes the proxy makes to a forwarded request: its path and its authority (Host).

    ``prefix`` has Envoy's ``prefix_rewrite`` meaning, which Istio's ``rewrite.uri`` and
    Consul's ``prefixRewrite`` both compile to (istio/istio
    pilot/pkg/networking/core/route/route.go: ``action.PrefixRewrite = in.Rewrite.GetUri()``;
    hashicorp/consul agent/xds/routes.go: ``routeAction.Route.PrefixRewrite =
    destination.PrefixRewrite``): the part of the path the rule's match matched is replaced,
    i.e. the prefix under a prefix match (or no path match: an implicit prefix ``/``) and the
    whole path under an exact or regex match. ``full_path`` replaces the whole path whatever
    the match (Gateway API ``ReplaceFullPath``). At most one of the two is set.
    """

    prefix: str = ""
    full_path: str = ""
    authority: str = ""
    origin_path: str = ""
    """Where the path rewrite was set (the whole rewrite when there is none)."""
    authority_path: str = ""
    """Where the authority rewrite was set."""

    def __bool__(self) -> bool:
        return bool(self.prefix or self.full_path or self.authority)


@dataclass(frozen=True)
class Rule:
    """One ordered rule of a route (Istio: first match in list order wins)."""

    index: int
    name: str
    matches: tuple[RouteMatch, ...]
    """Empty means: matches every request."""
    backends: tuple[Backend, ...]
    timeout: str = ""
    retry: Retry | None = None
    request_headers: HeaderOps = field(default_factory=HeaderOps)
    response_headers: HeaderOps = field(default_factory=HeaderOps)
    redirect: Redirect | None = None
    origin_path: str = ""
    rewrite: Rewrite | None = None
    """Path/authority changes before forwarding; None when the rule forwards unchanged."""


@dataclass(frozen=True)
class Route:
    """Routing for one or more hosts: HTTP, TCP or TLS rules in the source's order."""

    namespace: str
    name: str
    protocol: str
    """``http``, ``tcp`` or ``tls``."""
    hosts: tuple[ServiceKey, ...]
    """Mesh Services the rules attach to (their parents)."""
    rules: tuple[Rule, ...]
    ingress: bool
    """Bound to an ingress gateway rather than (or besides) the mesh."""
    mesh: bool
    """Applies to sidecar (mesh) traffic."""
    gateways: tuple[str, ...]
    origin: Origin


@dataclass(frozen=True, slots=True)
class Subset:
    """A named subset of a Service's endpoints, selected by labels."""

    name: str
    labels: Labels
    origin_path: str


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    """Passive health checking (endpoint ejection after consecutive failures)."""

    consecutive_errors: int | None
    base_ejection_time: str
    origin_path: str


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """Client-side policy for traffic to a Service: subsets, TLS, balancing, ejection."""

    namespace: str
    name: str
    service: ServiceKey | None
    host: str
    subsets: tuple[Subset, ...]
    tls_mode: str
    """``ISTIO_MUTUAL``, ``SIMPLE``, ``MUTUAL``, ``DISABLE`` or empty."""
    outlier: OutlierDetection | None
    origin: Origin
    consistent_hash: ConsistentHash | None = None
    connect_timeout: str = ""
    """A duration (``5s``); empty when not set."""


@dataclass(frozen=True, slots=True)
class ConsistentHash:
    """Session affinity: what a request is hashed on and the hashing algorithm."""

    key: str
    """``header``, ``cookie``, ``query``, ``source_ip``, or empty (the algorithm alone)."""
    name: str = ""
    cookie_ttl: str = ""
    cookie_path: str = ""
    algorithm: str = "ring_hash"
    """``ring_hash`` or ``maglev``."""
    minimum_ring_size: int | None = None
    origin_path: str = ""
    left_out: str = ""
    """What the source said that this record does not hold (reported by a writer)."""


@dataclass(frozen=True, slots=True)
class MTLSPolicy:
    """Inbound mTLS mode for a namespace or the workloads a selector picks."""

    namespace: str
    name: str
    selector: Labels | None
    """None means namespace-wide."""
    mode: str
    """``STRICT``, ``PERMISSIVE``, ``DISABLE`` or ``UNSET``."""
    port_modes: tuple[tuple[int, str], ...]
    mesh_wide: bool
    origin: Origin


@dataclass(frozen=True, slots=True)
class AuthzSource:
    """One ``from.source`` alternative: its fields must all hold (AND)."""

    principals: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = ()
    """``namespace/name`` pairs."""
    ip_blocks: tuple[str, ...] = ()
    origin_path: str = ""


@dataclass(frozen=True, slots=True)
class AuthzOperation:
    """One ``to.operation`` alternative: its fields must all hold (AND)."""

    ports: tuple[int, ...] = ()
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    origin_path: str = ""


@dataclass(frozen=True, slots=True)
class JwtRequirement:
    """A valid JWT a request must carry: issued by one of ``issuers``, with every claim."""

    issuers: tuple[str, ...]
    claims: tuple[tuple[tuple[str, ...], str], ...] = ()
    """(claim path, value) pairs that must all hold."""
    origin_path: str = ""


@dataclass(frozen=True, slots=True)
class JwtProvider:
    """Who issues tokens and how a proxy validates them (Consul JWTProvider, Istio jwtRules)."""

    namespace: str
    name: str
    issuer: str
    audiences: tuple[str, ...]
    jwks_uri: str
    jwks: str
    """An inline key set (JSON), when the source holds one."""
    from_headers: tuple[tuple[str, str], ...]
    """(header name, value prefix) the token is read from; empty: the default header."""
    from_params: tuple[str, ...]
    forward: bool
    payload_header: str
    origin: Origin


@dataclass(frozen=True, slots=True)
class AuthzRule:
    """Sources (OR) AND operations (OR). Empty sources/operations mean any."""

    sources: tuple[AuthzSource, ...]
    operations: tuple[AuthzOperation, ...]
    origin_path: str
    inexpressible: tuple[str, ...] = ()
    """Features that narrow this rule but have no model (conditions, negations, JWT
    principals...). Writers leave such a rule out: failing closed refuses more requests
    than the source did, where keeping it without them would allow more."""
    jwt: JwtRequirement | None = None
    """The JWT the rule requires, when it is the only narrowing a writer may carry (the
    JWT feature then stays in ``inexpressible`` for writers that cannot)."""


@dataclass(frozen=True, slots=True)
class AuthzPolicy:
    """An authorization policy on the workloads a selector picks (None: namespace-wide)."""

    namespace: str
    name: str
    selector: Labels | None
    action: str
    """``ALLOW``, ``DENY``, ``AUDIT`` or ``CUSTOM``."""
    rules: tuple[AuthzRule, ...]
    mesh_wide: bool
    origin: Origin


@dataclass(frozen=True, slots=True)
class Opaque:
    """A source object with no model here (EnvoyFilter, ServiceEntry, ...): reported only."""

    kind: str
    namespace: str
    name: str
    origin: Origin
    hosts: tuple[str, ...] = ()
    role: str = ""
    """``ingress`` for a gateway that takes traffic into the mesh (the plan's ingress step
    replaces it), ``egress`` for one that takes it out (it stays in the data path of the
    source mesh's pods until they moved, and goes at cleanup), else empty."""


@dataclass(frozen=True, slots=True)
class ExternalPort:
    """A port of an external service, with its protocol in Istio's names (``HTTP``,
    ``HTTPS``, ``HTTP2``, ``GRPC``, ``TLS``, ``TCP``)."""

    number: int
    protocol: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class ExternalService:
    """A destination outside the mesh its workloads reach by host name or address (Istio
    ServiceEntry with ``location: MESH_EXTERNAL``, Consul ServiceDefaults ``destination``,
    Linkerd routes attached to an EgressNetwork).

    Meshes that keep a registry (Istio, Consul) need it to name or allow the host; Linkerd lets
    such traffic out as it is unless an EgressNetwork denies it.
    """

    namespace: str
    name: str
    hosts: tuple[str, ...]
    """DNS names; a leading ``*.`` is a wildcard."""
    addresses: tuple[str, ...]
    """IP addresses or CIDR blocks."""
    ports: tuple[ExternalPort, ...]
    resolution: str
    """``DNS`` (the proxy resolves the hosts), ``STATIC`` or ``NONE`` (the address the
    application dialed is used), in Istio's terms (``DNS_ROUND_ROBIN``, ``DYNAMIC_DNS`` too)."""
    exported: bool
    """Visible to every namespace (Istio's default ``exportTo: ["*"]``); False: only its own."""
    origin: Origin


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Whether proxies may reach destinations the mesh does not know: Istio's
    ``outboundTrafficPolicy`` (a Sidecar, or the mesh config), Consul's
    ``Mesh.transparentProxy.meshDestinationsOnly``, a Linkerd EgressNetwork's ``trafficPolicy``.
    """

    namespace: str
    name: str
    mode: str
    """``REGISTRY_ONLY`` (unknown destinations are refused) or ``ALLOW_ANY``."""
    mesh_wide: bool
    """Applies to every namespace (Istio root namespace, Consul Mesh entry, Linkerd's global
    egress namespace); False: to the workloads of ``namespace`` only."""
    origin: Origin
