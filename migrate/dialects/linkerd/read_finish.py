"""Turn the facts the Linkerd handlers collected into IR records, once every object is read.

Routing (client side):
- A ServiceProfile (or TrafficSplit) with routes or dstOverrides in the Service's namespace
  overrides that Service's HTTP/gRPC routes and its retry, timeout and failure-accrual
  annotations (linkerd2-proxy ``should_override_policy``; reference 1.2). Those become no IR
  record; each gets a ``ROUTE_SHADOWED`` loss naming the profile.
- Retry/timeout annotations: the route's own win over the Service's (reference 1.2), and an
  annotation timeout wins over ``timeouts.request``. A Service with such annotations and no
  route gets a one-rule route of its own (Linkerd applies them to its default route).

Authorization is resolved in :mod:`read_authz`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from migrate.dialects.linkerd.read_annotations import for_route
from migrate.dialects.linkerd.read_authz import authorize
from migrate.dialects.linkerd.read_state import Names, RoutePolicy, note_use, sorted_refs
from migrate.ir.graph import MeshGraph
from migrate.ir.model import Backend, DestinationPolicy, Origin, Route, Rule, ServiceKey
from migrate.losses import ObjectRef, Severity

if TYPE_CHECKING:
    from migrate.dialects.linkerd.reader import LinkerdReader

_KIND_RANK = {"GRPCRoute": 0, "HTTPRoute": 1, "TLSRoute": 2, "TCPRoute": 3}


def finish(reader: LinkerdReader, graph: MeshGraph) -> None:
    """Resolve every collected fact into IR records (deterministic order throughout)."""
    names = Names()
    shadow = _profiles(reader, graph, names)
    routed = _outbound(reader, graph, names, shadow)
    _service_annotations(reader, graph, names, shadow, routed)
    authorize(reader, graph, names)


# -- routing -----------------------------------------------------------------------------
def _profiles(reader: LinkerdReader, graph: MeshGraph, names: Names
              ) -> dict[ServiceKey, list[ObjectRef]]:
    """Profile routes into the graph; returns Service -> the profiles that shadow it."""
    shadow: dict[ServiceKey, list[ObjectRef]] = {}
    for key in sorted(reader.state.profiles):
        facts = sorted(reader.state.profiles[key],
                       key=lambda p: (p.ref.namespace, p.ref.kind, p.ref.name))
        for p in facts:
            if p.route is None:
                for use in p.uses:
                    graph.use(use)
        for ns in sorted({p.ref.namespace for p in facts if p.route is not None}):
            group = [p for p in facts if p.route is not None and p.ref.namespace == ns]
            profiles = [p for p in group if p.ref.kind == "ServiceProfile"]
            splits = [p for p in group if p.ref.kind == "TrafficSplit"]
            chosen = (profiles[:1] + splits[:1])
            route = chosen[0].route
            assert route is not None
            if profiles and splits:
                # linkerd-smi writes the split as the profile's dstOverrides.
                backends = splits[0].route.rules[0].backends  # type: ignore[union-attr]
                route = replace(route, rules=tuple(replace(r, backends=backends)
                                                   for r in route.rules))
            for extra in splits[1:]:
                reader.losses.report(
                    "SOURCE_IGNORED", Severity.MANUAL, "input", extra.ref, "spec.service",
                    f"TrafficSplit {extra.ref.namespace}/{extra.ref.name} splits {key} like "
                    f"{splits[0].ref.name}; linkerd-smi keeps one split per Service, so only "
                    f"{splits[0].ref.name} is planned", "Keep one TrafficSplit per Service.")
            graph.add(replace(route, name=names.claim("Route:http", ns, route.name)))
            for p in chosen:
                for use in p.uses:
                    graph.use(use)
            if ns == key.namespace:
                shadow[key] = [p.ref for p in chosen]
    return shadow


def _shadow_loss(reader: LinkerdReader, ref: ObjectRef, path: str, what: str,
                 by: list[ObjectRef]) -> None:
    names = ", ".join(f"{r.kind} {r.namespace}/{r.name}" for r in sorted_refs(by))
    reader.losses.report(
        "ROUTE_SHADOWED", Severity.INFO, "input", ref, path,
        f"{what} has no effect in Linkerd: {names} overrides it; not carried over",
        "If it was meant to apply, fold it into the converted profile routes in the target.")


def _merge(route: RoutePolicy, service: RoutePolicy) -> RoutePolicy:
    # fact: linkerd.timeout-annotation-wins
    return RoutePolicy(route.timeout or service.timeout, route.retry or service.retry)


def _apply(rules: tuple[Rule, ...], policy: RoutePolicy) -> tuple[Rule, ...]:
    # fact: linkerd.timeout-annotation-wins (the annotation beats rules[].timeouts)
    return tuple(replace(r, timeout=policy.timeout or r.timeout, retry=policy.retry or r.retry)
                 for r in rules)


def _outbound(reader: LinkerdReader, graph: MeshGraph, names: Names,
              shadow: dict[ServiceKey, list[ObjectRef]]) -> set[ServiceKey]:
    routed: set[ServiceKey] = set()
    state = reader.state
    # Route kinds on one parent conflict: GRPCRoute > HTTPRoute > TLSRoute > TCPRoute; Linkerd
    # marks the losers not accepted (policy-controller k8s/status/src/index.rs; reference 1.3).
    best: dict[ServiceKey, int] = {}
    for ref, o in state.outbound.items():
        for h in o.route.hosts:
            if not (o.http and h in shadow):
                best[h] = min(best.get(h, 9), _KIND_RANK.get(ref.kind, 9))
    for ref in sorted_refs(list(state.outbound)):
        o = state.outbound[ref]
        hosts = o.route.hosts
        if o.http:
            for h in hosts:
                if h in shadow:
                    _shadow_loss(reader, ref, "spec", f"{ref.kind} {ref.namespace}/{ref.name} "
                                 f"(parent {h})", shadow[h])
            hosts = tuple(h for h in hosts if h not in shadow)
        losing = [h for h in hosts if best.get(h, 9) < _KIND_RANK.get(ref.kind, 9)]
        for h in losing:
            winner = next(kind for kind, rank in _KIND_RANK.items() if rank == best[h])
            reader.losses.report(
                "SOURCE_IGNORED", Severity.INFO, "input", ref, "spec.parentRefs",
                f"{ref.kind} {ref.namespace}/{ref.name}: Service {h} also has a {winner}, "
                f"which wins over a {ref.kind} on the same parent; Linkerd does not accept this "
                "route there, so it is not carried over for it",
                "Keep one route kind per Service.")
        hosts = tuple(h for h in hosts if h not in losing)
        if not hosts:
            continue
        groups: dict[tuple[str, object], list[ServiceKey]] = {}
        for h in hosts:
            svc = state.services.get(h)
            policy = _merge(o.annotations, for_route(svc.policy, ref.kind == "GRPCRoute")
                            if svc and o.http else RoutePolicy())
            groups.setdefault((policy.timeout, policy.retry), []).append(h)
        for (timeout, retry), group in sorted(groups.items(), key=lambda g: g[1]):
            policy = RoutePolicy(timeout, retry)  # type: ignore[arg-type]
            base = o.route.name if len(groups) == 1 else f"{o.route.name}-{group[0].name}"
            name = names.claim(f"Route:{o.route.protocol}", o.route.namespace, base)
            graph.add(replace(o.route, name=name, hosts=tuple(group),
                              rules=_apply(o.route.rules, policy)))
            svc = state.services.get(group[0])
            for feature, own, present in (("route.timeout", o.annotations.timeout, timeout),
                                          ("route.retry", o.annotations.retry, retry)):
                if present:
                    # Origin: the object whose annotation set it (route, else its Service).
                    note_use(graph, feature, ref if own or svc is None else svc.ref,
                         "metadata.annotations")
            routed.update(group)
        for use in o.uses:
            graph.use(use)
    return routed


def _service_annotations(reader: LinkerdReader, graph: MeshGraph, names: Names,
                         shadow: dict[ServiceKey, list[ObjectRef]], routed: set[ServiceKey]
                         ) -> None:
    for key in sorted(reader.state.services):
        svc = reader.state.services[key]
        paths = list(svc.policy.paths) + ([svc.outlier.origin_path] if svc.outlier else [])
        if key in shadow:
            for path in paths:
                _shadow_loss(reader, svc.ref, path, f"annotation {path.split('annotations.')[-1]}"
                             f" on Service {key}", shadow[key])
            continue
        for use in svc.uses:
            graph.use(use)
        origin = Origin(svc.ref, "metadata.annotations")
        if svc.policy and key not in routed:
            rule = Rule(index=0, name="", matches=(), backends=(
                Backend(service=key, host=key.name, origin_path="metadata.name"),),
                timeout=svc.policy.timeout, retry=svc.policy.retry,
                origin_path="metadata.annotations")
            graph.add(Route(key.namespace, names.claim("Route:http", key.namespace, key.name),
                            "http", (key,), (rule,), ingress=False, mesh=True, gateways=(),
                            origin=origin))
            note_use(graph, "route.http", svc.ref, "metadata.annotations")
            for feature, present in (("route.timeout", svc.policy.timeout),
                                     ("route.retry", svc.policy.retry)):
                if present:
                    note_use(graph, feature, svc.ref, "metadata.annotations")
        if svc.outlier:
            graph.add(DestinationPolicy(
                key.namespace, names.claim("DestinationPolicy", key.namespace, key.name), key,
                key.name, (), "", svc.outlier, origin))


