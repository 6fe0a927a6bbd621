"""The discovery chain (router -> splitter -> resolver) compiled into IR routes and subsets.

Semantics follow Consul's compiler (hashicorp/consul agent/consul/discoverychain/compile.go):
- the router of the service a client dials is consulted first; its routes match in list
  order and a catch-all route to the service itself is appended;
- a route destination naming a ``serviceSubset`` goes straight to the resolver; one without
  a subset goes to that service's splitter when it has one;
- a split leg to another service without a subset continues into that service's splitter
  (nested splitters flatten into one weighted list); otherwise it goes to the resolver;
- a resolver ``redirect`` replaces the target (a service change resets the subset), then
  ``defaultSubset`` applies to a target with no subset.

One IR Route is written per Kubernetes Service of the dialled Consul service when the chain
changes anything (a router, a split, a redirect, a default subset or a resolver timeout).
Subsets become a DestinationPolicy whose subset labels are the pod labels that pick exactly
the pods whose registration metadata (``service-meta-*`` / ``service-tags`` annotations)
passes the filter; see :func:`names.distinguishing_labels`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from migrate.dialects.consul.names import (
    ConsulNames,
    Instance,
    distinguishing_labels,
    workloads_matching,
)
from migrate.dialects.consul.read_routing import (
    ResolverFacts,
    RouterFacts,
    SplitterFacts,
    Target,
)
from migrate.dialects.fields import join
from migrate.ir.graph import MeshGraph
from migrate.ir.model import (
    Backend,
    DestinationPolicy,
    FeatureUse,
    HeaderOps,
    Origin,
    Route,
    RouteMatch,
    Rule,
    ServiceKey,
    StringMatch,
    Subset,
)
from migrate.losses import ObjectRef, Severity

if TYPE_CHECKING:
    from migrate.dialects.consul.read_state import ConsulState
    from migrate.dialects.consul.reader import ConsulReader

_MAX_HOPS = 16
"""Redirect and nesting depth; Consul rejects cycles, this only guards bad input."""
L7 = ("http", "http2", "grpc")


@dataclass(frozen=True)
class Leg:
    """One weighted end of the chain."""

    fraction: float
    target: Target
    request_headers: HeaderOps
    response_headers: HeaderOps
    path: str
    """Where in the dialled service's objects the leg comes from."""


def reached_from_others(state: ConsulState) -> set[str]:
    """Services another service's router or splitter sends traffic to (a service with no
    instances of its own, reached that way, is a virtual service: a splitter behind a
    router, hashicorp/consul#7688)."""
    found = {r.target.service for name, router in state.routers.items()
             for r in router.routes if r.target.service not in ("", name)}
    found |= {s.target.service for name, splitter in state.splitters.items()
              for s in splitter.splits if s.target.service not in ("", name)}
    return found


class ChainCompiler:
    """Builds routes and destination policies from the parsed routing entries."""

    def __init__(self, reader: ConsulReader, names: ConsulNames, graph: MeshGraph) -> None:
        self.reader = reader
        self.state = reader.state
        self.names = names
        self.graph = graph
        self._used: set[ObjectRef] = set()
        """The entries the chain being compiled went through (credited on its routes)."""

    def compile(self) -> None:
        """Every service with routing config: its routes, then every resolver's subsets."""
        routed = sorted(set(self.state.routers) | set(self.state.splitters) |
                        set(self.state.resolvers))
        for name in routed:
            self._routes(name)
        for name in sorted(self.state.resolvers):
            self._subsets(name, self.state.resolvers[name])

    # -- routes -------------------------------------------------------------------------------
    @functools.cached_property
    def _reached_from_others(self) -> set[str]:
        return reached_from_others(self.state)

    def _routes(self, name: str) -> None:
        router = self.state.routers.get(name)
        origin_ref, origin_path = self._origin(name)
        instances = self.names.instances(name)
        if not instances:
            if name in self._reached_from_others:
                return  # a virtual service: compiled into the chains of the services that use it
            if router is not None or name in self.state.splitters or \
                    self.state.resolvers[name].redirect is not None:
                self.reader.unresolved(origin_ref, "metadata.name", name,
                                       "its routing was not converted")
            return
        self._check_protocol(name, router)
        self._used = set()
        rules: list[Rule] = []
        changed = router is not None
        if router is not None:
            for i, route in enumerate(router.routes):
                target = Target(route.target.service or name, route.target.subset,
                                route.target.namespace, route.target.remote)
                legs = self._legs(target, splitter=not target.subset, path=route.path)
                # The route's origin is the router: backends point at its destination.
                legs = [replace(leg, path=join(route.path, "destination")) for leg in legs]
                rules.append(Rule(
                    index=i, name="", matches=route.matches,
                    backends=self._backends(origin_ref, legs, name),
                    timeout=route.timeout or self._resolver_timeout(legs),
                    retry=route.retry, request_headers=route.request_headers,
                    response_headers=route.response_headers, origin_path=route.path,
                    rewrite=route.rewrite))
        default_path = "spec" if router is None else "spec.routes"
        legs = self._legs(Target(name), splitter=True, path=default_path)
        if router is not None:
            legs = [replace(leg, path=default_path) for leg in legs]
        if legs != [Leg(1.0, Target(name), HeaderOps(), HeaderOps(), default_path)]:
            changed = True
        timeout = self._resolver_timeout(legs)
        changed |= bool(timeout)
        if not changed:
            return
        if not (router is not None and any(_matches_everything(r.matches)
                                            for r in router.routes)):
            # Consul's implicit catch-all (compile.go newDefaultServiceRoute), unless a route
            # already matches everything (no match, or only pathPrefix "/"): the catch-all is
            # then unreachable, and kept it would compete with that route on targets that
            # order routes by specificity rather than list order.
            rules.append(Rule(index=len(rules), name="", matches=(),
                              backends=self._backends(origin_ref, legs, name),
                              timeout=timeout, origin_path=default_path))
        protocol = "http" if self.state.protocol(name) in L7 or router is not None or \
            name in self.state.splitters else "tcp"
        if protocol == "tcp":
            self.graph.use(FeatureUse("route.tcp", Origin(origin_ref, origin_path)))
        elif router is None and name not in self.state.splitters:
            # Only a resolver changes this service's routing (redirect, default subset,
            # timeout); the router and splitter handlers note route.http themselves.
            self.graph.use(FeatureUse("route.http", Origin(origin_ref, origin_path)))
        # The splitters and resolvers of the chain are folded into routes whose origin is the
        # first entry: they are named on what is written from it.
        self.graph.contribute(origin_ref, *self._used)
        for inst in instances:
            route_name = name if inst.key.name == name else f"{name}-{inst.key.name}"
            self.graph.add(Route(inst.key.namespace, route_name, protocol, (inst.key,),
                                 tuple(rules), ingress=False, mesh=True, gateways=(),
                                 origin=Origin(origin_ref, origin_path)))

    def _check_protocol(self, name: str, router: RouterFacts | None) -> None:
        """Routers and splitters need an L7 protocol (mapping-consul-others.md 1.6)."""
        protocol = self.state.protocol(name)
        if protocol in L7:
            return
        for facts, path in ((router, "spec.routes"),
                            (self.state.splitters.get(name), "spec.splits")):
            if facts is None:
                continue
            self.reader.losses.report(
                "FIELD_INVALID", Severity.MANUAL, "input", facts.ref, path,
                f"Consul accepts a {facts.ref.kind} only for a service whose protocol is http, "
                f"http2 or grpc; '{name}' is {protocol} (no ServiceDefaults or ProxyDefaults "
                "protocol says otherwise), so Consul rejects this entry; it was converted as "
                "written",
                "Check the live Consul config (consul config read) and declare the protocol "
                "in a ServiceDefaults if the entry is really in use.")

    def _origin(self, name: str) -> tuple[ObjectRef, str]:
        for table in (self.state.routers, self.state.splitters, self.state.resolvers):
            facts = table.get(name)
            if facts is not None:
                return facts.ref, "spec"
        raise KeyError(name)

    def _legs(self, target: Target, splitter: bool, path: str, depth: int = 0) -> list[Leg]:
        """Weighted final targets for a target entering the chain at a splitter or resolver."""
        split: SplitterFacts | None = self.state.splitters.get(target.service) if splitter \
            and not target.subset and not target.remote else None
        if split is None or depth > _MAX_HOPS:
            return [Leg(1.0, self._resolve(target), HeaderOps(), HeaderOps(), path)]
        self._used.add(split.ref)
        declared = self.state.service_defaults.get(target.service)
        if declared is not None and declared.protocol:
            self._used.add(declared.ref)  # the L7 protocol Consul needs to accept the split
        total = sum(s.weight for s in split.splits) or 1.0
        legs: list[Leg] = []
        for s in split.splits:
            if s.weight <= 0:
                continue
            leg_target = Target(s.target.service or target.service, s.target.subset,
                                s.target.namespace, s.target.remote)
            nested = leg_target.service != target.service and not leg_target.subset
            for leg in self._legs(leg_target, nested, s.path, depth + 1):
                legs.append(Leg(s.weight / total * leg.fraction, leg.target,
                                _merge(s.request_headers, leg.request_headers),
                                _merge(s.response_headers, leg.response_headers), s.path))
        return legs

    def _resolve(self, target: Target) -> Target:
        """Redirects, then the default subset (compile.go getResolverNode)."""
        for _ in range(_MAX_HOPS):
            if target.remote:
                return target
            resolver = self.state.resolvers.get(target.service)
            if resolver is None:
                return target
            redirect = resolver.redirect
            if redirect is not None or resolver.default_subset:
                self._used.add(resolver.ref)
            if redirect is not None:
                service = redirect.service or target.service
                subset = redirect.subset or ("" if service != target.service else target.subset)
                moved = Target(service, subset, redirect.namespace or target.namespace,
                               redirect.remote)
                if moved != target:
                    target = moved
                    continue
            if not target.subset and resolver.default_subset:
                target = Target(target.service, resolver.default_subset, target.namespace)
                continue
            return target
        return target

    def _resolver_timeout(self, legs: list[Leg]) -> str:
        """A resolver's requestTimeout, when every leg ends at the same service."""
        services = {leg.target.service for leg in legs}
        if len(services) != 1:
            return ""
        resolver = self.state.resolvers.get(services.pop())
        if resolver is not None and resolver.request_timeout:
            self._used.add(resolver.ref)
        return resolver.request_timeout if resolver else ""

    def _backends(self, ref: ObjectRef, legs: list[Leg], dialled: str) -> tuple[Backend, ...]:
        weights = _weights([leg.fraction for leg in legs])
        out = []
        for leg, weight in zip(legs, weights):
            key = self._key(leg.target, dialled)
            if key is None and not leg.target.remote:
                self.reader.unresolved(ref, leg.path, leg.target.service,
                                       "it was left out of the route's backends")
            out.append(Backend(service=key, host=leg.target.service, subset=leg.target.subset,
                               weight=weight if len(legs) > 1 else None,
                               request_headers=leg.request_headers,
                               response_headers=leg.response_headers, origin_path=leg.path))
        return tuple(out)

    def _key(self, target: Target, dialled: str) -> ServiceKey | None:
        """The Kubernetes Service of a chain target (the dialled service's namespace first)."""
        if target.remote:
            return None
        keys = self.names.keys(target.service, target.namespace)
        if not keys:
            return None
        home = {k.namespace for k in self.names.keys(dialled)}
        return next((k for k in keys if k.namespace in home), keys[0])

    # -- subsets ------------------------------------------------------------------------------
    def _subsets(self, name: str, resolver: ResolverFacts) -> None:
        if not resolver.subsets and resolver.consistent_hash is None and \
                not resolver.connect_timeout:
            return
        instances = self.names.instances(name)
        if not instances:
            if name not in self.state.routers and name not in self.state.splitters:
                self.reader.unresolved(resolver.ref, "metadata.name", name,
                                       "its subsets were not converted")
            return
        for inst in instances:
            subsets = []
            for subset in sorted(resolver.subsets):
                labels = self._labels(resolver, subset, inst)
                if labels is not None:
                    subsets.append(Subset(subset, labels, f"spec.subsets.{subset}"))
            policy_name = name if inst.key.name == name else f"{name}-{inst.key.name}"
            self.graph.add(DestinationPolicy(
                namespace=inst.key.namespace, name=policy_name, service=inst.key, host=name,
                subsets=tuple(subsets), tls_mode="", outlier=None,
                origin=Origin(resolver.ref, "spec"),
                consistent_hash=resolver.consistent_hash,
                connect_timeout=resolver.connect_timeout))

    def _labels(self, resolver: ResolverFacts, subset: str,
                inst: Instance) -> tuple[tuple[str, str], ...] | None:
        parsed, expression = resolver.subsets[subset]
        if parsed is not None and not parsed.meta and not parsed.tags:
            return ()  # no filter: every instance
        found = None
        if parsed is not None:
            matching = workloads_matching(inst, dict(parsed.meta), parsed.tags)
            found = distinguishing_labels(inst, matching)
        if found is not None:
            return tuple(sorted(found.items()))
        self.reader.losses.report(
            "CONSUL_SUBSET_FILTER", Severity.MANUAL, "destination.subsets", resolver.ref,
            f"spec.subsets.{subset}.filter",
            f"subset {subset} of {inst.key} selects instances by Consul catalog data "
            f"({expression!r}); no pod labels in the input pick exactly those pods, so the "
            "subset was not converted and routes to it have no backend",
            "Give the subset's pods a distinguishing label (e.g. version: v2) and the "
            "service-meta annotation the filter reads, then re-run.")
        return None


def _merge(outer: HeaderOps, inner: HeaderOps) -> HeaderOps:
    """Header changes of a split and of a nested split it leads to (outer applied last)."""
    if not inner:
        return outer
    if not outer:
        return inner
    return HeaderOps(set=tuple(sorted(dict(inner.set + outer.set).items())),
                     add=tuple(sorted(inner.add + outer.add)),
                     remove=tuple(sorted(set(inner.remove + outer.remove))))


def _weights(fractions: list[float]) -> list[int]:
    """Integer weights with the same ratios: percent when whole, else hundredths of one.

    Consul weights have 0.01 % granularity (mapping-consul-others.md 1.2).
    """
    percent = [round(x * 100, 2) for x in fractions]
    if all(p.is_integer() for p in percent):
        return [int(p) for p in percent]
    return [int(round(p * 100)) for p in percent]


def _matches_everything(matches: tuple[RouteMatch, ...]) -> bool:
    """Whether a route's matches accept every request: none, or one with at most a ``/``
    path prefix and no other condition."""
    return not matches or any(
        m.path in (None, StringMatch("prefix", "/")) and m.method is None and not m.headers
        and not m.query and m.port is None for m in matches)
