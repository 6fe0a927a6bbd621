"""MeshGraph: the IR records in a networkx graph with typed edges.

Nodes are keyed by ``"<Type>/<namespace>/<name>"`` and hold the record in the ``obj``
attribute. Edges carry a ``type``: SELECTS (Service -> Workload), ATTACHES (Route -> Service it
routes for), ROUTES_TO (Route -> backend Service), CONFIGURES (DestinationPolicy -> Service),
APPLIES_TO (MTLS/Authz policy -> Workload), AUTHORIZES (Authz policy -> caller Namespace),
CALLS (Workload -> Service named in its environment), RUNS_AS (Workload -> Identity, its
service account); AUTHORIZES also points at the Identity nodes of named principals and
service accounts. The planner's namespace dependency
graph is derived from them (:meth:`MeshGraph.namespace_dependencies`).
"""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

import networkx as nx

from migrate.ir.hosts import host_in_value, service_of_host
from migrate.ir.model import (
    AuthzPolicy,
    DestinationPolicy,
    FeatureUse,
    Labels,
    MTLSPolicy,
    Namespace,
    Opaque,
    Route,
    Service,
    ServiceKey,
    Workload,
)
from migrate.losses import ObjectRef

T = TypeVar("T")

SELECTS, ATTACHES, ROUTES_TO, CONFIGURES, APPLIES_TO, AUTHORIZES, CALLS, RUNS_AS = (
    "SELECTS", "ATTACHES", "ROUTES_TO", "CONFIGURES", "APPLIES_TO", "AUTHORIZES", "CALLS",
    "RUNS_AS")


def node_id(record: object) -> str:
    """The graph key of a record."""
    if isinstance(record, Namespace):
        return f"Namespace//{record.name}"
    if isinstance(record, Service):
        return f"Service/{record.key.namespace}/{record.key.name}"
    if isinstance(record, Opaque):
        return f"Opaque:{record.kind}/{record.namespace}/{record.name}"
    if isinstance(record, Route):
        return f"Route/{record.namespace}/{record.name}/{record.protocol}"
    if isinstance(record, Workload):
        # A Deployment and a StatefulSet may share a name: the kind is part of the key.
        return f"{record.kind}/{record.namespace}/{record.name}"
    ns = record.namespace  # type: ignore[attr-defined]
    name = record.name  # type: ignore[attr-defined]
    return f"{type(record).__name__}/{ns}/{name}"


def identity_id(namespace: str, service_account: str) -> str:
    """The graph key of a workload identity (a service account)."""
    return f"Identity/{namespace}/{service_account}"


def selects(selector: Labels | None, pod_labels: Labels) -> bool:
    """Whether a matchLabels selector picks pods with these labels (None picks all)."""
    # Labels are sorted (key, value) pairs with unique keys: containment is subset. Tested
    # pair by pair: both tuples are a few pairs long, and this runs for every selector and
    # pod of a namespace, where building two sets per call was a visible share of a plan.
    if selector is None:
        return True
    for pair in selector:
        if pair not in pod_labels:
            return False
    return True


class MeshGraph:
    """The IR of one mesh configuration."""

    def __init__(self, mesh: str) -> None:
        self.mesh = mesh
        self.g: nx.MultiDiGraph = nx.MultiDiGraph()
        self.features: list[FeatureUse] = []
        self._by_type: dict[type, list[object]] = {}
        self._by_namespace: dict[tuple[type, str], list[object]] = {}
        self._indexed: set[type] = set()
        self._selected_by: dict[str, list[Service]] = {}
        """Workload node key -> the Services selecting it (filled by link())."""
        self._derived: set[str] = set()
        """Edge types already added to ``g`` (see :meth:`link`)."""
        self.contributors: dict[ObjectRef, set[ObjectRef]] = {}
        """Source object -> the other source objects its IR records were read together
        with (a Linkerd AuthorizationPolicy's Server, routes and authentications): whatever
        is written from the first is written from them too (:meth:`contribute`)."""

    # -- building -------------------------------------------------------------------------
    def add(self, record: object) -> None:
        """Add a record as a node (the same key twice keeps the last)."""
        self.g.add_node(node_id(record), obj=record)
        self._by_type.clear()
        self._by_namespace.clear()
        self._indexed.clear()

    def contribute(self, primary: ObjectRef, *others: ObjectRef) -> None:
        """Record that records whose origin is ``primary`` also carry ``others``' meaning.

        Records keep one origin; the writers name it on what they emit, and the pipeline adds
        these (:func:`migrate.ledger.credit_contributors`), so every object that shaped a
        target object is named on it and in the plan's ledger.
        """
        found = self.contributors.setdefault(primary, set())
        found.update(o for o in others if o != primary)

    def use(self, use: FeatureUse) -> None:
        """Record that the configuration uses a feature at an origin."""
        self.features.append(use)

    def link(self) -> None:
        """Ready the typed edges once every record is in.

        Only the Service-selects-Workload index is built here (writers ask for it on every
        workload). The edges of each type are derived into the networkx graph the first time
        :meth:`edges` asks for that type: a plan follows only CALLS, and deriving every type
        up front cost a tenth of a large plan's memory for edges nothing read.
        """
        self.g.remove_edges_from(list(self.g.edges))
        self._derived = set()
        self._selected_by = {}
        for svc in self.of(Service):
            if not svc.selector:
                continue
            for w in self.in_namespace(Workload, svc.key.namespace):
                if selects(svc.selector, w.pod_labels):
                    self._selected_by.setdefault(node_id(w), []).append(svc)

    def _derive(self, kind: str) -> None:
        """Add the edges of one type to the graph."""
        services = {s.key: s for s in self.of(Service)}
        if kind == SELECTS:
            for w in self.of(Workload):
                for svc in self._selected_by.get(node_id(w), []):
                    self.g.add_edge(node_id(svc), node_id(w), type=SELECTS)
        elif kind in (ATTACHES, ROUTES_TO):
            for route in self.of(Route):
                keys = route.hosts if kind == ATTACHES else \
                    [b.service for rule in route.rules for b in rule.backends if b.service]
                for key in keys:
                    self._edge_to_service(route, key, kind, services)
        elif kind == CONFIGURES:
            for dp in self.of(DestinationPolicy):
                if dp.service:
                    self._edge_to_service(dp, dp.service, CONFIGURES, services)
        elif kind == APPLIES_TO:
            for policy in [*self.of(MTLSPolicy), *self.of(AuthzPolicy)]:
                for w in self.workloads_selected(policy.namespace, policy.selector):
                    self.g.add_edge(node_id(policy), node_id(w), type=APPLIES_TO)
        elif kind == RUNS_AS:
            for w in self.of(Workload):
                self.g.add_edge(node_id(w), identity_id(w.namespace, w.service_account),
                                type=RUNS_AS)
        elif kind == AUTHORIZES:
            for authz in self.of(AuthzPolicy):
                for ns in sorted(self.caller_namespaces(authz)):
                    if ns != authz.namespace:
                        self.g.add_edge(node_id(authz), f"Namespace//{ns}", type=AUTHORIZES)
                for ns, sa in sorted(self.caller_identities(authz)):
                    self.g.add_edge(node_id(authz), identity_id(ns, sa), type=AUTHORIZES)
        elif kind == CALLS:
            for w in self.of(Workload):
                for host, _ in w.calls:
                    key = service_of_host(host, w.namespace)
                    if key in services:
                        self.g.add_edge(node_id(w), node_id(services[key]), type=CALLS)
        else:
            raise ValueError(f"unknown edge type {kind!r}")

    def _edge_to_service(self, record: object, key: ServiceKey, kind: str,
                         services: dict[ServiceKey, Service]) -> None:
        target = f"Service/{key.namespace}/{key.name}"
        if key not in services and target not in self.g:
            # A Service outside the dump still anchors the dependency (it exists in the cluster).
            self.g.add_node(target, obj=None)
        self.g.add_edge(node_id(record), target, type=kind)

    # -- reading --------------------------------------------------------------------------
    def of(self, cls: type[T]) -> list[T]:
        """Every record of one type, sorted by key for deterministic iteration."""
        if cls not in self._by_type:
            found = [(key, data["obj"]) for key, data in self.g.nodes(data=True)
                     if isinstance(data.get("obj"), cls)]
            self._by_type[cls] = [obj for _, obj in sorted(found, key=lambda item: item[0])]
        return list(self._by_type[cls])  # type: ignore[arg-type]

    def in_namespace(self, cls: type[T], namespace: str) -> list[T]:
        """Records of one type in one namespace (indexed once, not scanned per call)."""
        if cls not in self._indexed:
            # Index a type once: every later namespace (with records or not) is a lookup.
            self._indexed.add(cls)
            for obj in self.of(cls):
                self._by_namespace.setdefault((cls, _namespace_of(obj)), []).append(obj)
        return list(self._by_namespace.get((cls, namespace), []))  # type: ignore[arg-type]

    def service(self, key: ServiceKey) -> Service | None:
        """The Service with this key, if the input had it."""
        data = self.g.nodes.get(f"Service/{key.namespace}/{key.name}")
        obj = data.get("obj") if data else None
        return obj if isinstance(obj, Service) else None

    def namespace(self, name: str) -> Namespace | None:
        """The Namespace record, if the input had one."""
        data = self.g.nodes.get(f"Namespace//{name}")
        obj = data.get("obj") if data else None
        return obj if isinstance(obj, Namespace) else None

    def in_mesh(self, w: Workload) -> bool:
        """Whether the source mesh injects a workload's pods: its own marker, else its
        namespace's (a namespace the input does not show counts as injected: dumps made for
        ``kubectl apply -n`` carry no Namespace, and their mesh objects say it is meshed)."""
        if w.injection == "none":
            return False
        record = self.namespace(w.namespace)
        return w.injection != "inherit" or record is None or record.injection != "none"

    def namespaces_declared(self) -> list[Namespace]:
        """Namespace records the input contained."""
        return self.of(Namespace)

    def workloads_selected(self, namespace: str, selector: Labels | None) -> list[Workload]:
        """Workloads of a namespace whose pods a selector picks."""
        return [w for w in self.in_namespace(Workload, namespace)
                if selects(selector, w.pod_labels)]

    def services_of(self, workload: Workload) -> list[Service]:
        """Services that select a workload's pods."""
        # Indexed when link() adds the SELECTS edges (a scan of the node's in-edges per call
        # cost more than the rest of the policy writer on large meshes).
        return sorted(self._selected_by.get(node_id(workload), []), key=lambda s: s.key)

    def edges(self, kind: str) -> Iterator[tuple[str, str]]:
        """(source, target) node keys of every edge of one type, sorted."""
        if kind not in self._derived:
            self._derived.add(kind)
            self._derive(kind)
        yield from sorted((u, v) for u, v, t in self.g.edges(data="type") if t == kind)

    @staticmethod
    def caller_namespaces(authz: AuthzPolicy) -> set[str]:
        """Namespaces an authorization policy names as sources (principals, SAs, namespaces)."""
        found: set[str] = set()
        for rule in authz.rules:
            for src in rule.sources:
                found.update(n for n in src.namespaces if "*" not in n)
                for p in src.principals:
                    parts = p.split("/")
                    if len(parts) >= 3 and parts[-4:-3] == ["ns"] and "*" not in parts[-3]:
                        found.add(parts[-3])
                found.update(sa.split("/", 1)[0] for sa in src.service_accounts if "/" in sa)
        return found

    @staticmethod
    def caller_identities(authz: AuthzPolicy) -> set[tuple[str, str]]:
        """(namespace, service account) pairs an authorization policy names as sources."""
        found: set[tuple[str, str]] = set()
        for rule in authz.rules:
            for src in rule.sources:
                for p in src.principals:
                    parts = p.split("/")
                    if len(parts) == 5 and parts[1] == "ns" and parts[3] == "sa" and \
                            "*" not in parts[2] + parts[4]:
                        found.add((parts[2], parts[4]))
                for sa in src.service_accounts:
                    ns, _, name = sa.partition("/")
                    if name:
                        found.add((ns, name))
        return found

    def namespace_dependencies(self, namespaces: Iterable[str]) -> nx.DiGraph:
        """Caller namespace -> callee namespace, with the reasons for each edge.

        An edge A -> B means something in A calls (or is allowed to call, or routes into)
        something in B: workloads naming B's Services in their environment, authorization
        sources in B naming A, routes in A for B's Services, and routes for B's Services
        whose backends are in C (callers of B reach C: B -> C).
        """
        deps = nx.DiGraph()
        deps.add_nodes_from(sorted(namespaces))
        # Reasons are gathered in a plain dict and the edges added once: a large mesh gives
        # hundreds of thousands of reasons, and networkx's edge views cost a lookup each.
        reasons: dict[tuple[str, str], set[str]] = {}
        known = set(deps)

        def add(a: str, b: str, why: str) -> None:
            if a != b and a in known and b in known:
                reasons.setdefault((a, b), set()).add(why)

        for u, v in self.edges(CALLS):
            w: Workload = self.g.nodes[u]["obj"]
            add(w.namespace, v.split("/")[1], f"{w.kind} {w.namespace}/{w.name} calls "
                f"Service {v.split('/', 1)[1]}")
        for authz in self.of(AuthzPolicy):
            if authz.action != "ALLOW":
                continue
            for ns in sorted(self.caller_namespaces(authz)):
                add(ns, authz.namespace,
                    f"AuthorizationPolicy {authz.namespace}/{authz.name} allows callers from {ns}")
        for route in self.of(Route):
            if not route.mesh:
                continue
            for host in route.hosts:
                add(route.namespace, host.namespace,
                    f"route {route.namespace}/{route.name} configures Service {host}")
                for rule in route.rules:
                    for b in rule.backends:
                        if b.service:
                            add(host.namespace, b.service.namespace,
                                f"route {route.namespace}/{route.name} sends {host} traffic "
                                f"to {b.service}")
        deps.add_edges_from((a, b, {"reasons": sorted(why)}) for (a, b), why in reasons.items())
        return deps

    def ingress_namespaces(self) -> set[str]:
        """Namespaces whose Services an ingress-bound route sends traffic to."""
        found: set[str] = set()
        for route in self.of(Route):
            if route.ingress:
                for rule in route.rules:
                    found.update(b.service.namespace for b in rule.backends if b.service)
        return found


def _namespace_of(record: object) -> str:
    if isinstance(record, Service):
        return record.key.namespace
    return str(getattr(record, "namespace", getattr(record, "name", "")))


def env_calls(values: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Hosts found in (env path, value) pairs, as (host, path), sorted and unique."""
    found = {(host, path) for path, value in values if (host := host_in_value(value))}
    return tuple(sorted(found))
