"""IR routes -> Istio VirtualServices (networking.istio.io/v1).

Choices, with their sources:
- Istio applies the first matching ``http`` rule in list order (istio/api
  networking/v1/virtual_service.proto), so rules keep the IR order. IR rules read from Istio
  are in the source's order; the Linkerd and Gateway API readers order one route's rules
  most-specific-first (see their docstrings), which is exactly the first-match list Gateway
  API's precedence implies.
- Several non-Istio routes on one Service (Gateway API merges them by precedence across
  routes) become ONE VirtualService: Istio merges VirtualServices for one host only on
  ingress gateways; two mesh VirtualServices for one host conflict (istio.io analysis message
  IST0109 ConflictingMeshGatewayVirtualServiceHosts). Their rules are split per match
  and stably sorted by Gateway API precedence
  (:func:`migrate.dialects.gatewayapi.precedence.merge_routes`); equally specific overlapping
  matches from different routes are decided by route age in Gateway API, which the input does
  not carry: reported as ``ROUTE_ORDER``.
- Where a VirtualService lives: an Istio VirtualService applies to every client whatever its
  namespace (exportTo defaults to all), so it is written in the Service's namespace, where the
  planner applies it before the Service's first caller moves. A non-Istio route in another
  namespace than its Service is a GAMMA *consumer* route (it applies only to clients in its
  own namespace): it stays there with ``exportTo: ["."]``.
- Retries: without a ``retries`` block Istio retries twice on connect-failure,
  refused-stream, unavailable, cancelled and retriable-status-codes; ``attempts: 0`` turns
  retries off (istio/istio pilot/pkg/networking/core/route/retry/retry.go ``ConvertPolicy``:
  ``if in == nil { return DefaultPolicy }``, ``if in.Attempts <= 0 { return nil }``). An
  Istio source already had that default, so a rule without retries stays without; a
  Linkerd or Consul source did not retry unless told, so such rules get ``attempts: 0`` to keep
  their behaviour.
- Rewrites: the model's prefix rewrite is what ``rewrite.uri`` means (Envoy
  ``prefix_rewrite``, pilot/pkg/networking/core/route/route.go); a whole-path rewrite is
  ``uri`` too when every match covers the whole path (exact or regex), else
  ``uriRegexRewrite`` with match ``/.*``, the form Istio gives Gateway API ReplaceFullPath
  (pilot/pkg/config/kube/gateway/conversion.go ``createRewriteFilter``). Istio rejects a
  rewrite beside a redirect, and the model never has both.
- Weights are written summing to 100 (what Istio's validation long required); rescaling
  relative weights is reported when rounding changes a proportion (``ROUTE_WEIGHT_ROUNDED``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from migrate.dialects.base import Manifest
from migrate.dialects.gatewayapi.precedence import merge_routes
from migrate.dialects.istio.write_common import (
    NETWORKING_API,
    RULES_ANNOTATION,
    WriteContext,
    istio_duration,
)
from migrate.ir.model import Backend, HeaderOps, Route, RouteMatch, Rule, ServiceKey, StringMatch
from migrate.losses import ObjectRef, Severity


@dataclass
class _Plan:
    """One VirtualService to write."""

    namespace: str
    wanted: str
    owner: str
    consumer: bool
    hosts: list[ServiceKey] = field(default_factory=list)
    http: list[tuple[Route, Rule]] = field(default_factory=list)
    tcp: list[tuple[Route, Rule]] = field(default_factory=list)


def plan_routes(ctx: WriteContext) -> list[_Plan]:
    """Group the mesh routes into the VirtualServices they become (sorted, deterministic)."""
    plans: dict[tuple[str, str], _Plan] = {}
    for route in ctx.graph.of(Route):
        if not route.mesh or route.protocol not in ("http", "tcp"):
            continue  # ingress-only routes are rebuilt with the ingress (ingress.route loss)
        for host in route.hosts:
            consumer = ctx.source_mesh != "istio" and route.namespace != host.namespace
            ns = route.namespace if consumer else host.namespace
            if ctx.source_mesh == "istio":
                key, wanted = (ns, f"route/{route.namespace}/{route.name}"), route.name
            else:
                key, wanted = (ns, f"host/{host}"), host.name
            plan = plans.setdefault(key, _Plan(ns, wanted, f"{key[0]}/{key[1]}", consumer))
            if host not in plan.hosts:
                plan.hosts.append(host)
            entries = plan.http if route.protocol == "http" else plan.tcp
            for rule in route.rules:
                if (route, rule) not in entries:
                    entries.append((route, rule))
    return [plans[k] for k in sorted(plans)]


def write_virtual_services(ctx: WriteContext, include_http: bool = True) -> None:
    """Write one VirtualService per planned group into ``routing`` (only the tcp rules when
    the http ones become Gateway API HTTPRoutes)."""
    for plan in plan_routes(ctx):
        http_entries = _ordered(ctx, plan.http) if include_http else []
        http: list[dict[str, Any]] = []
        used: list[tuple[Route, Rule]] = []
        for route, rule in http_entries:
            body = http_rule(ctx, plan.namespace, route, rule)
            if body is not None:
                http.append(body)
                used.append((route, rule))
        tcp: list[dict[str, Any]] = []
        for route, rule in plan.tcp:
            body = _tcp_rule(ctx, plan.namespace, route, rule)
            if body is not None:
                tcp.append(body)
                used.append((route, rule))
        if not http and not tcp:
            continue
        name = ctx.names.claim("VirtualService", plan.namespace, plan.wanted, plan.owner)
        spec: dict[str, Any] = {"hosts": [ctx.host(h, plan.namespace) for h in plan.hosts]}
        if plan.consumer:
            spec["exportTo"] = ["."]
        if http:
            spec["http"] = http
        if tcp:
            spec["tcp"] = tcp
        rules = ",".join(_rule_ref(route, rule, len({r.origin.ref for r, _ in used}) > 1)
                         for route, rule in used)
        body = {"apiVersion": NETWORKING_API, "kind": "VirtualService",
                "metadata": {"name": name, "namespace": plan.namespace,
                             "annotations": {RULES_ANNOTATION: rules}},
                "spec": spec}
        ctx.out.add(ctx.out.routing, Manifest(body, _sources(ctx, used)))


def _rule_ref(route: Route, rule: Rule, qualified: bool) -> str:
    if not qualified:
        return rule.origin_path
    ref = route.origin.ref
    return f"{ref.kind}/{ref.namespace}/{ref.name}:{rule.origin_path}"


def _sources(ctx: WriteContext, used: list[tuple[Route, Rule]]) -> tuple[ObjectRef, ...]:
    refs = {route.origin.ref for route, _ in used}
    for _, rule in used:
        for b in rule.backends:
            if b.subset and b.service in ctx.policies:
                refs.add(ctx.policies[b.service].origin.ref)
    return tuple(sorted(refs))


def _ordered(ctx: WriteContext, entries: list[tuple[Route, Rule]]) -> list[tuple[Route, Rule]]:
    """Rules of one route as they are; rules of several routes merged by precedence."""
    if len({route.origin.ref for route, _ in entries}) <= 1:
        return entries
    return merge_routes(entries, ctx.losses, "the Istio VirtualService")


def http_rule(ctx: WriteContext, ns: str, route: Route, rule: Rule) -> dict[str, Any] | None:
    """One VirtualService ``http`` rule, or None when nothing routable is left (reported)."""
    ref = route.origin.ref
    body: dict[str, Any] = {}
    if rule.name:
        body["name"] = rule.name
    if rule.matches:
        body["match"] = [_match(m) for m in rule.matches]
    if rule.redirect is not None:
        body["redirect"] = _redirect(rule)
    else:
        routes = _destinations(ctx, ns, ref, rule)
        if not routes:
            ctx.losses.report(
                "ROUTE_RULE_EMPTY", Severity.MANUAL, "route.http", ref, rule.origin_path,
                "the rule has no backend Istio can address; it was left out",
                "Make sure the destination Services exist, then re-run.")
            return None
        body["route"] = routes
        rewrite = _rewrite(ctx, rule)
        if rewrite:
            body["rewrite"] = rewrite
        if rule.timeout and ctx.supports("route.timeout"):
            timeout = istio_duration(rule.timeout)
            if timeout is None:
                _bad_duration(ctx, ref, f"{rule.origin_path}.timeout", rule.timeout)
            else:
                body["timeout"] = timeout
        retries = _retries(ctx, ref, rule)
        if retries is not None:
            body["retries"] = retries
    headers = _headers(rule.request_headers, rule.response_headers)
    if headers:
        body["headers"] = headers
    return body


def _match(m: RouteMatch) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if m.path is not None:
        out["uri"] = {"prefix": "/"} if m.path.kind == "present" else string_match(m.path)
    if m.ignore_case:
        out["ignoreUriCase"] = True
    if m.method is not None and m.method.kind != "present":
        out["method"] = string_match(m.method)
    if m.headers:
        out["headers"] = {name: string_match(v) for name, v in m.headers}
    if m.query:
        # Istio's queryParams take exact and regex only (virtual_service.proto).
        out["queryParams"] = {name: string_match(v, prefix_as_regex=True) for name, v in m.query}
    if m.port is not None:
        out["port"] = m.port
    return out


def string_match(m: StringMatch, prefix_as_regex: bool = False) -> dict[str, str]:
    """An Istio StringMatch; ``present`` is an empty match (presence only)."""
    if m.kind == "present":
        return {"regex": ".*"} if prefix_as_regex else {}
    if m.kind == "prefix" and prefix_as_regex:
        return {"regex": re.escape(m.value) + ".*"}
    if m.kind in ("exact", "prefix", "regex"):
        return {m.kind: m.value}
    return {"exact": m.value}


def _redirect(rule: Rule) -> dict[str, Any]:
    r = rule.redirect
    assert r is not None
    out: dict[str, Any] = {}
    if r.path:
        out["uri"] = r.path
    if r.authority:
        out["authority"] = r.authority
    if r.port:
        out["port"] = r.port
    if r.scheme:
        out["scheme"] = r.scheme
    if r.code != 301:  # Istio's default redirect status is 301 (virtual_service.proto)
        out["redirectCode"] = r.code
    return out


def _rewrite(ctx: WriteContext, rule: Rule) -> dict[str, Any]:
    """``rewrite`` of a forwarding rule (empty when the rule rewrites nothing)."""
    rw = rule.rewrite
    out: dict[str, Any] = {}
    if rw is None:
        return out
    if rw.prefix and ctx.supports("route.rewrite"):
        out["uri"] = rw.prefix
    elif rw.full_path and ctx.supports("route.rewrite"):
        whole = rule.matches and all(m.path is not None and m.path.kind in ("exact", "regex")
                                     for m in rule.matches)
        if whole:
            out["uri"] = rw.full_path
        else:
            out["uriRegexRewrite"] = {"match": "/.*", "rewrite": rw.full_path}
    if rw.authority and ctx.supports("route.rewrite.authority"):
        out["authority"] = rw.authority
    return out


def _headers(request: HeaderOps, response: HeaderOps) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, ops in (("request", request), ("response", response)):
        part: dict[str, Any] = {}
        if ops.set:
            part["set"] = dict(ops.set)
        if ops.add:
            part["add"] = dict(ops.add)
        if ops.remove:
            part["remove"] = list(ops.remove)
        if part:
            out[key] = part
    return out


def _retries(ctx: WriteContext, ref: ObjectRef, rule: Rule) -> dict[str, Any] | None:
    if not ctx.supports("route.retry"):
        return None
    retry = rule.retry
    if retry is None:
        # fact: istio.zero-attempts-disable-retries
        return None if ctx.source_mesh == "istio" else {"attempts": 0}
    if retry.attempts <= 0:
        return {"attempts": 0}
    out: dict[str, Any] = {"attempts": retry.attempts}
    if retry.per_try_timeout:
        per_try = istio_duration(retry.per_try_timeout)
        if per_try is None:
            _bad_duration(ctx, ref, retry.path_of("perTryTimeout"), retry.per_try_timeout)
        else:
            out["perTryTimeout"] = per_try
    if retry.retry_on:
        out["retryOn"] = ",".join(retry.retry_on)
    return out


def _bad_duration(ctx: WriteContext, ref: ObjectRef, path: str, value: str) -> None:
    ctx.losses.report(
        "ROUTE_DURATION", Severity.DEGRADED, "route.timeout", ref, path,
        f"duration {value!r} does not parse or is under 1ms (Istio's minimum); left out",
        "Write the duration as e.g. 1.5s or 500ms and re-run.")


# -- destinations -----------------------------------------------------------------------------
def _destinations(ctx: WriteContext, ns: str, ref: ObjectRef, rule: Rule) -> list[dict[str, Any]]:
    kept: list[tuple[Backend, dict[str, Any]]] = []
    for b in rule.backends:
        dest = destination(ctx, ns, ref, b)
        if dest is None:
            continue
        entry: dict[str, Any] = {"destination": dest}
        headers = _headers(b.request_headers, b.response_headers)
        if headers:
            entry["headers"] = headers
        kept.append((b, entry))
    weights = _weights(ctx, ref, rule, [b for b, _ in kept])
    for (_, entry), weight in zip(kept, weights):
        if weight is not None:
            entry["weight"] = weight
    return [entry for _, entry in kept]


def destination(ctx: WriteContext, ns: str, ref: ObjectRef, b: Backend) -> dict[str, Any] | None:
    """An Istio Destination for a backend (per-version Services stay Services)."""
    if b.service is not None:
        host = ctx.host(b.service, ns)
    elif b.host:
        host = b.host  # not a Kubernetes Service: Istio resolves it in its registry
    else:
        ctx.losses.report(
            "ROUTE_BACKEND_UNKNOWN", Severity.MANUAL, "route.http", ref, b.origin_path,
            "the backend names no host; it was left out", "Name the destination host.")
        return None
    out: dict[str, Any] = {"host": host}
    if b.subset:
        out["subset"] = b.subset
        dp = ctx.policies.get(b.service) if b.service else None
        if b.service and not (dp and any(s.name == b.subset for s in dp.subsets)):
            # Kept so the split stays visible, but Istio answers 503 for a subset no
            # DestinationRule defines (no cluster for it).
            ctx.losses.report(
                "ROUTE_BACKEND_UNKNOWN", Severity.MANUAL, "destination.subsets", ref,
                b.origin_path or "spec",
                f"subset {b.subset!r} of {b.service} is defined by no destination policy in "
                "the input; Istio answers 503 for the traffic sent to it",
                "Add the subset (its pod labels) to the Service's DestinationRule before the "
                "callers move, or route to a Service instead.")
    if b.port is not None:
        out["port"] = {"number": b.port}
    return out


def _weights(ctx: WriteContext, ref: ObjectRef, rule: Rule,
             backends: list[Backend]) -> list[int | None]:
    """Weights summing to 100; None where the source gave none and Istio needs none."""
    given = [b.weight for b in backends]
    if len(backends) <= 1:
        # A single destination takes all traffic whatever its weight; an Istio source's
        # weight is kept as written.
        return given if ctx.source_mesh == "istio" else [None] * len(backends)
    if all(w is None for w in given):
        if ctx.source_mesh == "istio":
            return given
        given = [1] * len(backends)  # Gateway API's default weight is 1 per backend
    weights = [w or 0 for w in given]
    total = sum(weights)
    if total == 100 or total <= 0:
        return list(weights)
    scaled = [w * 100 / total for w in weights]
    out = [int(x) for x in scaled]
    by_remainder = sorted(range(len(out)), key=lambda i: (out[i] - scaled[i], i))
    for i in by_remainder[: 100 - sum(out)]:
        out[i] += 1
    if any(abs(o - s) > 1e-9 for o, s in zip(out, scaled)):
        ctx.losses.report(
            "ROUTE_WEIGHT_ROUNDED", Severity.INFO, "route.http", ref, rule.origin_path,
            f"weights {', '.join(str(w) for w in weights)} became "
            f"{', '.join(str(w) for w in out)} (percentages summing to 100)",
            "Check that the rounded split is acceptable.")
    return list(out)


# -- tcp rules --------------------------------------------------------------------------------
def _tcp_rule(ctx: WriteContext, ns: str, route: Route, rule: Rule) -> dict[str, Any] | None:
    ref = route.origin.ref
    routes = _destinations(ctx, ns, ref, Rule(**{**rule.__dict__, "backends": tuple(
        replace(b, request_headers=HeaderOps(), response_headers=HeaderOps())
        for b in rule.backends)}))
    if not routes:
        ctx.losses.report(
            "ROUTE_RULE_EMPTY", Severity.MANUAL, "route.tcp", ref, rule.origin_path,
            "the rule has no backend Istio can address; it was left out",
            "Make sure the destination Services exist, then re-run.")
        return None
    body: dict[str, Any] = {}
    ports = [{"port": m.port} for m in rule.matches if m.port is not None]
    if ports:
        body["match"] = ports
    body["route"] = routes
    return body
