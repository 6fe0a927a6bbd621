"""Gateway API routes with a Service parent (GAMMA) as Istio reads them: IR routes.

Istio's gateway controller turns a Service-parented HTTPRoute, GRPCRoute or TCPRoute into a
VirtualService bound to the ``mesh`` gateway for the Service's host, which sidecars and
waypoints apply (istio/istio pilot/pkg/config/kube/gateway route_collections.go,
``HTTPRouteCollection``: one VirtualService per route namespace, parent port and host; the
conversion itself is conversion.go ``convertHTTPRoute``, ``convertGRPCRoute``,
``convertTCPRoute``). What that conversion does decides what is read here:

- Each match becomes its own rule and the rules are sorted with Istio's ranking
  (:func:`~migrate.dialects.gatewayapi.precedence.istio_gateway_rank`, ``sortHTTPRoutes``);
  a parent ``port`` becomes a port match on every rule (``augmentPortMatch``).
- A PathPrefix keeps segment semantics (Envoy ``path_separated_prefix`` for routes with gateway
  semantics, pilot/pkg/networking/core/route/route.go), read like Linkerd's as an exact match
  plus a ``/``-terminated prefix.
- Filters: request/response header modifiers and RequestRedirect as in the model; URLRewrite
  becomes a :class:`~migrate.ir.model.Rewrite` (``createRewriteFilter``: ReplacePrefixMatch is
  Envoy's prefix rewrite of the matched segments, ReplaceFullPath a whole-path rewrite, the
  hostname an authority rewrite); RequestMirror (``createMirrorFilter``) and CORS
  (``createCorsFilter``) are feature uses the targets' tables judge. Any other filter type,
  and any filter but the header modifiers on a backendRef, makes Istio refuse the rule
  ("unsupported filter type"): the source itself is broken, reported as invalid. Unlike
  Linkerd, Istio keeps the rest of such a route.
- ``timeouts.request`` is the rule timeout; ``timeouts.backendRequest`` is the per-try timeout
  when the rule retries, otherwise it replaces the request timeout. The experimental ``retry``
  becomes a retry of ``attempts`` (2 when unset) on connect-failure, refused-stream,
  unavailable, cancelled and the listed codes; a rule without it gets Istio's default retry.
- A rule without a backend of weight above 0 (and no redirect) answers 500; zero-weight
  backends get no traffic.
- For mesh routes ``spec.hostnames`` is not used (the VirtualService's host is the Service's),
  nor is ``sectionName``; ``sessionPersistence`` is not converted. Istio reads no annotations
  on these routes: Linkerd's ``retry.linkerd.io/*`` and ``timeout.linkerd.io/*`` had no
  effect under Istio and are reported, not read.

Routes whose parents are all Gateways (ingress), TLSRoutes and UDPRoutes stay opaque
(:func:`~migrate.dialects.istio.opaque.read_gateway_api`). A route with both kinds of parent is
modelled for its Service parents; its Gateway parents are reported as ingress routes.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from migrate.dialects.fields import Fields, join
from migrate.dialects.gatewayapi.filters import read_filters
from migrate.dialects.gatewayapi.precedence import ISTIO_NO_MATCH, istio_gateway_rank
from migrate.dialects.gatewayapi.routes import (
    grpc_match,
    http_match,
    mesh_parents,
    parent_refs,
    read_backends,
    sort_most_specific,
)
from migrate.dialects.istio.opaque import read_gateway_api
from migrate.dialects.istio.virtualservice import note_default_retries
from migrate.ir.graph import MeshGraph
from migrate.ir.model import (
    Backend,
    Retry,
    Rewrite,
    Route,
    RouteMatch,
    Rule,
    ServiceKey,
    StringMatch,
)
from migrate.losses import Severity

if TYPE_CHECKING:
    from migrate.dialects.istio.reader import IstioReader

GAMMA_KINDS = ("HTTPRoute", "GRPCRoute", "TCPRoute")
_LINKERD_ANNOTATIONS = ("retry.linkerd.io/", "timeout.linkerd.io/")
# conversion.go convertHTTPRoute: "Implementations SHOULD retry on connection errors".
_RETRY_ON = ("connect-failure", "refused-stream", "unavailable", "cancelled")


def _service_parent(parent: object) -> bool:
    if not isinstance(parent, dict) or parent.get("kind") != "Service":
        return False
    return parent.get("group") in (None, "", "core")


def read_gateway_route(reader: IstioReader, f: Fields, graph: MeshGraph) -> None:
    """A gateway.networking.k8s.io route: a mesh route when a parent is a Service."""
    parents = f.peek("spec.parentRefs")
    if f.ref.kind not in GAMMA_KINDS or not isinstance(parents, list) or \
            not any(_service_parent(p) for p in parents):
        read_gateway_api(reader, f, graph)
        return
    ns = f.ref.namespace
    services: list[tuple[ServiceKey, int | None]] = []
    gateways: list[str] = []
    for parent in parent_refs(f):
        if parent.is_service:
            if not parent.name:
                continue  # reported as invalid by parent_refs
            services.append(parent.service(ns))
            if parent.body.get("sectionName") is not None:
                ignored(f, join(parent.path, "sectionName"),
                        "a sectionName on a Service parent selects nothing in Istio's mesh "
                        "routing (only the port does)")
        elif parent.kind == "ServiceEntry" and parent.group == "networking.istio.io":
            f.use("route.host.external", parent.path, f"ServiceEntry {parent.name}")
        elif parent.kind in ("Gateway", "ListenerSet", "XListenerSet"):
            gateways.append(f"{parent.body.get('namespace') or ns}/{parent.name}")
            f.use("ingress.route", parent.path, f"{parent.kind} {parent.name}")
        else:
            ignored(f, parent.path, f"Istio attaches no route to a {parent.kind} parent")
    if f.peek("spec.hostnames") is not None:
        if gateways:
            f.get("spec.hostnames", whole=True)  # part of the ingress route reported above
        else:
            ignored(f, "spec.hostnames", "Istio routes a Service-parented route by the "
                    "Service's own host name, not by spec.hostnames (route_collections.go)")
    annotations = f.peek("metadata.annotations")
    for key in sorted(annotations) if isinstance(annotations, dict) else []:
        if str(key).startswith(_LINKERD_ANNOTATIONS):
            ignored(f, f"metadata.annotations.{key}",
                    f"{key} is a Linkerd annotation; Istio does not read it")
    if not services:
        f.get("spec", whole=True)  # no usable parent: nothing to route (reported above)
        return
    reader.gamma_routes.append(_route(f, services, tuple(gateways)))


def ignored(f: Fields, path: str, why: str) -> None:
    """Account a field Istio itself ignores and say so (it had no effect)."""
    f.get(path, whole=True)
    f.losses.report(
        "SOURCE_IGNORED", Severity.INFO, "input", f.ref, path,
        f"{f.ref.kind} {f.ref.namespace}/{f.ref.name}: {why}; it had no effect under Istio, so "
        "it is not carried over", "Check whether the intended behaviour should be added in the "
        "target.")


def _route(f: Fields, parents: list[tuple[ServiceKey, int | None]],
           gateways: tuple[str, ...]) -> Route:
    """The mesh route; Gateway parents too make it an ingress route as well (like a
    VirtualService bound to a gateway and ``mesh``), so its backends' namespaces wait for the
    ingress step."""
    ns, kind = f.ref.namespace, f.ref.kind
    port, hosts = mesh_parents(f, parents)
    protocol = "tcp" if kind == "TCPRoute" else "http"
    rules: list[tuple[tuple[int, ...], Rule]] = []
    ranks: dict[str, tuple[int, ...]] = {}
    for i in range(len(f.list("spec.rules"))):
        path = f"spec.rules[{i}]"
        if protocol == "tcp":
            rules.append(((i, 0), _tcp_rule(f, path, i, port)))
            continue
        for j, rule in enumerate(_http_rules(f, path, i, port, ranks)):
            rules.append(((i, j), rule))
    if protocol == "http":
        ordered = sort_most_specific(
            rules, lambda m: ranks.get(m.origin_path, ISTIO_NO_MATCH) if m else ISTIO_NO_MATCH)
        note_default_retries(f, "spec.rules", ordered)
        f.note("route.http", "spec.rules")
    else:
        ordered = [r for _, r in rules]
        f.note("route.tcp", "spec.rules")
    return Route(ns, f.ref.name, protocol, hosts,
                 tuple(replace(r, index=n) for n, r in enumerate(ordered)),
                 ingress=bool(gateways), mesh=True, gateways=gateways, origin=f.origin("spec"))


# -- rules -------------------------------------------------------------------------------
def _external(f: Fields) -> Any:
    def other(path: str, kind: str, name: str) -> None:
        # Istio also routes to ServiceEntry hosts (kind Hostname) and a few other kinds.
        f.use("route.host.external", path, f"{kind} {name}")
    return other


def _refused(f: Fields, where: str) -> Any:
    def other(path: str, kind: str) -> None:
        f.get(path, whole=True)
        f.invalid(path, f"Istio does not implement the {kind} filter {where} of a "
                  f"{f.ref.kind}: it refuses the rule (conversion.go: unsupported filter type)")
    return other


def _weighted(backends: tuple[Backend, ...]) -> bool:
    """Some backend gets traffic (an unset weight is 1; conversion.go ``weightSum``)."""
    return any(b.weight is None or b.weight > 0 for b in backends)


def _tcp_rule(f: Fields, path: str, i: int, port: int | None) -> Rule:
    backends = read_backends(f, path, _external(f))
    if not _weighted(backends):
        # conversion.go convertTCPRoute: no backend of weight > 0 rejects connections.
        f.note("route.direct_response", path, "connections are refused: no backend has a "
               "weight above 0")
        backends = ()
    return Rule(index=i, name=f.string(join(path, "name")),
                matches=(RouteMatch(port=port, origin_path=path),) if port else (),
                backends=backends, origin_path=path)


def _http_rules(f: Fields, path: str, i: int, port: int | None,
                ranks: dict[str, tuple[int, ...]]) -> list[Rule]:
    grpc = f.ref.kind == "GRPCRoute"
    matches: list[RouteMatch] = []
    for j in range(len(f.list(join(path, "matches")))):
        mpath = f"{path}.matches[{j}]"
        raw = f.peek(mpath)
        ranks[mpath] = _rank(raw if isinstance(raw, dict) else {}, grpc)
        # conversion.go createGRPCURIMatch: a RegularExpression on a service alone matches
        # "/<service>/.+".
        matches += grpc_match(f, mpath, port, any_method=".+") if grpc else \
            http_match(f, mpath, port)
    rewrites: list[tuple[str, str, str, str]] = []
    req, resp, redirect = read_filters(f, join(path, "filters"), _rule_filter(f, rewrites))
    backends = read_backends(f, path, _external(f), _refused(f, "on a backendRef"))
    if redirect is None and not _weighted(backends):
        # conversion.go convertHTTPRoute: no backend of weight > 0 and no redirect -> 500.
        f.note("route.direct_response", path, "500: no backend has a weight above 0")
        backends = ()
    timeout, retry = _timeouts(f, path)
    name = f.string(join(path, "name"))
    for key in ("sessionPersistence",):
        if f.peek(join(path, key)) is not None:
            ignored(f, join(path, key), f"Istio does not convert the rule field {key}")
    for feature, present in (("route.timeout", timeout), ("route.retry", retry),
                             ("route.redirect", redirect), ("route.header_ops", req or resp)):
        if present:
            f.note(feature, path)
    if not matches:
        matches = [RouteMatch(port=port, origin_path=path)] if port else []
        if port:
            ranks[path] = istio_gateway_rank(None, False, 0, 0)  # augmentPortMatch
    rules = []
    for m in matches or [None]:
        rules.append(Rule(index=i, name=name, matches=(m,) if m else (), backends=backends,
                          timeout=timeout, retry=retry, request_headers=req,
                          response_headers=resp, redirect=redirect, origin_path=path,
                          rewrite=_rewrite(rewrites[-1], m) if rewrites and redirect is None
                          else None))
    return rules


def _rule_filter(f: Fields, rewrites: list[tuple[str, str, str, str]]) -> Any:
    grpc = f.ref.kind == "GRPCRoute"

    def other(path: str, kind: str) -> None:
        if kind == "URLRewrite" and not grpc:
            rp = join(path, "urlRewrite")
            f.get(rp)
            hostname = f.string(join(rp, "hostname"))
            ptype = f.string(join(rp, "path.type"))
            key = {"ReplacePrefixMatch": "replacePrefixMatch",
                   "ReplaceFullPath": "replaceFullPath"}.get(ptype, "")
            value = f.string(join(rp, f"path.{key}")) if key else ""
            if ptype and not key:
                f.invalid(join(rp, "path.type"), f"path modifier type {ptype!r} is unknown")
            if key:
                f.use("route.rewrite", join(rp, "path"), f"{ptype} {value}")
            if hostname:
                f.use("route.rewrite.authority", join(rp, "hostname"), hostname)
            rewrites.append((ptype if key else "", value, hostname, rp))
        elif kind == "RequestMirror":
            f.use("route.mirror", path, _mirror_detail(f.peek(join(path, "requestMirror"))))
        elif kind == "CORS" and not grpc:
            f.use("route.cors", path)
        else:
            _refused(f, "on a rule")(path, kind)
    return other


def _mirror_detail(body: object) -> str:
    """The mirror's backend and share (conversion.go createMirrorFilter: ``fraction`` as
    numerator/denominator, denominator 100 by default, else ``percent``; all by default)."""
    if not isinstance(body, dict):
        return ""
    ref = body.get("backendRef") if isinstance(body.get("backendRef"), dict) else {}
    name = str(ref.get("name", ""))
    fraction, percent = body.get("fraction"), body.get("percent")
    try:
        if isinstance(fraction, dict):
            share = 100 * float(fraction.get("numerator", 0)) / float(
                fraction.get("denominator") or 100)
            return f"{name}, {share:g}% of requests"
        if percent is not None:
            return f"{name}, {float(percent):g}% of requests"
    except (TypeError, ValueError):
        pass
    return name


def _rewrite(spec: tuple[str, str, str, str], m: RouteMatch | None) -> Rewrite | None:
    """A URLRewrite for one IR rule (its single match decides what the prefix becomes).

    Istio strips one trailing ``/`` from ReplacePrefixMatch and turns an empty result into
    ``/`` (conversion.go ``createRewriteFilter``); Envoy then replaces the matched segments.
    In the model a prefix rewrite replaces the matched raw prefix: under the ``/``-terminated
    half of a PathPrefix (or no path match, an implicit ``/``) the replacement ends in ``/`` so
    the next segment keeps its separator; under the exact half the whole path is replaced.
    """
    ptype, value, hostname, origin = spec
    prefix = full = ""
    if ptype == "ReplaceFullPath":
        full = value
    elif ptype == "ReplacePrefixMatch":
        base = value[:-1] if value.endswith("/") else value
        if m is None or m.path is None or m.path.kind == "prefix":
            prefix = base.rstrip("/") + "/"
        else:
            prefix = base or "/"
    rewrite = Rewrite(prefix=prefix, full_path=full, authority=hostname,
                      origin_path=join(origin, "path") if ptype else origin,
                      authority_path=join(origin, "hostname"))
    return rewrite if rewrite else None


_ZERO = re.compile(r"^(0+(\.0*)?(h|m|s|ms|us|µs|ns)?)+$")


def _duration(f: Fields, path: str) -> str:
    value = f.string(path)
    return "" if _ZERO.match(value) else value  # zero: no timeout (conversion.go)


def _timeouts(f: Fields, path: str) -> tuple[str, Retry | None]:
    request = _duration(f, join(path, "timeouts.request"))
    backend = _duration(f, join(path, "timeouts.backendRequest"))
    retry = _retry(f, join(path, "retry"), backend, join(path, "timeouts.backendRequest"))
    if backend and retry is None:
        if request:
            ignored(f, join(path, "timeouts.request"), "Istio replaces the request timeout by "
                    "timeouts.backendRequest when the rule does not retry (conversion.go)")
        return backend, None
    return request, retry


def _retry(f: Fields, path: str, per_try: str, per_try_path: str) -> Retry | None:
    """The experimental ``retry`` field as Istio converts it (conversion.go)."""
    if f.peek(path) is None:
        return None
    f.get(path)
    attempts = f.integer(join(path, "attempts"))
    codes = tuple(str(c) for c in f.list(join(path, "codes"), whole=True))
    if f.peek(join(path, "backoff")) is not None:
        f.use("route.retry.backoff", join(path, "backoff"), str(f.peek(join(path, "backoff"))))
    attempts = 2 if attempts is None else attempts
    return Retry(attempts=attempts, per_try_timeout=per_try,
                 retry_on=(*_RETRY_ON, *codes) if attempts else (), origin_path=path,
                 field_paths=(("perTryTimeout", per_try_path),) if per_try else ())


# -- Istio's ranking ---------------------------------------------------------------------
def _rank(m: dict[str, Any], grpc: bool) -> tuple[int, ...]:
    """A source match as Istio ranks it (its path in Istio's form, conversion.go
    ``createURIMatch`` and ``createGRPCURIMatch``)."""
    headers = len({str(h.get("name", "")).lower() for h in _dicts(m.get("headers"))})
    if grpc:
        method = m.get("method") if isinstance(m.get("method"), dict) else None
        return istio_gateway_rank(_grpc_uri(method) if method else None, False, headers, 0)
    path = m.get("path") if isinstance(m.get("path"), dict) else {}
    kind, value = str(path.get("type") or "PathPrefix"), str(path.get("value") or "/")
    uri = {"Exact": StringMatch("exact", value),
           "RegularExpression": StringMatch("regex", value)}.get(
        kind, StringMatch("prefix", value if value == "/" else value.removesuffix("/")))
    query = len({str(q.get("name", "")) for q in _dicts(m.get("queryParams"))})
    return istio_gateway_rank(uri, bool(m.get("method")), headers, query)


def _grpc_uri(method: dict[str, Any]) -> StringMatch | None:
    service, name = method.get("service"), method.get("method")
    if method.get("type") == "RegularExpression":
        return StringMatch("regex", f"/{service or '[^/]+'}/{name or '.+'}")
    if service and name:
        return StringMatch("exact", f"/{service}/{name}")
    if service:
        return StringMatch("prefix", f"/{service}/")
    return StringMatch("regex", f"/[^/]+/{name}") if name else None


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
