"""Linkerd authorization (Servers, AuthorizationPolicies, ServerAuthorizations and the
default inbound policy) as IR MTLS and authorization records.

Authorization (server side) is per Server (pods x port) in Linkerd, per workload in the IR
(Istio semantics: once an ALLOW policy selects a pod, every request to any of its ports
must match one). So:
- every authorization of a Server becomes an ALLOW policy whose operations carry the
  Server's port (and, for route-scoped ones or Servers with inbound routes, the routes'
  paths and methods: requests no route matches are refused by Linkerd);
- a Server nobody authorizes, with the default ``accessPolicy: deny``, becomes an ALLOW
  policy with no rules; any other accessPolicy an ALLOW rule for its port;
- the default inbound policy (pod > namespace > install) governs the ports without a
  Server; for a pod that some Server selects it is written as an ALLOW rule for its other
  known ports, so the Server policies do not close them. Ports the input does not show
  stay closed (fails closed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from migrate.dialects.linkerd.injected import injected_keys, injected_labels, without_injected
from migrate.dialects.linkerd.read_annotations import DEFAULT_POLICY, REQUIRE_IDENTITY, ann_path
from migrate.dialects.linkerd.read_policy import covers_every_address
from migrate.dialects.linkerd.read_state import (
    InboundRoute,
    Names,
    PolicyFacts,
    ServerFacts,
    WorkloadFacts,
    note_use,
    selector_alternatives,
    selector_matches,
)
from migrate.ir.graph import MeshGraph
from migrate.ir.model import (
    AuthzOperation,
    AuthzPolicy,
    AuthzRule,
    AuthzSource,
    Labels,
    MTLSPolicy,
    Origin,
    labels,
)
from migrate.losses import ObjectRef, Severity

if TYPE_CHECKING:
    from migrate.dialects.linkerd.reader import LinkerdReader

_ADMIN_PORTS = ("linkerd-admin", 4191, "linkerd-proxy", 4143)
"""The proxy's own admin and inbound ports (a Server there authorizes the proxy itself)."""
_STRICT = ("all-authenticated", "cluster-authenticated")


def authorize(reader: LinkerdReader, graph: MeshGraph, names: Names) -> None:
    """Servers and their authorizations, then the default inbound policy, into the graph."""
    servers = _resolve_servers(reader, graph)
    _orphan_routes(reader)
    granted = _authorizations(reader, graph, names, servers)
    _server_access(reader, graph, names, servers, granted)
    _default_policies(reader, graph, names, servers)


# -- servers -----------------------------------------------------------------------------
@dataclass
class _Server:
    facts: ServerFacts
    selectors: tuple[Labels | None, ...]
    """matchLabels alternatives (None: every pod of the namespace); empty when unknown."""
    ports: tuple[int, ...]
    """Empty when the port is a name no pod in the input declares."""
    routes: list[InboundRoute]
    workloads: list[WorkloadFacts]

    @property
    def usable(self) -> bool:
        """Whether the pods and the port are known (else nothing is written for it)."""
        return bool(self.selectors and self.ports)

    def operations(self) -> tuple[tuple[AuthzOperation, ...], tuple[str, ...]]:
        """What a Server-level authorization admits: the port, narrowed to its routes."""
        if not self.routes:
            return (AuthzOperation(ports=self.ports, origin_path="spec.port"),), ()
        ops = tuple(replace(op, ports=self.ports) for r in self.routes for op in r.operations)
        if not ops:
            # Every route match has a form authorization cannot state: fail closed.
            return (), tuple(sorted({n for r in self.routes for n in r.narrowing}))
        return ops, ()


def _resolve_servers(reader: LinkerdReader, graph: MeshGraph) -> dict[tuple[str, str], _Server]:
    state = reader.state
    out: dict[tuple[str, str], _Server] = {}
    for key in sorted(state.servers):
        s = state.servers[key]
        if s.external:
            continue  # mesh expansion: reported as workload.vm
        if s.port in _ADMIN_PORTS:
            reader.losses.report(
                "AUTHZ_PROXY_ADMIN", Severity.INFO, "input", s.ref, "spec.port",
                f"Server {key[0]}/{key[1]} governs the Linkerd proxy's own port {s.port}, "
                "which no other mesh has; not carried over",
                "Protect the target proxy's admin and metrics ports as its documentation says.")
            continue
        cp = reader.control_plane_namespace
        workloads = [w for w in state.workloads if w.ref.namespace == key[0] and selector_matches(
            s.selector, {**w.pod_labels, **injected_labels(w.ref.kind, key[0], w.ref.name, cp)})]
        alts = selector_alternatives(s.selector)
        if alts is not None and any(k in injected_keys() for alt in alts for k, _ in alt):
            alts = _without_injected(reader, s, alts, workloads)
        if alts is None:
            # Set-based expressions: the pods in the input that match are what it selects.
            alts = tuple(sorted({labels(w.pod_labels) for w in workloads if w.pod_labels}))
            detail = "set-based podSelector"
        else:
            detail = ""
        if isinstance(s.port, int):
            ports: tuple[int, ...] = (s.port,)
        else:
            ports = tuple(sorted({w.ports[str(s.port)] for w in workloads
                                  if str(s.port) in w.ports}))
            if not ports:
                detail = f"port {s.port!r} is declared by no pod in the input"
        routes = [r for (ns, _, _), r in sorted(state.inbound.items())
                  if ns == key[0] and key[1] in r.servers]
        server = _Server(s, tuple(a or None for a in alts), ports, routes, workloads)
        if not server.usable:
            note_use(graph, "authz.unresolved", s.ref, "spec",
                 detail or "podSelector matches no pod in the input")
        out[key] = server
    return out


def _without_injected(reader: LinkerdReader, s: ServerFacts, alts: tuple[Labels, ...],
                      workloads: list[WorkloadFacts]) -> tuple[Labels, ...]:
    """A podSelector's alternatives without the labels Linkerd's injector adds to pods.

    The target's pods never carry them (its injector does not add them), so they are
    replaced by what they select: ``linkerd.io/workload-ns`` and ``linkerd.io/control-plane-ns``
    with the Server's own namespace and the install's control plane select every pod of the
    namespace (the key is dropped), any other value selects none (the alternative is
    dropped); ``linkerd.io/proxy-<kind>`` selects one workload's pods, which its pod-template
    labels then select.
    """
    # fact: linkerd.injected-pod-labels
    ns, cp = s.ref.namespace, reader.control_plane_namespace
    keys = injected_keys()
    same = injected_labels("", ns, "", cp)  # the namespace and control-plane keys
    out: list[Labels] = []
    named: list[str] = []
    for alt in alts:
        injected = {k: v for k, v in alt if k in keys}
        if not injected:
            out.append(alt)
            continue
        named += sorted(injected)
        if all(same.get(k) == v for k, v in injected.items()):
            out.append(labels(without_injected(dict(alt))))
            continue
        if any(k not in same for k in injected):  # a workload's own label: its pods
            out += [labels({**w.pod_labels, **without_injected(dict(alt))}) for w in workloads
                    if w.pod_labels and all({**w.pod_labels, **injected_labels(
                        w.ref.kind, ns, w.ref.name, cp)}.get(k) == v for k, v in alt)]
    reader.losses.report(
        "LINKERD_INJECTED_LABEL", Severity.INFO, "authz.allow", s.ref, "spec.podSelector",
        f"Server {ns}/{s.ref.name} selects pods by {', '.join(sorted(set(named)))}, labels "
        "only Linkerd's proxy injector adds to pods; the converted policy selects the same pods "
        "by their pod-template labels (or the whole namespace)",
        "Nothing to do; select pods by their own labels in the target's policies.")
    return tuple(sorted(set(out)))


def _identity_sources(reader: LinkerdReader, policy_ref: ObjectRef,
                      authn: tuple[tuple[str, str, str, str], ...]
                      ) -> tuple[tuple[AuthzSource, ...], tuple[str, ...]] | None:
    """Sources a policy's required authentications admit (None: a reference is missing)."""
    identities: list[AuthzSource] | None = None
    networks: tuple[str, ...] | None = None
    narrowing: set[str] = set()
    for kind, ns, name, path in authn:
        if kind == "ServiceAccount":
            found = [AuthzSource(service_accounts=(f"{ns}/{name}",))]
            identities = found if identities is None else _intersect(identities, found,
                                                                      narrowing)
            continue
        facts = reader.state.authn.get((kind, ns, name))
        if facts is None:
            reader.losses.report(
                "LINKERD_REF_UNRESOLVED", Severity.MANUAL, "input", policy_ref, path,
                f"{policy_ref.kind} {policy_ref.namespace}/{policy_ref.name} requires {kind} "
                f"{ns}/{name}, which is not in the input; Linkerd does not apply a policy "
                "whose authentication is missing, so neither does the plan",
                "Add the missing object to the input (or remove the reference) and re-run.")
            return None
        narrowing.update(facts.narrowing)
        if kind == "NetworkAuthentication":
            if covers_every_address(facts.ip_blocks) and not facts.narrowing:
                continue  # every address: no restriction to intersect with
            networks = facts.ip_blocks if networks is None else tuple(
                sorted(set(networks) & set(facts.ip_blocks)))
        else:
            identities = list(facts.sources) if identities is None else _intersect(
                identities, list(facts.sources), narrowing)
    if identities is not None and not identities:
        narrowing.add("authz.identity_pattern")  # admits no identity the IR can name
    alts = identities if identities else [AuthzSource()]
    sources = tuple(AuthzSource(a.principals, a.namespaces, a.service_accounts,
                                networks or (), "spec.requiredAuthenticationRefs")
                    for a in alts)
    if sources == (AuthzSource(origin_path="spec.requiredAuthenticationRefs"),):
        sources = ()  # no requirement: any client
    return sources, tuple(sorted(narrowing))


def _intersect(a: list[AuthzSource], b: list[AuthzSource], narrowing: set[str]
               ) -> list[AuthzSource]:
    # Two identity requirements that must both hold: only a wildcard on one side folds away.
    if a == [AuthzSource(principals=("*",))]:
        return b
    if b == [AuthzSource(principals=("*",))]:
        return a
    narrowing.add("authz.identity_pattern")
    return a


def _emit(graph: MeshGraph, names: Names, ref: ObjectRef, base: str, server: _Server,
          rule: AuthzRule | None, path: str = "spec") -> None:
    """One ALLOW policy per selector alternative of a Server (``rule`` None: allow nothing).

    The Server and the inbound routes that narrow it are folded into the record: they are
    credited with what is written from it.
    """
    ns = server.facts.ref.namespace
    graph.contribute(ref, server.facts.ref, *(r.ref for r in server.routes))
    many = len(server.selectors) > 1
    for k, selector in enumerate(server.selectors):
        name = names.claim("AuthzPolicy", ns, f"{base}-{k + 1}" if many else base)
        graph.add(AuthzPolicy(ns, name, selector, "ALLOW", (rule,) if rule else (), False,
                              Origin(ref, path)))
    note_use(graph, "authz.allow", ref, path)


def _authorizations(reader: LinkerdReader, graph: MeshGraph, names: Names,
                    servers: dict[tuple[str, str], _Server]) -> set[tuple[str, str]]:
    """AuthorizationPolicies and ServerAuthorizations; returns the Servers they grant on."""
    granted: set[tuple[str, str]] = set()
    state = reader.state
    for p in sorted(state.policies, key=lambda p: (p.ref.namespace, p.ref.name)):
        ns = p.ref.namespace
        # What the policy names is read with it, whatever becomes of it (written or lost).
        named = (state.inbound.get((ns, p.target_kind, p.target_name)),
                 state.servers.get((ns, p.target_name)) if p.target_kind == "Server" else None)
        graph.contribute(p.ref, *_authn_refs(reader, p), *(x.ref for x in named if x))
        targets: list[tuple[_Server, tuple[AuthzOperation, ...], tuple[str, ...]]] = []
        if p.target_kind == "Server":
            server = servers.get((ns, p.target_name))
            targets = [(server, *server.operations())] if server else []
            missing = (ns, p.target_name) not in state.servers
        elif p.target_kind == "Namespace":
            in_ns = [s for (sns, _), s in sorted(servers.items()) if sns == ns]
            targets = [(s, *s.operations()) for s in in_ns] if p.target_name == ns else []
            missing = p.target_name != ns
        elif p.target_kind in ("HTTPRoute", "GRPCRoute"):
            route = state.inbound.get((ns, p.target_kind, p.target_name))
            missing = route is None
            if route is not None and not any((ns, n) in state.servers for n in route.servers):
                reader.losses.report(
                    "LINKERD_REF_UNRESOLVED", Severity.MANUAL, "input", p.ref, "spec.targetRef",
                    f"AuthorizationPolicy {ns}/{p.ref.name} targets {p.target_kind} "
                    f"{p.target_name}, whose parent Servers ({', '.join(route.servers)}) are "
                    "not in the input; Linkerd applies it to no pod, and it is not converted",
                    "Fix the route's parentRefs (or add the Server) and re-run.")
                continue
            for sname in route.servers if route else ():
                server = servers.get((ns, sname))
                if server is None:
                    continue
                ops = tuple(replace(op, ports=server.ports) for op in route.operations)
                targets.append((server, ops, () if ops else route.narrowing))
        else:
            missing = True
        if missing:
            reader.losses.report(
                "LINKERD_REF_UNRESOLVED", Severity.MANUAL, "input", p.ref, "spec.targetRef",
                f"AuthorizationPolicy {ns}/{p.ref.name} targets {p.target_kind} "
                f"{p.target_name}, which is not in the input (or is no inbound route); "
                "not converted", "Add the target to the input and re-run, or convert by hand.")
            continue
        if p.target_kind == "Server" and (ns, p.target_name) not in servers:
            _admin_only(reader, p.ref, "spec.targetRef",
                        [state.servers[(ns, p.target_name)]])
            continue
        found = _identity_sources(reader, p.ref, p.authn)
        if found is None:
            continue
        sources, narrowing = found
        for server, ops, extra in targets:
            if not server.usable:
                _not_usable(graph, p.ref, "spec.targetRef", server)
                continue
            granted.add((ns, server.facts.ref.name))
            if not any(s.principals or s.namespaces or s.service_accounts for s in sources):
                state.unauthenticated.add((ns, server.facts.ref.name))
            base = p.ref.name if len(targets) == 1 else f"{p.ref.name}-{server.facts.ref.name}"
            rule = AuthzRule(sources, ops, "spec", tuple(sorted(set(narrowing) | set(extra))))
            _emit(graph, names, p.ref, base, server, rule)
    for sa in sorted(state.server_authz, key=lambda s: (s.ref.namespace, s.ref.name)):
        ns = sa.ref.namespace
        chosen = [s for (sns, sname), s in sorted(servers.items()) if sns == ns and (
            sname == sa.server_name if sa.server_selector is None
            else selector_matches(sa.server_selector, s.facts.labels))]
        graph.contribute(sa.ref, *(s.facts.ref for s in chosen))
        if not chosen and not any(sns == ns and (sname == sa.server_name or sa.server_selector
                                                 is not None) for sns, sname in state.servers):
            reader.losses.report(
                "LINKERD_REF_UNRESOLVED", Severity.MANUAL, "input", sa.ref, "spec.server",
                f"ServerAuthorization {ns}/{sa.ref.name} names no Server in the input; "
                "not converted", "Add the Server to the input and re-run.")
            continue
        if not chosen:
            _admin_only(reader, sa.ref, "spec.server", [
                s for (sns, sname), s in sorted(state.servers.items()) if sns == ns and (
                    sname == sa.server_name if sa.server_selector is None
                    else selector_matches(sa.server_selector, s.labels))])
            continue
        for server in chosen:
            if not server.usable:
                _not_usable(graph, sa.ref, "spec.server", server)
                continue
            granted.add((ns, server.facts.ref.name))
            if not any(s.principals or s.namespaces or s.service_accounts for s in sa.sources):
                state.unauthenticated.add((ns, server.facts.ref.name))
            ops, extra = server.operations()
            base = sa.ref.name if len(chosen) == 1 else f"{sa.ref.name}-{server.facts.ref.name}"
            rule = AuthzRule(sa.sources, ops, "spec.client",
                             tuple(sorted(set(sa.narrowing) | set(extra))))
            _emit(graph, names, sa.ref, base, server, rule)
    return granted


def _authn_refs(reader: LinkerdReader, policy: PolicyFacts) -> tuple[ObjectRef, ...]:
    """The MeshTLS- and NetworkAuthentications a policy requires (as read)."""
    found = (reader.state.authn.get((kind, ns, name)) for kind, ns, name, _ in policy.authn)
    return tuple(facts.ref for facts in found if facts is not None)


def _orphan_routes(reader: LinkerdReader) -> None:
    """Inbound routes none of whose parent Servers is in the input: they govern no pod."""
    for (ns, _, _), route in sorted(reader.state.inbound.items()):
        if route.servers and not any((ns, n) in reader.state.servers for n in route.servers):
            reader.losses.report(
                "LINKERD_REF_UNRESOLVED", Severity.MANUAL, "input", route.ref, "spec.parentRefs",
                f"{route.ref.kind} {ns}/{route.ref.name} is attached to Servers "
                f"({', '.join(route.servers)}) that are not in the input; it narrows no "
                "authorization and is not converted",
                "Fix the parentRefs (or add the Server) and re-run.")


def _not_usable(graph: MeshGraph, ref: ObjectRef, path: str, server: _Server) -> None:
    """An authorization of a Server the input does not resolve: said on the authorization
    too, since it is not converted either (the Server carries the reason)."""
    note_use(graph, "authz.unresolved", ref, path,
             f"authorizes Server {server.facts.ref.name}, whose pods or port the input does "
             "not show; not converted")


def _admin_only(reader: LinkerdReader, ref: ObjectRef, path: str,
                named: list[ServerFacts]) -> None:
    """An authorization whose Servers all govern the proxy's own ports (not carried over)."""
    if not named or any(s.port not in _ADMIN_PORTS or s.external for s in named):
        return  # external Servers are reported as workload.vm on the Server
    reader.losses.report(
        "AUTHZ_PROXY_ADMIN", Severity.INFO, "input", ref, path,
        f"{ref.kind} {ref.namespace}/{ref.name} only authorizes the Linkerd proxy's own port "
        f"(Server {', '.join(sorted(s.ref.name for s in named))}), which no other mesh has; "
        "not carried over",
        "Protect the target proxy's admin and metrics ports as its documentation says.")


def policy_sources(reader: LinkerdReader, policy: str) -> tuple[AuthzSource, ...]:
    """Who a default or access policy admits (any client is the empty tuple)."""
    nets = reader.cluster_networks if policy.startswith("cluster-") else ()
    principals = ("*",) if policy in _STRICT else ()
    if not nets and not principals:
        return ()
    return (AuthzSource(principals=principals, ip_blocks=nets),)


def effective_policy(reader: LinkerdReader, w: WorkloadFacts) -> str:
    """A pod's default inbound policy: its annotation, else its namespace's, else the install's."""
    ns = reader.state.namespaces.get(w.ref.namespace)
    return w.default_policy or (ns.default_policy if ns else "") or reader.cluster_default_policy


def _plaintext_ports(reader: LinkerdReader, graph: MeshGraph, names: Names, server: _Server,
                     sources: tuple[AuthzSource, ...]) -> None:
    """Keep a Server port PERMISSIVE when it admits clients without identity but the pods'
    default policy (an mTLS STRICT record) would refuse their plaintext."""
    if any(s.principals or s.namespaces or s.service_accounts for s in sources) or not any(
            effective_policy(reader, w) in _STRICT for w in server.workloads):
        return
    ref = server.facts.ref
    for selector in server.selectors:
        name = names.claim("MTLSPolicy", ref.namespace, f"{ref.name}-plaintext")
        graph.add(MTLSPolicy(ref.namespace, name, selector, "UNSET",
                             tuple((p, "PERMISSIVE") for p in server.ports), False,
                             Origin(ref, "spec.port")))
    note_use(graph, "mtls.port_level", ref, "spec.port", "PERMISSIVE")


def _server_access(reader: LinkerdReader, graph: MeshGraph, names: Names,
                   servers: dict[tuple[str, str], _Server], granted: set[tuple[str, str]]
                   ) -> None:
    for key, server in sorted(servers.items()):
        if not server.usable:
            continue
        if key in reader.state.unauthenticated or server.facts.access_policy not in (
                *_STRICT, "deny"):
            _plaintext_ports(reader, graph, names, server, ())
        access = server.facts.access_policy
        ref = server.facts.ref
        if access == "deny":
            if key not in granted:
                _emit(graph, names, ref, key[1], server, None, "spec.accessPolicy")
            continue
        ops, extra = server.operations()
        rule = AuthzRule(policy_sources(reader, access), ops, "spec.accessPolicy", extra)
        _emit(graph, names, ref, key[1], server, rule, "spec.accessPolicy")


# -- default inbound policy --------------------------------------------------------------
def _mode(policy: str) -> str:
    return "STRICT" if policy in _STRICT else "PERMISSIVE"


def _default_policies(reader: LinkerdReader, graph: MeshGraph, names: Names,
                      servers: dict[tuple[str, str], _Server]) -> None:
    state = reader.state
    cluster = reader.cluster_default_policy
    if cluster != "all-unauthenticated":
        # Istio's own default (PERMISSIVE, no ALLOW policy) already is all-unauthenticated.
        ref = ObjectRef("ConfigMap", reader.control_plane_namespace, "linkerd-config", "v1")
        path = "data.values.proxy.defaultInboundPolicy"
        graph.add(MTLSPolicy(reader.control_plane_namespace, "linkerd-default-inbound-policy",
                             None, _mode(cluster), (), True, Origin(ref, path)))
        note_use(graph, "mtls.mesh_wide", ref, path, cluster)
        if cluster == "audit":
            note_use(graph, "authz.dry_run", ref, path, "audit")
    for ns in sorted(state.namespaces):
        facts = state.namespaces[ns]
        if facts.default_policy or facts.require_identity:
            path = ann_path("metadata", DEFAULT_POLICY if facts.default_policy
                            else REQUIRE_IDENTITY)
            _mtls(graph, names, facts.ref, ns, None, facts.default_policy,
                  facts.require_identity, path)
        if (facts.default_policy or cluster) == "deny":
            # Namespace-wide, so pods the input does not show are closed as well.
            where = ann_path("metadata", DEFAULT_POLICY) if facts.default_policy else "metadata"
            graph.add(AuthzPolicy(ns, names.claim("AuthzPolicy", ns, "linkerd-default-deny"),
                                  None, "ALLOW", (), False, Origin(facts.ref, where)))
            note_use(graph, "authz.allow", facts.ref, where)
    for w in sorted(state.workloads, key=lambda w: (w.ref.namespace, w.ref.kind, w.ref.name)):
        _workload_default(reader, graph, names, servers, w)


def _mtls(graph: MeshGraph, names: Names, ref: ObjectRef, ns: str, selector: Labels | None,
          policy: str, ports: tuple[int, ...], path: str) -> None:
    mode = _mode(policy) if policy else "UNSET"
    name = names.claim("MTLSPolicy", ns, "linkerd-default-inbound" if selector is None
                       else f"{ref.name}-default-inbound")
    graph.add(MTLSPolicy(ns, name, selector, mode, tuple((p, "STRICT") for p in ports), False,
                         Origin(ref, path)))
    if mode == "STRICT":
        note_use(graph, "mtls.strict", ref, path, policy)
    if ports:
        note_use(graph, "mtls.port_level", ref, path, ",".join(str(p) for p in ports))
    if policy == "audit":
        note_use(graph, "authz.dry_run", ref, path, "audit")


def _workload_default(reader: LinkerdReader, graph: MeshGraph, names: Names,
                      servers: dict[tuple[str, str], _Server], w: WorkloadFacts) -> None:
    ns = w.ref.namespace
    selector = labels(w.pod_labels) or None
    if w.default_policy or w.require_identity:
        path = ann_path(w.meta_path, DEFAULT_POLICY if w.default_policy else REQUIRE_IDENTITY)
        if selector is None:
            _unlabelled(graph, w)
            return
        _mtls(graph, names, w.ref, ns, selector, w.default_policy, w.require_identity, path)
    ns_facts = reader.state.namespaces.get(ns)
    policy = effective_policy(reader, w)
    mine = [s for (sns, _), s in sorted(servers.items())
            if sns == ns and s.usable and w in s.workloads]
    served = {p for s in mine for p in s.ports}
    known = set(w.numbers)
    for svc in reader.state.services.values():
        if svc.ref.namespace == ns and svc.selector and all(
                w.pod_labels.get(k) == v for k, v in svc.selector.items()):
            for port, target in svc.ports:
                if isinstance(target, int):
                    known.add(target)
                elif isinstance(target, str) and target in w.ports:
                    known.add(w.ports[target])
                elif target is None:
                    known.add(port)
    other = tuple(sorted(known - served))
    path = ann_path(w.meta_path, DEFAULT_POLICY) if w.default_policy else w.meta_path
    base = f"{w.ref.name}-default-inbound"
    if policy == "deny":
        if w.default_policy or ns_facts is None:  # else the namespace-wide record covers it
            if selector is None:
                _unlabelled(graph, w)
                return
            graph.add(AuthzPolicy(ns, names.claim("AuthzPolicy", ns, base), selector, "ALLOW",
                                  (), False, Origin(w.ref, path)))
            note_use(graph, "authz.allow", w.ref, path)
        return
    if mine and not other:
        return  # every known port has a Server; their policies say it all
    if not mine and not policy.startswith("cluster-"):
        return  # no ALLOW policy selects these pods: the target's default admits the same
    if selector is None:
        _unlabelled(graph, w)
        return
    ops = (AuthzOperation(ports=other, origin_path=w.meta_path),) if mine else ()
    rule = AuthzRule(policy_sources(reader, policy), ops, path)
    graph.add(AuthzPolicy(ns, names.claim("AuthzPolicy", ns, base), selector, "ALLOW", (rule,),
                          False, Origin(w.ref, path)))
    note_use(graph, "authz.allow", w.ref, path)


def _unlabelled(graph: MeshGraph, w: WorkloadFacts) -> None:
    # A selector-less record would cover the whole namespace; say so instead.
    note_use(graph, "authz.unresolved", w.ref, w.meta_path,
         "pods without labels: their default inbound policy cannot be targeted")
