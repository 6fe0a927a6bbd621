"""Gateway API route matching (HTTPRoute, GRPCRoute) as Linkerd and Istio apply it.

Both Linkerd and Istio read ``gateway.networking.k8s.io`` routes with Service parents (GAMMA),
so both evaluators match requests here. Which match wins is each mesh's own:
- Linkerd (:func:`score`): the key of :func:`~migrate.dialects.gatewayapi.precedence.linkerd_key`,
  the one implementation of the register's ``linkerd.route-match-order`` (path characters
  matched, then headers, query parameters and a method; an Exact path ties with a PathPrefix
  of the same length). The writers rank with the same function, so a wrong belief there is
  wrong in one place: the register, checked against linkerd2-proxy. Ties go to the oldest
  route, then the route name, then rule order (``linkerd.route-tie-order``).
- Istio (:func:`istio_rank`): its own sort of converted rules, first match wins.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from migrate.dialects.gatewayapi.precedence import linkerd_key, path_score, prefix_length
from migrate.verify.model import Probe
from migrate.verify.world import World, dig

Score = tuple[int, ...]


def full(pattern: str, text: str) -> bool:
    """Whether a regular expression matches the whole text (a bad pattern matches nothing)."""
    compiled = _compiled(pattern)
    return compiled is not None and compiled.fullmatch(text) is not None


@lru_cache(maxsize=1 << 16)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    """A pattern compiled once. ``re``'s own cache holds 512: a policy with 2,000 path
    patterns, evaluated for every probe, recompiled each one at each use (two minutes)."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


def value_ok(m: dict[str, Any], value: str) -> bool:
    """A header or query parameter match (Exact, the default, or RegularExpression)."""
    if m.get("type", "Exact") == "Exact":
        return value == m.get("value")
    return full(str(m.get("value", "")), value)


def query_of(path: str) -> dict[str, str]:
    """The query parameters of a probe path."""
    return dict(q.split("=", 1) for q in path.partition("?")[2].split("&") if "=" in q)


def score(route: dict[str, Any], m: dict[str, Any], probe: Probe) -> Score | None:
    """How specifically a route match matches a probe as Linkerd ranks it (None: it does not
    match)."""
    path = probe.path.partition("?")[0]
    headers = dict(probe.headers)
    if route.get("kind") == "GRPCRoute":
        method = m.get("method") or {}
        parts = path.strip("/").split("/")
        if method.get("service") and (len(parts) != 2 or parts[0] != method["service"]):
            return None
        if method.get("method") and (len(parts) != 2 or parts[1] != method["method"]):
            return None
        path_len = len(path) if method.get("method") else (
            len(method["service"]) + 1 if method.get("service") else 0)
        path_kind = "prefix"
        method_score = 0
    else:
        pm = m.get("path") or {"type": "PathPrefix", "value": "/"}
        value = str(pm.get("value", "/"))
        kind = pm.get("type", "PathPrefix")
        # fact: linkerd.route-match-order
        if kind == "Exact":
            if path != value:
                return None
            path_kind, path_len = "exact", len(path)
        elif kind == "RegularExpression":
            if not full(value, path):
                return None
            path_kind, path_len = "regex", len(path)
        else:
            base = value.rstrip("/")
            if not (path == base or path.startswith(base + "/") or base == ""):
                return None
            path_kind, path_len = "prefix", prefix_length(value)
        if m.get("method") and m["method"] != probe.method:
            return None
        method_score = 1 if m.get("method") else 0
    for h in m.get("headers") or []:
        got = headers.get(str(h.get("name", "")).lower())
        if got is None or not value_ok(h, got):
            return None
    query = query_of(probe.path)
    for q in m.get("queryParams") or []:
        got = query.get(str(q.get("name", "")))
        if got is None or not value_ok(q, got):
            return None
    return linkerd_key(path_score(path_kind, path_len), len(m.get("headers") or []),
                       len(m.get("queryParams") or []), bool(method_score))


def parent_is(route: dict[str, Any], probe: Probe) -> bool:
    """Whether the route has the probe's Service (and port) as a parent."""
    ns = dig(route, "metadata", "namespace", default="default")
    for p in dig(route, "spec", "parentRefs", default=[]):
        if p.get("kind") == "Service" and p.get("group", "core") in ("", "core") and \
                p.get("name") == probe.service and p.get("namespace", ns) == probe.namespace \
                and p.get("port") in (None, probe.port):
            return True
    return False


_ISTIO_URI_RANK = {"Exact": 3, "PathPrefix": 2, "RegularExpression": 1}


# fact: istio.gateway-route-order
def istio_rank(route: dict[str, Any], m: dict[str, Any] | None) -> tuple[int, ...]:
    """The order Istio gives a route match (higher first), whatever the request: Istio sorts
    the rules it converts from a Service-parented route by path kind (Exact, then PathPrefix,
    then RegularExpression, then none), then path length, a method, the number of headers and
    of query parameters (istio/istio pilot/pkg/config/kube/gateway/conversion.go
    ``sortHTTPRoutes``), and the first matching one wins. So a RegularExpression ranks below
    every prefix, where Gateway API leaves regular expressions to the implementation."""
    if m is None:
        return (-2, 0, 0, 0, 0)  # a rule without matches sorts last
    headers = len(m.get("headers") or [])
    if route.get("kind") == "GRPCRoute":
        method = m.get("method") or {}
        service, name = method.get("service"), method.get("method")
        if not (service or name):
            return (-1, 0, 0, headers, 0)
        if method.get("type") == "RegularExpression":
            uri = (1, len(f"/{service or '[^/]+'}/{name or '.+'}"))
        elif service and name:
            uri = (3, len(f"/{service}/{name}"))
        elif service:
            uri = (2, len(f"/{service}/"))
        else:
            uri = (1, len(f"/[^/]+/{name}"))
        return (*uri, 0, headers, 0)
    pm = m.get("path") or {}
    kind, value = pm.get("type", "PathPrefix"), str(pm.get("value", "/"))
    if kind == "PathPrefix" and value != "/":
        value = value.removesuffix("/")
    return (_ISTIO_URI_RANK.get(kind, -1), len(value), 1 if m.get("method") else 0, headers,
            len(m.get("queryParams") or []))


def best_rule(routes: list[dict[str, Any]], probe: Probe, istio: bool = False
              ) -> tuple[dict[str, Any], dict[str, Any], int] | None:
    """The (route, rule, rule index) that wins a probe among routes, or None (404).

    ``istio``: rank matches the way Istio orders them (:func:`istio_rank`) instead of by
    Gateway API specificity."""
    found = best_match(routes, probe, istio)
    return None if found is None else found[:3]


def best_match(routes: list[dict[str, Any]], probe: Probe, istio: bool = False
               ) -> tuple[dict[str, Any], dict[str, Any], int, dict[str, Any] | None] | None:
    """``best_rule`` with the winning match (None: a rule without matches), which a
    ``ReplacePrefixMatch`` rewrite needs."""
    best: tuple[Any, ...] | None = None
    for r_index, r in enumerate(sorted(routes, key=lambda r: str(dig(r, "metadata", "name")))):
        for i, rule in enumerate(dig(r, "spec", "rules", default=[])):
            for j, m in enumerate(rule.get("matches") or [None]):
                found = score(r, m or {}, probe)
                if found is None:
                    continue
                # fact: linkerd.route-tie-order
                key = ((istio_rank(r, m), -r_index, -i, -j) if istio else
                       (found, -r_index, -i))
                if best is None or key > best[0]:
                    best = (key, r, rule, i, m)
    return None if best is None else (best[1], best[2], best[3], best[4])


def backends(world: World, route: dict[str, Any], rule: dict[str, Any]
             ) -> tuple[tuple[str, float], ...]:
    """The workloads a rule's backendRefs reach, with their traffic shares."""
    ns = dig(route, "metadata", "namespace", default="default")
    refs = [b for b in rule.get("backendRefs") or [] if isinstance(b, dict)]
    weights = [int(b.get("weight", 1)) for b in refs]
    total = sum(weights) or 1
    out: dict[str, float] = {}
    for b, w in zip(refs, weights):
        b_ns = b.get("namespace", ns)
        svc = world.services.get((b_ns, str(b.get("name"))))
        name = (world.backend(b_ns, dict(svc.selector)) if svc else "") or \
            f"Service/{b_ns}/{b.get('name')}"
        out[name] = out.get(name, 0.0) + w / total
    return tuple(sorted((k, round(v, 4)) for k, v in out.items() if v > 0))


def rule_backends(world: World, route: dict[str, Any], rule: dict[str, Any], probe: Probe,
                  parent_default: bool) -> tuple[tuple[str, float], ...] | None:
    """What a rule forwards to, or None when it answers 500 itself.

    The Gateway API spec (HTTPRouteRule.backendRefs, standard channel v1.6.1) only says that
    a rule whose backendRefs are *all invalid* answers 500, and zero-weight backends receive
    nothing; a mesh rule with *no* backendRefs is left to the implementation:
    - Linkerd (``parent_default``) sends it to the parent Service, which is what a route
      without backends is for there (timeouts, retries, header changes on the Service itself;
      https://linkerd.io/2-edge/reference/httproute/, and the Linkerd reader, read_routes.py);
    - Istio answers 500 (pilot/pkg/config/kube/gateway/conversion.go convertHTTPRoute: no
      backend with a weight above 0 and no redirect is a direct 500 response).
    """
    if parent_default and not any(isinstance(b, dict) for b in rule.get("backendRefs") or []):
        svc = world.services.get((probe.namespace, probe.service))
        name = world.backend(probe.namespace, dict(svc.selector)) if svc else ""
        return ((name or f"Service/{probe.namespace}/{probe.service}", 1.0),)
    found = backends(world, route, rule)
    return found or None


def mirrors(route: dict[str, Any], rule: dict[str, Any]) -> tuple[str, ...]:
    """The Services a rule's RequestMirror filters copy requests to (``Service/ns/name``).
    Linkerd ignores a route with such a filter whole, so only Istio asks."""
    ns = dig(route, "metadata", "namespace", default="default")
    out = {f"Service/{ref.get('namespace', ns)}/{ref.get('name')}"
           for f in rule.get("filters") or [] if isinstance(f, dict)
           and f.get("type") == "RequestMirror"
           for ref in [dig(f, "requestMirror", "backendRef", default={})]
           if isinstance(ref, dict) and ref.get("name")}
    return tuple(sorted(out))


def redirect_of(rule: dict[str, Any], probe: Probe) -> str | None:
    """The redirect a rule answers with (``code path``), or None."""
    for f in rule.get("filters") or []:
        if isinstance(f, dict) and f.get("type") == "RequestRedirect":
            r = f.get("requestRedirect") or {}
            return (f"{r.get('statusCode', 302)} "
                    f"{dig(r, 'path', 'replaceFullPath', default=probe.path)}")
    return None
