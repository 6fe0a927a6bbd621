"""Gateway API match values and filters, written the same way for every target that emits
HTTPRoutes (Linkerd's HTTPRoutes, Istio's Gateway API mode)."""

from __future__ import annotations

import re
from typing import Any

from migrate.ir.model import HeaderOps, Redirect, StringMatch


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
