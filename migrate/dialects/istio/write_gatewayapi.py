"""IR routes -> gateway.networking.k8s.io/v1 HTTPRoutes with Service parents (GAMMA), the
``routes_api="gateway-api"`` mode of the Istio writer. Istio programs such routes into its
sidecars (mapping-istio-linkerd.md sections 1.3 and 6).

What Gateway API (standard channel, v1.6.1 CRDs) cannot say is reported as
``ROUTE_GATEWAY_API`` and left out: retries (the ``retry`` field is experimental-channel
only), matches on the destination port inside a rule, non-standard methods. Other rules:
- Gateway API picks the most specific match, not the first: :mod:`migrate.dialects.gatewayapi.
  precedence` drops matches the source never reached and reports real inversions
  (``ROUTE_ORDER``), as the Linkerd writer does.
- Istio prefixes match raw strings, PathPrefix whole segments (``ROUTE_PREFIX_SEGMENT``).
- Subsets have no Gateway API form: each becomes a Service selecting the base Service's
  selector plus the subset labels, with the same ports.
- Backends need a port (CEL rule "Must have port for Service reference").
- TCP rules stay VirtualServices (write_routes.py): Istio 1.30 reads TCPRoute only from the
  experimental channel.
- Rewrites become a URLRewrite filter. The model's prefix rewrite is Envoy's
  ``prefix_rewrite`` (see :class:`~migrate.ir.model.Rewrite`): ReplacePrefixMatch under a
  prefix match (or none: PathPrefix ``/``), ReplaceFullPath under an exact or regex match,
  where the source replaced the whole path. ReplacePrefixMatch needs exactly one PathPrefix
  match per rule (a CEL rule of the HTTPRoute CRD), so such rules are split per match, which
  changes nothing: Gateway API ranks every match on its own. Envoy splices the replacement
  in character for character, ReplacePrefixMatch joins whole segments (httproute_types.go
  ``HTTPPathModifier``), so they differ when exactly one of prefix and replacement ends with
  ``/``: reported as ``ROUTE_REWRITE``.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from migrate.dialects.base import Manifest
from migrate.dialects.gatewayapi.filters import (
    PRECISE_HOSTNAME,
    header_modifier,
    redirect_filter,
    url_rewrite_filter,
    value_match,
)
from migrate.dialects.gatewayapi.precedence import analyse
from migrate.dialects.istio.write_common import GATEWAY_ROUTE_API, RULES_ANNOTATION, WriteContext
from migrate.dialects.istio.write_routes import plan_routes
from migrate.durations import gateway_duration
from migrate.ir.model import Backend, HeaderOps, Route, RouteMatch, Rule, ServiceKey, StringMatch
from migrate.losses import ObjectRef, Severity
from migrate.names import k8s_name

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
REDIRECT_CODES = (301, 302, 303, 307, 308)
MAX_RULES = 16


def write_http_routes(ctx: WriteContext) -> None:
    """One HTTPRoute per planned group of http rules."""
    subset_services: dict[tuple[ServiceKey, str], str | None] = {}
    for plan in plan_routes(ctx):
        entries = plan.http
        if len({route.origin.ref for route, _ in entries}) == 1:
            entries = _drop_shadowed(ctx, entries)
        rules: list[dict[str, Any]] = []
        used: list[tuple[Route, Rule]] = []
        for route, whole in entries:
            for rule in _one_match_each(whole):
                body = _rule(ctx, plan.namespace, route, rule, subset_services)
                for part in _one_prefix_match_each(body):
                    rules.append(part)
                    used.append((route, rule))
        parents = [{"group": "", "kind": "Service", "name": h.name,
                    **({"namespace": h.namespace} if h.namespace != plan.namespace else {})}
                   for h in plan.hosts]
        # An HTTPRoute holds at most 16 rules (CRD maxItems). Further rules go to more routes
        # on the same parents; equally specific matches then tie-break by route age and name
        # (httproute_types.go), and the zero-padded suffixes keep the names in rule order.
        for n, start in enumerate(range(0, len(rules), MAX_RULES)):
            chunk = slice(start, start + MAX_RULES)
            wanted = plan.wanted if n == 0 else k8s_name(plan.wanted, f"{n + 1:02d}")
            name = ctx.names.claim("HTTPRoute", plan.namespace, wanted, f"{plan.owner}/{n}")
            annotations = {RULES_ANNOTATION: ",".join(r.origin_path for _, r in used[chunk])}
            body = {"apiVersion": GATEWAY_ROUTE_API, "kind": "HTTPRoute",
                    "metadata": {"name": name, "namespace": plan.namespace,
                                 "annotations": annotations},
                    "spec": {"parentRefs": parents, "rules": rules[chunk]}}
            refs = {route.origin.ref for route, _ in used[chunk]}
            refs.update(ctx.policies[b.service].origin.ref for _, r in used[chunk]
                        for b in r.backends if b.subset and b.service in ctx.policies)
            ctx.out.add(ctx.out.routing, Manifest(body, tuple(sorted(refs))))


def _drop_shadowed(ctx: WriteContext,
                   entries: list[tuple[Route, Rule]]) -> list[tuple[Route, Rule]]:
    """First-match vs specificity: drop matches never reached, report real inversions."""
    route = entries[0][0]
    ref = route.origin.ref
    rules = tuple(rule for _, rule in entries)
    by_index = {r.index: r for r in rules}
    dropped: dict[int, set[int]] = {}
    for inv in analyse(rules):
        (ri, mi), (rj, mj) = inv.earlier, inv.later
        a_path, b_path = _match_path(by_index[ri], mi), _match_path(by_index[rj], mj)
        if inv.shadowed:
            dropped.setdefault(rj, set()).add(mj)
            ctx.losses.report(
                "ROUTE_RULE_UNREACHABLE", Severity.INFO, "route.http", ref, b_path,
                f"{b_path} is never reached in first-match order: the earlier {a_path} already "
                "matches every request it would; under Gateway API specificity it would win, "
                "so it is left out",
                "Delete the unreachable match from the source too, or move it above the broader "
                "rule if it was meant to apply.")
        else:
            ctx.losses.report(
                "ROUTE_ORDER", Severity.DEGRADED, "route.http", ref, b_path,
                f"a request matching both {a_path} and {b_path} went to {a_path} (first match); "
                f"Gateway API prefers the more specific {b_path}",
                "Narrow one of the two matches so they no longer overlap, or use "
                "VirtualServices (the default routes API), which keep list order.")
    kept: list[tuple[Route, Rule]] = []
    for route_, rule in entries:
        gone = dropped.get(rule.index, set())
        matches = tuple(m for j, m in enumerate(rule.matches) if j not in gone)
        if not gone:
            kept.append((route_, rule))
        elif matches:
            kept.append((route_, Rule(**{**rule.__dict__, "matches": matches})))
        else:
            # Never applied by the source mesh: its features are not lost (see the Linkerd
            # writer's _drop_shadowed).
            ctx.losses.withdraw(route_.origin.ref, rule.origin_path,
                                frozenset({"ROUTE_RULE_UNREACHABLE", "ROUTE_ORDER"}))
    return kept


def _one_match_each(rule: Rule) -> list[Rule]:
    """A rule with a prefix rewrite as one rule per match: what the rewrite becomes depends on
    the match (ReplacePrefixMatch or ReplaceFullPath), and ReplacePrefixMatch takes one
    match per rule."""
    rewrite = rule.rewrite
    if rule.redirect is not None or rewrite is None or not rewrite.prefix or \
            len(rule.matches) <= 1:
        return [rule]
    return [Rule(**{**rule.__dict__, "matches": (m,)}) for m in rule.matches]


def _one_prefix_match_each(body: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A rule body whose ReplacePrefixMatch rewrite has several matches (methods expanded
    from one match) as one body per match (the CRD's CEL rule allows exactly one)."""
    if body is None:
        return []
    prefix = any(f.get("urlRewrite", {}).get("path", {}).get("type") == "ReplacePrefixMatch"
                 for f in body.get("filters", []))
    if not prefix or len(body.get("matches", [])) <= 1:
        return [body]
    return [{**copy.deepcopy(body), "matches": [m]} for m in body["matches"]]


def _match_path(rule: Rule, j: int) -> str:
    return f"{rule.origin_path}.match[{j}]" if rule.matches else rule.origin_path


def _lost(ctx: WriteContext, ref: ObjectRef, feature: str, path: str, what: str,
          severity: Severity = Severity.DROPPED) -> None:
    ctx.losses.report(
        "ROUTE_GATEWAY_API", severity, feature, ref, path,
        f"{what} has no Gateway API (standard channel) form; left out",
        "Use VirtualServices (the default routes API) to keep it, or add it by hand.")


def _rule(ctx: WriteContext, ns: str, route: Route, rule: Rule,
          subset_services: dict[tuple[ServiceKey, str], str | None]) -> dict[str, Any] | None:
    ref = route.origin.ref
    body: dict[str, Any] = {}
    matches = [m for rm in rule.matches for m in _matches(ctx, ref, rm)]
    if rule.matches and not matches:
        return None  # every match was inexpressible (reported)
    if matches:
        body["matches"] = matches
    filters = _header_filters(rule.request_headers, rule.response_headers)
    if rule.redirect is not None:
        filters.append({"type": "RequestRedirect", "requestRedirect": _redirect(ctx, ref, rule)})
    elif rule.rewrite:
        rewrite = _url_rewrite(ctx, ref, rule)
        if rewrite is not None:
            filters.append(rewrite)
            if rewrite["urlRewrite"].get("path", {}).get("type") == "ReplacePrefixMatch":
                # Envoy matched these with an implicit prefix "/"; the CRD wants it written.
                matches = [m if "path" in m else {"path": {"type": "PathPrefix", "value": "/"},
                                                  **m} for m in matches or [{}]]
                body["matches"] = matches
    if filters:
        body["filters"] = filters
    if rule.redirect is None:
        backends = [b for b in (_backend(ctx, ns, ref, b, subset_services)
                                for b in rule.backends) if b]
        if not backends:
            ctx.losses.report(
                "ROUTE_RULE_EMPTY", Severity.MANUAL, "route.http", ref, rule.origin_path,
                "the rule has no backend an HTTPRoute can address; it was left out",
                "Give the destinations a port and make sure their Services exist.")
            return None
        body["backendRefs"] = backends
        if rule.timeout and ctx.supports("route.timeout"):
            timeout = gateway_duration(rule.timeout)
            if timeout is None:
                ctx.losses.report(
                    "ROUTE_DURATION", Severity.DEGRADED, "route.timeout", ref,
                    f"{rule.origin_path}.timeout", f"duration {rule.timeout!r} does not parse; "
                    "left out", "Write the duration as e.g. 1.5s and re-run.")
            else:
                body["timeouts"] = {"request": timeout}
        if rule.retry is not None and rule.retry.attempts > 0:
            _lost(ctx, ref, "route.retry", rule.retry.origin_path or rule.origin_path,
                  f"retries ({rule.retry.attempts} attempts)")
    return body


def _matches(ctx: WriteContext, ref: ObjectRef, rm: RouteMatch) -> list[dict[str, Any]]:
    if rm.port is not None:
        _lost(ctx, ref, "route.match.port", f"{rm.origin_path}.port",
              f"a match on port {rm.port} inside a rule (the whole match)", Severity.MANUAL)
        return []
    match: dict[str, Any] = {}
    if rm.path is not None:
        match["path"] = _path(ctx, ref, rm)
    if rm.headers:
        match["headers"] = [value_match(name, m) for name, m in rm.headers]
    if rm.query:
        match["queryParams"] = [value_match(name, m) for name, m in rm.query]
    if rm.method is None or rm.method.kind == "present":
        return [match]
    methods = [v for v in METHODS if _method_matches(rm.method, v)]
    if rm.method.kind != "exact" or rm.method.value not in METHODS:
        ctx.losses.report(
            "ROUTE_METHOD", Severity.DEGRADED, "route.http", ref, f"{rm.origin_path}.method",
            f"method {rm.method.kind} {rm.method.value!r} became "
            f"{', '.join(methods) or 'nothing'}; only standard methods can be matched",
            "Check that clients use no other methods on this route.")
    return [{**match, "method": m} for m in methods]


def _method_matches(m: StringMatch, verb: str) -> bool:
    if m.kind == "exact":
        return m.value == verb
    if m.kind == "prefix":
        return verb.startswith(m.value)
    try:
        return re.fullmatch(m.value, verb) is not None
    except re.error:
        return False


def _path(ctx: WriteContext, ref: ObjectRef, rm: RouteMatch) -> dict[str, str]:
    assert rm.path is not None
    kind, value = rm.path.kind, rm.path.value
    if rm.ignore_case:
        pattern = {"exact": re.escape(value), "prefix": re.escape(value) + ".*",
                   "regex": value}.get(kind, ".*")
        return {"type": "RegularExpression", "value": f"(?i){pattern}"}
    if kind == "exact":
        return {"type": "Exact", "value": value}
    if kind == "regex":
        return {"type": "RegularExpression", "value": value}
    if kind == "prefix" and value not in ("", "/"):
        # Istio's uri prefix and Consul's pathPrefix match raw strings (Gateway API sources had
        # segment prefixes already): "/v1/" did not match "/v1", PathPrefix "/v1/" does.
        field = {"istio": "uri", "consul": "http.pathPrefix"}.get(ctx.source_mesh)
        if field:
            ctx.losses.report(
                "ROUTE_PREFIX_SEGMENT", Severity.INFO, "route.http", ref,
                f"{rm.origin_path}.{field}",
                f"{ctx.source_mesh.capitalize()} prefix {value!r} matched raw strings; "
                "PathPrefix matches whole path segments"
                f"{' and also ' + value.rstrip('/') if value.endswith('/') else ''}",
                "Usually the intent; if raw-prefix matching mattered, use a regex.")
        return {"type": "PathPrefix", "value": value}
    return {"type": "PathPrefix", "value": "/"}


def _header_filters(request: HeaderOps, response: HeaderOps) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind, key, ops in (("RequestHeaderModifier", "requestHeaderModifier", request),
                           ("ResponseHeaderModifier", "responseHeaderModifier", response)):
        if ops:
            out.append({"type": kind, key: header_modifier(ops)})
    return out


def _redirect(ctx: WriteContext, ref: ObjectRef, rule: Rule) -> dict[str, Any]:
    r = rule.redirect
    assert r is not None
    code = r.code if r.code in REDIRECT_CODES else 301
    if code != r.code:
        ctx.losses.report(
            "ROUTE_REDIRECT_CODE", Severity.DEGRADED, "route.redirect", ref,
            f"{r.origin_path}.redirectCode",
            f"redirect status {r.code} became {code} (Gateway API allows "
            f"{', '.join(str(c) for c in REDIRECT_CODES)})",
            "Check that clients handle the changed status.")
    return redirect_filter(r, code)


def _url_rewrite(ctx: WriteContext, ref: ObjectRef, rule: Rule) -> dict[str, Any] | None:
    """The URLRewrite filter of a rule with at most one match (see :func:`_one_match_each`),
    or None when nothing of the rewrite can be written (reported)."""
    rw = rule.rewrite
    assert rw is not None
    path_type, value = "", ""
    if (rw.prefix or rw.full_path) and ctx.supports("route.rewrite"):
        m = rule.matches[0] if rule.matches else None
        kind = m.path.kind if m is not None and m.path is not None else "present"
        if rw.full_path or kind in ("exact", "regex"):
            # An exact or regex match covers the whole path, which Envoy's prefix_rewrite then
            # replaces whole (envoy source/common/router/config_impl.cc: Path- and
            # RegexRouteEntryImpl::currentUrlPathAfterRewrite pass the whole path as matched).
            path_type, value = "ReplaceFullPath", rw.full_path or rw.prefix
        elif m is not None and m.ignore_case:
            # Written as a RegularExpression match, and ReplacePrefixMatch needs PathPrefix.
            _lost(ctx, ref, "route.rewrite", rw.origin_path or rule.origin_path,
                  f"a prefix rewrite to {rw.prefix!r} under a case-insensitive prefix match")
        else:
            prefix = m.path.value if m is not None and m.path is not None and \
                kind == "prefix" and m.path.value else "/"
            if prefix.endswith("/") != rw.prefix.endswith("/"):
                ctx.losses.report(
                    "ROUTE_REWRITE", Severity.DEGRADED, "route.rewrite", ref,
                    rw.origin_path or rule.origin_path,
                    f"the source proxy replaced the prefix {prefix!r} with {rw.prefix!r} "
                    "character for character (a '/' doubled or missing where they join); "
                    "Gateway API ReplacePrefixMatch joins whole path segments, so the backend "
                    "now gets a path with exactly one '/' there",
                    "Check which path the backend expects; ending both the prefix and the "
                    "replacement with '/' (or neither) makes the meshes agree.")
            path_type, value = "ReplacePrefixMatch", rw.prefix
    hostname = ""
    if rw.authority and ctx.supports("route.rewrite.authority"):
        hostname = rw.authority.lower()
        if len(hostname) > 253 or not PRECISE_HOSTNAME.match(hostname):
            _lost(ctx, ref, "route.rewrite.authority", rw.authority_path or rule.origin_path,
                  f"an authority rewrite to {rw.authority!r} (not a plain DNS name: a port, "
                  "wildcard or character PreciseHostname refuses)")
            hostname = ""
    if not path_type and not hostname:
        return None
    return url_rewrite_filter(path_type, value, hostname)


def _backend(ctx: WriteContext, ns: str, ref: ObjectRef, b: Backend,
             subset_services: dict[tuple[ServiceKey, str], str | None]) -> dict[str, Any] | None:
    if b.service is None:
        _lost(ctx, ref, "route.host.external", f"{b.origin_path}.destination.host",
              f"backend {b.host!r} (not a Kubernetes Service)", Severity.MANUAL)
        return None
    name: str | None = b.service.name
    if b.subset:
        name = _subset_service(ctx, ref, b, subset_services)
        if name is None:
            return None
    port = b.port or _single_port(ctx, b.service)
    if port is None:
        ctx.losses.report(
            "ROUTE_BACKEND_UNKNOWN", Severity.MANUAL, "route.http", ref,
            f"{b.origin_path}.destination",
            f"no port for backend {b.host}: the destination names none and the Service "
            f"{'has several' if ctx.graph.service(b.service) else 'is not in the input'}",
            "Set the destination port in the source (or add the Service to the input).")
        return None
    body: dict[str, Any] = {"name": name}
    if b.service.namespace != ns:
        body["namespace"] = b.service.namespace
    body["port"] = port
    if b.weight is not None:
        body["weight"] = b.weight
    filters = _header_filters(b.request_headers, b.response_headers)
    if filters:
        body["filters"] = filters
    return body


def _single_port(ctx: WriteContext, key: ServiceKey) -> int | None:
    svc = ctx.graph.service(key)
    if svc is None:
        return None
    if len(svc.ports) == 1:
        return svc.ports[0].port
    http = [p.port for p in svc.ports if p.l7 in ("http", "http2", "grpc")]
    return http[0] if len(http) == 1 else None


def _subset_service(ctx: WriteContext, ref: ObjectRef, b: Backend,
                    made: dict[tuple[ServiceKey, str], str | None]) -> str | None:
    """A Service for one subset (selector = Service selector plus subset labels), once."""
    assert b.service is not None
    key = (b.service, b.subset)
    if key in made:
        return made[key]
    dp = ctx.policies.get(b.service)
    subset = next((s for s in dp.subsets if s.name == b.subset), None) if dp else None
    base = ctx.graph.service(b.service)
    if dp is None or subset is None or base is None or not base.selector:
        why = ("no destination policy defines it" if subset is None else
               "the Service is not in the input" if base is None else
               "the Service has no selector")
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
        made[key] = None
        return None
    name = ctx.names.claim("Service", b.service.namespace, k8s_name(b.service.name, b.subset),
                           f"subset/{b.service}/{b.subset}")
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
    selector = {**dict(base.selector), **dict(subset.labels)}
    body = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": b.service.namespace,
                         "labels": {"app.kubernetes.io/managed-by": "meshmigrate",
                                    "meshmigrate.io/subset-of": b.service.name,
                                    "meshmigrate.io/subset": k8s_name(b.subset)}},
            "spec": {"selector": dict(sorted(selector.items())), "ports": ports}}
    ctx.out.add(ctx.out.routing, Manifest(body, tuple(sorted({dp.origin.ref,
                                                                base.origin.ref}))))
    made[key] = name
    return name
