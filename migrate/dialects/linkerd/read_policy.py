"""policy.linkerd.io Server, ServerAuthorization, AuthorizationPolicy, MeshTLSAuthentication
and NetworkAuthentication: read and accounted here, turned into IR authorization in
``read_finish`` once every object is known (they name each other).

Identities (reference mapping-istio-linkerd.md section 3): a Linkerd identity is
``<sa>.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>``; the IR writes
principals the Istio way, ``<trust-domain>/ns/<ns>/sa/<sa>``. ``*.<ns>.serviceaccount...``
is every account of a namespace, ``*`` any meshed client, ``spiffe://<td>/<path>`` a SPIFFE
id (the IR principal drops the scheme).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from migrate.dialects.fields import Fields, join
from migrate.dialects.linkerd.read_annotations import POLICIES
from migrate.dialects.linkerd.read_state import (
    AuthnFacts,
    PolicyFacts,
    ServerAuthzFacts,
    ServerFacts,
)
from migrate.ir.graph import MeshGraph
from migrate.ir.model import AuthzSource

if TYPE_CHECKING:
    from migrate.dialects.linkerd.reader import LinkerdReader

_IDENTITY = re.compile(
    r"^(?P<sa>\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
    r"\.serviceaccount\.identity\.(?P<cp>[^.]+)\.(?P<td>.+)$")
_ANY_IN_DOMAIN = re.compile(r"^\*\.serviceaccount\.identity\.(?P<cp>[^.]+)\.(?P<td>.+)$")
_OPAQUE_PROTOCOLS = ("opaque", "TLS")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def identity_source(identity: str, trust_domain: str) -> AuthzSource | None:
    """One Linkerd identity as an IR source, or None when no principal form exists."""
    if identity == "*":
        return AuthzSource(principals=("*",))
    if identity.startswith("spiffe://"):
        return AuthzSource(principals=(identity[len("spiffe://"):],))
    match = _IDENTITY.match(identity)
    if match:
        sa, ns, td = match.group("sa"), match.group("ns"), match.group("td")
        if sa == "*":
            if td == trust_domain:
                return AuthzSource(namespaces=(ns,))
            return AuthzSource(principals=(f"{td}/ns/{ns}/sa/*",))
        return AuthzSource(principals=(f"{td}/ns/{ns}/sa/{sa}",))
    match = _ANY_IN_DOMAIN.match(identity)
    if match:
        return AuthzSource(principals=(f"{match.group('td')}/*",))
    return None


def merge_sources(sources: list[AuthzSource]) -> tuple[AuthzSource, ...]:
    """Alternatives of one kind folded into one source per field (they are ORed anyway)."""
    principals = sorted({p for s in sources for p in s.principals})
    if "*" in principals:
        return (AuthzSource(principals=("*",)),)
    out = []
    if principals:
        out.append(AuthzSource(principals=tuple(principals)))
    namespaces = sorted({n for s in sources for n in s.namespaces})
    if namespaces:
        out.append(AuthzSource(namespaces=tuple(namespaces)))
    accounts = sorted({a for s in sources for a in s.service_accounts})
    if accounts:
        out.append(AuthzSource(service_accounts=tuple(accounts)))
    return tuple(out)


def _identities(reader: LinkerdReader, f: Fields, path: str) -> tuple[list[AuthzSource], bool]:
    """Sources for an identities list; True when one of them has no principal form."""
    out, lost = [], False
    for i, identity in enumerate(f.strings(path)):
        source = identity_source(identity, reader.trust_domain)
        if source is None:
            f.use("authz.identity_pattern", f"{path}[{i}]", identity)
            lost = True
        else:
            out.append(source)
    return out, lost


EVERY_ADDRESS = frozenset({"0.0.0.0/0", "::/0"})
"""The networks Linkerd assumes when a client says none (policy-controller: an unset
``networks`` means every IPv4 and IPv6 address); naming both restricts nothing."""


def covers_every_address(cidrs: tuple[str, ...]) -> bool:
    """Whether client networks admit any address, i.e. do not restrict the client at all."""
    return EVERY_ADDRESS <= set(cidrs)


def _networks(f: Fields, path: str) -> tuple[tuple[str, ...], bool]:
    cidrs, negated = [], False
    for i, net in enumerate(f.list(path)):
        npath = f"{path}[{i}]"
        if not isinstance(net, dict):
            f.invalid(npath, "expected a network mapping with a cidr")
            continue
        cidrs.append(f.string(join(npath, "cidr")))
        if f.peek(join(npath, "except")):
            excepted = f.strings(join(npath, "except"))
            f.use("authz.source.negated", join(npath, "except"), ", ".join(excepted))
            negated = True
        else:
            f.get(join(npath, "except"))
    return tuple(sorted(c for c in cidrs if c)), negated


def clean_selector(f: Fields, path: str) -> dict[str, Any]:
    """A label selector with its shape checked (a bad part is reported and selects nothing)."""
    raw = f.mapping(path, whole=True)
    out: dict[str, Any] = {}
    labels_ = raw.get("matchLabels")
    if isinstance(labels_, dict) and all(not isinstance(v, (dict, list)) for v in labels_.values()):
        out["matchLabels"] = labels_
    elif labels_ is not None:
        f.invalid(join(path, "matchLabels"), "expected a mapping of label values")
        out["matchExpressions"] = [{"key": "", "operator": "In", "values": []}]  # matches none
    exprs = raw.get("matchExpressions")
    if isinstance(exprs, list) and all(
            isinstance(e, dict) and e.get("operator") in _OPERATORS for e in exprs):
        out["matchExpressions"] = [*out.get("matchExpressions", []), *exprs]
    elif exprs is not None:
        f.invalid(join(path, "matchExpressions"), "expected a list of label requirements")
        out["matchExpressions"] = [{"key": "", "operator": "In", "values": []}]
    return out


def read_server(reader: LinkerdReader, f: Fields, graph: MeshGraph) -> None:
    """One Server: pods, port, protocol hint and its own access policy."""
    external = f.peek("spec.externalWorkloadSelector") is not None
    if external:
        f.use("workload.vm", "spec.externalWorkloadSelector")
    selector = clean_selector(f, "spec.podSelector")
    port = f.get("spec.port")
    if isinstance(port, bool) or not isinstance(port, (int, str)):
        if port is not None:
            f.invalid("spec.port", "expected a port number or name")
        port = None
    elif isinstance(port, str) and port.isdigit():
        port = int(port)
    protocol = f.string("spec.proxyProtocol", "unknown")
    if protocol in _OPAQUE_PROTOCOLS:
        f.use("protocol.opaque", "spec.proxyProtocol", f"{protocol} on port {port}")
    access = f.string("spec.accessPolicy", "deny") or "deny"
    if access not in POLICIES:
        f.invalid("spec.accessPolicy", f"access policy {access!r} is not one of "
                  f"{', '.join(POLICIES)}")
        access = "deny"  # the Server's documented default
    if access == "audit":
        f.use("authz.dry_run", "spec.accessPolicy", "audit")
    meta = f.peek("metadata.labels") or {}
    reader.state.servers[(f.ref.namespace, f.ref.name)] = ServerFacts(
        f.ref, selector, port, access,
        {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}, external)


def read_mesh_tls_authentication(reader: LinkerdReader, f: Fields, graph: MeshGraph) -> None:
    """One MeshTLSAuthentication: identity alternatives."""
    sources, lost = _identities(reader, f, "spec.identities")
    for i, ref in enumerate(f.list("spec.identityRefs")):
        path = f"spec.identityRefs[{i}]"
        if not isinstance(ref, dict):
            f.invalid(path, "expected an identityRef mapping")
            continue
        kind = f.string(join(path, "kind"))
        name = f.string(join(path, "name"))
        ns = f.string(join(path, "namespace"), f.ref.namespace)
        f.get(join(path, "group"))
        if kind == "ServiceAccount":
            sources.append(AuthzSource(service_accounts=(f"{ns}/{name}",)))
        elif kind == "Namespace":
            sources.append(AuthzSource(namespaces=(name,)))
        else:
            f.invalid(join(path, "kind"), f"identityRef kind {kind!r} is not ServiceAccount or "
                      "Namespace")
    reader.state.authn[("MeshTLSAuthentication", f.ref.namespace, f.ref.name)] = AuthnFacts(
        f.ref, merge_sources(sources), narrowing=("authz.identity_pattern",) if lost and
        not sources else ())


def read_network_authentication(reader: LinkerdReader, f: Fields, graph: MeshGraph) -> None:
    """One NetworkAuthentication: client networks."""
    cidrs, negated = _networks(f, "spec.networks")
    reader.state.authn[("NetworkAuthentication", f.ref.namespace, f.ref.name)] = AuthnFacts(
        f.ref, ip_blocks=cidrs, narrowing=("authz.source.negated",) if negated else ())


def read_authorization_policy(reader: LinkerdReader, f: Fields, graph: MeshGraph) -> None:
    """One AuthorizationPolicy: its target and required authentications."""
    refs = []
    for i, ref in enumerate(f.list("spec.requiredAuthenticationRefs")):
        path = f"spec.requiredAuthenticationRefs[{i}]"
        if not isinstance(ref, dict):
            f.invalid(path, "expected an authentication reference")
            continue
        f.get(path, whole=True)
        refs.append((str(ref.get("kind") or ""), str(ref.get("namespace") or f.ref.namespace),
                     str(ref.get("name") or ""), path))
    if f.peek("spec.requiredAuthenticationRefs") is not None:
        f.accounted.add("spec.requiredAuthenticationRefs")  # [] means: any client
    reader.state.policies.append(PolicyFacts(
        f.ref, f.string("spec.targetRef.group"), f.string("spec.targetRef.kind"),
        f.string("spec.targetRef.name"), tuple(refs)))
    f.get("spec.targetRef.namespace")


def read_server_authorization(reader: LinkerdReader, f: Fields, graph: MeshGraph) -> None:
    """One ServerAuthorization (the pre-2.12 API): Servers and the clients they admit."""
    selector = clean_selector(f, "spec.server.selector") \
        if f.peek("spec.server.selector") is not None else None
    name = f.string("spec.server.name")
    cidrs, negated = _networks(f, "spec.client.networks")
    if covers_every_address(cidrs) and not negated:
        cidrs = ()  # 0.0.0.0/0 and ::/0: no network restriction (the emojivoto web-public case)
    narrowing = ["authz.source.negated"] if negated else []
    identities: list[AuthzSource] | None
    if f.get("spec.client.unauthenticated") is True:
        identities = [AuthzSource()]
        f.get("spec.client.meshTLS", whole=True)  # unauthenticated admits these as well
    else:
        identities, lost = _identities(reader, f, "spec.client.meshTLS.identities")
        for i, sa in enumerate(f.list("spec.client.meshTLS.serviceAccounts")):
            path = f"spec.client.meshTLS.serviceAccounts[{i}]"
            if not isinstance(sa, dict):
                f.invalid(path, "expected a serviceAccount reference")
                continue
            ns = f.string(join(path, "namespace"), f.ref.namespace)
            account = f.string(join(path, "name"))
            identities.append(AuthzSource(service_accounts=(f"{ns}/{account}",)))
        if f.get("spec.client.meshTLS.unauthenticatedTLS") is True:
            # TLS clients without a mesh identity: no other mesh admits such a class; they
            # are refused after the migration (fails closed).
            f.use("authz.identity_pattern", "spec.client.meshTLS.unauthenticatedTLS",
                  "TLS clients without identity")
        identities = list(merge_sources(identities))
        if lost and not identities:
            narrowing.append("authz.identity_pattern")
    sources = tuple(AuthzSource(s.principals, s.namespaces, s.service_accounts, cidrs,
                                "spec.client") for s in identities)
    if not identities:
        narrowing.append("authz.identity_pattern")  # admits nobody the IR can name
    if identities == [AuthzSource()] and not cidrs:
        sources = ()  # unauthenticated from any network: any client
    reader.state.server_authz.append(ServerAuthzFacts(
        f.ref, name, selector, sources, tuple(sorted(set(narrowing)))))
