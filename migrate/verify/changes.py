"""What a route does to a request on its way (issue 14 items 1-2): path and host rewrites,
request and response header changes, fault injection, each read from one mesh's own rule.

The outcome names the *result* for the probe, not the configuration: the path the backend
receives (``path /healthz``), the headers set, added and removed (lower-case names), the
delay and abort injected. So two meshes that spell the same change differently (Istio's
``rewrite.uri`` after a prefix match, Gateway API's ``ReplacePrefixMatch``, Consul's
``prefixRewrite``) compare equal, and a dropped or changed one differs.

Sources:
- Istio: virtual_service.proto ``HTTPRewrite`` ("If the original URI was matched based on
  prefix, the value provided in this field will replace the corresponding matched prefix"),
  ``Headers.HeaderOperations`` (set, add, remove), ``HTTPFaultInjection`` (delay
  ``fixedDelay``, abort ``httpStatus``, each with ``percentage``; istio/api networking/v1).
- Gateway API: ``HTTPURLRewriteFilter`` (``ReplaceFullPath``, ``ReplacePrefixMatch``,
  ``hostname``), ``HTTPHeaderFilter`` (set, add, remove), standard channel v1.2
  (https://gateway-api.sigs.k8s.io/reference/spec/#httpurlrewritefilter).
- Consul: ServiceRouter ``destination.prefixRewrite`` (replaces the matched ``pathPrefix`` or
  ``pathExact``), ``requestHeaders``/``responseHeaders`` (add, set, remove)
  (https://developer.hashicorp.com/consul/docs/connect/config-entries/service-router).
"""

from __future__ import annotations

from typing import Any

HeaderOps = tuple[tuple[str, str, str], ...]
"""(operation, lower-case header name, value) sorted; ``remove`` has an empty value."""


def header_ops(sets: Any, adds: Any, removes: Any) -> HeaderOps:
    """Header operations from name -> value maps (or Gateway API ``[{name, value}]`` lists)
    and a list of names to remove."""
    out: set[tuple[str, str, str]] = set()
    for op, values in (("set", sets), ("add", adds)):
        if isinstance(values, dict):
            out |= {(op, str(k).lower(), str(v)) for k, v in values.items()}
        elif isinstance(values, list):
            out |= {(op, str(h.get("name", "")).lower(), str(h.get("value", "")))
                    for h in values if isinstance(h, dict)}
    if isinstance(removes, list):
        out |= {("remove", str(name).lower(), "") for name in removes}
    return tuple(sorted(out))


def _split(path: str) -> tuple[str, str]:
    base, sep, query = path.partition("?")
    return base, sep + query


def replace_prefix(path: str, prefix: str, value: str) -> str:
    """The path with a matched prefix replaced (the query kept). A replacement ending in
    ``/`` before a rest starting with one keeps a single slash, as Gateway API specifies
    for ``ReplacePrefixMatch``, so that the meshes' spellings of one rewrite compare equal."""
    base, query = _split(path)
    rest = base[len(prefix):] if base.startswith(prefix) else base
    if value.endswith("/") and rest.startswith("/"):
        rest = rest[1:]
    return (value + rest or "/") + query


def describe(path: str | None, host: str | None) -> str:
    """The rewrite as the outcome shows it (empty: the request goes as sent)."""
    return ", ".join(x for x in (f"path {path}" if path is not None else "",
                                 f"host {host}" if host else "") if x)


# -- Istio VirtualService ------------------------------------------------------------------
def istio_rule(rule: dict[str, Any], match: dict[str, Any] | None, path: str
               ) -> tuple[str, HeaderOps, HeaderOps, str]:
    """(rewrite, request header ops, response header ops, fault) of a VirtualService rule
    for a request ``path`` matched by ``match``."""
    rewrite = rule.get("rewrite") if isinstance(rule.get("rewrite"), dict) else {}
    new_path = None
    # fact: istio.rewrite-uri-prefix
    if rewrite.get("uri") is not None:
        uri = (match or {}).get("uri") if isinstance(match, dict) else None
        prefix = str(uri["prefix"]) if isinstance(uri, dict) and "prefix" in uri else None
        if prefix is not None:
            new_path = replace_prefix(path, prefix, str(rewrite["uri"]))
        else:
            new_path = str(rewrite["uri"]) + _split(path)[1]
    elif isinstance(rewrite.get("uriRegexRewrite"), dict):
        import re

        regex = rewrite["uriRegexRewrite"]
        try:
            base, query = _split(path)
            # RE2 and Python both write a group as \1 in the replacement.
            new_path = re.sub(str(regex.get("match", "")), str(regex.get("rewrite", "")),
                              base) + query
        except re.error:
            new_path = None
    # The rule's headers, and those of each destination (HTTPRouteDestination.headers):
    # a destination's apply to the requests it receives, so a split shows their union.
    holders = [rule] + [d for d in rule.get("route") or [] if isinstance(d, dict)]
    ops: list[HeaderOps] = [(), ()]
    for holder in holders:
        headers = holder.get("headers") if isinstance(holder.get("headers"), dict) else {}
        for i, side in enumerate(("request", "response")):
            h = headers.get(side) if isinstance(headers.get(side), dict) else {}
            ops[i] = union(ops[i], header_ops(h.get("set"), h.get("add"), h.get("remove")))
    return describe(new_path, rewrite.get("authority")), ops[0], ops[1], istio_fault(rule)


def union(a: HeaderOps, b: HeaderOps) -> HeaderOps:
    """Both sets of header operations."""
    return tuple(sorted(set(a) | set(b))) if b else a


def istio_fault(rule: dict[str, Any]) -> str:
    """A VirtualService rule's fault injection (``delay 5s 100%; abort 503 10%``)."""
    fault = rule.get("fault") if isinstance(rule.get("fault"), dict) else {}
    parts = []
    delay = fault.get("delay") if isinstance(fault.get("delay"), dict) else None
    if delay:
        parts.append(f"delay {delay.get('fixedDelay', '')} {_percent(delay)}")
    abort = fault.get("abort") if isinstance(fault.get("abort"), dict) else None
    if abort:
        what = abort.get("httpStatus", abort.get("grpcStatus", ""))
        parts.append(f"abort {what} {_percent(abort)}")
    return "; ".join(parts)


def _percent(spec: dict[str, Any]) -> str:
    value = spec.get("percentage", {}).get("value") if isinstance(spec.get("percentage"),
                                                                  dict) else None
    if value is None:
        value = spec.get("percent", 100)  # deprecated integer form
    return f"{float(value):g}%"


# -- Gateway API ---------------------------------------------------------------------------
def gateway_rule(rule: dict[str, Any], match: dict[str, Any] | None, path: str,
                 honoured: tuple[str, ...] = ("URLRewrite", "RequestHeaderModifier",
                                              "ResponseHeaderModifier")
                 ) -> tuple[str, HeaderOps, HeaderOps]:
    """(rewrite, request header ops, response header ops) of a Gateway API rule's filters
    that the mesh honours, for a request ``path`` matched by ``match``."""
    new_path, host = None, None
    req: HeaderOps = ()
    resp: HeaderOps = ()
    # The rule's filters, then each backend's (HTTPBackendRef.filters): a backend's apply to
    # the requests it receives, so a split shows their union.
    filters = list(rule.get("filters") or []) + [
        f for b in rule.get("backendRefs") or [] if isinstance(b, dict)
        for f in b.get("filters") or []]
    for f in filters:
        if not isinstance(f, dict) or f.get("type") not in honoured:
            continue
        if f["type"] == "URLRewrite":
            # fact: gateway-api.url-rewrite
            spec = f.get("urlRewrite") or {}
            host = spec.get("hostname") or host
            p = spec.get("path") if isinstance(spec.get("path"), dict) else None
            if p and p.get("type") == "ReplaceFullPath":
                new_path = str(p.get("replaceFullPath", "/")) + _split(path)[1]
            elif p and p.get("type") == "ReplacePrefixMatch":
                pm = (match or {}).get("path") if isinstance(match, dict) else None
                prefix = str(pm.get("value", "/")) if isinstance(pm, dict) else "/"
                new_path = replace_prefix(path, prefix.rstrip("/") or "/",
                                          str(p.get("replacePrefixMatch", "/")))
        elif f["type"] == "RequestHeaderModifier":
            spec = f.get("requestHeaderModifier") or {}
            req = union(req, header_ops(spec.get("set"), spec.get("add"), spec.get("remove")))
        elif f["type"] == "ResponseHeaderModifier":
            spec = f.get("responseHeaderModifier") or {}
            resp = union(resp, header_ops(spec.get("set"), spec.get("add"),
                                           spec.get("remove")))
    return describe(new_path, host), req, resp


# -- Consul ServiceRouter ------------------------------------------------------------------
def consul_route(dest: dict[str, Any], match: dict[str, Any] | None, path: str
                 ) -> tuple[str, HeaderOps, HeaderOps]:
    """(rewrite, request header ops, response header ops) of a ServiceRouter destination."""
    new_path = None
    # fact: consul.prefix-rewrite
    if dest.get("prefixRewrite") is not None:
        http = match.get("http") if isinstance(match, dict) else None
        http = http if isinstance(http, dict) else {}
        prefix = http.get("pathPrefix", http.get("pathExact"))
        if prefix is not None:
            new_path = replace_prefix(path, str(prefix), str(dest["prefixRewrite"]))
    out = []
    for key in ("requestHeaders", "responseHeaders"):
        h = dest.get(key) if isinstance(dest.get(key), dict) else {}
        out.append(header_ops(h.get("set"), h.get("add"), h.get("remove")))
    return describe(new_path, None), out[0], out[1]
