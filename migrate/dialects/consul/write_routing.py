"""IR HTTP routes -> ServiceRouter (ordered rules) and ServiceSplitter (weights).

Consul semantics (../shared/reference/mapping-consul-others.md section 1.2; consul
agent/structs/config_entry_discoverychain.go, ``ServiceRouterConfigEntry.Validate``):
- ServiceRouter ``routes[]`` are tried in list order and the first match wins, like Istio's
  rules (fact ``consul.router-first-match``), so the order is kept as is; an empty ``match`` is
  a catch-all, and the router always ends with an implicit catch-all to the service itself (so a
  trailing direct catch-all is left out, and a router without one sends unmatched requests there
  instead of Istio's 404);
- a rule with several weighted backends becomes a ServiceSplitter. Splitters are per service
  name, and a destination without ``serviceSubset`` is "eligible for further splitting"
  (service-splitter docs), so each split rule gets its own *virtual* service: the route points
  at it and its splitter divides the traffic. A virtual service needs only a ServiceDefaults
  with the same protocol (hashicorp/consul#7688 shows the pattern). Naming the splitter after
  the real service instead would also split traffic other routers send to that service;
- at most one path condition per route; a header or query condition holds exactly one of
  present/exact/prefix/suffix/regex (query: present/exact/regex); methods must be standard;
  ``retryOn`` takes the Envoy conditions of ``isValidRetryCondition``; weights sum to 100 with
  0.01 granularity and a split destination may appear once;
- requestTimeout, numRetries, retryOn, retryOnStatusCodes and header changes live on the route
  destination (and header changes also on each split). There is no redirect, no per-try
  timeout and no mirror: those are losses (capability table or the codes below);
- a path rewrite is the destination's ``prefixRewrite`` (see :func:`_rewrite`), set per route
  since what Consul accepts depends on the route's path match.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from migrate import facts
from migrate.dialects.consul.write_context import ConsulContext, need_l7
from migrate.dialects.consul.write_subsets import consul_subset
from migrate.dialects.gatewayapi.precedence import merge_routes
from migrate.durations import gateway_duration
from migrate.ir.model import Backend, HeaderOps, Route, RouteMatch, Rule, ServiceKey, StringMatch
from migrate.losses import ObjectRef, Severity
from migrate.names import k8s_name

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
RETRY_CONDITIONS = frozenset({
    "5xx", "gateway-error", "reset", "connect-failure", "envoy-ratelimited", "retriable-4xx",
    "refused-stream", "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
    "unavailable"})
# Istio's retry policy when retryOn is not given (istio/istio 1.30.3 pilot/pkg/networking/core/
# route/retry/retry.go DefaultPolicy): these conditions, with retriable-status-codes naming no
# code, so a 503 is not retried. Istio 1.30 has no setting for it any more (the former
# EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY is gone; its default behaviour stays).
# fact: istio.default-retry
ISTIO_DEFAULT_RETRY_ON = tuple(facts.value("istio.default-retry", "retry_on"))


RULES_ANNOTATION = "meshmigrate.io/rules"
"""The source rule of each route, in order (as the Istio and Linkerd writers record it): the
equivalence check scopes a loss to the rules a request hit on both sides."""


def write_routing(ctx: ConsulContext) -> None:
    """Every mesh HTTP route whose host moves to Consul, one router per Consul service."""
    written: dict[ServiceKey, ObjectRef] = {}
    # Gateway API sources (Linkerd; Consul's own reader gives one route per service) merge
    # every route on a parent by precedence, so their routes for one host become one router.
    # Two Istio VirtualServices for one mesh host conflict instead (IST0109): the first wins.
    merged: dict[ServiceKey, list[Route]] = {}
    for route in ctx.graph.of(Route):
        if not route.mesh or route.protocol != "http":
            continue
        for host in route.hosts:
            if not ctx.migrated(host):
                continue
            svc = ctx.graph.service(host)
            if svc is None or svc.raw_spec_type == "ExternalName":
                ctx.losses.report(
                    "CONSUL_PROTOCOL", Severity.MANUAL, "route.http", route.origin.ref,
                    route.origin.path,
                    f"Service {host} is " + ("not in the input" if svc is None else
                                             "an ExternalName, which consul-k8s does not "
                                             "register")
                    + ": no ServiceDefaults can declare its protocol, so its rules were not "
                    "converted",
                    "Add the Service to the input (consul-k8s needs a selector-based Service), "
                    "then re-run.")
                continue
            if not ctx.owns(host):
                continue  # a same-named Service elsewhere owns the name (CONSUL_NAME_COLLISION)
            if ctx.graph.mesh != "istio":
                merged.setdefault(host, []).append(route)
                continue
            if host in written:
                ctx.losses.report(
                    "CONSUL_ROUTER_CONFLICT", Severity.MANUAL, "route.http", route.origin.ref,
                    route.origin.path,
                    f"{written[host]} already routes {host}; Consul takes one ServiceRouter per "
                    "service, so these rules were not converted",
                    "Merge the rules for this host into one VirtualService and re-run.")
                continue
            if _router(ctx, [route], host):
                written[host] = route.origin.ref
    for host in sorted(merged):
        _router(ctx, merged[host], host)


def _router(ctx: ConsulContext, parts: list[Route], host: ServiceKey) -> bool:
    """Write the ServiceRouter for one host; False when nothing was written. Several routes
    (Gateway API sources) are merged into one router by precedence."""
    route = parts[0]
    ref = route.origin.ref
    proto = need_l7(ctx, host, ref, route.origin.path, "route.http")
    if proto is None:
        return False
    routes: list[dict[str, Any]] = []
    origins: list[str] = []
    """The source rule each route came from, for the equivalence check (RULES_ANNOTATION)."""
    sources = {r.origin.ref for r in parts}
    catch_all = False
    entries = [(r, rule) for r in parts for rule in r.rules]
    for part, rule in _ordered(ctx, entries) if len(parts) > 1 else entries:
        if rule.redirect:
            continue  # no Consul form; the capability check reports route.redirect
        dest = _destination(ctx, part, rule, host, proto, sources)
        if dest is None:
            continue
        matches = [_match(ctx, part.origin.ref, m) for m in rule.matches] if rule.matches \
            else [{}]
        for rm, match in zip(rule.matches or (None,), matches):
            if match is None:
                continue
            everything = not match
            body = copy.deepcopy(dest)  # one independent body per route
            if rule.rewrite:
                match = _rewrite(ctx, part.origin.ref, rule, rm, match, body)
            entry: dict[str, Any] = {"match": {"http": match}} if match else {}
            entry["destination"] = body
            routes.append(entry)
            origins.append(rule.origin_path)
            catch_all = catch_all or everything
        if catch_all:
            break  # Istio never reaches later rules either
    if routes and not routes[-1].get("match") and routes[-1]["destination"] == {
            "service": host.name}:
        routes.pop()  # the router's implicit default route does the same
        origins.pop()
    elif routes and not catch_all:
        ctx.losses.report(
            "CONSUL_ROUTE_UNMATCHED", Severity.INFO, "route.http", ref, route.origin.path,
            f"requests to {host} matching no rule got 404 from the source mesh; Consul sends them "
            f"to {host.name} itself",
            "Add a catch-all rule if unmatched requests must go elsewhere.")
    if not routes:
        return False
    ctx.add(ctx.out.routing, "ServiceRouter", host.namespace, host.name, {"routes": routes},
            sources, annotations={RULES_ANNOTATION: ",".join(origins)} if any(origins) else None)
    return True


def _ordered(ctx: ConsulContext, entries: list[tuple[Route, Rule]]
             ) -> list[tuple[Route, Rule]]:
    """Rules of several Gateway API routes on one parent as one first-match list (the same
    order the Istio writer gives a VirtualService)."""
    return merge_routes(entries, ctx.losses, "the ServiceRouter")


def _destination(ctx: ConsulContext, route: Route, rule: Rule, host: ServiceKey, proto: str,
                 sources: set[ObjectRef]) -> dict[str, Any] | None:
    """The route destination of a rule: one service (and subset), or a virtual splitter."""
    ref = route.origin.ref
    kept: list[tuple[Backend, str, str]] = []
    for b in rule.backends:
        target = _backend(ctx, ref, b, proto, sources)
        if target is not None:
            kept.append((b, *target))
    if not kept:
        ctx.losses.report(
            "ROUTE_RULE_EMPTY", Severity.MANUAL, "route.http", ref, rule.origin_path,
            "the rule has no backend Consul can address; it was left out",
            "Make sure the destinations are Services of namespaces moving to Consul.")
        return None
    splits = _weights(kept)
    dest: dict[str, Any] = {}
    if len(splits) == 1:
        (b, service, subset), _ = splits[0]
        dest["service"] = service
        if subset:
            dest["serviceSubset"] = subset
        _headers(dest, _merge(rule.request_headers, b.request_headers),
                 _merge(rule.response_headers, b.response_headers))
    else:
        dest["service"] = _splitter(ctx, route, rule, host, proto, splits)
        _headers(dest, rule.request_headers, rule.response_headers)
    _timeout(ctx, ref, rule, dest)
    _retry(ctx, ref, rule, dest)
    return dest


def _backend(ctx: ConsulContext, ref: ObjectRef, b: Backend, proto: str,
             sources: set[ObjectRef]) -> tuple[str, str] | None:
    """(Consul service, subset) for a backend, or None when it cannot be addressed."""
    if b.service is None:
        return None  # not a Kubernetes Service: reported as route.host.external
    path = f"{b.origin_path}.destination"
    if not ctx.migrated(b.service):
        ctx.losses.report(
            "ROUTE_BACKEND_UNKNOWN", Severity.MANUAL, "route.http", ref, f"{path}.host",
            f"backend {b.service} is in a namespace that does not move to Consul, so Consul's "
            "catalog does not know it; the backend was left out",
            "Move that namespace too (or register the service in Consul), then re-run.")
        return None
    subset = ""
    if b.subset:
        found = consul_subset(ctx, b.service, b.subset, ref, f"{path}.subset", "route.http")
        if found is None:
            return None
        subset = found
        sources.add(ctx.policies[b.service].origin.ref)
    backend_proto = need_l7(ctx, b.service, ref, path, "route.http")
    if backend_proto is None:
        return None
    if backend_proto != proto:
        # Consul refuses a route or split whose two sides declare different protocols.
        ctx.losses.report(
            "CONSUL_PROTOCOL", Severity.MANUAL, "route.http", ref, path,
            f"backend {b.service} speaks {backend_proto} but the routed service speaks {proto}; "
            "Consul requires one protocol on both sides, so the backend was left out",
            "Give both Services the same protocol (port name or appProtocol), then re-run.")
        return None
    svc = ctx.graph.service(b.service)
    if b.port is not None and svc is not None and len(svc.ports) > 1:
        ctx.losses.report(
            "CONSUL_ROUTE_PORT", Severity.DEGRADED, "route.http", ref, f"{path}.port",
            f"port {b.port} of {b.service} cannot be chosen: Consul routes to the service's "
            "registered port",
            "Give the port its own Service if traffic must reach that port specifically.")
    return b.service.name, subset


def _weights(kept: list[tuple[Backend, str, str]]) -> list[tuple[tuple[Backend, str, str],
                                                                   float]]:
    """Percentages summing to 100 (0.01 steps), zero weights and duplicates folded."""
    raw = [b.weight for b, _, _ in kept]
    if all(w is None for w in raw) or sum(w or 0 for w in raw) <= 0:
        weights = [1.0] * len(kept)
    else:
        weights = [float(w or 0) for w in raw]
    merged: dict[tuple[str, str], list[Any]] = {}
    for item, w in zip(kept, weights, strict=True):
        slot = merged.setdefault((item[1], item[2]), [item, 0.0])
        slot[1] += w
    items = [(item, w) for item, w in merged.values() if w > 0]
    total = sum(w for _, w in items)
    scaled = [(item, round(w * 100 / total, 2)) for item, w in items]
    # Consul attributes a remainder within epsilon to the first split; make the sum exact.
    gap = round(100 - sum(w for _, w in scaled), 2)
    if scaled and gap:
        scaled[0] = (scaled[0][0], round(scaled[0][1] + gap, 2))
    return scaled


def _splitter(ctx: ConsulContext, route: Route, rule: Rule, host: ServiceKey, proto: str,
              splits: list[tuple[tuple[Backend, str, str], float]]) -> str:
    """A virtual service and its ServiceSplitter for one weighted rule; its name."""
    base = k8s_name(host.name, "split", rule.index)
    name, n = base, 2
    while name in ctx.taken:
        name, n = k8s_name(f"{base}-{n}"), n + 1
    ctx.taken.add(name)
    ctx.virtual[name] = (host, proto, route.origin.ref)
    out = []
    for (b, service, subset), weight in splits:
        split: dict[str, Any] = {"weight": int(weight) if weight == int(weight) else weight,
                                 "service": service}
        if subset:
            split["serviceSubset"] = subset
        _headers(split, b.request_headers, b.response_headers)
        out.append(split)
    sources = {route.origin.ref} | {ctx.policies[b.service].origin.ref
                                    for (b, _, subset), _ in splits if subset and b.service}
    ctx.add(ctx.out.routing, "ServiceSplitter", host.namespace, name, {"splits": out}, sources)
    return name


def _headers(target: dict[str, Any], request: HeaderOps, response: HeaderOps) -> None:
    for key, ops in (("requestHeaders", request), ("responseHeaders", response)):
        if ops:
            body: dict[str, Any] = {}
            if ops.add:
                body["add"] = dict(ops.add)
            if ops.set:
                body["set"] = dict(ops.set)
            if ops.remove:
                body["remove"] = list(ops.remove)
            target[key] = body


def _merge(a: HeaderOps, b: HeaderOps) -> HeaderOps:
    return HeaderOps(set=tuple(sorted({**dict(a.set), **dict(b.set)}.items())),
                     add=tuple(sorted({**dict(a.add), **dict(b.add)}.items())),
                     remove=tuple(sorted(set(a.remove) | set(b.remove))))


def _timeout(ctx: ConsulContext, ref: ObjectRef, rule: Rule, dest: dict[str, Any]) -> None:
    if not rule.timeout or not ctx.supports("route.timeout"):
        return
    value = gateway_duration(rule.timeout)
    if value is None:
        ctx.losses.report("ROUTE_DURATION", Severity.DROPPED, "route.timeout", ref,
                          f"{rule.origin_path}.timeout",
                          f"timeout {rule.timeout!r} does not parse", "Fix the duration.")
        return
    dest["requestTimeout"] = value


def _retry(ctx: ConsulContext, ref: ObjectRef, rule: Rule, dest: dict[str, Any]) -> None:
    r = rule.retry
    if r is None or r.attempts <= 0 or not ctx.supports("route.retry"):
        return
    path = r.origin_path or f"{rule.origin_path}.retries"
    fields = dict(r.field_paths)  # where a source keeps each setting apart (Linkerd)
    conditions, codes, lost = [], [], []
    for c in r.retry_on or ISTIO_DEFAULT_RETRY_ON:
        if c in RETRY_CONDITIONS:
            conditions.append(c)
        elif c.isdigit():
            codes.append(int(c))
        elif c != "retriable-status-codes":  # implied by retryOnStatusCodes
            lost.append(c)
    dest["numRetries"] = r.attempts
    if conditions:
        dest["retryOn"] = list(dict.fromkeys(conditions))
    if codes:
        dest["retryOnStatusCodes"] = sorted(set(codes))
    if lost:
        ctx.losses.report(
            "CONSUL_RETRY", Severity.DEGRADED, "route.retry", ref,
            fields.get("retryOn", f"{path}.retryOn"),
            f"retry conditions {','.join(lost)} have no Consul form"
            f"{'' if conditions or codes else '; this rule retries on nothing'}",
            "Consul retries on " + ", ".join(sorted(RETRY_CONDITIONS)) + " and status codes.")
    if r.per_try_timeout:
        ctx.losses.report(
            "CONSUL_RETRY", Severity.DEGRADED, "route.retry", ref,
            fields.get("perTryTimeout", f"{path}.perTryTimeout"),
            f"per-try timeout {r.per_try_timeout} has no ServiceRouter field; each retry may use "
            "the rest of the request timeout",
            "Set a requestTimeout that bounds all attempts together.")


def _rewrite(ctx: ConsulContext, ref: ObjectRef, rule: Rule, rm: RouteMatch | None,
             match: dict[str, Any], dest: dict[str, Any]) -> dict[str, Any]:
    """Set ``prefixRewrite`` on one route's destination; the match, given ``pathPrefix: /``
    when it has no path condition (what Envoy matches then anyway), since Consul accepts
    prefixRewrite only beside pathPrefix or pathExact (agent/structs/
    config_entry_discoverychain.go: "cannot make use of PrefixRewrite without configuring
    either PathExact or PathPrefix"). It is Envoy's prefix_rewrite (agent/xds/routes.go), so
    a whole-path rewrite fits only an exact match. The authority has no ServiceRouter field
    (route.rewrite.authority, reported by the capability check)."""
    rw = rule.rewrite
    assert rw is not None
    if not (rw.prefix or rw.full_path) or not ctx.supports("route.rewrite"):
        return match
    where = rw.origin_path or rule.origin_path
    value = rw.prefix or rw.full_path
    if rw.prefix and "pathRegex" not in match:
        if not {"pathExact", "pathPrefix"} & set(match):
            match = {"pathPrefix": "/", **match}
        dest["prefixRewrite"] = value
    elif rw.full_path and "pathExact" in match:
        dest["prefixRewrite"] = value
    else:
        on = f"{rm.origin_path} " if rm is not None and rm.origin_path else ""
        ctx.losses.report(
            "ROUTE_REWRITE", Severity.DROPPED, "route.rewrite", ref, where,
            f"the rewrite to {value!r} under the match {on}has no Consul form: prefixRewrite "
            "needs a pathPrefix or pathExact match and replaces only what it matched "
            f"({'a regular expression path' if 'pathRegex' in match else 'not the whole path'}"
            " here); requests reach the backend with their original path",
            "Rewrite the path in the application, or split the rule into pathExact routes "
            "with a prefixRewrite each.")
    return match


def _match(ctx: ConsulContext, ref: ObjectRef, rm: RouteMatch) -> dict[str, Any] | None:
    """A Consul HTTP match ({} matches everything), or None when nothing can match."""
    http: dict[str, Any] = {}
    if rm.path is not None:
        http.update(_path(rm.path))
        if rm.ignore_case and http:
            http["caseInsensitive"] = True
    if rm.method is not None:
        methods = [v for v in METHODS if _method_matches(rm.method, v)]
        if rm.method.kind != "exact" or rm.method.value not in METHODS:
            ctx.losses.report(
                "ROUTE_METHOD", Severity.DEGRADED, "route.http", ref, f"{rm.origin_path}.method",
                f"method {rm.method.kind} {rm.method.value!r} became "
                f"{', '.join(methods) or 'nothing'}; Consul matches standard methods only",
                "Check that clients use no other methods on this route.")
        if not methods:
            return None
        http["methods"] = methods
    headers = [_value(name, m, header=True) for name, m in rm.headers]
    if headers:
        http["header"] = headers
    query = [_value(name, m, header=False) for name, m in rm.query]
    if query:
        http["queryParam"] = query
    return http


def _path(m: StringMatch) -> dict[str, str]:
    """Consul path conditions must start with ``/`` unless they are regular expressions."""
    if m.kind == "exact":
        return {"pathExact": m.value} if m.value.startswith("/") else \
            {"pathRegex": re.escape(m.value)}
    if m.kind == "prefix":
        if m.value in ("", "/"):
            return {}
        return {"pathPrefix": m.value} if m.value.startswith("/") else \
            {"pathRegex": re.escape(m.value) + ".*"}
    if m.kind == "regex":
        return {"pathRegex": m.value}
    return {}


def _value(name: str, m: StringMatch, header: bool) -> dict[str, Any]:
    """One header or query condition; an empty exact value needs a regex (Consul treats an
    empty ``exact`` as unset)."""
    if m.kind == "present" or (m.kind == "prefix" and not m.value):
        return {"name": name, "present": True}
    if m.kind == "exact":
        return {"name": name, "exact": m.value} if m.value else {"name": name, "regex": "^$"}
    if m.kind == "prefix":
        return {"name": name, "prefix": m.value} if header else \
            {"name": name, "regex": re.escape(m.value) + ".*"}
    return {"name": name, "regex": m.value}


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
