"""IR mTLS and authorization -> Linkerd Servers, AuthorizationPolicies, MeshTLS- and
NetworkAuthentications, inbound HTTPRoutes and probe routes.

Mapping (../shared/reference/mapping-istio-linkerd.md section 2.5, section 3 for identities):
- Every (workload, port) that an ALLOW policy or a STRICT mode covers gets exactly one Server
  (Servers may not overlap). Its final ``accessPolicy`` is ``deny`` under ALLOW policies
  (Istio refuses what no ALLOW rule matches), ``all-authenticated`` under STRICT, else
  ``all-unauthenticated``. Staged (``_staged_access``), it admits no more than the source
  did except the identity check of the plaintext, identity-less calls from Istio callers:
  ``deny`` with each grant's plaintext twin (``_grant``), ``cluster-unauthenticated`` under
  STRICT. Its podSelector is the policies' joint selector (``_server_selector``), and the
  namespace's ``default-inbound-policy`` carries namespace- and mesh-wide policies to the
  pods and ports no Server covers (``namespace_default``; docs/coexistence.md, "The rule").
- A rule with only sources authorizes the whole Server; a rule with paths or methods gets an
  inbound HTTPRoute with those matches and an authorization on that route. Linkerd checks
  only the one route it picks for a request, so overlapping rules get routes for their
  intersections and every route authorizes each rule covering it (inbound_overlap.py); a rule
  whose paths include ``*`` and that names no method covers every request and so authorizes
  the whole Server. Once a Server has
  routes, requests matching none get 404 and kubelet probes are no longer authorized by
  Linkerd itself (linkerd website 2-edge/features/server-policy.md, "Default authorizations";
  policy-controller inbound/index.rs), so a probe route is added, and during staging a
  catch-all route keeps unmatched requests flowing.
- Sources: alternatives (OR) become separate AuthorizationPolicies; inside one source,
  identities (principals, service accounts, namespaces) become one MeshTLSAuthentication and
  ipBlocks one NetworkAuthentication, both required (AND).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, Callable, Iterator

from migrate import facts
from migrate.dialects.base import Manifest, TargetConfig
from migrate.dialects.linkerd.inbound_overlap import Atom, RoutePlan, atoms_of, plan_routes
from migrate.dialects.scope import report_unselected
from migrate.ir.graph import MeshGraph, selects
from migrate.ir.model import AuthzPolicy, AuthzSource, Labels, MTLSPolicy, Workload
from migrate.losses import LossLog, ObjectRef, Severity
from migrate.names import MAX_LABEL, NameRegistry, k8s_name

POLICY_API = "policy.linkerd.io/v1alpha1"
SERVER_API = "policy.linkerd.io/v1beta3"
ROUTE_API = "policy.linkerd.io/v1beta3"
# Fixed at proxy initialization: the annotation on the namespace or workload at pod creation
# overrides the install's proxy.defaultInboundPolicy, so the move and enforce steps restart
# the workloads. Kubelet probes stay authorized under it on ports without a Server or whose
# Server has no routes (linkerd/website linkerd.io/content/2.19/features/server-policy.md,
# "Default policies" and "Default authorizations").
DEFAULT_POLICY = "config.linkerd.io/default-inbound-policy"
_PROTOCOL = {"grpc": "gRPC", "http2": "HTTP/2", "http": "HTTP/1", "tcp": "opaque", "tls": "TLS"}
# policy.linkerd.io/v1beta3 HTTPRoute: spec.rules maxItems 16, rules[].matches maxItems 8
# (linkerd2 charts/linkerd-crds/templates/policy/httproute.yaml).
MAX_RULES, MAX_MATCHES = 16, 8
# Every catch-all route's one match; shared, as nothing changes a manifest once written.
_CATCH_ALL = [{"path": {"type": "PathPrefix", "value": "/"}}]


def _sorted_json_encoder() -> Callable[[Any], str]:
    """``json.dumps(value, sort_keys=True)`` without building an encoder per call (hundreds
    of thousands of calls name the policies and routes of a large mesh).

    Where the json module has its C encoder, that one is made once with the same settings:
    ``JSONEncoder.encode`` makes a new one at each call, a third of the call's time. No
    circular-reference markers: the values are small trees built here.
    """
    if c_make_encoder is None:
        return json.JSONEncoder(sort_keys=True).encode
    encode = c_make_encoder(None, json.JSONEncoder().default, encode_basestring_ascii, None,
                            ": ", ", ", True, False, True)
    return lambda value: "".join(encode(value, 0))


_canonical = _sorted_json_encoder()


@dataclass
class PolicyContext:
    """State shared while converting one graph's policies."""

    graph: MeshGraph
    losses: LossLog
    names: NameRegistry
    out: TargetConfig
    trust_domain: str = "cluster.local"
    control_plane_namespace: str = "linkerd"
    _authns: dict[tuple[str, str], str] = field(default_factory=dict)
    _policies: set[tuple[str, str]] = field(default_factory=set)
    _probe_matches: dict[str, dict[str, Any]] = field(default_factory=dict)
    _source_refs: dict[tuple[int, int, int, str], list[dict[str, str]] | None] = field(
        default_factory=dict)
    """(policy, rule, source, Server namespace) -> its requiredAuthenticationRefs: a policy
    selecting several workloads grants the same on each of their Servers (a mesh-wide one
    in each namespace, where its authentications are written). The policy is keyed by
    ``id``: the graph holds every policy while the writer runs, and one source object may
    give several (Consul intentions)."""
    _route_plans: dict[tuple[tuple[Atom, ...], ...], RoutePlan] = field(default_factory=dict)
    """Grants' atoms -> their inbound routes: Servers under the same rules share a plan."""
    _grantees: dict[tuple[str, str], frozenset[str] | None] = field(default_factory=dict)
    """(namespace, MeshTLSAuthentication name) -> the namespaces of the identities it names
    (None: an identity of any namespace, or one this cluster cannot place)."""


@dataclass
class _Server:
    name: str
    namespace: str
    port: int
    port_name: str
    selector: dict[str, str]
    final: str
    protocol: str
    workload: Workload
    strict: bool = False
    """STRICT mTLS on the port: the source refused plaintext whatever the ALLOW rules say."""
    sources: set[ObjectRef] = field(default_factory=set)
    others: list[Workload] = field(default_factory=list)
    """Further workloads of the input the Server's selector covers (the same policies)."""
    server_level_authz: bool = False
    routes: dict[str, str] = field(default_factory=dict)
    """match-set JSON -> route name."""
    grants: list[_Grant] = field(default_factory=list)
    """Path or method grants, turned into routes once every policy is read."""

    @property
    def parent_refs(self) -> list[dict[str, str]]:
        """``parentRefs`` of the Server's inbound routes: one list, shared by all of them."""
        if self._parent_refs is None:
            self._parent_refs = [{"group": "policy.linkerd.io", "kind": "Server",
                                  "name": self.name}]
        return self._parent_refs

    _parent_refs: list[dict[str, str]] | None = field(default=None, init=False, repr=False)


@dataclass
class _Grant:
    """One source alternative of one rule that authorizes only some requests."""

    policy: str
    ref: ObjectRef
    rule: int
    source: int
    refs: list[dict[str, str]]
    atoms: list[Atom]
    path: str
    """The rule's place in its source object."""


def write_policy(ctx: PolicyContext, namespaces: list[str], root_namespace: str) -> None:
    """Convert mTLS and authorization for each namespace being migrated."""
    mtls = ctx.graph.of(MTLSPolicy)
    mesh_mode = next((p.mode for p in mtls if p.mesh_wide and p.mode != "UNSET"), "PERMISSIVE")
    # Root-namespace ALLOW policies apply in every namespace (Istio's mesh-wide scope); Linkerd
    # has no mesh-wide object, so each migrated namespace gets their Servers and grants.
    mesh_allows = [p for p in ctx.graph.of(AuthzPolicy) if p.mesh_wide and p.action == "ALLOW"]
    moved = [ns for ns in namespaces if ns != root_namespace]
    report_unselected(ctx.graph, ctx.losses, moved, "Linkerd")
    for ns in moved:
        _namespace(ctx, ns, mesh_mode, ctx.graph.in_namespace(MTLSPolicy, ns), mesh_allows)


def _mode(policy: MTLSPolicy | None, fallback: str) -> str:
    if policy is None or policy.mode == "UNSET":
        return fallback
    return "PERMISSIVE" if policy.mode == "DISABLE" else policy.mode


def _namespace(ctx: PolicyContext, ns: str, mesh_mode: str, mtls: list[MTLSPolicy],
               mesh_allows: list[AuthzPolicy]) -> None:
    ns_policy = next((p for p in mtls if p.selector is None), None)
    ns_mode = _mode(ns_policy, mesh_mode)
    allows = [p for p in ctx.graph.in_namespace(AuthzPolicy, ns)
              if p.action == "ALLOW" and not p.mesh_wide] + mesh_allows
    default = namespace_default(ctx, ns, ns_mode, [p for p in allows if p.selector is None])
    if default is not None:
        staged, final = default
        if ctx.out.staging_mode == "audit":
            staged = "audit"  # fact: linkerd.audit-policy
        ctx.out.namespace_staged.setdefault(ns, {})[DEFAULT_POLICY] = staged
        ctx.out.namespace_sources[(ns, DEFAULT_POLICY)] = _default_sources(
            [p for p in allows if p.selector is None], ns_policy, _mesh_mtls(ctx, mesh_mode))
        if final != staged:  # the enforce step restarts the pods to apply it
            ctx.out.namespace_final.setdefault(ns, {})[DEFAULT_POLICY] = final
    wanted: list[tuple[Workload, str, int, str, list[AuthzPolicy], MTLSPolicy | None,
                       bool]] = []
    meaning: dict[tuple[int, int], tuple[Any, ...]] = {}
    workloads = ctx.graph.workloads_selected(ns, None)
    for w in workloads:
        w_policy = next((p for p in mtls if p.selector and selects(p.selector, w.pod_labels)), None)
        mode = _mode(w_policy, ns_mode)
        port_modes = dict(w_policy.port_modes) if w_policy else {}
        applying = [p for p in allows if selects(p.selector, w.pod_labels)]
        if not applying and mode != "STRICT" and "STRICT" not in port_modes.values():
            continue
        ports = _ports(ctx, w)
        if not ports:
            ctx.losses.report(
                "AUTHZ_NO_PORT", Severity.MANUAL, "authz.allow", w.ref, w.origin.path,
                f"{w.kind} {w.namespace}/{w.name} declares no container port and no Service "
                "selects it; no Server could be written, so its policy is not converted",
                "Declare containerPorts on the pod template and re-run.")
            continue
        _workload_default(ctx, w, applying)
        for port_name, port in ports:
            pmode = port_modes.get(port, "UNSET")
            pmode = mode if pmode == "UNSET" else ("PERMISSIVE" if pmode == "DISABLE" else pmode)
            final = "deny" if applying else (
                "all-authenticated" if pmode == "STRICT" else "all-unauthenticated")
            meaning[(id(w), port)] = (tuple(id(p) for p in applying), final,
                                      id(w_policy) if w_policy else None, pmode == "STRICT")
            wanted.append((w, port_name, port, final, applying, w_policy, pmode == "STRICT"))
    servers: dict[tuple[tuple[tuple[str, str], ...], int], _Server] = {}
    for w, port_name, port, final, applying, w_policy, strict in wanted:
        selector = _server_selector(w, port, applying, w_policy, workloads, meaning)
        key = (selector, port)
        if key in servers:
            servers[key].others.append(w)
            servers[key].sources.add(w.ref)
            continue
        name = ctx.names.claim("Server", ns, k8s_name(w.name, port_name or port),
                               f"{w.ref}/{port}")
        srv = _Server(name, ns, port, port_name, dict(selector), final,
                      _protocol(ctx, w, port, port_name), w, strict=strict)
        srv.sources.update(p.origin.ref for p in applying)
        if w_policy:
            srv.sources.add(w_policy.origin.ref)
        elif ns_policy and final != "deny":
            srv.sources.add(ns_policy.origin.ref)
        servers[key] = srv
        for policy in applying:
            _authorize(ctx, srv, policy)
        _inbound_routes(ctx, srv)
    _check_overlap(ctx, list(servers.values()))
    for srv in sorted(servers.values(), key=lambda s: s.name):
        _emit_server(ctx, srv)


def _workload_default(ctx: PolicyContext, w: Workload, applying: list[AuthzPolicy]) -> None:
    """``default-inbound-policy: deny`` on the pods of a workload an ALLOW policy selects.

    Istio refuses, on every port of such a pod, what no ALLOW rule matches ("If there are no
    ALLOW policies for the workload, allow the request. If any of the ALLOW policies match the
    request, allow the request. Deny the request.": istio.io/latest/docs/reference/config/
    security/authorization-policy/); Linkerd decides a
    port no Server covers (one no container or Service declares) by the pod's default policy,
    the pod annotation before the namespace's and the install's
    (linkerd.io/2-edge/reference/authorization-policy/, "Default policies";
    policy-controller k8s/index/src/inbound/index.rs, ``default_policy``). Without it such a
    port would fall to the namespace default, usually ``all-unauthenticated``. ``deny`` fails
    closed: a rule admitting some callers on any port is refused there too, which is
    reported. Kubelet probes stay authorized under ``deny`` on ports without a Server
    (linkerd.io/2-edge/features/server-policy/, "Default authorizations"). Namespace-wide
    policies are the namespace default's business (``namespace_default``); ``--staging
    audit`` leaves pods to the namespace default, which the operator asked to be audit.
    """
    # fact: linkerd.default-policy-precedence
    selected = [p for p in applying if p.selector is not None]
    if not selected or ctx.out.staging_mode == "audit" or w.kind == "Pod":
        return
    ctx.out.workload_staged.setdefault(w.namespace, {})[f"{w.kind}/{w.name}"] = {
        DEFAULT_POLICY: "deny"}
    opening = next((p for p in selected for r in p.rules if not r.inexpressible and (
        not r.operations or any(not op.ports for op in r.operations))), None)
    if opening is not None:
        ctx.losses.report(
            "AUTHZ_WORKLOAD_DEFAULT", Severity.INFO, "authz.allow", w.ref, w.origin.path,
            f"{w.kind} {w.namespace}/{w.name} gets {DEFAULT_POLICY}=deny on its pod template: "
            f"ports its containers and Services do not declare get no Server, and refuse the "
            f"callers {p_name(opening)} admits on any port",
            "Declare every port the pods serve (containerPorts or a Service) and re-run.")


def p_name(p: AuthzPolicy) -> str:
    """``Kind ns/name`` of a policy's source object."""
    return f"{p.origin.ref.kind} {p.origin.ref.namespace}/{p.origin.ref.name}"


def _server_selector(w: Workload, port: int, applying: list[AuthzPolicy],
                     w_policy: MTLSPolicy | None, workloads: list[Workload],
                     meaning: dict[tuple[int, int], tuple[Any, ...]]) -> Labels:
    """The Server's podSelector: the labels the policies themselves select on.

    A Server copying its workload's full label set (``app: api, version: v1``) would miss a
    canary or the next version (``version: v2``), which the source's policy (``app: api``)
    still covers; those pods would fall to the namespace default. Every pod the policies'
    joint selector picks is covered by all of them, so it gets the same meaning. When that
    selector also picks a workload of the input whose policies or mTLS mode on this port
    differ, one Server cannot serve both (Servers may not overlap), and the workload's own
    labels are used, as before.
    """
    pairs: dict[str, str] = {}
    for labels_ in [p.selector for p in applying] + [w_policy.selector if w_policy else None]:
        pairs.update(dict(labels_ or ()))
    joint = tuple(sorted(pairs.items()))
    mine = meaning[(id(w), port)]
    for other in workloads:
        if other is w or not selects(joint, other.pod_labels):
            continue
        if meaning.get((id(other), port), None) != mine:
            return w.pod_labels
    return joint


def _mesh_mtls(ctx: PolicyContext, mode: str) -> list[MTLSPolicy]:
    """The mesh-wide mTLS policies that set ``mode`` (what a namespace inherits)."""
    return [p for p in ctx.graph.of(MTLSPolicy) if p.mesh_wide and p.mode == mode]


def _default_sources(ns_wide: list[AuthzPolicy], ns_policy: MTLSPolicy | None,
                     mesh: list[MTLSPolicy]) -> tuple[ObjectRef, ...]:
    """The source objects :func:`namespace_default` decided from: the namespace-wide ALLOW
    policies when there are any (with the namespace's own mTLS policy: their ``deny`` also
    refuses the plaintext a STRICT one refused), else the mTLS policy that made the namespace
    STRICT (its own, or the mesh-wide one it inherits)."""
    if ns_wide:
        own = {ns_policy.origin.ref} if ns_policy is not None and ns_policy.mode == "STRICT" \
            else set()
        return tuple(sorted({p.origin.ref for p in ns_wide} | own))
    if ns_policy is not None and ns_policy.mode not in ("UNSET",):
        return (ns_policy.origin.ref,)
    return tuple(sorted({p.origin.ref for p in mesh}))


def namespace_default(ctx: PolicyContext, ns: str, ns_mode: str,
                      ns_wide: list[AuthzPolicy]) -> tuple[str, str] | None:
    """The namespace's ``default-inbound-policy`` (staged at the move, final at enforce).

    It decides every pod and port of the namespace that no Server covers: pods the input
    does not show (a canary, a later Deployment) and ports no Service or container declares.
    - A namespace-wide ALLOW policy (Istio: no selector, here or in the root namespace; a
      Linkerd namespace ``deny`` default) refuses what none of its rules match, on every
      pod: ``deny``, staged and final. Staged ``deny`` refuses no call the source admitted
      on those pods and ports, since the source refused them too; the pods the input shows
      get Servers with the policy's grants.
    - STRICT mTLS (namespace or mesh) refuses plaintext: ``all-authenticated`` once every
      caller is on Linkerd; while callers on the source mesh still arrive in plaintext,
      ``cluster-unauthenticated`` admits them from the cluster's pod networks only (the
      identity check on a plaintext hop is the one relaxation the plan allows, and reports).
    None: nothing to set (the install's ``all-unauthenticated`` admits what the source did).
    """
    if ns_wide:
        opening = next((p for p in ns_wide for r in p.rules
                        if not r.sources and not r.operations and not r.inexpressible), None)
        if opening is None:
            narrowed = [p for p in ns_wide if p.rules]
            for p in narrowed:
                ctx.losses.report(
                    "AUTHZ_NAMESPACE_DEFAULT", Severity.INFO, "authz.allow", p.origin.ref,
                    p.origin.path,
                    f"{p.origin.ref.kind} {p.origin.ref.namespace}/{p.origin.ref.name} covers "
                    f"every pod of namespace {ns}; the workloads of the input get Servers with "
                    "its rules, and every other pod and port falls to the namespace default "
                    f"{DEFAULT_POLICY}=deny, which refuses the callers its rules admit there",
                    "Declare every port the pods serve (containerPorts or a Service) so they "
                    "get Servers, and re-run; add a Server for pods the input does not show.")
            return "deny", "deny"
    if ns_mode == "STRICT":
        return "cluster-unauthenticated", "all-authenticated"
    return None


def _ports(ctx: PolicyContext, w: Workload) -> list[tuple[str, int]]:
    """Container ports, else the numeric target ports of the Services selecting the pods."""
    if w.ports:
        return list(w.ports)
    found = set()
    for svc in ctx.graph.services_of(w):
        for p in svc.ports:
            target = p.target_port if p.target_port is not None else p.port
            if isinstance(target, int):
                found.add((p.name, target))
    return sorted(found, key=lambda p: (p[1], p[0]))


def _protocol(ctx: PolicyContext, w: Workload, port: int, port_name: str) -> str:
    """The Server's ``proxyProtocol``: a protocol the source mesh declares for the whole
    Service (Consul ServiceDefaults ``protocol``; a ``tcp`` service must not become an HTTP/1
    Server, whose L7 policy would break it) wins over the port's name or appProtocol."""
    for svc in ctx.graph.services_of(w):
        for p in svc.ports:
            if p.target_port in (port, port_name) or (p.target_port is None and p.port == port):
                return _PROTOCOL.get(svc.mesh_protocol or p.l7, "")
    return ""


def _check_overlap(ctx: PolicyContext, servers: list[_Server]) -> None:
    """Report every pair of Servers on one port whose selectors pick the same pods."""
    for a, b in _overlapping(servers):
        ctx.losses.report(
            "AUTHZ_SERVER_OVERLAP", Severity.MANUAL, "authz.allow", a.workload.ref,
            a.workload.origin.path,
            f"Servers {a.name} and {b.name} select overlapping pods on port {a.port}",
            "Give the workloads distinguishing pod labels, then re-run.")


def _overlapping(servers: list[_Server]) -> Iterator[tuple[_Server, _Server]]:
    """(a, b) with ``a.name < b.name``, on one port, where either selector picks the other's
    pods; in the order of a loop over ``servers`` inside a loop over ``servers``.

    Comparing every pair was quadratic in a namespace's Servers. A Server's selector is a
    subset of its workload's pod labels, and it picks the pods of the Servers carrying each of
    its labels:
    those all carry its rarest label, so only they are compared. Overlap goes both ways, so
    each Server is then paired with those it picks and those that pick it.
    """
    carrying: dict[tuple[int, tuple[str, str]], list[int]] = {}
    on_port: dict[int, list[int]] = {}
    for i, srv in enumerate(servers):
        on_port.setdefault(srv.port, []).append(i)
        for pair in srv.workload.pod_labels:
            carrying.setdefault((srv.port, pair), []).append(i)
    related: list[set[int]] = [set() for _ in servers]
    for i, a in enumerate(servers):
        labels = tuple(sorted(a.selector.items()))
        # An empty selector picks every pod on the port.
        candidates = min((carrying[(a.port, pair)] for pair in labels), key=len) \
            if labels else on_port[a.port]
        for j in candidates:
            if j != i and selects(labels, servers[j].workload.pod_labels):
                related[i].add(j)
                related[j].add(i)
    for i, a in enumerate(servers):
        for j in sorted(related[i]):
            b = servers[j]
            if a.name < b.name and (
                    selects(tuple(a.selector.items()), b.workload.pod_labels)
                    or selects(tuple(b.selector.items()), a.workload.pod_labels)):
                yield a, b


def _staged_access(srv: _Server, audit: bool = False) -> str:
    """The Server's ``accessPolicy`` while callers on the source mesh arrive in plaintext.

    The staged form admits no more than the source did, except the identity check those
    plaintext calls cannot pass:
    - under STRICT only (final ``all-authenticated``): ``cluster-unauthenticated``, plaintext
      from the cluster's networks, rather than ``audit``, which admits anyone;
    - under ALLOW policies (final ``deny``): ``deny`` at once, with each grant's plaintext
      twin (``_grant``) admitting the identity-less calls on what the grant covers;
    - with ``--staging audit``, ``audit`` wherever the final form refuses anything: the
      operator asked for it, and the plan reports that it admits every request.
    """
    if audit and srv.final != "all-unauthenticated":
        # fact: linkerd.audit-policy
        return "audit"
    if srv.final == "all-authenticated":
        return "cluster-unauthenticated"
    return srv.final


def _emit_server(ctx: PolicyContext, srv: _Server) -> None:
    # fact: linkerd.audit-policy (audit admits everyone: not a staged form, see _staged_access)
    staged = _staged_access(srv, ctx.out.staging_mode == "audit")
    sources = tuple(sorted(srv.sources | {srv.workload.ref}))
    # The staged and the enforced Server differ only in accessPolicy, so they share the rest:
    # nothing changes a manifest body once it is written (annotated() copies what it
    # changes), and the policy writer's output was the largest part of a plan's memory.
    metadata = {"name": srv.name, "namespace": srv.namespace}
    selector = {"matchLabels": dict(sorted(srv.selector.items()))}
    for phase, access in (("staged", staged), ("enforced", srv.final)):
        spec: dict[str, Any] = {"podSelector": selector, "port": srv.port}
        if srv.protocol:
            spec["proxyProtocol"] = srv.protocol
        spec["accessPolicy"] = access
        body = {"apiVersion": SERVER_API, "kind": "Server", "metadata": metadata, "spec": spec}
        bucket = ctx.out.policy_staged if phase == "staged" else ctx.out.policy_enforced
        ctx.out.add(bucket, Manifest(body, sources))
    if not srv.routes:
        return
    _probe_route(ctx, srv, sources)
    if not srv.server_level_authz:
        return  # requests no route matches are refused (404), as no source rule admitted them
    # A Server-wide grant covers requests no route matches: they must not turn into 404s.
    name = ctx.names.claim("HTTPRoute", srv.namespace, k8s_name(srv.name, "all"),
                           f"catchall/{srv.namespace}/{srv.name}")
    ctx.out.add(ctx.out.policy_staged, Manifest(_inbound_route(name, srv, _CATCH_ALL), sources))


def _probe_route(ctx: PolicyContext, srv: _Server, sources: tuple[ObjectRef, ...]) -> None:
    probes = [p for w in (srv.workload, *srv.others) for p in w.probes
              if p.port in (srv.port, srv.port_name)]
    if not probes:
        return
    route = ctx.names.claim("HTTPRoute", srv.namespace, k8s_name(srv.name, "probes"),
                            f"probes/{srv.namespace}/{srv.name}")
    matches = [_probe_match(ctx, path) for path in sorted({p.path for p in probes})]
    ctx.out.add(ctx.out.policy_staged, Manifest(_inbound_route(route, srv, matches), sources))
    # fact: linkerd.probe-networks (the networks Linkerd's own default probe authorization
    # admits: the route keeps probes working exactly as a Server without routes would)
    networks = facts.value("linkerd.probe-networks", "networks")
    netauth = _authentication(ctx, srv.namespace, "NetworkAuthentication", "kubelet-probes",
                              {"networks": [{"cidr": c} for c in networks]}, sources)
    _authz_policy(ctx, srv.namespace, k8s_name(route), {"group": "policy.linkerd.io",
                                                        "kind": "HTTPRoute", "name": route},
                  [{"group": "policy.linkerd.io", "kind": "NetworkAuthentication",
                    "name": netauth}], sources)
    ctx.losses.report(
        "AUTHZ_PROBE_ROUTE", Severity.INFO, "authz.allow", srv.workload.ref,
        srv.workload.origin.path,
        f"Server {srv.name} has path or method rules, so its probe paths "
        f"({', '.join(m['path']['value'] for m in matches)}) got route {route} allowing GET "
        f"from Linkerd's default probe networks ({', '.join(networks)}, "
        "policyController.probeNetworks), as Linkerd authorizes probes on a Server without "
        "routes",
        "If the Linkerd install sets policyController.probeNetworks, give NetworkAuthentication "
        f"{srv.namespace}/{netauth} the same networks.")


def _probe_match(ctx: PolicyContext, path: str) -> dict[str, Any]:
    """``GET <path>``: one dict per probe path, shared by every probe route that has it
    (a mesh repeats a few probe paths on thousands of Servers)."""
    if path not in ctx._probe_matches:
        ctx._probe_matches[path] = {"path": {"type": "Exact", "value": path}, "method": "GET"}
    return ctx._probe_matches[path]


def _inbound_route(name: str, srv: _Server, matches: list[dict[str, Any]]) -> dict[str, Any]:
    # The CRD caps matches per rule; rules of one route share its authorizations and Linkerd
    # ranks a route by its best match over all rules, so splitting changes nothing.
    # (A list that fits in one rule is used as it is rather than copied.)
    rules = [{"matches": matches if len(matches) <= MAX_MATCHES else matches[k:k + MAX_MATCHES]}
             for k in range(0, len(matches), MAX_MATCHES)]
    return {"apiVersion": ROUTE_API, "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": srv.namespace},
            "spec": {"parentRefs": srv.parent_refs, "rules": rules}}


def _authorize(ctx: PolicyContext, srv: _Server, policy: AuthzPolicy) -> None:
    """Write what one ALLOW policy grants on one Server."""
    ref = policy.origin.ref
    for i, rule in enumerate(policy.rules):
        if rule.inexpressible:
            continue  # left out on purpose: fails closed (the capability check reported why)
        ops = [op for op in rule.operations if not op.ports or srv.port in op.ports]
        if rule.operations and not ops:
            continue
        atoms = [a for op in ops for a in atoms_of(list(op.paths), list(op.methods))]
        whole_server = not rule.operations or any(a.universal for a in atoms)
        sources = rule.sources or (AuthzSource(origin_path=rule.origin_path),)
        for j, src in enumerate(sources):
            key = (id(policy), i, j, srv.namespace)
            if key not in ctx._source_refs:
                ctx._source_refs[key] = _source_refs(ctx, policy, i, j, src, srv.namespace)
            refs = ctx._source_refs[key]
            if refs is None:
                continue
            if srv.strict and not any(r["kind"] == "MeshTLSAuthentication" for r in refs):
                # Under STRICT the source refused plaintext before any ALLOW rule was read
                # (istio/api security/v1beta1/peer_authentication.proto): a rule naming no
                # identity still needs one. MeshTLSAuthentication identity "*" is any
                # authenticated client (linkerd2 charts/linkerd-crds/templates/policy/
                # meshtls-authentication.yaml).
                refs = refs + [{"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication",
                                "name": _authentication(ctx, srv.namespace,
                                                        "MeshTLSAuthentication",
                                                        "all-authenticated",
                                                        {"identities": ["*"]}, (ref,))}]
                ctx._grantees[(srv.namespace, refs[-1]["name"])] = None
            if whole_server:
                srv.server_level_authz = True
                _grant(ctx, srv.namespace, k8s_name(policy.name, f"r{i}s{j}", srv.name),
                       {"group": "policy.linkerd.io", "kind": "Server", "name": srv.name},
                       refs, (ref,))
                continue
            srv.grants.append(_Grant(policy.name, ref, i, j, refs, atoms, rule.origin_path))


def _inbound_routes(ctx: PolicyContext, srv: _Server) -> None:
    """Write the Server's inbound routes and their AuthorizationPolicies.

    Overlapping rules are resolved so that the route Linkerd picks for a request
    authorizes every caller any matching rule allows (inbound_overlap.py explains how).
    """
    if not srv.grants:
        return
    shape = tuple(tuple(g.atoms) for g in srv.grants)
    if shape not in ctx._route_plans:
        ctx._route_plans[shape] = plan_routes([g.atoms for g in srv.grants])
    plan = ctx._route_plans[shape]
    parts: list[tuple[list[tuple[str, dict[str, Any]]], list[int]]] = []
    for atoms, covering in plan.routes:
        matches = sorted({_canonical(m): m
                          for a in atoms for m in a.matches()}.items())
        # A route holds at most MAX_RULES rules of MAX_MATCHES matches; the parts of a
        # longer one authorize the same grants, so which part wins does not matter.
        step = MAX_RULES * MAX_MATCHES
        parts += [(matches[k:k + step], covering) for k in range(0, len(matches), step)]
    width = len(str(len(parts)))
    names: list[str] = []
    for n, (matches, covering) in enumerate(parts, start=1):
        key = json.dumps([k for k, _ in matches])
        sources = tuple(sorted({srv.grants[g].ref for g in covering}))
        name = ctx.names.claim("HTTPRoute", srv.namespace,
                               _route_name(srv.name, f"r{n:0{width}d}"),
                               f"inbound/{srv.namespace}/{srv.name}/{key}")
        srv.routes[key] = name
        names.append(name)
        ctx.out.add(ctx.out.policy_staged,
                    Manifest(_inbound_route(name, srv, [m for _, m in matches]), sources))
        for g in covering:
            grant = srv.grants[g]
            _grant(ctx, srv.namespace,
                   k8s_name(grant.policy, f"r{grant.rule}s{grant.source}", name),
                   {"group": "policy.linkerd.io", "kind": "HTTPRoute", "name": name},
                   grant.refs, (grant.ref,))
    if plan.capped or names != sorted(names):
        refs = sorted({g.ref for g in srv.grants})
        first = min(srv.grants, key=lambda g: (g.ref, g.path))
        ctx.losses.report(
            "AUTHZ_ROUTE_OVERLAP", Severity.MANUAL, "authz.allow", first.ref, first.path,
            f"Server {srv.name}: the path and method rules of "
            f"{', '.join(f'{r.kind}/{r.namespace}/{r.name}' for r in refs)} overlap in too "
            "many ways to give each inbound route every caller the overlapping rules allow"
            if plan.capped else
            f"Server {srv.name}: route names {', '.join(names)} could not be kept in the "
            "order that makes Linkerd pick the most narrowly matching route on a tie",
            "Check which callers each route allows on requests several rules match, and "
            "simplify or rename the routes by hand.")


def _route_name(server: str, suffix: str) -> str:
    """``<server>-<suffix>``, cutting the Server name rather than hashing the whole, so the
    suffixes keep the routes in name order (Linkerd breaks ties by name)."""
    return k8s_name(server[:MAX_LABEL - len(suffix) - 1].rstrip("-"), suffix)


def _source_refs(ctx: PolicyContext, policy: AuthzPolicy, i: int, j: int,
                 src: AuthzSource, ns: str) -> list[dict[str, str]] | None:
    """requiredAuthenticationRefs for one source alternative (None: nothing expressible),
    with the authentications written in ``ns``, the Server's namespace."""
    ref = policy.origin.ref
    refs: list[dict[str, str]] = []
    identity_refs, identities = _identities(ctx, ref, src)
    if identity_refs is None:
        return None
    if identity_refs or identities:
        if identities and identity_refs:
            # MeshTLSAuthentication takes identities or identityRefs, not both.
            identities += [_identity_string(ctx, r) for r in identity_refs]
            identity_refs = []
        spec = ({"identities": sorted(set(identities))} if identities else
                {"identityRefs": identity_refs})
        name = _authentication(ctx, ns, "MeshTLSAuthentication",
                               k8s_name(policy.name, f"r{i}s{j}"), spec, (ref,))
        ctx._grantees[(ns, name)] = _namespaces_of(ctx, spec)
        refs.append({"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication",
                     "name": name})
    if src.ip_blocks:
        networks = [{"cidr": b if "/" in b else (f"{b}/128" if ":" in b else f"{b}/32")}
                    for b in src.ip_blocks]
        refs.append({"group": "policy.linkerd.io", "kind": "NetworkAuthentication",
                     "name": _authentication(ctx, ns, "NetworkAuthentication",
                                             k8s_name(policy.name, f"r{i}s{j}", "net"),
                                             {"networks": networks}, (ref,))})
    return refs


def _identities(ctx: PolicyContext, ref: ObjectRef,
                src: AuthzSource) -> tuple[list[dict[str, str]] | None, list[str]]:
    refs: dict[str, dict[str, str]] = {}
    strings: list[str] = []
    allowed_ns = set(src.namespaces)
    for k, principal in enumerate(src.principals):
        parts = principal.split("/")
        path = f"{src.origin_path}.principals[{k}]"
        if principal == "*":
            strings.append("*")
        elif len(parts) == 5 and parts[1] == "ns" and parts[3] == "sa":
            td, ns, sa = parts[0], parts[2], parts[4]
            if allowed_ns and ns not in allowed_ns:
                continue  # the source's namespaces field excludes it (fields are ANDed)
            if td not in (ctx.trust_domain, "*"):
                strings.append(f"{sa}.{ns}.serviceaccount.identity.{ctx.control_plane_namespace}"
                               f".{td}")
                ctx.losses.report(
                    "AUTHZ_PRINCIPAL", Severity.DEGRADED, "authz.allow", ref, path,
                    f"principal {principal} is from trust domain {td}; it becomes the Linkerd "
                    "identity of a linked cluster with that trust domain",
                    "Link that cluster with a shared trust anchor, or drop the principal.")
            elif sa == "*":
                refs[f"ns/{ns}"] = {"kind": "Namespace", "name": ns}
            else:
                refs[f"sa/{ns}/{sa}"] = {"kind": "ServiceAccount", "name": sa, "namespace": ns}
        elif len(parts) == 4 and parts[1] == "ns" and parts[3] == "*":
            refs[f"ns/{parts[2]}"] = {"kind": "Namespace", "name": parts[2]}
        else:
            ctx.losses.report(
                "AUTHZ_PRINCIPAL", Severity.MANUAL, "authz.allow", ref, path,
                f"principal {principal!r} has no Linkerd identity form; it was left out "
                "(those callers are refused)",
                "Name the service accounts or namespaces explicitly.")
    for sa in src.service_accounts:
        ns, _, name = sa.partition("/")
        if name:
            refs[f"sa/{ns}/{name}"] = {"kind": "ServiceAccount", "name": name, "namespace": ns}
        else:
            refs[f"sa/{ref.namespace}/{ns}"] = {"kind": "ServiceAccount", "name": ns,
                                                "namespace": ref.namespace}
    if not src.principals:
        for k, ns in enumerate(src.namespaces):
            if ns == "*":
                strings.append("*")
            elif "*" in ns:
                ctx.losses.report(
                    "AUTHZ_PRINCIPAL", Severity.MANUAL, "authz.allow", ref,
                    f"{src.origin_path}.namespaces[{k}]",
                    f"namespace pattern {ns!r} cannot be expressed; it was left out",
                    "List the namespaces explicitly.")
            else:
                refs[f"ns/{ns}"] = {"kind": "Namespace", "name": ns}
    wanted = bool(src.principals or src.service_accounts or src.namespaces)
    if wanted and not refs and not strings:
        return None, []
    return [refs[k] for k in sorted(refs)], strings


def _namespaces_of(ctx: PolicyContext, spec: dict[str, Any]) -> frozenset[str] | None:
    """The namespaces a MeshTLSAuthentication's identities run in; None when one identity
    could be in any namespace (``*``) or is not of this cluster's trust domain."""
    found = {r["namespace"] if r["kind"] == "ServiceAccount" else r["name"]
             for r in spec.get("identityRefs", [])}
    suffix = f".serviceaccount.identity.{ctx.control_plane_namespace}.{ctx.trust_domain}"
    for identity in spec.get("identities", []):
        # <sa>.<ns>.serviceaccount.identity.<control plane ns>.<trust domain>, sa may be "*"
        head = identity[:-len(suffix)] if identity.endswith(suffix) else ""
        parts = head.split(".")
        if len(parts) != 2 or "*" in parts[1]:
            return None
        found.add(parts[1])
    return frozenset(found)


def _identity_string(ctx: PolicyContext, ref: dict[str, str]) -> str:
    suffix = f"serviceaccount.identity.{ctx.control_plane_namespace}.{ctx.trust_domain}"
    if ref["kind"] == "Namespace":
        return f"*.{ref['name']}.{suffix}"
    return f"{ref['name']}.{ref['namespace']}.{suffix}"


def _authentication(ctx: PolicyContext, ns: str, kind: str, wanted: str, spec: dict[str, Any],
                    sources: tuple[ObjectRef, ...], staging_only: bool = False) -> str:
    """A MeshTLS/NetworkAuthentication, shared between policies with the same content (and
    the same lifetime: one only the staging window needs is deleted at enforce)."""
    key = (ns, ("staging:" if staging_only else "") + kind + _canonical(spec))
    if key not in ctx._authns:
        name = ctx.names.claim(kind, ns, wanted, key[1])
        ctx._authns[key] = name
        manifest = Manifest(
            {"apiVersion": POLICY_API, "kind": kind,
             "metadata": {"name": name, "namespace": ns}, "spec": spec}, sources)
        ctx.out.add(ctx.out.policy_staged, manifest)
        if staging_only:
            ctx.out.add(ctx.out.remove_at_enforce, manifest)
    return ctx._authns[key]


def _authz_policy(ctx: PolicyContext, ns: str, wanted: str, target: dict[str, str],
                  refs: list[dict[str, str]], sources: tuple[ObjectRef, ...],
                  staging_only: bool = False) -> str:
    name = ctx.names.claim("AuthorizationPolicy", ns, wanted,
                           _canonical([target, refs, staging_only]) if staging_only
                           else _canonical([target, refs]))
    if (ns, name) in ctx._policies:
        return name  # the same grant from another rule or source
    ctx._policies.add((ns, name))
    manifest = Manifest(
        {"apiVersion": POLICY_API, "kind": "AuthorizationPolicy",
         "metadata": {"name": name, "namespace": ns},
         "spec": {"targetRef": target, "requiredAuthenticationRefs": refs}}, sources)
    ctx.out.add(ctx.out.policy_staged, manifest)
    if staging_only:
        ctx.out.add(ctx.out.remove_at_enforce, manifest)
    return name


def _grant(ctx: PolicyContext, ns: str, wanted: str, target: dict[str, str],
           refs: list[dict[str, str]], sources: tuple[ObjectRef, ...]) -> None:
    """One grant, and while callers on the source mesh remain, its plaintext twin.

    Those callers reach the moved pods in plaintext with no identity, so a grant requiring a
    MeshTLSAuthentication would refuse them. The twin, applied with the move and deleted at
    enforce, grants the same target (Server or inbound route: the same ports, paths and
    methods) with the identity requirement dropped and any network requirement kept, or any
    cluster network when there was none. That is the one relaxation the plan allows on a plaintext
    hop: the identity check; ports, paths, methods and networks stay enforced (issue 15;
    docs/coexistence.md, "The rule"). A Linkerd NetworkAuthentication also admits meshed
    clients from those networks, whatever their identity.
    """
    _authz_policy(ctx, ns, wanted, target, refs, sources)
    if ctx.out.staging_mode == "audit":
        return  # the Server is staged in audit: it admits everyone, twins add nothing
    if not any(r["kind"] in ("MeshTLSAuthentication", "ServiceAccount") for r in refs):
        return  # it already admits plaintext
    grantees = _grant_namespaces(ctx, ns, refs)
    kept = [r for r in refs if r["kind"] == "NetworkAuthentication"]
    if not kept:
        # fact: linkerd.cluster-networks (plaintext callers are in-cluster pods: nothing from
        # outside the cluster's networks needs the twin)
        networks = [{"cidr": c} for c in facts.value("linkerd.cluster-networks", "networks")]
        netauth = _authentication(ctx, ns, "NetworkAuthentication", "plaintext-staging",
                                  {"networks": networks}, sources, staging_only=True)
        _add_grantees(ctx, ("NetworkAuthentication", ns, netauth), grantees)
        kept = [{"group": "policy.linkerd.io", "kind": "NetworkAuthentication",
                 "name": netauth}]
    # fact: linkerd.network-authentication-any-client
    ctx.out.staging_admits = (
        "any client from the cluster networks (or the networks the rule names), with or "
        "without a mesh identity: a NetworkAuthentication checks only the address, so Linkerd "
        "cannot tell those callers' plaintext from another client's mTLS")
    twin = _authz_policy(ctx, ns, k8s_name(wanted, "plaintext"), target, kept, sources,
                         staging_only=True)
    _add_grantees(ctx, ("AuthorizationPolicy", ns, twin), grantees)


def _grant_namespaces(ctx: PolicyContext, ns: str,
                      refs: list[dict[str, str]]) -> frozenset[str] | None:
    """The namespaces of the identities a grant requires (None: any namespace)."""
    found: set[str] = set()
    for r in refs:
        if r["kind"] == "ServiceAccount":
            found.add(r.get("namespace", ns))
        elif r["kind"] == "MeshTLSAuthentication":
            named = ctx._grantees.get((ns, r["name"]))
            if named is None:
                return None
            found |= named
    return frozenset(found)


def _add_grantees(ctx: PolicyContext, key: tuple[str, str, str],
                  grantees: frozenset[str] | None) -> None:
    """A staging-only object serves the callers of every grant that uses it."""
    bucket = ctx.out.staging_grantees
    if grantees is None or (key in bucket and bucket[key] is None):
        bucket[key] = None
    else:
        bucket[key] = bucket.get(key, frozenset()) | grantees
