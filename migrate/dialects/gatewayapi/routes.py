"""Reading Gateway API routes (HTTPRoute, GRPCRoute, TCPRoute) into IR rules: the parsing every
mesh that implements GAMMA shares (filters are read in :mod:`.filters`). What differs between
meshes (which filters and parents they honour, what a rule without backends does, which
timeouts apply) stays in the dialects: the Linkerd reader (``linkerd/read_routes.py``) and the
Istio one (``istio/gamma.py``) pass it in.

- A PathPrefix matches whole segments; the IR prefix is a raw string prefix, so a PathPrefix
  becomes an exact match plus a prefix ending in ``/`` (:func:`path_matches`).
- Every match becomes its own IR rule, and the rules are stably sorted most specific first
  (:func:`sort_most_specific`) with the ranking the mesh uses, so the first-match IR rule list
  means what the mesh's precedence meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from migrate.dialects.fields import Fields, join
from migrate.dialects.gatewayapi.filters import OtherFilter, read_filters
from migrate.ir.model import Backend, RouteMatch, Rule, ServiceKey, StringMatch

OtherBackend = Callable[[str, str, str], None]
"""Called with (backendRef path, kind, name) for a backendRef that is not a core Service."""


@dataclass(frozen=True)
class ParentRef:
    """One parentRef of a route, already accounted in the ledger (its whole mapping)."""

    path: str
    kind: str
    group: str
    name: str
    body: dict[str, Any]

    @property
    def is_service(self) -> bool:
        """A core Service parent: GAMMA (mesh) routing."""
        return self.kind == "Service" and self.group in ("", "core")

    def service(self, namespace: str) -> tuple[ServiceKey, int | None]:
        """The parent Service (namespace defaults to the route's) and the port it names."""
        port = self.body.get("port")
        return (ServiceKey(str(self.body.get("namespace") or namespace), self.name),
                port if isinstance(port, int) else None)


def parent_refs(f: Fields) -> Iterator[ParentRef]:
    """The route's parentRefs (kind defaults to Gateway, group to the core group)."""
    for i, parent in enumerate(f.list("spec.parentRefs")):
        path = f"spec.parentRefs[{i}]"
        if not isinstance(parent, dict):
            f.invalid(path, "expected a parentRef mapping")
            continue
        f.get(path, whole=True)
        kind = str(parent.get("kind") or "Gateway")
        group = str(parent.get("group") if parent.get("group") is not None else "")
        name = f.name(join(path, "name"))
        yield ParentRef(path, kind, group, name, parent)


def mesh_parents(f: Fields, parents: list[tuple[ServiceKey, int | None]]
                 ) -> tuple[int | None, tuple[ServiceKey, ...]]:
    """The port every rule of a Service-parented route matches (the one port all parents
    name, else none) and the parent Services, sorted. Notes ``route.match.port`` when a port
    is named and ``route.consumer_namespace`` for parents in another namespace."""
    ns = f.ref.namespace
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
    return port, hosts


def items(value: object) -> list[object]:
    """A list field as a list (anything else as empty)."""
    return value if isinstance(value, list) else []


def filter_types(f: Fields) -> list[tuple[str, str]]:
    """(path, type) of every filter of every rule and backendRef, without consuming them."""
    out = []
    for i, rule in enumerate(items(f.peek("spec.rules"))):
        if not isinstance(rule, dict):
            continue
        lists = [(f"spec.rules[{i}].filters", rule.get("filters"))]
        for j, b in enumerate(items(rule.get("backendRefs"))):
            if isinstance(b, dict):
                lists.append((f"spec.rules[{i}].backendRefs[{j}].filters", b.get("filters")))
        for base, filters in lists:
            for k, flt in enumerate(items(filters)):
                if isinstance(flt, dict) and flt.get("type") is not None:
                    out.append((f"{base}[{k}]", str(flt["type"])))
    return out


# -- matches -----------------------------------------------------------------------------
def path_matches(kind: str, value: str) -> list[tuple[StringMatch | None, str]]:
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
    """One HTTPRouteMatch as IR matches (a PathPrefix gives two, see :func:`path_matches`)."""
    kind = f.string(join(path, "path.type"), "PathPrefix")
    value = f.string(join(path, "path.value"), "/")
    if kind not in ("Exact", "PathPrefix", "RegularExpression"):
        f.invalid(join(path, "path.type"), f"path match type {kind!r} is unknown")
        return []
    method = f.string(join(path, "method"))
    headers = value_pairs(f, join(path, "headers"), lower=True)
    query = value_pairs(f, join(path, "queryParams"), lower=False)
    return [RouteMatch(path=p, method=StringMatch("exact", method) if method else None,
                       headers=headers, query=query, port=port, origin_path=path)
            for p, _ in path_matches(kind, value)]


def grpc_match(f: Fields, path: str, port: int | None, any_method: str = "[^/]+"
               ) -> list[RouteMatch]:
    """One GRPCRouteMatch: service/method become a match on the HTTP/2 path.

    ``any_method`` is what a RegularExpression match on a service alone accepts as the method
    part (meshes differ: Linkerd ``[^/]+``, Istio ``.+``)."""
    kind = f.string(join(path, "method.type"), "Exact")
    service = f.string(join(path, "method.service"))
    method = f.string(join(path, "method.method"))
    if kind == "RegularExpression":
        p: StringMatch | None = StringMatch(
            "regex", f"/{service or '[^/]+'}/{method or any_method}")
    elif service and method:
        p = StringMatch("exact", f"/{service}/{method}")
    elif service:
        p = StringMatch("prefix", f"/{service}/")
    elif method:
        p = StringMatch("regex", f"/[^/]+/{re.escape(method)}")
    else:
        p = None
    return [RouteMatch(path=p, headers=value_pairs(f, join(path, "headers"), lower=True),
                       port=port, origin_path=path)]


def value_pairs(f: Fields, path: str, lower: bool) -> tuple[tuple[str, StringMatch], ...]:
    """Header or query-parameter matches (Exact, the default, or RegularExpression)."""
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


# -- backends ----------------------------------------------------------------------------
def read_backends(f: Fields, path: str, other_kind: OtherBackend,
                  other_filter: OtherFilter | None = None) -> tuple[Backend, ...]:
    """A rule's backendRefs. A weight is kept as written; with several backends an unset
    weight is 1 (the Gateway API default). Non-Service kinds go to ``other_kind`` and become
    backends without a Service."""
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
        req, resp, _ = read_filters(f, join(bpath, "filters"), other_filter)
        if kind == "Service" and group in ("", "core"):
            key: ServiceKey | None = ServiceKey(ns, name)
        else:
            key = None
            other_kind(join(bpath, "kind"), kind, name)
        out.append(Backend(service=key, host=name if ns == f.ref.namespace else f"{name}.{ns}",
                           port=port, weight=weight if weight is not None else
                           (1 if len(refs) > 1 else None),
                           request_headers=req, response_headers=resp, origin_path=bpath))
    return tuple(out)


def parent_backend(default: ServiceKey | None, port: int | None, path: str
                   ) -> tuple[Backend, ...]:
    """The parent Service as the backend of a rule without backendRefs (for meshes that do
    that, e.g. Linkerd's policy controller)."""
    if default is None:
        return ()
    return (Backend(service=default, host=default.name, port=port, origin_path=path),)


# -- ordering ----------------------------------------------------------------------------
Rank = Callable[[RouteMatch | None], tuple[int, ...]]


def sort_most_specific(rules: list[tuple[tuple[int, ...], Rule]], rank: Rank) -> list[Rule]:
    """Rules (each with at most one match, keyed by their source position) most specific
    first by ``rank`` (higher is more specific); ties keep source order.

    A PathPrefix is read as an Exact plus a segment prefix: both parts keep the lower of their
    ranks, or the Exact part would tie with (and, earlier in the list, beat) a real Exact match
    of a later rule, which the mesh ranks higher."""
    floor: dict[str, tuple[int, ...]] = {}
    for _, r in rules:
        for m in r.matches:
            floor[m.origin_path] = min(floor.get(m.origin_path, rank(m)), rank(m))

    def key(r: tuple[tuple[int, ...], Rule]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        m = r[1].matches[0] if r[1].matches else None
        return (tuple(-x for x in (floor[m.origin_path] if m else rank(None))), r[0])

    return [r for _, r in sorted(rules, key=key)]
