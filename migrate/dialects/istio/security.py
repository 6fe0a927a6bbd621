"""PeerAuthentication, AuthorizationPolicy and RequestAuthentication -> IR.

Evaluation semantics (istio/api security/v1beta1/authorization_policy.proto): CUSTOM, then
DENY, then ALLOW; when any ALLOW policy applies to a workload a request must match one of
them. Within a rule, ``from``, ``to`` and ``when`` all hold (AND); entries inside each list
are alternatives (OR); fields inside one source or operation all hold (AND).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from migrate import facts
from migrate.dialects.fields import Fields, join
from migrate.ir.graph import MeshGraph
from migrate.ir.model import AuthzOperation, AuthzPolicy, AuthzRule, AuthzSource, MTLSPolicy, labels

if TYPE_CHECKING:
    from migrate.dialects.istio.reader import IstioReader

_NEGATED_SOURCE = ("notPrincipals", "notNamespaces", "notServiceAccounts", "notIpBlocks",
                   "notTrustDomains")
_NEGATED_OPERATION = ("notMethods", "notPaths", "notPorts", "notHosts")


def read_peer_authentication(reader: IstioReader, f: Fields, graph: MeshGraph) -> None:
    """Read one PeerAuthentication."""
    selector = _selector(f)
    mode = f.string("spec.mtls.mode", "UNSET") or "UNSET"
    mesh_wide = f.ref.namespace == reader.root_namespace and selector is None
    if mode == "DISABLE":
        f.use("mtls.disable", "spec.mtls.mode")
    ports = []
    for port, setting in sorted(f.mapping("spec.portLevelMtls").items(), key=lambda kv: str(kv[0])):
        path = f"spec.portLevelMtls.{port}"
        port_mode = str(setting.get("mode", "UNSET")) if isinstance(setting, dict) else "UNSET"
        f.get(path, whole=True)
        if str(port).isdigit():
            ports.append((int(port), port_mode))
            f.use("mtls.port_level", path, f"{port}={port_mode}")
            if port_mode == "DISABLE":
                f.use("mtls.disable", path)
        else:
            f.invalid(path, "portLevelMtls keys must be port numbers")
    if mesh_wide:
        f.note("mtls.mesh_wide", "spec.mtls", mode)
    if mode == "STRICT":
        f.note("mtls.strict", "spec.mtls.mode")
    graph.add(MTLSPolicy(f.ref.namespace, f.ref.name, selector, mode, tuple(ports), mesh_wide,
                         f.origin("spec")))


def read_authorization_policy(reader: IstioReader, f: Fields, graph: MeshGraph) -> None:
    """Read one AuthorizationPolicy: ALLOW and DENY are modelled (the same rule grammar;
    Istio checks DENY policies before ALLOW ones), AUDIT and CUSTOM are feature uses with no
    model (they log or delegate rather than decide)."""
    selector = _selector(f)
    for key in ("targetRef", "targetRefs"):
        if f.peek(f"spec.{key}") is not None:
            f.use("authz.target_ref", f"spec.{key}")
    if f.peek("metadata.annotations.istio.io/dry-run") is not None:
        f.use("authz.dry_run", "metadata.annotations.istio.io/dry-run")
    action = f.string("spec.action", "ALLOW") or "ALLOW"
    mesh_wide = f.ref.namespace == reader.root_namespace
    if mesh_wide:
        f.use("authz.mesh_wide", "metadata.namespace")
    if action not in ("ALLOW", "DENY"):
        feature = {"AUDIT": "authz.audit", "CUSTOM": "authz.custom"}.get(action, "authz.custom")
        f.use(feature, "spec.action", action)
        f.get("spec.rules", whole=True)
        f.get("spec.provider", whole=True)
        return
    if action == "DENY":
        f.use("authz.deny", "spec.action", action)
    else:
        f.note("authz.allow", "spec")
    rules = []
    raw_rules = f.list("spec.rules")
    if f.peek("spec.rules") is not None:
        f.accounted.add("spec.rules")  # an explicit empty list means: deny everything
    for i in range(len(raw_rules)):
        rules.append(_rule(f, f"spec.rules[{i}]"))
    graph.add(AuthzPolicy(f.ref.namespace, f.ref.name, selector, action, tuple(rules),
                          mesh_wide, f.origin("spec")))


def read_request_authentication(reader: IstioReader, f: Fields, graph: MeshGraph) -> None:
    """RequestAuthentication (JWT) has no model; the whole spec is one feature use."""
    f.use("authn.jwt", "spec")


def _selector(f: Fields) -> tuple[tuple[str, str], ...] | None:
    if f.peek("spec.selector") is None:
        return None
    return labels(f.mapping("spec.selector.matchLabels", whole=True)) or None


def _rule(f: Fields, path: str) -> AuthzRule:
    before = len(f.uses)
    sources = []
    for j, _ in enumerate(f.list(join(path, "from"))):
        sp = f"{path}.from[{j}].source"
        given = f.keys_at(sp)
        for key in _NEGATED_SOURCE:
            if given.get(key) is not None:
                f.use("authz.source.negated", join(sp, key))
        for key, feature in (("requestPrincipals", "authz.source.request_principals"),
                             ("notRequestPrincipals", "authz.source.request_principals"),
                             ("remoteIpBlocks", "authz.source.remote_ip_blocks"),
                             ("notRemoteIpBlocks", "authz.source.remote_ip_blocks"),
                             ("trustDomains", "authz.source.trust_domains")):
            if given.get(key) is not None:
                f.use(feature, join(sp, key))
        sources.append(AuthzSource(
            principals=f.strings(join(sp, "principals")),
            namespaces=f.strings(join(sp, "namespaces")),
            service_accounts=f.strings(join(sp, "serviceAccounts")),
            ip_blocks=f.strings(join(sp, "ipBlocks")),
            origin_path=sp))
    operations = []
    for j, _ in enumerate(f.list(join(path, "to"))):
        op = f"{path}.to[{j}].operation"
        given = f.keys_at(op)
        for key in _NEGATED_OPERATION:
            if given.get(key) is not None:
                f.use("authz.operation.negated", join(op, key))
        if given.get("hosts") is not None:
            f.use("authz.operation.hosts", join(op, "hosts"))
        ports = []
        for k, port in enumerate(f.strings(join(op, "ports"))):
            if port.isdigit():
                ports.append(int(port))
            else:
                f.invalid(f"{op}.ports[{k}]", f"port {port!r} is not a number")
        operations.append(AuthzOperation(
            ports=tuple(ports), methods=_methods(f.strings(join(op, "methods"))),
            paths=f.strings(join(op, "paths")), origin_path=op))
    for j, _ in enumerate(f.list(join(path, "when"))):
        f.use("authz.condition", f"{path}.when[{j}]", str(f.peek(f"{path}.when[{j}].key")))
    narrowing = tuple(sorted({u.feature for u in f.uses[before:]}))
    return AuthzRule(tuple(sources), tuple(operations), path, narrowing)


def _methods(values: tuple[str, ...]) -> tuple[str, ...]:
    """``to.operation.methods`` as literal methods: ``*`` is Istio's presence match (every
    request has a method, so any method: the empty tuple), a prefix or suffix pattern stands
    for the standard methods it matches. A pattern no standard method matches stays as
    written (it admits only custom methods)."""
    # fact: istio.authz-value-match
    if "*" in values:
        return ()
    known = facts.value("istio.authz-value-match", "http_methods")
    out: list[str] = []
    for value in values:
        if value.endswith("*"):
            found = [m for m in known if m.startswith(value[:-1])]
        elif value.startswith("*"):
            found = [m for m in known if m.endswith(value[1:])]
        else:
            found = []
        out += found or [value]
    return tuple(dict.fromkeys(out))
