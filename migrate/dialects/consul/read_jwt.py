"""Consul JWTProvider -> IR :class:`~migrate.ir.model.JwtProvider`, and the ``jwt`` blocks of
ServiceIntentions as :class:`~migrate.ir.model.JwtRequirement` (issue 22).

A provider's issuer, audiences, key set and token locations are read; what has no model
(clock skew, key caching, a key set in a file on the proxy's disk...) is left unconsumed, so
the field ledger reports it. An intention's ``jwt.providers[]`` entries name providers and
the claims to verify (consul docs, "Use JWT authorization with service intentions",
https://developer.hashicorp.com/consul/docs/secure-mesh/intention/jwt).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from migrate.dialects.consul.read_common import present
from migrate.dialects.fields import Fields, join
from migrate.ir.graph import MeshGraph
from migrate.ir.model import JwtProvider

if TYPE_CHECKING:
    from migrate.dialects.consul.reader import ConsulReader

JwtUse = tuple[tuple[str, tuple[tuple[tuple[str, ...], str], ...]], ...]
"""An intention's ``jwt.providers``: (provider name, ((claim path, value), ...)) each."""


def read_jwt_provider(reader: ConsulReader, f: Fields, graph: MeshGraph) -> None:
    """One JWTProvider: the issuer and how tokens are found and checked."""
    issuer = str(f.peek("spec.issuer") or "")
    f.use("authn.jwt", "spec.issuer", f"JWTProvider {f.ref.name}")
    jwks_uri = f.string("spec.jsonWebKeySet.remote.uri")
    jwks = ""
    if present(f, "spec.jsonWebKeySet.local.jwks"):
        encoded = f.peek("spec.jsonWebKeySet.local.jwks")
        try:
            jwks = base64.b64decode(str(encoded), validate=True).decode()
            f.get("spec.jsonWebKeySet.local.jwks")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            f.invalid("spec.jsonWebKeySet.local.jwks", "not a base64-encoded key set")
    headers: list[tuple[str, str]] = []
    params: list[str] = []
    forward = False
    for i in range(len(f.list("spec.locations"))):
        path = f"spec.locations[{i}]"
        if present(f, join(path, "header")):
            headers.append((f.string(join(path, "header.name")),
                            f.string(join(path, "header.valuePrefix"))))
            forward = forward or f.get(join(path, "header.forward")) is True
        elif present(f, join(path, "queryParam")):
            params.append(f.string(join(path, "queryParam.name")))
    provider = JwtProvider(f.ref.namespace, f.ref.name, issuer, f.strings("spec.audiences"),
                           jwks_uri, jwks, tuple(headers), tuple(params), forward,
                           f.string("spec.forwarding.headerName"), f.origin("spec"))
    if issuer and (jwks_uri or jwks):
        reader.state.jwt_providers.setdefault(f.ref.name, provider)
        graph.add(provider)


def read_jwt_use(f: Fields, path: str) -> JwtUse:
    """``jwt.providers[]`` of an intention or a permission, consumed."""
    out = []
    for i in range(len(f.list(join(path, "providers")))):
        item = f"{path}.providers[{i}]"
        claims = []
        for j in range(len(f.list(join(item, "verifyClaims")))):
            claim = f"{item}.verifyClaims[{j}]"
            claims.append((f.strings(join(claim, "path")), f.string(join(claim, "value"))))
        out.append((f.string(join(item, "name")), tuple(claims)))
    return tuple(out)
