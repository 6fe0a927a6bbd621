"""HTTPRoute (gateway.networking.k8s.io and policy.linkerd.io), GRPCRoute, TCPRoute and
TLSRoute as Linkerd reads them.

- A Service parent (GAMMA) makes the route client-side routing: an IR :class:`Route`.
- A Server parent makes it an inbound route: the request classes a route-scoped
  AuthorizationPolicy authorizes (paths and methods), resolved in ``read_finish``.
- Linkerd ignores a whole route that uses a filter it does not support (RequestMirror,
  URLRewrite, ExtensionRef, CORS, ExternalAuth): such a route becomes nothing, and a loss
  says so (reference mapping-istio-linkerd.md 1.3, policy-controller ``routes/http.rs``).
- Gateway API picks the most specific match across rules, not the first in list order.
  The IR rule list is read first-match (an Istio writer emits it in order), so every match
  becomes its own IR rule and the rules are sorted most specific first, using the ranking
  of :func:`migrate.dialects.gatewayapi.precedence.rank`; ties keep source order, as Gateway
  API does inside one route. Several routes on one Service stay separate IR routes; Gateway
  API ranks matches across them too (then the oldest route, then the name), which a writer
  that merges them into one first-match list must repeat.

The parsing Linkerd shares with Istio's GAMMA reader (parents, matches, filters, backends,
the precedence sort) is in :mod:`migrate.dialects.gatewayapi.routes`; what only Linkerd does
(Server and EgressNetwork parents, dropping routes with unsupported filters, the parent as the
default backend, retry/timeout annotations) stays here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from migrate.dialects.fields import Fields, join
from migrate.dialects.gatewayapi.filters import read_filters
from migrate.dialects.gatewayapi.precedence import rank
from migrate.dialects.gatewayapi.routes import (
    OtherBackend,
    filter_types,
    grpc_match,
    http_match,
    mesh_parents,
    parent_backend,
    parent_refs,
    read_backends,
    sort_most_specific,
)
from migrate.dialects.linkerd.read_annotations import route_policy
from migrate.dialects.linkerd.read_egress import note_egress_route
from migrate.dialects.linkerd.read_state import InboundRoute, OutboundRoute
from migrate.ir.graph import MeshGraph
from migrate.ir.model import (
    AuthzOperation,
    Route,
    RouteMatch,
    Rule,
    ServiceKey,
)
from migrate.losses import Severity

if TYPE_CHECKING:
    from migrate.dialects.linkerd.reader import LinkerdReader

# fact: linkerd.unsupported-filter-ignores-route
UNSUPPORTED_FILTERS = ("RequestMirror", "URLRewrite", "ExtensionRef", "CORS", "ExternalAuth")
_POLICY = "policy.linkerd.io"


def ignored(f: Fields, path: str, why: str) -> None:
    """Account a field the source mesh itself ignores and say so (it had no effect)."""
    f.get(path, whole=True)
    f.losses.report(
        "SOURCE_IGNORED", Severity.INFO, "input", f.ref, path,
        f"{f.ref.kind} {f.ref.namespace}/{f.ref.name}: {why}; Linkerd ignores it, so it is not "
        "carried over", "Check whether the intended behaviour should be added in the target.")


def read_route(reader: LinkerdReader, f: Fields, graph: MeshGraph) -> None:
    """One Gateway API or policy.linkerd.io route (parents decide what it means)."""
    ns = f.ref.namespace
    services: list[tuple[ServiceKey, int | None]] = []
    servers: list[str] = []
    for parent in parent_refs(f):
        if parent.is_service:
            services.append(parent.service(ns))
        elif parent.kind == "Server" and parent.group == _POLICY:
            servers.append(parent.name)
        elif parent.kind == "EgressNetwork":
            note_egress_route(reader, f, parent.path, parent.body, parent.name)
        else:
            f.use("ingress.route", parent.path, f"{parent.kind} {parent.name}")
    bad = [(path, kind) for path, kind in filter_types(f) if kind in UNSUPPORTED_FILTERS]
    if bad:
        for path, kind in bad:
            f.losses.report(
                "SOURCE_IGNORED", Severity.INFO, "input", f.ref, path,
                f"{f.ref.kind} {ns}/{f.ref.name} uses the {kind} filter, which Linkerd does not "
                "support: Linkerd ignores the whole route, so it is not carried over",
                "If the route was meant to work, recreate it in the target without the filter "
                "or with the target's equivalent.")
        f.get("spec", whole=True)
        f.get("metadata.annotations", whole=True)
        return
    if servers:
        _inbound(reader, f, servers)
    if services:
        _outbound(reader, f, services)
    elif not servers:
        f.get("spec", whole=True)  # ingress or egress only: reported by the parent uses


# -- outbound (Service parents) ----------------------------------------------------------
def _outbound(reader: LinkerdReader, f: Fields, parents: list[tuple[ServiceKey, int | None]]
              ) -> None:
    ns, kind = f.ref.namespace, f.ref.kind
    before = len(f.uses)
    port, hosts = mesh_parents(f, parents)
    hostnames = f.strings("spec.hostnames")
    if hostnames and kind in ("HTTPRoute", "GRPCRoute"):
        f.use("route.match.authority", "spec.hostnames", ", ".join(hostnames))
    elif hostnames:
        f.use("route.tls", "spec.hostnames", ", ".join(hostnames))
    protocol = {"TCPRoute": "tcp", "TLSRoute": "tls", "UDPRoute": "udp"}.get(kind, "http")
    if protocol == "udp":
        ignored(f, "spec", "Linkerd does not proxy UDP, so a UDPRoute does nothing")
        return
    default = parents[0][0] if len(hosts) == 1 else None
    rules: list[tuple[tuple[int, ...], Rule]] = []
    for i in range(len(f.list("spec.rules"))):
        path = f"spec.rules[{i}]"
        if protocol != "http":
            rules.append(((i, 0), _l4_rule(reader, f, path, i, port, default)))
            continue
        for j, rule in enumerate(_http_rules(reader, f, path, i, port, default)):
            rules.append(((i, j), rule))
    if protocol == "http":
        # Most specific first (see the module docstring); ties keep source order.
        # fact: linkerd.route-match-order
        ordered_rules = sort_most_specific(rules, rank)
        f.note("route.http", "spec.rules")
    else:
        ordered_rules = [r for _, r in rules]
        f.note(f"route.{protocol}", "spec.rules")
    ordered = tuple(replace(r, index=n) for n, r in enumerate(ordered_rules))
    annotations = route_policy(f, "metadata")
    route = Route(ns, f.ref.name, protocol, hosts, ordered, ingress=False, mesh=True,
                  gateways=(), origin=f.origin("spec"))
    uses = f.uses[before:]
    del f.uses[before:]
    reader.state.outbound[f.ref] = OutboundRoute(route, annotations, uses,
                                                 http=protocol == "http")


def _other_backend(f: Fields) -> OtherBackend:
    def other(path: str, kind: str, name: str) -> None:
        f.use("egress.network" if kind == "EgressNetwork" else "route.host.external",
              path, f"{kind} {name}")
    return other


def _l4_rule(reader: LinkerdReader, f: Fields, path: str, i: int, port: int | None,
             default: ServiceKey | None) -> Rule:
    # A rule without backendRefs sends requests to its parent Service (Linkerd's policy
    # controller uses the parent as the default backend for GAMMA routes).
    backends = read_backends(f, path, _other_backend(f)) or parent_backend(default, port, path)
    return Rule(index=i, name=f.string(join(path, "name")),
                matches=(RouteMatch(port=port, origin_path=path),) if port else (),
                backends=backends, origin_path=path)


def _http_rules(reader: LinkerdReader, f: Fields, path: str, i: int, port: int | None,
                default: ServiceKey | None) -> list[Rule]:
    grpc = f.ref.kind == "GRPCRoute"
    matches: list[RouteMatch] = []
    for j in range(len(f.list(join(path, "matches")))):
        mpath = f"{path}.matches[{j}]"
        matches += grpc_match(f, mpath, port) if grpc else http_match(f, mpath, port)
    req, resp, redirect = read_filters(f, join(path, "filters"))
    backends = read_backends(f, path, _other_backend(f))
    if not backends and redirect is None:
        backends = parent_backend(default, port, path)
    timeout = f.string(join(path, "timeouts.request"))
    if timeout in ("0", "0s"):
        timeout = ""  # Gateway API: zero disables the timeout
    for key in ("timeouts.backendRequest", "retry", "sessionPersistence"):
        if f.peek(join(path, key)) is not None:
            ignored(f, join(path, key), f"rule field {key} is not used by Linkerd")
    name = f.string(join(path, "name"))
    for feature, present in (("route.timeout", timeout), ("route.redirect", redirect),
                             ("route.header_ops", req or resp)):
        if present:
            f.note(feature, path)
    if not matches:
        matches = [RouteMatch(port=port, origin_path=path)] if port else []
    rules = []
    for m in matches or [None]:
        rules.append(Rule(index=i, name=name, matches=(m,) if m else (), backends=backends,
                          timeout=timeout, request_headers=req, response_headers=resp,
                          redirect=redirect, origin_path=path))
    return rules


# -- inbound (Server parents) ------------------------------------------------------------
def _inbound(reader: LinkerdReader, f: Fields, servers: list[str]) -> None:
    """Matches of a Server-parented route as authorization operations (ports come later)."""
    grpc = f.ref.kind == "GRPCRoute"
    operations: list[AuthzOperation] = []
    narrowing: set[str] = set()
    for i in range(len(f.list("spec.rules"))):
        path = f"spec.rules[{i}]"
        matches: list[RouteMatch] = []
        for j in range(len(f.list(join(path, "matches")))):
            mpath = f"{path}.matches[{j}]"
            matches += grpc_match(f, mpath, None) if grpc else http_match(f, mpath, None)
        if not matches:
            matches = [RouteMatch(origin_path=path)]
        for m in matches:
            op = _operation(m, narrowing)
            if op is not None:
                operations.append(op)
        # Filters and backends of an inbound route change nothing about who may call.
        for key in ("filters", "backendRefs", "timeouts", "name"):
            if f.peek(join(path, key)) is not None:
                f.get(join(path, key), whole=True)
    if f.peek("spec.hostnames") is not None:
        f.get("spec.hostnames", whole=True)
        narrowing.add("authz.operation.hosts")
    merged = _merge_paths(operations)
    reader.state.inbound[(f.ref.namespace, f.ref.kind, f.ref.name)] = InboundRoute(
        f.ref, tuple(sorted(set(servers))), merged, tuple(sorted(narrowing)))
    for feature in sorted(narrowing):
        f.note(feature, "spec.rules")


def _operation(m: RouteMatch, narrowing: set[str]) -> AuthzOperation | None:
    if m.headers or m.query:
        narrowing.add("authz.operation.regex")
    paths: tuple[str, ...] = ()
    if m.path is not None:
        if m.path.kind == "exact":
            paths = (m.path.value,)
        elif m.path.kind == "prefix":
            paths = (m.path.value + "*",)  # Istio-style prefix: "/x/*"
        elif _literal_prefix(m.path.value) is not None:
            # An anchored "<literal>.*" (how writers spell a raw string prefix, which Gateway
            # API's segment-aware PathPrefix cannot) is exactly Istio's "<literal>*".
            paths = (_literal_prefix(m.path.value) + "*",)  # type: ignore[operator]
        else:
            narrowing.add("authz.operation.regex")
            return None
    methods = (m.method.value,) if m.method else ()
    return AuthzOperation(methods=methods, paths=paths, origin_path=m.origin_path)


_REGEX_META = frozenset("\\.^$*+?()[]{}|")


def _literal_prefix(regex: str) -> str | None:
    """The literal a path regex of the form ``<literal>.*`` starts with (Linkerd anchors path
    regexes, so it matches exactly the paths with that raw prefix); None for any other
    regex."""
    if not regex.endswith(".*"):
        return None
    head = regex[:-2]
    return head if head.startswith("/") and not _REGEX_META & set(head) else None


def _merge_paths(ops: list[AuthzOperation]) -> tuple[AuthzOperation, ...]:
    """Join the exact+prefix pair a PathPrefix became back into one operation."""
    merged: dict[tuple[tuple[str, ...], str], list[str]] = {}
    for op in ops:
        merged.setdefault((op.methods, op.origin_path), []).extend(op.paths or ["*"])
    out = []
    for (methods, origin), paths in merged.items():
        kept = () if "*" in paths else tuple(dict.fromkeys(paths))
        out.append(AuthzOperation(methods=methods, paths=kept, origin_path=origin))
    return tuple(out)


def read_gateway_object(reader: LinkerdReader, f: Fields, graph: MeshGraph) -> None:
    """Gateway, GatewayClass, ListenerSet, ReferenceGrant: ingress, not mesh config."""
    if f.ref.kind == "ReferenceGrant":
        f.use("gateway_api.kept", "spec", f.ref.kind)
    else:
        f.use("ingress.gateway", "spec", "Gateway API")
