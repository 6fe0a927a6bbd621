"""ServiceRouter, ServiceSplitter and ServiceResolver: parsing (this module) and the
discovery chain compiled into IR routes and subsets (:mod:`read_chain`).

Field meanings follow consul-k8s 2.0's CRDs (../shared/crds/consul) and Consul's config-entry
reference; the chain semantics are in :mod:`read_chain`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from migrate.dialects.consul.methods import read_methods
from migrate.dialects.consul.read_common import present, use_if
from migrate.dialects.fields import Fields, join
from migrate.ir.graph import MeshGraph
from migrate.ir.model import (
    ConsistentHash,
    HeaderOps,
    Retry,
    Rewrite,
    RouteMatch,
    StringMatch,
)
from migrate.losses import ObjectRef

if TYPE_CHECKING:
    from migrate.dialects.consul.reader import ConsulReader


@dataclass(frozen=True)
class Target:
    """A place in the chain: a Consul service, optionally one subset of it."""

    service: str
    subset: str = ""
    namespace: str = ""
    """Enterprise namespace (mirrored to a Kubernetes namespace); empty in CE."""
    remote: bool = False
    """In another datacenter, partition or peer: outside what this plan can address."""


@dataclass(frozen=True)
class RouterRoute:
    """One ``routes[]`` entry (first match in list order wins)."""

    matches: tuple[RouteMatch, ...]
    target: Target
    timeout: str
    retry: Retry | None
    request_headers: HeaderOps
    response_headers: HeaderOps
    path: str
    rewrite: Rewrite | None = None


@dataclass
class RouterFacts:
    """A ServiceRouter."""

    ref: ObjectRef
    routes: list[RouterRoute] = field(default_factory=list)


@dataclass(frozen=True)
class Split:
    """One ``splits[]`` leg."""

    weight: float
    target: Target
    request_headers: HeaderOps
    response_headers: HeaderOps
    path: str


@dataclass
class SplitterFacts:
    """A ServiceSplitter."""

    ref: ObjectRef
    splits: list[Split] = field(default_factory=list)


@dataclass(frozen=True)
class SubsetFilter:
    """A subset's filter, understood as metadata equalities and required tags (AND)."""

    meta: tuple[tuple[str, str], ...]
    tags: tuple[str, ...]


@dataclass
class ResolverFacts:
    """A ServiceResolver."""

    ref: ObjectRef
    subsets: dict[str, tuple[SubsetFilter | None, str]] = field(default_factory=dict)
    """Subset name -> (parsed filter or None when not understood, filter expression)."""
    default_subset: str = ""
    redirect: Target | None = None
    request_timeout: str = ""
    consistent_hash: ConsistentHash | None = None
    connect_timeout: str = ""


# -- matches ----------------------------------------------------------------------------------
def _header_match(f: Fields, path: str, query: bool) -> StringMatch | None:
    """One header or query-parameter matcher; ``invert`` is a negation (reported, dropped)."""
    if f.peek(join(path, "invert")):
        f.use("route.match.without_headers", path, str(f.peek(join(path, "name"))))
        return None
    if f.get(join(path, "present")):
        return StringMatch("present")
    for kind in ("exact", "prefix", "regex"):
        if present(f, join(path, kind)):
            return StringMatch(kind, f.string(join(path, kind)))
        f.get(join(path, kind))
    if not query and present(f, join(path, "suffix")):
        # Envoy suffix match as an anchored RE2 expression.
        return StringMatch("regex", ".*" + re.escape(f.string(join(path, "suffix"))))
    f.get(join(path, "suffix"))
    f.get(join(path, "ignoreCase"))
    # Nothing set: Consul treats an empty header matcher as "present".
    return StringMatch("present")


def _http_match(f: Fields, path: str) -> tuple[RouteMatch, ...]:
    """``match.http``: one IR match per listed method (a method list is an OR)."""
    http = join(path, "http")
    uri: StringMatch | None = None
    for key, kind in (("pathExact", "exact"), ("pathPrefix", "prefix"), ("pathRegex", "regex")):
        if present(f, join(http, key)):
            uri = StringMatch(kind, f.string(join(http, key)))
        else:
            f.get(join(http, key))
    headers = []
    for k in range(len(f.list(join(http, "header")))):
        hp = f"{http}.header[{k}]"
        m = _header_match(f, hp, False)
        name = f.string(join(hp, "name")).lower()
        if m is not None and name:
            headers.append((name, m))
    query = []
    for k in range(len(f.list(join(http, "queryParam")))):
        qp = f"{http}.queryParam[{k}]"
        m = _header_match(f, qp, True)
        name = f.string(join(qp, "name"))
        if m is not None and name:
            query.append((name, m))
    ignore_case = bool(f.get(join(http, "caseInsensitive")))
    f.get(path)
    f.get(http)
    base = dict(path=uri, ignore_case=ignore_case, headers=tuple(sorted(headers)),
                query=tuple(sorted(query)), origin_path=path)
    methods = read_methods(f, http)
    if not methods:
        return (RouteMatch(**base),)  # type: ignore[arg-type]
    return tuple(RouteMatch(method=StringMatch("exact", m), **base)  # type: ignore
                 for m in methods)


def header_ops(f: Fields, path: str) -> HeaderOps:
    """``requestHeaders`` / ``responseHeaders``: set, add and remove."""
    def pairs(key: str) -> tuple[tuple[str, str], ...]:
        items = f.mapping(join(path, key), whole=True).items()
        return tuple(sorted((str(k), str(v)) for k, v in items))

    ops = HeaderOps(set=pairs("set"), add=pairs("add"), remove=f.strings(join(path, "remove")))
    f.get(path)
    if ops:
        f.note("route.header_ops", path)
    return ops


def _target(f: Fields, path: str, service_key: str, subset_key: str) -> Target:
    """A destination: service, subset, Enterprise namespace, and remote locations."""
    remote = False
    for key in ("partition", "peer", "datacenter", "samenessGroup"):
        if use_if(f, join(path, key), "multicluster", key):
            remote = True
    namespace = f.string(join(path, "namespace"))
    return Target(f.name(join(path, service_key)), f.string(join(path, subset_key)),
                  "" if namespace == "default" else namespace, remote)


# -- handlers ---------------------------------------------------------------------------------
def read_service_router(reader: ConsulReader, f: Fields, graph: MeshGraph) -> None:
    """One ServiceRouter: ordered HTTP routes."""
    facts = RouterFacts(f.ref)
    for i in range(len(f.list("spec.routes"))):
        path = f"spec.routes[{i}]"
        matches = _http_match(f, join(path, "match")) if present(f, join(path, "match")) else ()
        f.get(join(path, "match"))
        dest = join(path, "destination")
        target = _target(f, dest, "service", "serviceSubset")
        rewrite = None
        if use_if(f, join(dest, "prefixRewrite"), "route.rewrite",
                  f.string(join(dest, "prefixRewrite"))):
            # Consul sets Envoy's prefix_rewrite from it (agent/xds/routes.go: "routeAction.
            # Route.PrefixRewrite = destination.PrefixRewrite"), Rewrite.prefix's meaning.
            rewrite = Rewrite(prefix=f.string(join(dest, "prefixRewrite")),
                              origin_path=join(dest, "prefixRewrite"))
        use_if(f, join(dest, "idleTimeout"), "route.timeout.stream", "idleTimeout")
        timeout = f.string(join(dest, "requestTimeout"))
        if timeout:
            f.note("route.timeout", join(dest, "requestTimeout"))
        f.note("route.http", path)
        facts.routes.append(RouterRoute(
            matches=matches, target=target, timeout=timeout, retry=_retry(f, dest),
            request_headers=header_ops(f, join(dest, "requestHeaders")),
            response_headers=header_ops(f, join(dest, "responseHeaders")), path=path,
            rewrite=rewrite))
        f.get(dest)
    reader.state.add_named(f, reader.state.routers, f.ref.name, facts)


def _retry(f: Fields, dest: str) -> Retry | None:
    """``numRetries``, ``retryOn``, ``retryOnStatusCodes``, ``retryOnConnectFailure``.

    Consul (agent/xds/routes.go makeRetryPolicy) sets a retry policy when any of them is set;
    with no count Envoy's default of one retry applies.
    """
    attempts = f.integer(join(dest, "numRetries"))
    conditions = list(f.strings(join(dest, "retryOn")))
    codes = [c for c in f.strings(join(dest, "retryOnStatusCodes"))]
    if f.get(join(dest, "retryOnConnectFailure")):
        conditions.append("connect-failure")
    conditions += codes
    if not attempts and not conditions:
        return None
    f.note("route.retry", dest)
    # A loss about the conditions names the field that set them: status codes carry over to
    # every target, so it is about retryOn or retryOnConnectFailure (both: the destination).
    set_by = [join(dest, key) for key in ("retryOn", "retryOnConnectFailure")
              if f.peek(join(dest, key))] or [join(dest, "retryOnStatusCodes")]
    return Retry(attempts=attempts or 1, retry_on=tuple(conditions), origin_path=dest,
                 field_paths=(("retryOn", set_by[0] if len(set_by) == 1 else dest),))


def read_service_splitter(reader: ConsulReader, f: Fields, graph: MeshGraph) -> None:
    """One ServiceSplitter: weighted legs (percent, 0.01 granularity)."""
    facts = SplitterFacts(f.ref)
    for i in range(len(f.list("spec.splits"))):
        path = f"spec.splits[{i}]"
        raw = f.get(join(path, "weight"))
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or \
                not math.isfinite(raw) or not 0 <= raw <= 100:
            f.invalid(join(path, "weight"), "a split weight must be a number from 0 to 100")
            raw = 0.0
        facts.splits.append(Split(
            float(raw), _target(f, path, "service", "serviceSubset"),
            header_ops(f, join(path, "requestHeaders")),
            header_ops(f, join(path, "responseHeaders")), path))
    f.note("route.http", "spec.splits")
    reader.state.add_named(f, reader.state.splitters, f.ref.name, facts)


_META = re.compile(r'^Service\.Meta\.([A-Za-z0-9_.-]+)\s*==\s*"?([^"\s]+)"?$')
_TAG_IN = re.compile(r'^"?([^"\s]+)"?\s+in\s+Service\.Tags$')
_TAG_CONTAINS = re.compile(r'^Service\.Tags\s+contains\s+"?([^"\s]+)"?$')


def parse_filter(expression: str) -> SubsetFilter | None:
    """A go-bexpr filter made of ``Service.Meta.k == v`` and tag tests joined by ``and``.

    Anything else (or, not, !=, node fields) returns None: it cannot be tied to pod labels.
    """
    meta: list[tuple[str, str]] = []
    tags: list[str] = []
    for clause in re.split(r"\s+and\s+", expression.strip()):
        clause = clause.strip().strip("()").strip()
        if m := _META.match(clause):
            meta.append((m.group(1), m.group(2)))
        elif m := _TAG_IN.match(clause) or _TAG_CONTAINS.match(clause):
            tags.append(m.group(1))
        else:
            return None
    return SubsetFilter(tuple(sorted(meta)), tuple(sorted(tags))) if meta or tags else None


def read_service_resolver(reader: ConsulReader, f: Fields, graph: MeshGraph) -> None:
    """One ServiceResolver: subsets, default subset, redirect; balancing and failover reported."""
    facts = ResolverFacts(f.ref, default_subset=f.string("spec.defaultSubset"))
    for name in sorted(f.mapping("spec.subsets"), key=str):
        path = f"spec.subsets.{name}"
        expression = f.string(join(path, "filter"))
        # onlyPassing excludes instances whose checks warn; Kubernetes endpoints already hold
        # only ready pods, which is what the target meshes balance over.
        f.get(join(path, "onlyPassing"))
        f.get(path)
        facts.subsets[str(name)] = (parse_filter(expression) if expression else
                                    SubsetFilter((), ()), expression)
    if present(f, "spec.subsets"):
        f.note("destination.subsets", "spec.subsets")
    if present(f, "spec.redirect"):
        facts.redirect = _target(f, "spec.redirect", "service", "serviceSubset")
        f.get("spec.redirect")
    facts.request_timeout = f.string("spec.requestTimeout")
    if facts.request_timeout:
        f.note("route.timeout", "spec.requestTimeout")
    if use_if(f, "spec.connectTimeout", "destination.connect_timeout", "connectTimeout"):
        facts.connect_timeout = f.string("spec.connectTimeout")
    _failover(f)
    facts.consistent_hash = _load_balancer(f)
    use_if(f, "spec.prioritizeByLocality", "destination.lb.locality", "prioritizeByLocality")
    reader.state.add_named(f, reader.state.resolvers, f.ref.name, facts)


def _failover(f: Fields) -> None:
    for key in sorted(f.mapping("spec.failover"), key=str):
        path = f"spec.failover.{key}"
        remote = any(present(f, join(path, k)) for k in ("datacenters", "samenessGroup")) or \
            any(isinstance(t, dict) and (t.get("peer") or t.get("datacenter") or
                                         t.get("partition"))
                for t in (f.peek(join(path, "targets")) or []))
        f.use("multicluster" if remote else "destination.failover", path, f"failover for {key}")


def _load_balancer(f: Fields) -> ConsistentHash | None:
    """Balancing: a hashing policy becomes session affinity the writers can carry (its first
    hash policy: Istio hashes on one attribute); other algorithms are reported."""
    lb = "spec.loadBalancer"
    policy = f.string(join(lb, "policy"))
    found = None
    if policy in ("ring_hash", "maglev") or present(f, join(lb, "hashPolicies")):
        f.use("destination.lb.consistent_hash", lb, policy or "hashPolicies")
        found = _hash(f, lb, policy or "ring_hash")
    elif policy or present(f, lb):
        f.use("destination.lb.simple", lb, policy)
    f.get(lb)
    return found


def _hash(f: Fields, lb: str, policy: str) -> ConsistentHash | None:
    """The first of ``hashPolicies`` (``field``/``fieldValue``, ``sourceIP``, ``cookieConfig``)
    with the ring size; None when it has no form the model holds."""
    size = f.peek(join(lb, "ringHashConfig.minimumRingSize"))
    size = size if isinstance(size, int) and not isinstance(size, bool) else None
    policies = f.peek(join(lb, "hashPolicies"))
    first = policies[0] if isinstance(policies, list) and policies else {}
    if not isinstance(first, dict):
        return None
    field_ = str(first.get("field", "") or "")
    key = {"header": "header", "cookie": "cookie", "query_parameter": "query"}.get(field_, "")
    if first.get("sourceIP") is True and not key:
        key = "source_ip"
    if first and not key:
        return None
    cookie = first.get("cookieConfig") if isinstance(first.get("cookieConfig"), dict) else {}
    left = [f"{len(policies) - 1} more hash policies"] if isinstance(policies, list) and \
        len(policies) > 1 else []
    left += ["terminal"] if first.get("terminal") else []
    left += ["a session cookie"] if cookie.get("session") else []
    left += ["maximumRingSize"] if present(f, join(lb, "ringHashConfig.maximumRingSize")) else []
    return ConsistentHash(key, str(first.get("fieldValue", "") or ""),
                          str(cookie.get("ttl", "") or ""), str(cookie.get("path", "") or ""),
                          "maglev" if policy == "maglev" else "ring_hash", size,
                          f"{lb}.hashPolicies[0]" if first else lb, ", ".join(left))
