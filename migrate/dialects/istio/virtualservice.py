"""VirtualService -> IR routes (http and tcp rules in Istio's first-match order).

Istio semantics kept in mind here (istio/api networking/v1/virtual_service.proto):
rules are evaluated in list order and the first match wins (fact
``istio.virtualservice-first-match``); ``gateways`` absent means the
mesh only, ``mesh`` names sidecars explicitly; hosts are resolved relative to the
VirtualService's namespace.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Sequence

from migrate.dialects.fields import Fields, join
from migrate.dialects.istio.matches import http_match, l4_match
from migrate.ir.graph import MeshGraph
from migrate.ir.hosts import service_of_host
from migrate.ir.model import (
    Backend,
    HeaderOps,
    Redirect,
    Retry,
    Rewrite,
    Route,
    Rule,
    ServiceKey,
)

if TYPE_CHECKING:
    from migrate.dialects.istio.reader import IstioReader

# Fields of HTTPRoute whose presence is a feature use, and their feature keys.
_HTTP_FEATURES = {
    "mirror": "route.mirror",
    "mirrors": "route.mirror",
    "mirrorPercentage": "route.mirror",
    "mirror_percent": "route.mirror",
    "mirrorPercent": "route.mirror",
    "corsPolicy": "route.cors",
    "directResponse": "route.direct_response",
    "delegate": "route.delegate",
}


def read_virtual_service(reader: IstioReader, f: Fields, graph: MeshGraph) -> None:
    """Read one VirtualService into up to two Routes (http and tcp)."""
    ns = f.ref.namespace
    gateways = f.strings("spec.gateways")
    mesh = not gateways or "mesh" in gateways
    ingress_gateways = tuple(g for g in gateways if g != "mesh")
    hosts: list[ServiceKey] = []
    for i, host in enumerate(f.strings("spec.hosts")):
        key = service_of_host(host, ns, reader.cluster_domain)
        if key is None:
            if mesh:
                f.use("route.host.external", f"spec.hosts[{i}]", host)
        else:
            hosts.append(key)
    export_to = f.strings("spec.exportTo")
    if export_to and set(export_to) != {"*"}:
        f.use("route.export_to", "spec.exportTo", ",".join(export_to))
    if ingress_gateways:
        f.use("ingress.route", "spec.gateways", ", ".join(ingress_gateways))
    if mesh and hosts and any(h.namespace != ns for h in hosts):
        f.use("route.consumer_namespace", "spec.hosts",
              ", ".join(str(h) for h in hosts if h.namespace != ns))

    before = len(f.uses)
    http_rules = tuple(_http_rule(reader, f, i, mesh) for i in range(len(f.list("spec.http"))))
    if not mesh:
        # Rules of an ingress-only VirtualService are rebuilt on the new ingress controller
        # as a whole (the ingress.route loss); their per-field features are not mesh losses.
        del f.uses[before:]
    if http_rules:
        if mesh:
            note_default_retries(f, "spec.http", http_rules)
        graph.add(Route(ns, f.ref.name, "http", tuple(hosts), http_rules,
                        ingress=bool(ingress_gateways), mesh=mesh, gateways=gateways,
                        origin=f.origin("spec.http")))
    tcp_rules = tuple(_tcp_rule(reader, f, i) for i in range(len(f.list("spec.tcp"))))
    if tcp_rules:
        if mesh:
            f.note("route.tcp", "spec.tcp")
        graph.add(Route(ns, f.ref.name, "tcp", tuple(hosts), tcp_rules,
                        ingress=bool(ingress_gateways), mesh=mesh, gateways=gateways,
                        origin=f.origin("spec.tcp")))
    if f.peek("spec.tls"):
        f.use("route.tls", "spec.tls")


def _http_rule(reader: IstioReader, f: Fields, i: int, mesh: bool) -> Rule:
    path = f"spec.http[{i}]"
    given = f.keys_at(path)
    for key, feature in _HTTP_FEATURES.items():
        if given.get(key) is not None:
            f.use(feature, join(path, key))
    fault = f.mapping(join(path, "fault"))
    for key in sorted(fault):
        f.use(f"route.fault.{'delay' if key == 'delay' else 'abort'}", f"{path}.fault.{key}")
    matches = tuple(http_match(f, f"{path}.match[{j}]", mesh)
                    for j in range(len(f.list(join(path, "match")))))
    backends = tuple(_destination(reader, f, f"{path}.route[{j}]", mesh)
                     for j in range(len(f.list(join(path, "route")))))
    if mesh:
        for key, feature in (("timeout", "route.timeout"), ("retries", "route.retry"),
                             ("headers", "route.header_ops"), ("redirect", "route.redirect")):
            if given.get(key) is not None:
                f.note(feature, join(path, key))
        f.note("route.http", path)
    # Most rules set few of the optional parts: ``given`` says which are there, so the
    # absent ones cost no lookup.
    headers = given.get("headers")
    return Rule(
        index=i,
        name=f.string(join(path, "name")),
        matches=matches,
        backends=backends,
        timeout=f.string(join(path, "timeout")),
        retry=_retry(f, join(path, "retries")) if given.get("retries") is not None else None,
        request_headers=_header_ops(f, join(path, "headers.request"), headers, "request"),
        response_headers=_header_ops(f, join(path, "headers.response"), headers, "response"),
        redirect=_redirect(f, join(path, "redirect")) if given.get("redirect") is not None
        else None,
        origin_path=path,
        rewrite=_rewrite(f, join(path, "rewrite")) if given.get("rewrite") is not None
        else None,
    )


def _tcp_rule(reader: IstioReader, f: Fields, i: int) -> Rule:
    path = f"spec.tcp[{i}]"
    matches = tuple(l4_match(f, f"{path}.match[{j}]")
                    for j in range(len(f.list(join(path, "match")))))
    backends = tuple(_destination(reader, f, f"{path}.route[{j}]", True)
                     for j in range(len(f.list(join(path, "route")))))
    return Rule(index=i, name="", matches=matches, backends=backends, origin_path=path)


def _destination(reader: IstioReader, f: Fields, path: str, mesh: bool) -> Backend:
    headers = f.keys_at(path).get("headers")
    host = f.name(join(path, "destination.host"))
    key = service_of_host(host, f.ref.namespace, reader.cluster_domain) if host else None
    invalid = not host and f.peek(join(path, "destination.host")) is not None
    if key is None and mesh and not invalid:  # an invalid host is reported, not external
        f.use("route.host.external", join(path, "destination.host"), host)
    return Backend(
        service=key,
        host=host,
        subset=f.string(join(path, "destination.subset")),
        port=f.integer(join(path, "destination.port.number")),
        weight=f.integer(join(path, "weight")),
        request_headers=_header_ops(f, join(path, "headers.request"), headers, "request"),
        response_headers=_header_ops(f, join(path, "headers.response"), headers, "response"),
        origin_path=path,
    )


_NO_HEADER_OPS = HeaderOps()


def _header_ops(f: Fields, path: str, headers: Any, which: str) -> HeaderOps:
    """``headers.request`` or ``headers.response`` (``which``) at ``path``; ``headers`` is
    the value of the ``headers`` field beside it, as the caller found it."""
    if not isinstance(headers, dict) or headers.get(which) is None:
        return _NO_HEADER_OPS  # most rules and destinations change no headers: nothing to read

    def pairs(key: str) -> tuple[tuple[str, str], ...]:
        items = f.mapping(join(path, key), whole=True).items()
        return tuple(sorted((str(k), str(v)) for k, v in items))

    return HeaderOps(set=pairs("set"), add=pairs("add"), remove=f.strings(join(path, "remove")))


def _retry(f: Fields, path: str) -> Retry | None:
    if f.peek(path) is None:
        return None
    for key, feature in (("retryRemoteLocalities", "route.retry.remote_localities"),
                         ("backoff", "route.retry.backoff"),
                         ("retryIgnorePreviousHosts", "route.retry.backoff")):
        if f.peek(join(path, key)) is not None:
            f.use(feature, join(path, key))
    attempts = f.integer(join(path, "attempts"))
    conditions = tuple(c.strip() for c in f.string(join(path, "retryOn")).split(",") if c.strip())
    return Retry(attempts=attempts if attempts is not None else 2,
                 per_try_timeout=f.string(join(path, "perTryTimeout")),
                 retry_on=conditions, origin_path=path)


def _redirect(f: Fields, path: str) -> Redirect | None:
    if f.peek(path) is None:
        return None
    if f.peek(join(path, "derivePort")) is not None:
        f.use("route.redirect.derive_port", join(path, "derivePort"))
    return Redirect(path=f.string(join(path, "uri")), authority=f.string(join(path, "authority")),
                    port=f.integer(join(path, "port")), scheme=f.string(join(path, "scheme")),
                    code=f.integer(join(path, "redirectCode")) or 301, origin_path=path)


def _rewrite(f: Fields, path: str) -> Rewrite | None:
    """``rewrite``: ``uri`` and ``authority`` are carried, ``uriRegexRewrite`` is reported.

    Istio compiles ``uri`` to Envoy's ``prefix_rewrite`` and ``authority`` to
    ``host_rewrite_literal`` (istio/istio pilot/pkg/networking/core/route/route.go,
    ``translateRoute``), which is what :class:`Rewrite` ``prefix`` means: the matched prefix
    is replaced under a prefix match, the whole path under an exact or regex match
    (virtual_service.proto HTTPRewrite.uri). An empty ``uri`` sets no rewrite.
    """
    if f.peek(path) is None:
        return None
    uri = f.string(join(path, "uri"))
    authority = f.string(join(path, "authority"))
    if uri:
        f.use("route.rewrite", join(path, "uri"), uri)
    if authority:
        f.use("route.rewrite.authority", join(path, "authority"), authority)
    if f.peek(join(path, "uriRegexRewrite")) is not None:
        regex = f.mapping(join(path, "uriRegexRewrite"), whole=True)
        f.use("route.rewrite.regex", join(path, "uriRegexRewrite"),
              f"{regex.get('match', '')} -> {regex.get('rewrite', '')}")
    f.get(path)
    rewrite = Rewrite(prefix=uri, authority=authority,
                      origin_path=join(path, "uri") if uri else path,
                      authority_path=join(path, "authority"))
    return rewrite if rewrite else None


def note_default_retries(f: Fields, path: str, rules: Sequence[Rule]) -> None:
    """Istio retries a rule without ``retries`` by its default policy (fact
    ``istio.default-retry``: 2 attempts on
    connect-failure, refused-stream, unavailable, cancelled; istio pilot/pkg/networking/core/
    route/retry/retry.go), rule by rule: name the rules that rely on it."""
    bare = [r for r in rules if r.retry is None and r.redirect is None]
    if not bare:
        return
    if len(bare) == len(rules):
        f.note("route.retry.default", path)
    else:
        where = ", ".join(sorted(dict.fromkeys(r.origin_path.split(".match")[0] for r in bare),
                                 key=_natural))
        f.note("route.retry.default", path, f"rules without retries: {where}")


def _natural(path: str) -> list[object]:
    """Sort key putting spec.http[2] before spec.http[10]."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]

