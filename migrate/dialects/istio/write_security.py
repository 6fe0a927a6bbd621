"""IR mTLS modes and authorization -> Istio PeerAuthentications and AuthorizationPolicies
(security.istio.io/v1), in a staged and an enforcing form.

Coexistence (docs/coexistence.md; mapping-istio-linkerd.md section 5): while other namespaces
still run the source mesh, their calls reach the moved (Istio) pods in plaintext with no peer
identity (fact ``linkerd.plaintext-to-unmeshed``; fact ``istio.automtls-to-istio-endpoints``).
So the staged form, applied when a namespace moves, must admit them:
- PeerAuthentication: ``STRICT`` (namespace, workload or port) is staged as ``PERMISSIVE``,
  which accepts plaintext and mTLS (istio/api security/v1beta1/peer_authentication.proto);
  the enforce step applies ``STRICT``.
- AuthorizationPolicy ALLOW: ``principals`` and ``namespaces`` are mTLS-only fields that never
  match plaintext requests, whose principal is empty (istio.io ISTIO-SECURITY-2021-004,
  "mTLS-only fields"). For every rule that names identities, a companion ALLOW policy
  ``<name>-plaintext`` carries the same rule with the identities replaced by
  ``notPrincipals: ["*"]`` (matches exactly the requests without a principal; ``*`` matches
  any non-empty principal, istio.io authorization-policy reference), keeping the rule's
  ipBlocks and operations: plaintext callers get what the named identities got, nothing
  more, and nobody else loses anything (ALLOW policies are OR-ed: a request is allowed when
  any ALLOW policy matches). The companion is deleted at enforce (``remove_at_enforce``).
- DENY rules on identities cannot match plaintext callers either; that window is reported
  (``AUTHZ_DENY_PLAINTEXT``).

Other choices:
- Identities are written as principals ``<trust_domain>/ns/<ns>/sa/<sa>``; the CRD forbids
  ``serviceAccounts`` next to ``principals`` or ``namespaces`` (CEL rule in the 1.30 CRD).
- A rule narrowed by something the IR cannot carry (``AuthzRule.inexpressible``) is left
  out of an ALLOW policy (fails closed) and kept without the narrowing in DENY and AUDIT
  policies (denies or logs more, never less).
- Mesh-wide policies (root namespace) are written into each migrated namespace instead, so
  moving one namespace never changes the rest of the mesh; ``CUSTOM`` needs an extension
  provider the IR does not carry and is not written (the capability table reports it).
- ``portLevelMtls`` needs a selector (CEL rule ``portLevelMtls requires selector``): a
  namespace-wide policy with port modes becomes one policy per workload.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from migrate.dialects.base import Manifest
from migrate.dialects.istio import write_jwt
from migrate.dialects.istio.write_common import SECURITY_API, WriteContext, match_labels
from migrate.dialects.scope import report_unselected
from migrate.ir.graph import selects
from migrate.ir.model import (
    AuthzOperation,
    AuthzPolicy,
    AuthzRule,
    AuthzSource,
    Labels,
    MTLSPolicy,
    Service,
    Workload,
)
from migrate.losses import ObjectRef, Severity
from migrate.names import k8s_name

T = TypeVar("T")
PLAINTEXT = {"notPrincipals": ["*"]}
_ACTION_FEATURE = {"ALLOW": "authz.allow", "DENY": "authz.deny", "AUDIT": "authz.audit"}


def write_security(ctx: WriteContext, namespaces: list[str], root_namespace: str) -> None:
    """mTLS and authorization for each migrated namespace."""
    mesh_mtls = next((p for p in ctx.graph.of(MTLSPolicy)
                      if p.mesh_wide and p.mode != "UNSET"), None)
    mesh_authz = [p for p in ctx.graph.of(AuthzPolicy) if p.mesh_wide]
    _unmodelled_actions(ctx, set(namespaces) - {root_namespace})
    moved = [ns for ns in namespaces if ns != root_namespace]
    report_unselected(ctx.graph, ctx.losses, moved, "Istio")
    _declared_protocols(ctx, moved)
    for ns in namespaces:
        if ns == root_namespace:
            continue
        _mtls(ctx, ns, mesh_mtls)
        for policy in _in_namespace(ctx, AuthzPolicy, ns):
            if not policy.mesh_wide:
                _authz(ctx, ns, policy, policy.name, f"{policy.origin.ref}")
        if ctx.supports("authz.mesh_wide"):
            for policy in mesh_authz:
                _authz(ctx, ns, policy, policy.name, f"mesh/{policy.origin.ref}")


def _in_namespace(ctx: WriteContext, cls: type[T], ns: str) -> list[T]:
    # MeshGraph.in_namespace can return a record twice once several namespaces without
    # records of a type were asked for (its index is extended, not rebuilt); filter instead.
    return [r for r in ctx.graph.of(cls) if getattr(r, "namespace", None) == ns]


def _unmodelled_actions(ctx: WriteContext, namespaces: set[str]) -> None:
    """DENY and AUDIT policies a reader recorded as a feature use without modelling their
    rules (the Istio reader does so): Istio could express them, but nothing can be written."""
    modelled = {p.origin.ref for p in ctx.graph.of(AuthzPolicy)}
    for use in sorted(ctx.graph.features, key=lambda u: (u.origin, u.feature)):
        ref = use.origin.ref
        if use.feature in ("authz.deny", "authz.audit") and ref not in modelled and \
                ref.namespace in namespaces:
            ctx.losses.report(
                "AUTHZ_NOT_MODELLED", Severity.MANUAL, use.feature, ref, use.origin.path,
                f"the source reader did not model this {use.detail or 'policy'}'s rules, so no "
                "Istio AuthorizationPolicy was written for it",
                "Copy the policy to Istio by hand (Istio supports its action natively).")


def _declared_protocols(ctx: WriteContext, namespaces: list[str]) -> None:
    """A protocol the source declares for a whole Service (Consul ServiceDefaults) that
    Istio would not infer from the Service's ports is reported, port by port.

    Istio takes a port's protocol from ``appProtocol``, else the port name's prefix, else
    sniffs it (istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/).
    The Service itself is not the mesh's to rewrite here, so a ``tcp`` service behind a port
    named ``http`` would get HTTP handling (and L7 authorization) it never had.
    """
    moved = set(namespaces)
    for svc in ctx.graph.of(Service):
        declared = svc.mesh_protocol
        if declared and svc.key.namespace in moved:
            _protocol_loss(ctx, svc, declared)


def _protocol_loss(ctx: WriteContext, svc: Service, declared: str) -> None:
    for i, p in enumerate(svc.ports):
        if p.l7 == declared or p.protocol != "TCP":
            continue
        inferred = "sniffed" if p.l7 == "unknown" else p.l7
        ctx.losses.report(
            "SERVICE_PROTOCOL", Severity.DEGRADED, "authz.allow", svc.origin.ref,
            f"spec.ports[{i}]",
            f"the source mesh handles Service {svc.key} as {declared} (Consul: its "
            "ServiceDefaults or ProxyDefaults protocol, else tcp), but Istio "
            f"reads port {p.port} ({p.name or 'unnamed'}) as {inferred}",
            f"Before the namespace moves, set appProtocol: {declared} on port {p.port} "
            f"of Service {svc.key} (or name it {declared}-...).")


# -- PeerAuthentication -----------------------------------------------------------------------
def _mtls(ctx: WriteContext, ns: str, mesh: MTLSPolicy | None) -> None:
    own = [p for p in _in_namespace(ctx, MTLSPolicy, ns) if not p.mesh_wide]
    if mesh is not None and not any(p.selector is None for p in own) and \
            ctx.supports("mtls.mesh_wide"):
        name = ctx.names.claim("PeerAuthentication", ns, "default", f"mesh/{mesh.origin.ref}")
        _peer_authentication(ctx, ns, name, None, mesh.mode, (), mesh.origin.ref)
    for policy in own:
        ports = policy.port_modes if ctx.supports("mtls.port_level") else ()
        name = ctx.names.claim("PeerAuthentication", ns, policy.name, f"{policy.origin.ref}")
        if policy.selector is None and ports:
            _per_workload_ports(ctx, ns, policy, own)
            ports = ()
        _peer_authentication(ctx, ns, name, policy.selector, policy.mode, ports,
                             policy.origin.ref)


def _per_workload_ports(ctx: WriteContext, ns: str, policy: MTLSPolicy,
                        own: list[MTLSPolicy]) -> None:
    """Port modes of a namespace-wide policy, one workload-scoped policy per workload."""
    covered = [p for p in own if p.selector is not None]
    written = 0
    for w in _in_namespace(ctx, Workload, ns):
        if not w.pod_labels or any(selects(p.selector, w.pod_labels) for p in covered):
            continue  # a workload policy of its own wins over the namespace one anyway
        name = ctx.names.claim("PeerAuthentication", ns, k8s_name(policy.name, w.name),
                               f"{policy.origin.ref}/{w.ref}")
        _peer_authentication(ctx, ns, name, w.pod_labels, policy.mode, policy.port_modes,
                             policy.origin.ref)
        written += 1
    if not written:
        ctx.losses.report(
            "MTLS_PORT_NO_SELECTOR", Severity.DROPPED, "mtls.port_level", policy.origin.ref,
            policy.origin.path,
            f"per-port modes ({', '.join(f'{p}={m}' for p, m in policy.port_modes)}) apply to "
            f"the whole namespace {ns}; Istio allows them only with a workload selector and the "
            "input has no workload with labels to select",
            "Write a PeerAuthentication with a selector and portLevelMtls by hand.")


def _peer_authentication(ctx: WriteContext, ns: str, name: str, selector: Labels | None,
                         mode: str, ports: tuple[tuple[int, str], ...], ref: ObjectRef) -> None:
    if mode == "UNSET" and not ports:
        return  # inherits: nothing to write
    strict = mode == "STRICT" or any(m == "STRICT" for _, m in ports)
    for staged in ((True, False) if strict else (True,)):
        spec: dict[str, Any] = dict(match_labels(selector))
        if mode != "UNSET":
            spec["mtls"] = {"mode": _relax(mode, staged)}
        if ports:
            spec["portLevelMtls"] = {str(p): {"mode": _relax(m, staged)}
                                     for p, m in sorted(ports)}
        body = {"apiVersion": SECURITY_API, "kind": "PeerAuthentication",
                "metadata": {"name": name, "namespace": ns}, "spec": spec}
        bucket = ctx.out.policy_staged if staged else ctx.out.policy_enforced
        ctx.out.add(bucket, Manifest(body, (ref,)))


def _relax(mode: str, staged: bool) -> str:
    return "PERMISSIVE" if staged and mode == "STRICT" else mode


# -- AuthorizationPolicy ----------------------------------------------------------------------
def _authz(ctx: WriteContext, ns: str, policy: AuthzPolicy, wanted: str, owner: str) -> None:
    feature = _ACTION_FEATURE.get(policy.action)
    if feature is None or not ctx.supports(feature):
        return  # CUSTOM (no provider in the IR) or not in this version: the table reported it
    ref = policy.origin.ref
    rules: list[dict[str, Any]] = []
    plaintext: list[dict[str, Any]] = []
    issuers: set[str] = set()
    for rule in policy.rules:
        jwt = write_jwt.carried(ctx, rule)
        if rule.inexpressible and policy.action == "ALLOW" and jwt is None:
            write_jwt.left_out(ctx, policy, rule)
            continue  # left out on purpose: fails closed (the capability check reported why)
        body = _rule(ctx, ref, rule)
        if body is None:
            continue
        if jwt is not None:
            body = write_jwt.with_jwt(body, jwt)
            issuers |= set(jwt.issuers)
        rules.append(body)
        variant = _plaintext_variant(body)
        if variant is not None and variant not in plaintext:
            plaintext.append(variant)
    if policy.action != "ALLOW" and not rules:
        return  # a DENY or AUDIT policy without rules matches nothing
    if policy.action == "DENY" and plaintext:
        ctx.losses.report(
            "AUTHZ_DENY_PLAINTEXT", Severity.DEGRADED, "authz.deny", ref, policy.origin.path,
            "its rules name identities, which plaintext callers still on the source mesh do "
            "not carry: until they move, those callers are not denied",
            "Move the callers named here before this namespace, or add their pod CIDRs as "
            "ipBlocks to a DENY rule for the migration window.")
    name = ctx.names.claim("AuthorizationPolicy", ns, wanted, owner)
    spec: dict[str, Any] = {**match_labels(policy.selector), "action": policy.action}
    if rules:
        spec["rules"] = rules
    main = Manifest(_policy(name, ns, spec), (ref,))
    ctx.out.add(ctx.out.policy_staged, main)
    authn = write_jwt.request_authentication(ctx, ns, policy, name, issuers) if issuers else None
    if authn is not None:
        ctx.out.add(ctx.out.policy_staged, authn)
    if policy.action != "ALLOW" or not plaintext:
        return
    companion = ctx.names.claim("AuthorizationPolicy", ns, k8s_name(name, "plaintext"),
                                f"{owner}/plaintext")
    extra = {**match_labels(policy.selector), "action": "ALLOW", "rules": plaintext}
    staged = Manifest(_policy(companion, ns, extra), (ref,))
    ctx.out.add(ctx.out.policy_staged, staged)
    ctx.out.add(ctx.out.remove_at_enforce, staged)
    ctx.out.add(ctx.out.policy_enforced, main)


def _policy(name: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": SECURITY_API, "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def _rule(ctx: WriteContext, ref: ObjectRef, rule: AuthzRule) -> dict[str, Any] | None:
    """One rule; None when no source alternative is left (the rule would match nothing)."""
    out: dict[str, Any] = {}
    if rule.sources:
        sources = [_source(ctx, ref, s) for s in rule.sources]
        kept = [s for s in sources if s is not None]
        if not kept:
            return None
        if all(kept):  # an empty source matches anyone: then so does the whole list
            out["from"] = [{"source": s} for s in kept]
    if rule.operations:
        out["to"] = [{"operation": _operation(op)} for op in rule.operations]
    return out


def _source(ctx: WriteContext, ref: ObjectRef, s: AuthzSource) -> dict[str, Any] | None:
    principals = list(s.principals)
    accounts = []
    for i, sa in enumerate(s.service_accounts):
        namespace, _, name = sa.partition("/")
        if not name:
            ctx.losses.report(
                "AUTHZ_SOURCE_NARROWED", Severity.DEGRADED, "authz.allow", ref,
                f"{s.origin_path}.serviceAccounts[{i}]",
                f"service account {sa!r} has no namespace; it was left out",
                "Name service accounts as <namespace>/<name>.")
            continue
        accounts.append(ctx.principal(namespace, name))
    if s.service_accounts and not accounts:
        return None
    if accounts and principals:
        # Both must hold (AND): only principals that are also one of the accounts can match.
        both = [p for p in principals if p in accounts]
        if both != principals:
            ctx.losses.report(
                "AUTHZ_SOURCE_NARROWED", Severity.DEGRADED, "authz.allow", ref, s.origin_path,
                "principals and service accounts both narrow this source; only principals "
                f"that are also listed accounts were kept ({', '.join(both) or 'none'})",
                "Check the source: Istio cannot combine serviceAccounts with principals.")
        if not both:
            return None
        principals = both
    elif accounts:
        principals = accounts
    out: dict[str, Any] = {}
    if principals:
        out["principals"] = principals
    if s.namespaces:
        out["namespaces"] = list(s.namespaces)
    if s.ip_blocks:
        out["ipBlocks"] = list(s.ip_blocks)
    return out


def _operation(op: AuthzOperation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if op.ports:
        out["ports"] = [str(p) for p in op.ports]
    if op.methods:
        out["methods"] = list(op.methods)
    if op.paths:
        out["paths"] = list(op.paths)
    return out


def _plaintext_variant(rule: dict[str, Any]) -> dict[str, Any] | None:
    """The rule for plaintext callers: identities replaced by "no principal"; None when the
    rule names no identity (it admits plaintext callers as it is)."""
    variants: list[dict[str, Any]] = []
    seen: set[str] = set()
    for alternative in rule.get("from", []):
        src = alternative["source"]
        if not (src.get("principals") or src.get("namespaces")):
            continue
        variant = {**PLAINTEXT, **{k: src[k] for k in ("ipBlocks", "requestPrincipals")
                                   if k in src}}
        key = json.dumps(variant, sort_keys=True)
        if key not in seen:
            seen.add(key)
            variants.append({"source": variant})
    if not variants:
        return None
    out: dict[str, Any] = {"from": variants}
    for key in ("to", "when"):  # the JWT conditions hold for plaintext callers too
        if key in rule:
            out[key] = rule[key]
    return out
