"""IR authorization -> one ServiceIntentions per destination Consul service.

Consul semantics (../shared/reference/mapping-consul-others.md section 1.4):
- intentions are evaluated at the destination; across sources the most specific wins (an exact
  source name beats ``*``); a source carries either an L4 ``action`` or L7 ``permissions``,
  which are tried top to bottom, first match terminal;
- a request matching no permission falls to the default intention behaviour, which is the ACL
  default policy (deny when consul-k8s manages ACLs), not to the ``*`` source (Consul docs
  config-entries/service-intentions: "a default catch-all based on the default ACL policy will
  apply to unmatched connections and requests"; agent/structs/config_entry_intentions.go
  validates the rest: unique sources, standard unique methods, paths starting with ``/``).
  So every permission list written here ends with an explicit catch-all permission, and every
  migrated service gets an intention, even without any policy: ``* allow`` keeps Istio's
  allow-by-default under a default-deny Consul.

Istio semantics kept (istio/api security/v1beta1/authorization_policy.proto): DENY rules are
checked before ALLOW rules; with any ALLOW policy on a workload a request must match one,
else it is refused. Since an exact source hides ``*``, the grants of ``*`` are copied into each
named source (deny first, then allow), and the default closes each list.

Identities: Consul service names. consul-k8s binds a pod's identity to its ServiceAccount name
(with ACLs the SA must equal the service name, section 1.3), so the principal
``<td>/ns/<ns>/sa/<sa>`` is the Consul service ``<sa>`` when a Service of that name exists in
``<ns>``. Consul CE intentions cannot name a Kubernetes namespace: a namespace source lists the
services found there (``CONSUL_AUTHZ_NAMESPACE``). What cannot be expressed fails closed: an
ALLOW source or operation is left out, a DENY one is widened.

Coexistence: in ``mutualTLSMode: permissive`` "intentions are not enforced and encryption is
not enabled for non-mTLS connections" (Consul docs, k8s/connect/onboarding-tproxy-mode.mdx). So
the final intentions can be applied when a namespace moves: callers still on the source mesh
reach it in plaintext and are let in by the permissive mode (write_defaults.py), while callers
already on Consul are checked as they will be. They are filed under ``policy_staged`` and stay.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from migrate.dialects.consul.write_context import (
    L7,
    ConsulContext,
    need_l7,
    service_protocol,
)
from migrate.dialects.consul.write_routing import METHODS
from migrate.dialects.scope import report_headless, report_unselected
from migrate.ir.graph import MeshGraph, selects
from migrate.ir.model import (
    AuthzOperation,
    AuthzPolicy,
    AuthzRule,
    AuthzSource,
    Service,
    ServiceKey,
)
from migrate.losses import ObjectRef, Severity

ANY = "*"
WHOLE = ""
"""A grant on the whole service (no L7 permission)."""


Grant = tuple[str, str]
"""(action, permission ``http`` body as sorted JSON, or ``WHOLE`` for the whole service)."""


@dataclass
class _Grants:
    """What one source may or may not do, in the order the rules said it."""

    deny: list[Grant] = field(default_factory=list)
    allow: list[Grant] = field(default_factory=list)


def write_intentions(ctx: ConsulContext) -> None:
    """Intentions for every Service that moves to Consul."""
    policies = [p for ns in ctx.namespaces for p in ctx.graph.in_namespace(AuthzPolicy, ns)
                if not p.mesh_wide and p.action in ("ALLOW", "DENY")]
    # Root-namespace (mesh-wide) policies cover every namespace's workloads; a ``*``
    # destination intention would also change services outside the plan, so they are
    # written into each migrated service's intentions, like a policy of its own namespace.
    policies += [p for p in ctx.graph.of(AuthzPolicy)
                 if p.mesh_wide and p.action in ("ALLOW", "DENY")]
    _report_unmodelled_denies(ctx)
    report_unselected(ctx.graph, ctx.losses, ctx.namespaces, "Consul")
    report_headless(ctx.graph, ctx.losses, ctx.namespaces, "Consul")
    for policy in policies:
        if policy.selector is not None and not policy.mesh_wide:
            # namespace-wide: client-only pods need no intention
            _report_unregistered(ctx, policy)
    for ns in ctx.namespaces:
        for svc in ctx.graph.in_namespace(Service, ns):
            if ctx.owns(svc.key):
                applying = [p for p in policies if _applies(ctx, p, svc)]
                _intentions(ctx, svc, sorted(applying, key=lambda p: (p.action != "DENY",
                                                                       p.name)))


def _applies(ctx: ConsulContext, policy: AuthzPolicy, svc: Service) -> bool:
    """Whether a policy covers a Service's pods (all of them, or some: reported)."""
    if policy.namespace != svc.key.namespace and not policy.mesh_wide:
        return False
    if policy.selector is None:
        return True
    backing = ctx.graph.workloads_selected(svc.key.namespace, svc.selector) if svc.selector else []
    if not backing:
        return bool(svc.selector) and selects(policy.selector, svc.selector)
    chosen = [w for w in backing if selects(policy.selector, w.pod_labels)]
    if chosen and len(chosen) < len(backing) and not _alike(ctx, svc.key.namespace, backing):
        ctx.losses.report(
            "CONSUL_AUTHZ_TARGET", Severity.DEGRADED, "authz.allow", policy.origin.ref,
            "spec.selector",
            f"the policy selects {len(chosen)} of the {len(backing)} workloads behind Service "
            f"{svc.key}; intentions apply to the whole Consul service {svc.key.name!r}",
            "Give those pods their own Service if they need different authorization.")
    return bool(chosen)


def _alike(ctx: ConsulContext, ns: str, workloads: list[Any]) -> bool:
    """Whether every workload behind a Service gets the same authorization (each by its own
    policy, as Linkerd Servers written per workload do): one set of intentions for the whole
    Consul service then loses nothing."""
    def meaning(w: Any) -> frozenset[Any]:
        return frozenset(
            (p.action, tuple(_bare(r) for r in p.rules))
            for p in ctx.graph.in_namespace(AuthzPolicy, ns)
            if not p.mesh_wide and (p.selector is None or selects(p.selector, w.pod_labels)))
    return len({meaning(w) for w in workloads}) == 1


def _bare(rule: AuthzRule) -> tuple[Any, ...]:
    """A rule without the source paths it was read from (equal rules of two objects)."""
    return (tuple(replace(s, origin_path="") for s in rule.sources),
            tuple(replace(o, origin_path="") for o in rule.operations), rule.inexpressible)


def _report_unregistered(ctx: ConsulContext, policy: AuthzPolicy) -> None:
    """Pods a policy selects that no Service registers in Consul get no intention."""
    registered = {id(w) for svc in ctx.graph.in_namespace(Service, policy.namespace)
                  if svc.selector
                  for w in ctx.graph.workloads_selected(policy.namespace, svc.selector)}
    for w in ctx.graph.workloads_selected(policy.namespace, policy.selector):
        if id(w) not in registered:
            ctx.losses.report(
                "CONSUL_AUTHZ_TARGET", Severity.MANUAL, "authz.allow", policy.origin.ref,
                "spec.selector" if policy.selector else "metadata.namespace",
                f"{w.kind} {w.namespace}/{w.name} is selected by no Service, so consul-k8s "
                "does not register it and no intention protects it",
                "Add a Service selecting these pods (consul-k8s requires one), then re-run.")


def _report_unmodelled_denies(ctx: ConsulContext) -> None:
    """DENY uses whose rules the reader did not model must not vanish silently."""
    modelled = {p.origin.ref for p in ctx.graph.of(AuthzPolicy) if p.action == "DENY"}
    for use in ctx.graph.features:
        ref = use.origin.ref
        if use.feature == "authz.deny" and ref not in modelled and ref.namespace in \
                ctx.namespaces:
            ctx.losses.report(
                "CONSUL_AUTHZ_DENY_UNMODELLED", Severity.MANUAL, "authz.deny", ref,
                use.origin.path,
                f"{ref.kind} {ref.namespace}/{ref.name} denies requests, but its rules were not "
                "read into the model; no deny intention was written",
                "Write the deny as ServiceIntentions sources with action: deny (or L7 "
                "permissions with action: deny) on the destination services.")


def _intentions(ctx: ConsulContext, svc: Service, policies: list[AuthzPolicy]) -> None:
    key = svc.key
    proto = service_protocol(ctx, key)
    grants: dict[str, _Grants] = {}
    for policy in policies:
        for rule in policy.rules:
            _rule(ctx, policy, rule, key, proto, grants)
    default = "deny" if any(p.action == "ALLOW" for p in policies) else "allow"
    star = grants.get(ANY, _Grants())
    sources = []
    star_entry = _entry(ANY, star.deny + star.allow, default)
    for name in sorted(n for n in grants if n != ANY):
        own = grants[name]
        entry = _entry(name, own.deny + star.deny + own.allow + star.allow, default)
        if {k: v for k, v in entry.items() if k != "name"} != \
                {k: v for k, v in star_entry.items() if k != "name"}:
            sources.append(entry)
    sources.append(star_entry)
    refs = {p.origin.ref for p in policies} or {svc.origin.ref}
    if any("permissions" in s for s in sources):
        need_l7(ctx, key, min(refs), "spec.rules", "authz.allow")
    if policies:
        ctx.restricted.setdefault(key, min(p.origin.ref for p in policies))
    ctx.add(ctx.out.policy_staged, "ServiceIntentions", key.namespace, key.name,
            {"destination": {"name": key.name}, "sources": sources}, refs)


def _entry(name: str, chain: list[Grant], default: str) -> dict[str, Any]:
    """A source: L4 action when the first grant covers everything, else L7 permissions
    closed by a catch-all permission."""
    chain = chain + [(default, WHOLE)]
    cut = next(i for i, (_, http) in enumerate(chain) if http == WHOLE)
    final = chain[cut][0]
    perms = chain[:cut]
    while perms and perms[-1][0] == final:
        perms.pop()  # the catch-all below does the same
    if not perms:
        return {"name": name, "action": final}
    out = []
    for action, http in dict.fromkeys(perms):
        out.append({"action": action, "http": json.loads(http)})
    out.append({"action": final, "http": {"pathPrefix": "/"}})
    return {"name": name, "permissions": out}


def _rule(ctx: ConsulContext, policy: AuthzPolicy, rule: AuthzRule, key: ServiceKey, proto: str,
          grants: dict[str, _Grants]) -> None:
    deny = policy.action == "DENY"
    if rule.inexpressible and not deny:
        return  # fails closed; the capability check reported why
    ops = _operations(ctx, policy, rule, key, proto)
    if not ops:
        return
    for src in rule.sources or (AuthzSource(origin_path=rule.origin_path),):
        names = _names(ctx, policy, src)
        for name in sorted(names or ()):
            bucket = grants.setdefault(name, _Grants())
            for http in ops:
                (bucket.deny if deny else bucket.allow).append(("deny" if deny else "allow", http))


def pod_ports(graph: MeshGraph, key: ServiceKey) -> set[int]:
    """The pod ports a Service sends to: what an authorization's ports (pod ports, as a
    Linkerd Server or an Istio rule names them) are compared with.

    A named ``targetPort`` is the container port of that name on the pods the Service selects
    (kubernetes.io/docs/concepts/services-networking/service/#field-spec-ports); compared as the
    Service port (80 against a Server's 8000), an intention that covers every port was taken
    for a partial one and dropped. A name no selected pod declares keeps the Service port.
    """
    svc = graph.service(key)
    out: set[int] = set()
    for port in svc.ports if svc else ():
        target = port.target_port
        if isinstance(target, int):
            out.add(target)
        elif isinstance(target, str) and target:
            named = {number for w in graph.workloads_selected(key.namespace, svc.selector)
                     for name, number in w.ports if name == target}
            out |= named or {port.port}
        else:
            out.add(port.port)
    return out


def _operations(ctx: ConsulContext, policy: AuthzPolicy, rule: AuthzRule, key: ServiceKey,
                proto: str) -> list[str]:
    """Permission bodies (``WHOLE`` for the whole service) an operation list grants."""
    if not rule.operations:
        return [WHOLE]
    deny = policy.action == "DENY"
    ref = policy.origin.ref
    ports = pod_ports(ctx.graph, key)
    out: list[str] = []
    for op in rule.operations:
        if op.ports and not ports <= set(op.ports):
            _op_loss(ctx, ref, op, deny, f"ports {','.join(map(str, op.ports))} cover only part of "
                     f"{key} (intentions apply to every port)")
            if not deny:
                continue
        if not (op.paths or op.methods):
            out.append(WHOLE)
            continue
        if proto not in L7 and proto != "unknown":
            _op_loss(ctx, ref, op, deny, f"{key} speaks {proto}; paths and methods need an HTTP "
                     "protocol")
            if deny:
                out.append(WHOLE)
            continue
        methods = list(dict.fromkeys(m.upper() for m in op.methods))  # Consul refuses repeats
        odd = [m for m in methods if m not in METHODS]
        methods = [m for m in methods if m in METHODS]
        if odd:
            _op_loss(ctx, ref, op, deny, f"methods {','.join(odd)} are not standard HTTP methods")
            if not methods:
                if deny:
                    out.append(WHOLE)
                continue
        for path in op.paths or ("",):
            http: dict[str, Any] = _path(path) if path else {}
            if methods:
                http["methods"] = methods
            out.append(json.dumps(http or {"pathPrefix": "/"}, sort_keys=True))
    return out


def _op_loss(ctx: ConsulContext, ref: ObjectRef, op: AuthzOperation, deny: bool,
             why: str) -> None:
    ctx.losses.report(
        "CONSUL_AUTHZ_OPERATION", Severity.DEGRADED if deny else Severity.MANUAL, "authz.allow",
        ref, op.origin_path,
        f"{why}: " + ("the deny now covers the whole service" if deny else
                      "the operation was left out (those requests are refused)"),
        "Split the port into its own Service, or state the rule with standard methods and "
        "paths, then re-run.")


def _path(path: str) -> dict[str, str]:
    """Istio authorization paths: exact, ``prefix*``, ``*suffix`` or ``*``; Consul prefixes are
    raw string prefixes like Istio's, and non-regex paths must start with ``/``."""
    if path == "*":
        return {"pathPrefix": "/"}
    if path.endswith("*"):
        prefix = path[:-1]
        return {"pathPrefix": prefix} if prefix.startswith("/") else \
            {"pathRegex": re.escape(prefix) + ".*"}
    if path.startswith("*"):
        return {"pathRegex": ".*" + re.escape(path[1:])}
    return {"pathExact": path} if path.startswith("/") else {"pathRegex": re.escape(path)}


def _names(ctx: ConsulContext, policy: AuthzPolicy, src: AuthzSource) -> set[str] | None:
    """Consul source names for one ``from.source`` (its fields ANDed); None: none usable."""
    deny = policy.action == "DENY"
    ref = policy.origin.ref
    if src.ip_blocks and deny and not (src.principals or src.service_accounts or
                                       src.namespaces):
        # Widening an address-only deny to every caller would refuse all traffic to the
        # service; not writing it lets those addresses in. Neither keeps the source: say so.
        ctx.losses.report(
            "CONSUL_AUTHZ_SOURCE", Severity.DROPPED, "authz.deny", ref,
            f"{src.origin_path}.ipBlocks",
            "intentions cannot match client IP blocks and this deny source names nothing "
            "else: it was not written, so requests from those addresses are no longer refused",
            "Refuse those addresses outside the mesh (a NetworkPolicy on the destination "
            "pods), or deny the callers by identity.")
        return None
    if src.ip_blocks:
        ctx.losses.report(
            "CONSUL_AUTHZ_SOURCE", Severity.DEGRADED if deny else Severity.MANUAL,
            "authz.deny" if deny else "authz.allow", ref, f"{src.origin_path}.ipBlocks",
            "intentions cannot match client IP blocks: " + (
                "the deny applies to the named identities from any address" if deny else
                "this source was left out (those callers are refused)"),
            "Allow the callers by identity (their Consul service names) instead.")
        if not deny:
            return None
    sets: list[set[str]] = []
    if src.principals:
        sets.append(_principals(ctx, policy, src))
    if src.service_accounts:
        found: set[str] = set()
        for k, sa in enumerate(src.service_accounts):
            ns, _, name = sa.partition("/")
            if not name:
                ns, name = policy.namespace, ns
            found |= _identity(ctx, policy, ns, name, f"{src.origin_path}.serviceAccounts[{k}]")
        sets.append(found)
    if src.namespaces:
        found = set()
        for k, ns in enumerate(src.namespaces):
            found |= _namespace(ctx, policy, ns, f"{src.origin_path}.namespaces[{k}]")
        sets.append(found)
    if not sets:
        return None if src.ip_blocks else {ANY}
    names = sets[0]
    for other in sets[1:]:
        names = other if ANY in names else names if ANY in other else names & other
    return names or None


def _principals(ctx: ConsulContext, policy: AuthzPolicy, src: AuthzSource) -> set[str]:
    found: set[str] = set()
    for k, principal in enumerate(src.principals):
        path = f"{src.origin_path}.principals[{k}]"
        parts = principal.split("/")
        if principal == ANY:
            found.add(ANY)
        elif len(parts) == 5 and parts[1] == "ns" and parts[3] == "sa" and \
                parts[0] in (ctx.trust_domain, ANY):
            ns, sa = parts[2], parts[4]
            if ns == ANY and sa == ANY:
                found.add(ANY)
            elif sa == ANY and ANY not in ns:
                found |= _namespace(ctx, policy, ns, path)
            elif ANY not in ns + sa:
                found |= _identity(ctx, policy, ns, sa, path)
            else:
                _pattern_loss(ctx, policy, principal, path)
        elif len(parts) == 4 and parts[1] == "ns" and parts[3] == ANY and ANY not in parts[2] \
                and parts[0] in (ctx.trust_domain, ANY):
            found |= _namespace(ctx, policy, parts[2], path)
        else:
            _pattern_loss(ctx, policy, principal, path)
    return found


def _pattern_loss(ctx: ConsulContext, policy: AuthzPolicy, principal: str, path: str) -> None:
    ctx.losses.report(
        "CONSUL_AUTHZ_SOURCE", Severity.MANUAL, "authz.allow", policy.origin.ref, path,
        f"principal {principal!r} has no Consul form (patterns and other trust domains cannot be "
        f"named); it was left out ({'not denied' if policy.action == 'DENY' else 'refused'})",
        "Name the callers' service accounts (= Consul service names) explicitly.")


def _identity(ctx: ConsulContext, policy: AuthzPolicy, ns: str, sa: str, path: str) -> set[str]:
    """The Consul service a ServiceAccount stands for (its name, when such a Service exists)."""
    if ctx.graph.service(ServiceKey(ns, sa)) is not None:
        return {sa}
    deny = policy.action == "DENY"
    ctx.losses.report(
        "CONSUL_AUTHZ_IDENTITY", Severity.MANUAL, "authz.allow", policy.origin.ref, path,
        f"ServiceAccount {ns}/{sa} is not the name of a Service in {ns}; consul-k8s gives pods "
        "the identity of their Service (with ACLs the ServiceAccount must carry that name), so "
        + (f"the deny names Consul service {sa!r} anyway" if deny else
           "this identity was left out (its calls are refused)"),
        f"Rename the ServiceAccount to the name of the Service its pods register under (or add "
        f"Service {ns}/{sa}), then re-run.")
    return {sa} if deny else set()


def _namespace(ctx: ConsulContext, policy: AuthzPolicy, ns: str, path: str) -> set[str]:
    """A namespace source as the Consul services it holds in the input."""
    if ns == ANY:
        return {ANY}
    if ANY in ns:
        _pattern_loss(ctx, policy, ns, path)
        return set()
    names = {svc.key.name for svc in ctx.graph.in_namespace(Service, ns)}
    ctx.losses.report(
        "CONSUL_AUTHZ_NAMESPACE", Severity.DEGRADED if names else Severity.MANUAL,
        "authz.allow", policy.origin.ref, path,
        f"namespace {ns} became the Consul services "
        + (", ".join(sorted(names)) if names else "(none: the input has no Service there)")
        + "; Consul CE intentions cannot name a Kubernetes namespace",
        "Add intentions for services created in that namespace later (or use Consul "
        "Enterprise namespaces with mirroring).")
    return names
