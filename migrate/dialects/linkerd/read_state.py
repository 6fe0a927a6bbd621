"""What the Linkerd reader collects while it reads objects one by one.

Linkerd objects refer to each other by name (an AuthorizationPolicy names a Server or an
HTTPRoute and its authentications; a ServiceProfile overrides a Service's HTTPRoutes; a
ServerAuthorization picks Servers by label). Handlers therefore read and account for their
own fields, record the parsed facts here, and :mod:`read_finish` resolves the references
once every object is in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from typing import Any

from migrate.ir.graph import MeshGraph
from migrate.ir.model import (
    AuthzOperation,
    AuthzSource,
    FeatureUse,
    Labels,
    Origin,
    OutlierDetection,
    Retry,
    Route,
    ServiceKey,
    labels,
)
from migrate.losses import ObjectRef


@dataclass(frozen=True)
class RoutePolicy:
    """Timeout and retry a Linkerd client applies to a route (from annotations)."""

    timeout: str = ""
    retry: Retry | None = None
    paths: tuple[str, ...] = ()
    """Annotation paths that set it (for shadowing losses)."""

    def __bool__(self) -> bool:
        return bool(self.timeout or self.retry)


@dataclass
class OutboundRoute:
    """A route with Service parents (GAMMA): client-side routing in Linkerd."""

    route: Route
    """The IR route, hosts = every Service parent; rules most specific first."""
    annotations: RoutePolicy
    """The route's own retry/timeout annotations (they beat the Service's)."""
    uses: list[FeatureUse] = field(default_factory=list)
    """Feature uses, recorded only if the route is not shadowed."""
    http: bool = True
    """HTTP or gRPC (a ServiceProfile overrides these); False for TCP/TLS routes."""


@dataclass
class InboundRoute:
    """A route with Server parents: the request classes route-scoped authorization uses."""

    ref: ObjectRef
    servers: tuple[str, ...]
    operations: tuple[AuthzOperation, ...]
    """Paths and methods, one alternative per match; empty means every request."""
    narrowing: tuple[str, ...] = ()
    """Features that narrow the matches but have no authorization form (regex, headers)."""


@dataclass
class ServerFacts:
    """A Server: the pods, the port and what is allowed when nothing else authorizes."""

    ref: ObjectRef
    selector: dict[str, Any]
    """The raw podSelector (matchLabels / matchExpressions)."""
    port: int | str | None
    access_policy: str
    labels: dict[str, str]
    external: bool = False


@dataclass
class AuthnFacts:
    """A MeshTLSAuthentication or NetworkAuthentication, as source alternatives."""

    ref: ObjectRef
    sources: tuple[AuthzSource, ...] = ()
    """Identity alternatives (MeshTLS); OR."""
    ip_blocks: tuple[str, ...] = ()
    """Networks (NetworkAuthentication)."""
    narrowing: tuple[str, ...] = ()


@dataclass
class PolicyFacts:
    """An AuthorizationPolicy: a target and the authentications it requires (AND)."""

    ref: ObjectRef
    target_group: str
    target_kind: str
    target_name: str
    authn: tuple[tuple[str, str, str, str], ...]
    """(kind, namespace, name, field path) of each required authentication."""


@dataclass
class ServerAuthzFacts:
    """A ServerAuthorization: Servers by name or label selector and the allowed clients."""

    ref: ObjectRef
    server_name: str
    server_selector: dict[str, Any] | None
    sources: tuple[AuthzSource, ...]
    narrowing: tuple[str, ...] = ()


@dataclass
class ProfileFacts:
    """A ServiceProfile (or a TrafficSplit, which linkerd-smi turns into one)."""

    ref: ObjectRef
    service: ServiceKey
    route: Route | None
    """None when the profile has neither routes nor dstOverrides (then it overrides nothing)."""
    uses: list[FeatureUse] = field(default_factory=list)


@dataclass
class WorkloadFacts:
    """The pod template facts the default inbound policy needs."""

    ref: ObjectRef
    pod_labels: dict[str, str]
    default_policy: str
    """The pod's own ``default-inbound-policy`` ('' when it inherits)."""
    require_identity: tuple[int, ...]
    ports: dict[str, int]
    """Named container ports."""
    numbers: frozenset[int]
    meta_path: str
    """Path of the pod template metadata (for losses)."""


@dataclass
class ServiceFacts:
    """A Service's selector, ports and the client settings its annotations carry."""

    ref: ObjectRef
    selector: dict[str, str]
    ports: tuple[tuple[int, int | str | None], ...]
    """(port, targetPort) pairs."""
    policy: RoutePolicy
    outlier: OutlierDetection | None
    uses: list[FeatureUse] = field(default_factory=list)
    """Uses of the retry/timeout/failure-accrual annotations (dropped when shadowed)."""


@dataclass
class NamespaceFacts:
    """A Namespace's default inbound policy and identity-required ports."""

    ref: ObjectRef
    default_policy: str
    require_identity: tuple[int, ...]


@dataclass
class LinkerdState:
    """Everything collected during one read."""

    services: dict[ServiceKey, ServiceFacts] = field(default_factory=dict)
    namespaces: dict[str, NamespaceFacts] = field(default_factory=dict)
    workloads: list[WorkloadFacts] = field(default_factory=list)
    outbound: dict[ObjectRef, OutboundRoute] = field(default_factory=dict)
    inbound: dict[tuple[str, str, str], InboundRoute] = field(default_factory=dict)
    """(namespace, kind, name) -> route; kind is HTTPRoute or GRPCRoute."""
    servers: dict[tuple[str, str], ServerFacts] = field(default_factory=dict)
    authn: dict[tuple[str, str, str], AuthnFacts] = field(default_factory=dict)
    """(kind, namespace, name) -> authentication."""
    policies: list[PolicyFacts] = field(default_factory=list)
    server_authz: list[ServerAuthzFacts] = field(default_factory=list)
    profiles: dict[ServiceKey, list[ProfileFacts]] = field(default_factory=dict)
    unauthenticated: set[tuple[str, str]] = field(default_factory=set)
    """Servers (namespace, name) some authorization opens to clients without identity."""


def selector_matches(selector: dict[str, Any] | None, have: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels + matchExpressions) picks ``have``."""
    if selector is None:
        return False
    for key, value in _match_labels(selector).items():
        if have.get(str(key)) != str(value):
            return False
    for expr in _expressions(selector):
        if not isinstance(expr, dict):
            return False
        key, op = str(expr.get("key", "")), str(expr.get("operator", ""))
        values = {str(v) for v in _values(expr)}
        if op == "In" and have.get(key) not in values:
            return False
        if op == "NotIn" and key in have and have[key] in values:
            return False
        if op == "Exists" and key not in have:
            return False
        if op == "DoesNotExist" and key in have:
            return False
    return True


def selector_alternatives(selector: dict[str, Any]) -> tuple[Labels, ...] | None:
    """A label selector as matchLabels alternatives (OR), or None when not expressible.

    IR selectors are matchLabels only. ``In`` expressions expand exactly into one
    alternative per value (the cartesian product for several); ``NotIn``, ``Exists`` and
    ``DoesNotExist`` have no such form.
    """
    base = {str(k): str(v) for k, v in _match_labels(selector).items()}
    choices: list[list[tuple[str, str]]] = []
    for expr in _expressions(selector):
        if not isinstance(expr, dict) or expr.get("operator") != "In":
            return None
        key = str(expr.get("key", ""))
        values = sorted({str(v) for v in _values(expr)})
        if not values:
            return None
        choices.append([(key, v) for v in values])
    out = []
    for combo in product(*choices):
        merged = dict(base)
        conflict = False
        for key, value in combo:
            if merged.get(key, value) != value:
                conflict = True
            merged[key] = value
        if not conflict:
            out.append(labels(merged))
    return tuple(sorted(set(out)))


def _match_labels(selector: dict[str, Any]) -> dict[str, Any]:
    value = selector.get("matchLabels")
    return value if isinstance(value, dict) else {}


def _expressions(selector: dict[str, Any]) -> list[Any]:
    value = selector.get("matchExpressions")
    return value if isinstance(value, list) else []


def _values(expr: dict[str, Any]) -> list[Any]:
    value = expr.get("values")
    return value if isinstance(value, list) else []


class Names:
    """Unique record names per (record type, namespace), handed out in a stable order."""

    def __init__(self) -> None:
        self.used: set[tuple[str, str, str]] = set()

    def claim(self, kind: str, namespace: str, name: str) -> str:
        """``name``, or ``name-2``, ``name-3``... when it is taken."""
        candidate, n = name, 2
        while (kind, namespace, candidate) in self.used:
            candidate, n = f"{name}-{n}", n + 1
        self.used.add((kind, namespace, candidate))
        return candidate


def sorted_refs(refs: list[ObjectRef]) -> list[ObjectRef]:
    """Object references in (namespace, kind, name) order."""
    return sorted(refs, key=lambda r: (r.namespace, r.kind, r.name))


def note_use(graph: MeshGraph, feature: str, ref: ObjectRef, path: str, detail: str = "") -> None:
    """Record a feature use at a field of an object (for records built after reading)."""
    graph.use(FeatureUse(feature, Origin(ref, path), detail))
