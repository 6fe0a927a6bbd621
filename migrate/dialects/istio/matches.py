"""Istio match blocks (HTTPMatchRequest, L4MatchAttributes) into IR matches."""

from __future__ import annotations

from migrate.dialects.fields import Fields, join
from migrate.ir.model import RouteMatch, StringMatch

# HTTPMatchRequest fields with no mesh-neutral model: feature key per field.
_UNMODELLED_HTTP = {
    "scheme": "route.match.scheme",
    "authority": "route.match.authority",
    "sourceLabels": "route.match.source_labels",
    "gateways": "route.match.gateways",
    "withoutHeaders": "route.match.without_headers",
    "sourceNamespace": "route.match.source_namespace",
    "statPrefix": "route.stat_prefix",
}


def string_match(f: Fields, path: str) -> StringMatch | None:
    """An Istio StringMatch (``{exact|prefix|regex: v}``; ``{}`` means present)."""
    return parse_string_match(f, f.get(path, whole=True), path)


def parse_string_match(f: Fields, value: object, path: str) -> StringMatch | None:
    """A StringMatch from its value; ``path`` is where problems are reported."""
    if value is None:
        return None
    if not isinstance(value, dict):
        f.invalid(path, "expected a StringMatch mapping (exact, prefix or regex)")
        return None
    for kind in ("exact", "prefix", "regex"):
        if kind in value:
            return StringMatch(kind, str(value[kind]))
    if not value:
        return StringMatch("present")
    f.invalid(path, "StringMatch needs one of exact, prefix, regex")
    return None


def _string_map(f: Fields, path: str) -> tuple[tuple[str, StringMatch], ...]:
    out = []
    mapping = f.mapping(path, whole=True)
    for key in sorted(mapping):
        m = parse_string_match(f, mapping[key], f"{path}.{key}")
        if m is not None:
            out.append((str(key).lower() if path.endswith("headers") else str(key), m))
    return tuple(out)


def http_match(f: Fields, path: str, mesh: bool) -> RouteMatch:
    """One HTTPMatchRequest; conditions with no model are recorded as feature uses."""
    f.get(join(path, "name"))  # a label for stats only
    for field_name, feature in _UNMODELLED_HTTP.items():
        if f.peek(join(path, field_name)) not in (None, {}, []):
            if mesh or field_name != "gateways":
                f.use(feature, join(path, field_name))
            else:
                f.get(join(path, field_name))
    port = f.integer(join(path, "port"))
    if port is not None:
        f.use("route.match.port", join(path, "port"), str(port))
    return RouteMatch(
        path=string_match(f, join(path, "uri")),
        ignore_case=bool(f.get(join(path, "ignoreUriCase"))),
        method=string_match(f, join(path, "method")),
        headers=_string_map(f, join(path, "headers")),
        query=_string_map(f, join(path, "queryParams")),
        port=port,
        origin_path=path,
    )


def l4_match(f: Fields, path: str) -> RouteMatch:
    """One L4MatchAttributes (tcp/tls routes): only the port is modelled."""
    for field_name, feature in (("destinationSubnets", "route.match.destination_subnets"),
                                ("sourceLabels", "route.match.source_labels"),
                                ("sourceNamespace", "route.match.source_namespace"),
                                ("gateways", "route.match.gateways"),
                                ("sniHosts", "route.tls")):
        if f.peek(join(path, field_name)) not in (None, {}, []):
            f.use(feature, join(path, field_name))
    return RouteMatch(port=f.integer(join(path, "port")), origin_path=path)
