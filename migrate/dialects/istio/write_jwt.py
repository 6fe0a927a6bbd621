"""JWT requirements -> Istio ``requestPrincipals``, ``when`` claims and RequestAuthentication.

An ALLOW rule whose only narrowing is a JWT the IR carries (``AuthzRule.jwt``, from a Consul
intention's ``jwt`` block) is written with ``source.requestPrincipals: ["<issuer>/*"]`` and
one ``request.auth.claims[...]`` condition per verified claim; a RequestAuthentication with the
provider's ``jwtRules`` (issuer, audiences, key set, token locations) selects the same
workloads, so a token must be valid to give a request principal at all
(https://istio.io/latest/docs/reference/config/security/request_authentication/ and
authorization-policy/, ``requestPrincipals``, ``request.auth.claims``; fact
``istio.request-principals``). A JWT rule the IR cannot carry is left out (fails closed) and
reported.
"""

from __future__ import annotations

from typing import Any

from migrate.dialects.base import Manifest
from migrate.dialects.istio.write_common import SECURITY_API, WriteContext, match_labels
from migrate.ir.model import AuthzPolicy, AuthzRule, JwtProvider, JwtRequirement
from migrate.losses import Severity
from migrate.names import k8s_name

JWT = "authz.source.request_principals"


def carried(ctx: WriteContext, rule: AuthzRule) -> JwtRequirement | None:
    """The rule's JWT when it is the only thing narrowing it and Istio can say it."""
    # fact: istio.request-principals
    if rule.jwt is not None and set(rule.inexpressible) == {JWT} and ctx.supports(JWT):
        return rule.jwt
    return None


def left_out(ctx: WriteContext, policy: AuthzPolicy, rule: AuthzRule) -> None:
    """Report a JWT rule left out: the capability table says Istio carries JWT rules."""
    if JWT in rule.inexpressible and ctx.supports(JWT):
        ctx.losses.report(
            "AUTHZ_REQUEST_PRINCIPALS", Severity.DEGRADED, JWT, policy.origin.ref,
            rule.origin_path,
            "this rule needs a JWT Istio cannot require as written (several providers, a "
            "provider the input does not define with an issuer and keys, or other conditions "
            "with it): it was left out, so the requests it admitted are refused",
            "Write the rule by hand with requestPrincipals and a RequestAuthentication.")


def with_jwt(body: dict[str, Any], jwt: JwtRequirement) -> dict[str, Any]:
    """A written rule narrowed to requests carrying a valid token of one of the issuers."""
    principals = [f"{issuer}/*" for issuer in jwt.issuers]
    out = dict(body)
    sources = [dict(a["source"]) for a in body.get("from", [])] or [{}]
    out["from"] = [{"source": {**s, "requestPrincipals": principals}} for s in sources]
    if jwt.claims:
        out["when"] = [{"key": "request.auth.claims" + "".join(f"[{p}]" for p in path),
                        "values": [value]} for path, value in jwt.claims]
    return out


def request_authentication(ctx: WriteContext, ns: str, policy: AuthzPolicy, name: str,
                           issuers: set[str]) -> Manifest | None:
    """A RequestAuthentication for the policy's workloads validating the issuers' tokens."""
    providers = {p.issuer: p for p in ctx.graph.of(JwtProvider)}
    rules = [_jwt_rule(providers[i]) for i in sorted(issuers) if i in providers]
    if not rules:
        return None
    wanted = ctx.names.claim("RequestAuthentication", ns, k8s_name(name, "jwt"),
                             f"{policy.origin.ref}/jwt")
    body = {"apiVersion": SECURITY_API, "kind": "RequestAuthentication",
            "metadata": {"name": wanted, "namespace": ns},
            "spec": {**match_labels(policy.selector), "jwtRules": rules}}
    refs = (policy.origin.ref,) + tuple(sorted({providers[i].origin.ref for i in issuers
                                                if i in providers}))
    return Manifest(body, refs)


def _jwt_rule(p: JwtProvider) -> dict[str, Any]:
    rule: dict[str, Any] = {"issuer": p.issuer}
    if p.audiences:
        rule["audiences"] = list(p.audiences)
    if p.jwks_uri:
        rule["jwksUri"] = p.jwks_uri
    elif p.jwks:
        rule["jwks"] = p.jwks
    if p.from_headers:
        rule["fromHeaders"] = [{"name": n, **({"prefix": x} if x else {})}
                               for n, x in p.from_headers]
    if p.from_params:
        rule["fromParams"] = list(p.from_params)
    if p.forward:
        rule["forwardOriginalToken"] = True
    if p.payload_header:
        rule["outputPayloadToHeader"] = p.payload_header
    return rule
