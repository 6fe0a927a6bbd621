"""IR routes -> Linkerd HTTPRoutes (Service parents), per-subset Services and TCPRoutes.

Choices, with their sources (../shared/reference/mapping-istio-linkerd.md sections 1.3, 2.1):
- During coexistence routes are ``policy.linkerd.io/v1beta3`` HTTPRoutes: Linkerd honours them
  for outbound traffic exactly like gateway.networking.k8s.io ones (policy-controller
  outbound/index/http.rs) and Istio does not read them, so the two meshes never fight over one
  route. At cleanup they are swapped for gateway.networking.k8s.io/v1 HTTPRoutes.
- Timeouts and retries are route annotations (``timeout.linkerd.io/request``,
  ``retry.linkerd.io/*``): both HTTPRoute flavours honour the annotations on every version,
  while the gateway flavour reads ``rules[].timeouts`` only from 2.20 (fact
  ``linkerd.gateway-rule-timeouts``). Rules with different policies go to separate routes.
- Only filters Linkerd supports are emitted (a route with any other filter is dropped whole).
- Retry condition lists are written without spaces (Linkerd splits on ``,`` without trimming
  and rejects the whole route on a bad value).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from migrate.dialects.base import Manifest, TargetConfig
from migrate.dialects.gatewayapi.filters import header_modifier, redirect_filter, value_match
from migrate.dialects.gatewayapi.precedence import analyse, overlaps, rank
from migrate.dialects.linkerd.route_policy import (
    failure_accrual_annotations,
    grpc_rules,
    grpc_service,
    policy_annotations,
)
from migrate.ir.graph import MeshGraph
from migrate.ir.model import (
    Backend,
    DestinationPolicy,
    HeaderOps,
    Route,
    RouteMatch,
    Rule,
    ServiceKey,
    StringMatch,
)
from migrate.losses import LossLog, ObjectRef, Severity
from migrate.names import NameRegistry, k8s_name

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
LINKERD_ROUTE_API = "policy.linkerd.io/v1beta3"
RULES_ANNOTATION = "meshmigrate.io/rules"
GATEWAY_ROUTE_API = "gateway.networking.k8s.io/v1"


@dataclass
class RouteContext:
    """What route conversion needs besides the route itself."""

    graph: MeshGraph
    losses: LossLog
    names: NameRegistry
    out: TargetConfig
    supports: Callable[[str], bool] = lambda feature: True
    """Whether the chosen target version has a feature (mappings/linkerd.yaml)."""
    subset_services: dict[tuple[ServiceKey, str], str] = field(default_factory=dict)
    """(service, subset) -> generated Service name."""
    policies: dict[ServiceKey, DestinationPolicy] = field(default_factory=dict)


def write_routes(ctx: RouteContext) -> None:
    """Convert every mesh route of the graph."""
    for dp in ctx.graph.of(DestinationPolicy):
        if dp.service:
            ctx.policies.setdefault(dp.service, dp)
    for route in ctx.graph.of(Route):
        if not route.mesh:
            continue
        if route.protocol == "http":
            for host in route.hosts:
                _http_route(ctx, route, host)
        elif route.protocol == "tcp":
            for host in route.hosts:
                _tcp_route(ctx, route, host)


def _ref(route: Route) -> ObjectRef:
    return route.origin.ref


def _http_route(ctx: RouteContext, route: Route, host: ServiceKey) -> None:
    ref = _ref(route)
    rules = _drop_shadowed(ctx, route)
    grpc = grpc_service(ctx, host)
    converted: list[tuple[tuple[str, ...], dict[str, Any], Rule]] = []
    for rule in rules:
        body = _rule(ctx, route, rule, host)
        if body is None:
            continue
        converted.append((policy_annotations(ctx, ref, rule, grpc), body, rule))
    if not converted:
        return
    # One route per distinct timeout/retry policy (annotations are per route).
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    sources: dict[tuple[str, ...], list[Rule]] = {}
    for key, body, rule in converted:
        groups.setdefault(key, []).append(body)
        sources.setdefault(key, []).append(rule)
    base = route.name if len(route.hosts) == 1 else f"{route.name}-{host.name}"
    for n, (key, bodies) in enumerate(groups.items()):
        wanted = base if n == 0 else f"{base}-{n + 1}"
        name = ctx.names.claim("HTTPRoute", host.namespace, wanted, f"{ref}/{host}/{n}")
        pairs = [pair.split("=", 1) for pair in key]
        # Which source rule each rule came from, in order: for reviewers, and for the
        # equivalence check to tie a target rule back to the losses of its source rule.
        # (Made once for both flavours of the route, as are its sources.)
        rules_annotation = ",".join(r.origin_path for r in sources[key])
        route_sources = _route_sources(ctx, route, host, sources[key])
        for api, group in ((LINKERD_ROUTE_API, "core"), (GATEWAY_ROUTE_API, "")):
            kind, rules_out = "HTTPRoute", bodies
            as_grpc = grpc_rules(bodies) if grpc and api == GATEWAY_ROUTE_API else None
            if as_grpc is not None:
                kind, rules_out = "GRPCRoute", as_grpc
            annotations = {k.removeprefix("grpc:"): v for k, v in pairs
                           if k.startswith("grpc:") == (kind == "GRPCRoute")}
            annotations[RULES_ANNOTATION] = rules_annotation
            body = {
                "apiVersion": api, "kind": kind,
                "metadata": {"name": name, "namespace": host.namespace,
                             **({"annotations": annotations} if annotations else {})},
                "spec": {"parentRefs": [{"group": group, "kind": "Service", "name": host.name}],
                         "rules": rules_out},
            }
            bucket = ctx.out.routing if api == LINKERD_ROUTE_API else ctx.out.routing_final
            manifest = Manifest(body, route_sources)
            ctx.out.add(bucket, manifest)
            if api == LINKERD_ROUTE_API:
                ctx.out.add(ctx.out.remove_at_cleanup, manifest)
    if len(groups) > 1:
        _report_cross_group_ties(ctx, route, list(sources.values()))


def _route_sources(ctx: RouteContext, route: Route, host: ServiceKey,
                   rules: list[Rule]) -> tuple[ObjectRef, ...]:
    refs = {_ref(route)}
    dp = ctx.policies.get(host)
    if dp and any(b.subset for r in rules for b in r.backends):
        refs.add(dp.origin.ref)
    for r in rules:
        for b in r.backends:
            if b.subset and b.service and b.service in ctx.policies:
                refs.add(ctx.policies[b.service].origin.ref)
    return tuple(sorted(refs))


def _drop_shadowed(ctx: RouteContext, route: Route) -> list[Rule]:
    """Apply the first-match analysis: drop unreachable matches, report real inversions."""
    ref = _ref(route)
    dropped: dict[int, set[int]] = {}
    by_index = {r.index: r for r in route.rules}
    for inv in analyse(route.rules):
        (ri, mi), (rj, mj) = inv.earlier, inv.later
        a_path = _match_path(by_index[ri], mi)
        b_path = _match_path(by_index[rj], mj)
        if inv.shadowed:
            dropped.setdefault(rj, set()).add(mj)
            ctx.losses.report(
                "ROUTE_RULE_UNREACHABLE", Severity.INFO, "route.http", ref, b_path,
                f"{b_path} is never reached in {ctx.graph.mesh.capitalize()}: the earlier "
                f"{a_path} already matches every "
                f"request it would; under Gateway API specificity it would win, so it is left out",
                "Delete the unreachable match from the source too, or move it above the broader "
                "rule if it was meant to apply.")
        else:
            ctx.losses.report(
                "ROUTE_ORDER", Severity.DEGRADED, "route.http", ref, b_path,
                f"a request matching both {a_path} and {b_path} went to {a_path} in "
                f"{ctx.graph.mesh.capitalize()} "
                f"(first match); Gateway API prefers the more specific {b_path}",
                "Narrow one of the two matches so they no longer overlap, then re-run.")
    kept = []
    for rule in route.rules:
        gone = dropped.get(rule.index, set())
        if not gone:
            kept.append(rule)
            continue
        matches = tuple(m for j, m in enumerate(rule.matches) if j not in gone)
        if matches:
            kept.append(Rule(**{**rule.__dict__, "matches": matches}))
        else:
            # The source mesh never applied this rule: what it would have done (a rewrite,
            # retries...) is not lost, so the capability check's losses on it are withdrawn.
            ctx.losses.withdraw(ref, rule.origin_path, _ABOUT_REACH)
    return kept


_ABOUT_REACH = frozenset({"ROUTE_RULE_UNREACHABLE", "ROUTE_ORDER"})


def _match_path(rule: Rule, j: int) -> str:
    if rule.matches and rule.matches[j].origin_path.startswith(f"{rule.origin_path}.matches["):
        # A Gateway API source (Istio GAMMA): one IR rule per source match, which names itself.
        return rule.matches[j].origin_path
    return f"{rule.origin_path}.match[{j}]" if rule.matches else rule.origin_path


def _rule(ctx: RouteContext, route: Route, rule: Rule, host: ServiceKey) -> dict[str, Any] | None:
    ref = _ref(route)
    body: dict[str, Any] = {}
    matches = [m for rm in rule.matches for m in _matches(ctx, ref, rm)]
    if rule.matches and not matches:
        return None  # every match was inexpressible (reported)
    if matches:
        body["matches"] = matches
    filters: list[dict[str, Any]] = []
    if rule.request_headers:
        filters.append({"type": "RequestHeaderModifier",
                        "requestHeaderModifier": header_modifier(rule.request_headers)})
    if rule.redirect:
        filters.append({"type": "RequestRedirect",
                        "requestRedirect": _redirect(ctx, ref, rule)})
    if filters:
        body["filters"] = filters
    if not rule.redirect:
        backends = [b for b in (_backend(ctx, ref, rule, backend, host, len(rule.backends))
                                for backend in rule.backends) if b]
        if not backends:
            ctx.losses.report(
                "ROUTE_RULE_EMPTY", Severity.MANUAL, "route.http", ref, rule.origin_path,
                "the rule has no backend Linkerd can address; it was left out",
                "Give the destinations a port and make sure their Services exist.")
            return None
        body["backendRefs"] = backends
    return body


def _matches(ctx: RouteContext, ref: ObjectRef, rm: RouteMatch) -> list[dict[str, Any]]:
    match: dict[str, Any] = {}
    if rm.path is not None:
        match["path"] = _path(ctx, ref, rm)
    headers = [value_match(name, m) for name, m in rm.headers]
    if headers:
        match["headers"] = headers
    query = [value_match(name, m) for name, m in rm.query]
    if query:
        match["queryParams"] = query
    if rm.method is None:
        return [match]
    methods = [v for v in METHODS if _method_matches(rm.method, v)]
    if rm.method.kind != "exact" or rm.method.value not in METHODS:
        ctx.losses.report(
            "ROUTE_METHOD", Severity.DEGRADED, "route.http", ref, f"{rm.origin_path}.method",
            f"method {rm.method.kind} {rm.method.value!r} became "
            f"{', '.join(methods) or 'nothing'}; "
            "only standard methods can be matched",
            "Check that clients use no other methods on this route.")
    return [{**match, "method": m} for m in methods]


def _method_matches(m: StringMatch, verb: str) -> bool:
    if m.kind == "exact":
        return m.value == verb
    if m.kind == "prefix":
        return verb.startswith(m.value)
    if m.kind == "regex":
        try:
            return re.fullmatch(m.value, verb) is not None
        except re.error:
            return False
    return True


def _path(ctx: RouteContext, ref: ObjectRef, rm: RouteMatch) -> dict[str, str]:
    assert rm.path is not None
    kind, value = rm.path.kind, rm.path.value
    if rm.ignore_case:
        body = {"exact": re.escape(value), "prefix": re.escape(value) + ".*",
                "regex": value}.get(kind, ".*")
        return {"type": "RegularExpression", "value": f"(?i){body}"}
    if kind == "exact":
        return {"type": "Exact", "value": value}
    if kind == "regex":
        return {"type": "RegularExpression", "value": value}
    if kind == "prefix":
        # A Gateway API source (Istio GAMMA) already matched whole segments: its PathPrefix is
        # read as an exact match plus this "/"-terminated prefix, so nothing changes.
        segment = value.endswith("/") and ".matches[" in rm.origin_path
        if value not in ("", "/") and not segment:
            # The source field: Istio's match uri, Consul's http.pathPrefix.
            field = {"consul": "http.pathPrefix"}.get(ctx.graph.mesh, "uri")
            ctx.losses.report(
                "ROUTE_PREFIX_SEGMENT", Severity.INFO, "route.http", ref,
                f"{rm.origin_path}.{field}",
                f"{ctx.graph.mesh.capitalize()} prefix {value!r} matched raw strings"
                f"{' (e.g. ' + value + 'x)' if not value.endswith('/') else ''}; "
                "PathPrefix matches "
                "whole path segments"
                f"{' and also ' + value.rstrip('/') if value.endswith('/') else ''}",
                "Usually the intent; if raw-prefix matching mattered, use a regex match.")
        return {"type": "PathPrefix", "value": value or "/"}
    return {"type": "PathPrefix", "value": "/"}


def _redirect(ctx: RouteContext, ref: ObjectRef, rule: Rule) -> dict[str, Any]:
    r = rule.redirect
    assert r is not None
    code = {301: 301, 302: 302, 308: 301, 307: 302, 303: 302}.get(r.code, 301)
    if code != r.code:
        ctx.losses.report(
            "ROUTE_REDIRECT_CODE", Severity.DEGRADED, "route.redirect", ref,
            f"{r.origin_path}.redirectCode",
            f"redirect status {r.code} became {code} (Gateway API 1.2.1 allows 301 and 302)",
            "Check that clients handle the changed status (method preservation differs).")
    return redirect_filter(r, code)


def _backend(ctx: RouteContext, ref: ObjectRef, rule: Rule, b: Backend, host: ServiceKey,
             count: int) -> dict[str, Any] | None:
    if b.service is None:
        return None  # reported by the capability check (route.host.external)
    name = b.service.name
    if b.subset:
        subset_name = write_subset_service(ctx, ref, b)
        if subset_name is None:
            return None
        name = subset_name
    port = b.port or _single_port(ctx, b.service)
    if port is None:
        ctx.losses.report(
            "ROUTE_BACKEND_UNKNOWN", Severity.MANUAL, "route.http", ref,
            f"{b.origin_path}.destination",
            f"no port for backend {b.host}: the destination names none and the Service "
            f"{'has several' if ctx.graph.service(b.service) else 'is not in the input'}",
            "Set destination.port.number in the source (or add the Service to the input).")
        return None
    body: dict[str, Any] = {"name": name}
    if b.service.namespace != host.namespace:
        body["namespace"] = b.service.namespace
    body["port"] = port
    if count > 1 or b.weight is not None:
        body["weight"] = b.weight if b.weight is not None else (1 if count == 1 else 0)
    filters = []
    if b.request_headers:
        filters.append({"type": "RequestHeaderModifier",
                        "requestHeaderModifier": header_modifier(b.request_headers)})
    # Response header changes live on backends: the Linkerd flavour's rule-level filters
    # allow request changes and redirects only.
    response = _merge(rule.response_headers, b.response_headers)
    if response:
        filters.append({"type": "ResponseHeaderModifier",
                        "responseHeaderModifier": header_modifier(response)})
    if filters:
        body["filters"] = filters
    return body


def _merge(a: HeaderOps, b: HeaderOps) -> HeaderOps:
    if not a and not b:
        return a  # most rules and backends change no response header
    return HeaderOps(set=tuple(sorted({**dict(a.set), **dict(b.set)}.items())),
                     add=a.add + b.add, remove=tuple(sorted(set(a.remove) | set(b.remove))))


def _single_port(ctx: RouteContext, key: ServiceKey) -> int | None:
    svc = ctx.graph.service(key)
    if svc is None:
        return None
    if len(svc.ports) == 1:
        return svc.ports[0].port
    http = [p.port for p in svc.ports if p.l7 in ("http", "http2", "grpc")]
    return http[0] if len(http) == 1 else None


def write_subset_service(ctx: RouteContext, ref: ObjectRef, b: Backend) -> str | None:
    """The per-subset Service for a backend (created once); None when it cannot be built."""
    assert b.service is not None
    key = (b.service, b.subset)
    if key in ctx.subset_services:
        return ctx.subset_services[key]
    dp = ctx.policies.get(b.service)
    subset = next((s for s in dp.subsets if s.name == b.subset), None) if dp else None
    base = ctx.graph.service(b.service)
    if subset is None or base is None or not base.selector:
        why = ("no DestinationRule defines it" if subset is None else
               "the Service is not in the input" if base is None else "the Service has no selector")
        ctx.losses.report(
            "ROUTE_BACKEND_UNKNOWN", Severity.MANUAL, "destination.subsets", ref,
            f"{b.origin_path}.destination.subset",
            f"subset {b.subset!r} of {b.service} cannot become a Service: {why}",
            "Add the DestinationRule and Service to the input, or create the subset Service by "
            "hand (selector = Service selector plus subset labels).")
        if dp is not None and subset is not None:
            # The subset is lost with the route's backend: said on the object defining it.
            ctx.losses.report(
                "ROUTE_BACKEND_UNKNOWN", Severity.MANUAL, "destination.subsets", dp.origin.ref,
                subset.origin_path, f"subset {b.subset!r} of {b.service} is not written: {why}",
                "Add the Service to the input and re-run, or create the subset Service by hand.")
        ctx.subset_services[key] = None  # type: ignore[assignment]
        return None
    name = ctx.names.claim("Service", b.service.namespace, k8s_name(b.service.name, b.subset),
                           f"subset/{b.service}/{b.subset}")
    selector = {**dict(base.selector), **dict(subset.labels)}
    ports = []
    for p in base.ports:
        port: dict[str, Any] = {"port": p.port}
        if p.name:
            port["name"] = p.name
        if p.app_protocol:
            port["appProtocol"] = p.app_protocol
        port["protocol"] = p.protocol
        if p.target_port is not None:
            port["targetPort"] = p.target_port
        ports.append(port)
    assert dp is not None
    accrual = failure_accrual_annotations(dp)
    body = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": b.service.namespace,
                     **({"annotations": accrual} if accrual else {}),
                     "labels": {"app.kubernetes.io/managed-by": "meshmigrate",
                                "meshmigrate.io/subset-of": b.service.name,
                                "meshmigrate.io/subset": k8s_name(b.subset)}},
        "spec": {"selector": dict(sorted(selector.items())), "ports": ports},
    }
    ctx.out.add(ctx.out.routing, Manifest(body, tuple(sorted({dp.origin.ref,
                                                                base.origin.ref}))))
    ctx.subset_services[key] = name
    return name


def _report_cross_group_ties(ctx: RouteContext, route: Route, groups: list[list[Rule]]) -> None:
    """Rules split over several HTTPRoutes tie-break by route age, then name, not list order."""
    for g, rules in enumerate(groups):
        for other in groups[g + 1:]:
            for a in rules:
                for b in other:
                    for ma in a.matches or (None,):
                        for mb in b.matches or (None,):
                            if overlaps(ma, mb) and rank(ma) == rank(mb):
                                first, second = sorted((a, b), key=lambda r: r.index)
                                ctx.losses.report(
                                    "ROUTE_ORDER", Severity.DEGRADED, "route.http", _ref(route),
                                    second.origin_path,
                                    f"{first.origin_path} and {second.origin_path} have equally "
                                    "specific matches but different timeouts or retries, so they "
                                    "went to separate HTTPRoutes, where route age and name (not "
                                    "list order) decide between them",
                                    "Make the two matches distinct, or give both rules the same "
                                    "timeout and retry policy.")


def _tcp_route(ctx: RouteContext, route: Route, host: ServiceKey) -> None:
    """Weighted or redirected TCP routing; a single direct destination needs no route."""
    ref = _ref(route)
    rules = route.rules
    if len(rules) == 1 and len(rules[0].backends) == 1 and \
            rules[0].backends[0].service == host and not rules[0].backends[0].subset:
        return
    rule = rules[0]
    if len(rules) > 1:
        ctx.losses.report(
            "ROUTE_ORDER", Severity.DEGRADED, "route.tcp", ref, route.origin.path,
            f"TCPRoute takes one rule; only {rule.origin_path} was converted",
            "Split the port-specific rules into separate Services if they differ.")
    backends = [b for b in (_backend(ctx, ref, rule, x, host, len(rule.backends))
                            for x in rule.backends) if b]
    if not backends:
        return
    for b in backends:
        b.pop("filters", None)
    name = ctx.names.claim("TCPRoute", host.namespace, route.name, f"{ref}/{host}/tcp")
    body = {"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "TCPRoute",
            "metadata": {"name": name, "namespace": host.namespace},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": host.name}],
                     "rules": [{"backendRefs": backends}]}}
    # Istio also reads gateway.networking.k8s.io routes with Service parents and there is no
    # Linkerd-only TCPRoute, so this one is applied at cleanup, once Istio is gone.
    ctx.out.add(ctx.out.routing_final, Manifest(body, (ref,)))
