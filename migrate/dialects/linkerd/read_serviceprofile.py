"""ServiceProfile (linkerd.io) and TrafficSplit (split.smi-spec.io) as IR routes.

- A ServiceProfile is named after the Service's FQDN. In the Service's namespace it applies
  to every client; in another namespace only to clients there (a consumer override).
- Profile routes are matched in list order, first match wins; a request matching none goes
  to the Service with no timeout or retry. The IR route therefore keeps the order and ends
  with a catch-all rule.
- ``isRetryable`` retries failures (5xx unless ``responseClasses`` say otherwise) for as
  long as the Service's retry budget allows; there is no per-request attempt count. The IR
  needs one, so it gets 1 (the limit Linkerd's annotation retries default to) and the budget
  is recorded as a ``destination.retry_budget`` use: at ``spec.retryBudget`` when the profile
  sets one, else at each retryable route (the controller's default budget applies).
- linkerd-smi turns a TrafficSplit into ``dstOverrides`` on the apex Service's profile
  (linkerd-smi v0.2.7 pkg/adaptor/controller.go), so both are read the same way.
- A profile with routes or dstOverrides overrides the Service's HTTPRoutes and its retry and
  timeout annotations (linkerd2-proxy ``should_override_policy``: the profile wins when
  ``has_routes_or_targets()``); that is resolved in ``read_finish``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from migrate.dialects.linkerd.read_multicluster import failover_detail
from migrate.dialects.fields import Fields, join
from migrate.dialects.linkerd.read_state import ProfileFacts
from migrate.ir.graph import MeshGraph
from migrate.ir.hosts import service_of_host
from migrate.ir.model import Backend, Retry, Route, RouteMatch, Rule, ServiceKey, StringMatch

if TYPE_CHECKING:
    from migrate.dialects.linkerd.reader import LinkerdReader

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|k|M|G)?$")
_SCALE = {"m": 1, "": 1000, "k": 1_000_000, "M": 1_000_000_000, "G": 1_000_000_000_000}


def milli(value: object) -> int | None:
    """A Kubernetes quantity (``500m``, ``1``, ``0.5``) in thousandths, or None."""
    match = _QUANTITY.match(str(value).strip()) if value is not None else None
    if not match or isinstance(value, bool):
        return None
    return int(round(float(match.group(1)) * _SCALE[match.group(2) or ""]))


def read_service_profile(reader: LinkerdReader, f: Fields, graph: MeshGraph) -> None:
    """One ServiceProfile."""
    ns = f.ref.namespace
    service = service_of_host(f.ref.name, ns, reader.cluster_domain)
    before = len(f.uses)
    if f.peek("spec.retryBudget") is not None:
        f.use("destination.retry_budget", "spec.retryBudget")
    ports = f.list("spec.opaquePorts", whole=True)
    if ports:
        f.use("protocol.opaque", "spec.opaquePorts", ",".join(str(p) for p in ports))
    if service is None:
        f.use("route.host.external", "metadata.name", f.ref.name)
        f.get("spec", whole=True)
        return
    if service.namespace != ns:
        f.note("route.consumer_namespace", "metadata.namespace", str(service))
    backends = _overrides(reader, f, service)
    rules: list[Rule] = []
    for i in range(len(f.list("spec.routes"))):
        rule = _route(f, f"spec.routes[{i}]", len(rules), backends)
        if rule is not None:
            rules.append(rule)
    route = None
    if rules or f.peek("spec.dstOverrides"):
        rules.append(Rule(index=len(rules), name="default", matches=(), backends=backends,
                          origin_path="spec"))
        route = Route(ns, service.name, "http", (service,), tuple(rules), ingress=False,
                      mesh=True, gateways=(), origin=f.origin("spec"))
        f.note("route.http", "spec.routes")
    uses = f.uses[before:]
    del f.uses[before:]
    reader.state.profiles.setdefault(service, []).append(ProfileFacts(f.ref, service, route, uses))


def _overrides(reader: LinkerdReader, f: Fields, service: ServiceKey) -> tuple[Backend, ...]:
    out = []
    for i, _ in enumerate(f.list("spec.dstOverrides")):
        path = f"spec.dstOverrides[{i}]"
        authority = f.string(join(path, "authority"))
        host, _, port = authority.rpartition(":") if ":" in authority else (authority, "", "")
        key = service_of_host(host, f.ref.namespace, reader.cluster_domain)
        if key is None:
            f.use("route.host.external", join(path, "authority"), authority)
        weight = milli(f.get(join(path, "weight")))
        if weight is None and f.peek(join(path, "weight")) is not None:
            f.invalid(join(path, "weight"), "weight is not a quantity")
        out.append(Backend(service=key, host=host, port=int(port) if port.isdigit() else None,
                           weight=weight, origin_path=path))
    return tuple(out) or (Backend(service=service, host=service.name, origin_path="metadata.name"),)


def _route(f: Fields, path: str, index: int, backends: tuple[Backend, ...]) -> Rule | None:
    name = f.string(join(path, "name"))
    matches = _condition(f, join(path, "condition"))
    if f.peek(join(path, "responseClasses")) is not None:
        f.use("route.response_classes", join(path, "responseClasses"))
    retryable = f.get(join(path, "isRetryable"))
    timeout = f.string(join(path, "timeout"))
    if matches is None:
        return None
    retry = None
    if retryable is True:
        retry = Retry(attempts=1, retry_on=("5xx",), origin_path=join(path, "isRetryable"))
        f.note("route.retry", join(path, "isRetryable"))
        if f.peek("spec.retryBudget") is None:
            # Without spec.retryBudget the route still retries within a budget: the
            # destination controller's default (retryRatio 0.2, minRetriesPerSecond 10,
            # ttl 10s; linkerd2 controller/api/destination/profile_translator.go). The
            # fixed count the IR carries is a change of meaning, reported where it starts.
            f.note("destination.retry_budget", join(path, "isRetryable"),
                   "Linkerd's default retry budget (20% extra load, at least 10 retries/s), "
                   "written as 1 retry")
    elif retryable not in (None, False):
        f.invalid(join(path, "isRetryable"), "expected true or false")
    if timeout:
        f.note("route.timeout", join(path, "timeout"))
    return Rule(index=index, name=name, matches=tuple(matches), backends=backends,
                timeout=timeout, retry=retry, origin_path=path)


def _condition(f: Fields, path: str) -> list[RouteMatch] | None:
    """A RequestMatch in disjunctive form: alternatives (OR) of IR matches (AND inside).

    None when it cannot be expressed (negation, two different paths that must both match);
    the rule is then left out and the feature use says so.
    """
    cond = f.mapping(path)
    alts: list[RouteMatch] = [RouteMatch(origin_path=path)]
    if "method" in cond:
        alts = _and(alts, [RouteMatch(method=StringMatch("exact", f.string(join(path, "method"))),
                                      origin_path=path)])
    if "pathRegex" in cond:
        alts = _and(alts, [RouteMatch(path=StringMatch("regex", f.string(join(path, "pathRegex"))),
                                      origin_path=path)])
    if cond.get("not") not in (None, [], {}):
        f.use("route.match.negated", join(path, "not"))
        f.get(path, whole=True)
        return None
    f.get(join(path, "not"))
    for i, _ in enumerate(f.list(join(path, "all"))):
        sub = _condition(f, f"{path}.all[{i}]")
        if sub is None:
            return None
        alts = _and(alts, sub)
    if "any" in cond:
        any_alts: list[RouteMatch] = []
        for i, _ in enumerate(f.list(join(path, "any"))):
            sub = _condition(f, f"{path}.any[{i}]")
            if sub is None:
                return None
            any_alts += sub
        alts = _and(alts, any_alts)
    if any(m is None for m in alts):
        f.use("route.match.negated", path, "conditions that must hold together on one field")
        return None
    return alts


def _and(left: list[RouteMatch], right: list[RouteMatch]) -> list[RouteMatch]:
    """Every pair joined (AND); an unsatisfiable pair is dropped, an inexpressible one is None."""
    out: list[RouteMatch] = []
    for a in left:
        for b in right:
            if a.method and b.method and a.method != b.method:
                continue  # no request has two methods
            if a.path and b.path and a.path != b.path:
                out.append(None)  # type: ignore[arg-type]  # two regexes: no single IR path
                continue
            out.append(RouteMatch(path=a.path or b.path, method=a.method or b.method,
                                  origin_path=a.origin_path))
    return out


def read_traffic_split(reader: LinkerdReader, f: Fields, graph: MeshGraph) -> None:
    """One SMI TrafficSplit: weighted backends for the apex Service."""
    failover = failover_detail(f)
    if failover:
        f.use("multicluster", "spec", failover)  # not a static split (read_multicluster.py)
        return
    ns = f.ref.namespace
    apex = f.string("spec.service")
    service = service_of_host(apex, ns, reader.cluster_domain) if apex else None
    backends = []
    for i, _ in enumerate(f.list("spec.backends")):
        path = f"spec.backends[{i}]"
        name = f.string(join(path, "service"))
        weight = milli(f.get(join(path, "weight")))
        if weight is None:
            f.invalid(join(path, "weight"), "weight is not a quantity")
            continue
        key = service_of_host(name, ns, reader.cluster_domain)
        backends.append(Backend(service=key, host=name, weight=weight, origin_path=path))
    if service is None:
        f.invalid("spec.service", f"apex service {apex!r} is not a Service name")
        return
    before = len(f.uses)
    f.note("route.http", "spec.backends")
    rule = Rule(index=0, name="", matches=(), backends=tuple(backends), origin_path="spec.backends")
    route = Route(ns, f.ref.name, "http", (service,), (rule,), ingress=False, mesh=True,
                  gateways=(), origin=f.origin("spec"))
    uses = f.uses[before:]
    del f.uses[before:]
    reader.state.profiles.setdefault(service, []).append(ProfileFacts(f.ref, service, route, uses))
