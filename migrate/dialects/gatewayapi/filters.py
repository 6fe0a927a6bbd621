"""Gateway API match values and filters: read the same way by every source that reads
Gateway API routes (Linkerd, Istio's GAMMA routes; :func:`read_filters`) and written the same
way for every target that emits HTTPRoutes (Linkerd's HTTPRoutes, Istio's Gateway API mode)."""

from __future__ import annotations

import re
from typing import Any, Callable

from migrate.dialects.fields import Fields, join
from migrate.ir.model import HeaderOps, Redirect, StringMatch

OtherFilter = Callable[[str, str], None]
"""Called with (filter path, filter type) for a filter type the caller handles itself."""


def value_match(name: str, m: StringMatch) -> dict[str, str]:
    """A header or query-parameter match: Exact, or a RegularExpression for prefixes and
    regexes (Gateway API has no prefix type for these)."""
    if m.kind == "exact":
        return {"name": name, "type": "Exact", "value": m.value}
    pattern = {"prefix": re.escape(m.value) + ".*", "regex": m.value}.get(m.kind, ".*")
    return {"name": name, "type": "RegularExpression", "value": pattern}


def header_modifier(ops: HeaderOps) -> dict[str, Any]:
    """The body of a Request- or ResponseHeaderModifier filter."""
    body: dict[str, Any] = {}
    if ops.set:
        body["set"] = [{"name": k, "value": v} for k, v in ops.set]
    if ops.add:
        body["add"] = [{"name": k, "value": v} for k, v in ops.add]
    if ops.remove:
        body["remove"] = list(ops.remove)
    return body


def redirect_filter(r: Redirect, status: int) -> dict[str, Any]:
    """The body of a RequestRedirect filter with the status code the caller settled on (the
    codes a target accepts differ, and so does the loss for changing one)."""
    body: dict[str, Any] = {}
    if r.scheme:
        body["scheme"] = r.scheme
    if r.authority:
        body["hostname"] = r.authority
    if r.path:
        body["path"] = {"type": "ReplaceFullPath", "replaceFullPath": r.path}
    if r.port:
        body["port"] = r.port
    body["statusCode"] = status
    return body


PRECISE_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
"""Gateway API ``PreciseHostname`` (the CRD's pattern, maxLength 253): no port, no wildcard."""


def url_rewrite_filter(path_type: str, value: str, hostname: str) -> dict[str, Any]:
    """A URLRewrite filter. ``path_type`` is ``ReplacePrefixMatch``, ``ReplaceFullPath`` or
    empty (no path change); ``hostname`` empty leaves the Host header alone. The caller has
    made sure a ReplacePrefixMatch rule has exactly one PathPrefix match (a CEL rule of the
    HTTPRoute CRD) and that the hostname fits :data:`PRECISE_HOSTNAME`."""
    body: dict[str, Any] = {}
    if hostname:
        body["hostname"] = hostname
    if path_type == "ReplacePrefixMatch":
        body["path"] = {"type": path_type, "replacePrefixMatch": value}
    elif path_type == "ReplaceFullPath":
        body["path"] = {"type": path_type, "replaceFullPath": value}
    return {"type": "URLRewrite", "urlRewrite": body}


# -- filters -----------------------------------------------------------------------------
def header_ops(f: Fields, path: str) -> HeaderOps:
    """The body of a Request- or ResponseHeaderModifier filter."""
    def pairs(key: str) -> tuple[tuple[str, str], ...]:
        out = []
        for k, item in enumerate(f.list(join(path, key))):
            if isinstance(item, dict):
                out.append((f.string(f"{path}.{key}[{k}].name"),
                            f.string(f"{path}.{key}[{k}].value")))
            else:
                f.invalid(f"{path}.{key}[{k}]", "expected a name/value pair")
        return tuple(sorted(out))

    return HeaderOps(set=pairs("set"), add=pairs("add"), remove=f.strings(join(path, "remove")))


def read_filters(f: Fields, path: str, other: OtherFilter | None = None
                 ) -> tuple[HeaderOps, HeaderOps, Redirect | None]:
    """Header modifiers and a redirect. Any other filter type goes to ``other`` (the mesh
    decides what it means); without one it is reported as unknown."""
    req, resp, redirect = HeaderOps(), HeaderOps(), None
    for k, flt in enumerate(f.list(path)):
        fpath = f"{path}[{k}]"
        kind = f.string(join(fpath, "type"))
        if kind == "RequestHeaderModifier":
            req = header_ops(f, join(fpath, "requestHeaderModifier"))
        elif kind == "ResponseHeaderModifier":
            resp = header_ops(f, join(fpath, "responseHeaderModifier"))
        elif kind == "RequestRedirect":
            rp = join(fpath, "requestRedirect")
            full = f.string(join(rp, "path.replaceFullPath"))
            if f.peek(join(rp, "path.replacePrefixMatch")) is not None:
                # A redirect, not a rewrite: the model's Redirect replaces the whole path only.
                f.use("route.redirect.prefix", join(rp, "path.replacePrefixMatch"),
                      str(f.peek(join(rp, "path.replacePrefixMatch"))))
            f.get(join(rp, "path.type"))
            redirect = Redirect(path=full, authority=f.string(join(rp, "hostname")),
                                port=f.integer(join(rp, "port")),
                                scheme=f.string(join(rp, "scheme")),
                                code=f.integer(join(rp, "statusCode")) or 302, origin_path=rp)
        elif other is not None:
            other(fpath, kind)
        else:
            f.invalid(join(fpath, "type"), f"filter type {kind!r} is unknown")
    return req, resp, redirect
