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
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from migrate.dialects.fields import Fields, join
from migrate.dialects.gatewayapi.precedence import rank
from migrate.dialects.linkerd.read_annotations import route_policy
from migrate.dialects.linkerd.read_egress import note_egress_route
from migrate.dialects.linkerd.read_state import InboundRoute, OutboundRoute
from migrate.ir.graph import MeshGraph
from migrate.ir.model import (
    AuthzOperation,
    Backend,
    HeaderOps,
    Redirect,
    Route,
    RouteMatch,
    Rule,
    ServiceKey,
    StringMatch,
)
from migrate.losses import Severity

if TYPE_CHECKING:
    from migrate.dialects.linkerd.reader import LinkerdReader

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
    for i, parent in enumerate(f.list("spec.parentRefs")):
        path = f"spec.parentRefs[{i}]"
        if not isinstance(parent, dict):
            f.invalid(path, "expected a parentRef mapping")
            continue
        f.get(path, whole=True)
        kind = str(parent.get("kind") or "Gateway")
        group = str(parent.get("group") if parent.get("group") is not None else "")
        name = f.name(join(path, "name"))
        if kind == "Service" and group in ("", "core"):
            port = parent.get("port")
            services.append((ServiceKey(str(parent.get("namespace") or ns), name),
                             port if isinstance(port, int) else None))
        elif kind == "Server" and group == _POLICY:
            servers.append(name)
        elif kind == "EgressNetwork":
            note_egress_route(reader, f, path, parent, name)
        else:
            f.use("ingress.route", path, f"{kind} {name}")
    bad = _unsupported_filters(f)
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


def _unsupported_filters(f: Fields) -> list[tuple[str, str]]:
    out = []
    for i, rule in enumerate(_items(f.peek("spec.rules"))):
        if not isinstance(rule, dict):
            continue
        lists = [(f"spec.rules[{i}].filters", rule.get("filters"))]
        for j, b in enumerate(_items(rule.get("backendRefs"))):
            if isinstance(b, dict):
                lists.append((f"spec.rules[{i}].backendRefs[{j}].filters", b.get("filters")))
        for base, filters in lists:
            for k, flt in enumerate(_items(filters)):
                if isinstance(flt, dict) and flt.get("type") in UNSUPPORTED_FILTERS:
                    out.append((f"{base}[{k}]", str(flt["type"])))
    return out


def _items(value: object) -> list[object]:
    return value if isinstance(value, list) else []


# -- outbound (Service parents) ----------------------------------------------------------
def _outbound(reader: LinkerdReader, f: Fields, parents: list[tuple[ServiceKey, int | None]]
              ) -> None:
    ns, kind = f.ref.namespace, f.ref.kind
    before = len(f.uses)
    ports = {p for _, p in parents}
    port = next(iter(ports)) if len(ports) == 1 else None
    if len(ports) > 1:
        f.note("route.match.port", "spec.parentRefs", "parents name different ports")
    elif port is not None:
        f.note("route.match.port", "spec.parentRefs", str(port))
    hosts = tuple(sorted({key for key, _ in parents}))
    if any(h.namespace != ns for h in hosts):
        f.note("route.consumer_namespace", "spec.parentRefs",
               ", ".join(str(h) for h in hosts if h.namespace != ns))
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
        # Most specific first (see the module docstring); ties keep source order. A
        # PathPrefix is read as an Exact plus a segment prefix: both parts keep the
        # PathPrefix's rank, or its Exact part would tie with (and, earlier in the list, beat)
        # a real Exact match of a later rule, which Gateway API ranks higher.
        floor: dict[str, tuple[int, int, int, int]] = {}
        for _, r in rules:
            for m in r.matches:
                floor[m.origin_path] = min(floor.get(m.origin_path, rank(m)), rank(m))

        def key(r: tuple[tuple[int, ...], Rule]) -> tuple[tuple[int, ...], tuple[int, ...]]:
            m = r[1].matches[0] if r[1].matches else None
            return (tuple(-x for x in (floor[m.origin_path] if m else rank(None))), r[0])

        rules.sort(key=key)
        f.note("route.http", "spec.rules")
    else:
        f.note(f"route.{protocol}", "spec.rules")
    ordered = tuple(replace(r, index=n) for n, (_, r) in enumerate(rules))
    annotations = route_policy(f, "metadata")
    route = Route(ns, f.ref.name, protocol, hosts, ordered, ingress=False, mesh=True,
                  gateways=(), origin=f.origin("spec"))
    uses = f.uses[before:]
    del f.uses[before:]
    reader.state.outbound[f.ref] = OutboundRoute(route, annotations, uses,
                                                 http=protocol == "http")


def _parent_backend(default: ServiceKey | None, port: int | None, path: str) -> tuple[Backend, ...]:
    # A rule without backendRefs sends requests to its parent Service (Linkerd's policy
    # controller uses the parent as the default backend for GAMMA routes).
    if default is None:
        return ()
    return (Backend(service=default, host=default.name, port=port, origin_path=path),)


def _l4_rule(reader: LinkerdReader, f: Fields, path: str, i: int, port: int | None,
             default: ServiceKey | None) -> Rule:
    backends = _backends(f, path) or _parent_backend(default, port, path)
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
    req, resp, redirect = _filters(f, join(path, "filters"))
    backends = _backends(f, path)
    if not backends and redirect is None:
        backends = _parent_backend(default, port, path)
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


def _path_matches(kind: str, value: str) -> list[tuple[StringMatch | None, str]]:
    """Gateway API path match as IR string matches (OR).

    PathPrefix matches whole segments (``/api`` matches ``/api`` and ``/api/x``, never
    ``/apiv2``); the IR prefix is a raw string prefix, so it becomes an exact match plus a
    prefix ending in ``/``, which says the same thing in both readings.
    """
    if kind == "Exact":
        return [(StringMatch("exact", value), "")]
    if kind == "RegularExpression":
        return [(StringMatch("regex", value), "")]
    trimmed = value.rstrip("/")
    if not trimmed:
        return [(None, "")]
    return [(StringMatch("exact", trimmed), ""), (StringMatch("prefix", trimmed + "/"), "")]


def http_match(f: Fields, path: str, port: int | None) -> list[RouteMatch]:
    """One HTTPRouteMatch as IR matches (a PathPrefix gives two, see :func:`_path_matches`)."""
    kind = f.string(join(path, "path.type"), "PathPrefix")
    value = f.string(join(path, "path.value"), "/")
    if kind not in ("Exact", "PathPrefix", "RegularExpression"):
        f.invalid(join(path, "path.type"), f"path match type {kind!r} is unknown")
        return []
    method = f.string(join(path, "method"))
    headers = _pairs(f, join(path, "headers"), lower=True)
    query = _pairs(f, join(path, "queryParams"), lower=False)
    return [RouteMatch(path=p, method=StringMatch("exact", method) if method else None,
                       headers=headers, query=query, port=port, origin_path=path)
            for p, _ in _path_matches(kind, value)]


def grpc_match(f: Fields, path: str, port: int | None) -> list[RouteMatch]:
    """One GRPCRouteMatch: service/method become a match on the HTTP/2 path."""
    kind = f.string(join(path, "method.type"), "Exact")
    service = f.string(join(path, "method.service"))
    method = f.string(join(path, "method.method"))
    if kind == "RegularExpression":
        p: StringMatch | None = StringMatch("regex", f"/{service or '[^/]+'}/{method or '[^/]+'}")
    elif service and method:
        p = StringMatch("exact", f"/{service}/{method}")
    elif service:
        p = StringMatch("prefix", f"/{service}/")
    elif method:
        p = StringMatch("regex", f"/[^/]+/{re.escape(method)}")
    else:
        p = None
    return [RouteMatch(path=p, headers=_pairs(f, join(path, "headers"), lower=True), port=port,
                       origin_path=path)]


def _pairs(f: Fields, path: str, lower: bool) -> tuple[tuple[str, StringMatch], ...]:
    out = []
    for k, item in enumerate(f.list(path)):
        ipath = f"{path}[{k}]"
        if not isinstance(item, dict):
            f.invalid(ipath, "expected a name/value match")
            continue
        kind = f.string(join(ipath, "type"), "Exact")
        name = f.string(join(ipath, "name"))
        value = f.string(join(ipath, "value"))
        if kind not in ("Exact", "RegularExpression"):
            f.invalid(join(ipath, "type"), f"match type {kind!r} is unknown")
            continue
        out.append((name.lower() if lower else name,
                    StringMatch("exact" if kind == "Exact" else "regex", value)))
    return tuple(sorted(out, key=lambda p: (p[0], p[1].kind, p[1].value)))


def _header_ops(f: Fields, path: str) -> HeaderOps:
    def pairs(key: str) -> tuple[tuple[str, str], ...]:
        out = []
        for k, item in enumerate(f.list(join(path, key))):
            if isinstance(item, dict):
                out.append((f.string(f"{path}.{key}[{k}].name"),
                            f.string(f"{path}.{key}[{k}].value")))
            else:
                f.invalid(f"{path}.{key}[{k}]", "expected a name/value pair")
        return tuple(sorted(out))

    return HeaderOps(set=pairs("set"), add=pairs("add"), remove=f.strings(join(path, "remove")))


def _filters(f: Fields, path: str) -> tuple[HeaderOps, HeaderOps, Redirect | None]:
    req, resp, redirect = HeaderOps(), HeaderOps(), None
    for k, flt in enumerate(f.list(path)):
        fpath = f"{path}[{k}]"
        kind = f.string(join(fpath, "type"))
        if kind == "RequestHeaderModifier":
            req = _header_ops(f, join(fpath, "requestHeaderModifier"))
        elif kind == "ResponseHeaderModifier":
            resp = _header_ops(f, join(fpath, "responseHeaderModifier"))
        elif kind == "RequestRedirect":
            rp = join(fpath, "requestRedirect")
            full = f.string(join(rp, "path.replaceFullPath"))
            if f.peek(join(rp, "path.replacePrefixMatch")) is not None:
                # A redirect, not a rewrite: the model's Redirect replaces the whole path only.
                f.use("route.redirect.prefix", join(rp, "path.replacePrefixMatch"),
                      str(f.peek(join(rp, "path.replacePrefixMatch"))))
            f.get(join(rp, "path.type"))
            redirect = Redirect(path=full, authority=f.string(join(rp, "hostname")),
                                port=f.integer(join(rp, "port")),
                                scheme=f.string(join(rp, "scheme")),
                                code=f.integer(join(rp, "statusCode")) or 302, origin_path=rp)
        else:
            f.invalid(join(fpath, "type"), f"filter type {kind!r} is unknown")
    return req, resp, redirect


def _backends(f: Fields, path: str) -> tuple[Backend, ...]:
    out = []
    refs = f.list(join(path, "backendRefs"))
    for j, ref in enumerate(refs):
        bpath = f"{path}.backendRefs[{j}]"
        if not isinstance(ref, dict):
            f.invalid(bpath, "expected a backendRef mapping")
            continue
        kind = f.string(join(bpath, "kind"), "Service")
        group = f.string(join(bpath, "group"))
        name = f.name(join(bpath, "name"))
        ns = f.string(join(bpath, "namespace"), f.ref.namespace)
        weight = f.integer(join(bpath, "weight"))
        port = f.integer(join(bpath, "port"))
        req, resp, _ = _filters(f, join(bpath, "filters"))
        if kind == "Service" and group in ("", "core"):
            key: ServiceKey | None = ServiceKey(ns, name)
        else:
            key = None
            f.use("egress.network" if kind == "EgressNetwork" else "route.host.external",
                  join(bpath, "kind"), f"{kind} {name}")
        out.append(Backend(service=key, host=name if ns == f.ref.namespace else f"{name}.{ns}",
                           port=port, weight=weight if weight is not None else
                           (1 if len(refs) > 1 else None),
                           request_headers=req, response_headers=resp, origin_path=bpath))
    return tuple(out)


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
