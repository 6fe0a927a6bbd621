"""Probes generated from a Linkerd source configuration.

Routing: each match of each HTTPRoute/GRPCRoute with a Service parent (both API groups), and
each ServiceProfile route condition, gives the request that hits it and variants one condition
away (as the Istio generator does: exact and one off, prefix boundaries, headers present,
absent and other, query parameters, a method not named); a TrafficSplit's apex gets a baseline.
Authorization: the identities MeshTLSAuthentications and ServerAuthorizations name, an unknown
one and an unauthenticated client send the inbound routes' requests to every Service in a
namespace with Servers, policies or a default-inbound-policy annotation.
"""

from __future__ import annotations

from typing import Any

from migrate.verify.model import Client, Probe
from migrate.verify.probes import (
    _DAMAGED,
    exact_paths,
    identity_probes,
    prefix_paths,
    regex_sample,
    service_probes,
)
from migrate.verify.world import World, dig

_ROUTE_GROUPS = ("policy.linkerd.io", "gateway.networking.k8s.io")
_POLICY_KINDS = ("Server", "AuthorizationPolicy", "ServerAuthorization",
                 "MeshTLSAuthentication", "NetworkAuthentication")
_DEFAULT = "config.linkerd.io/default-inbound-policy"


def _group(obj: dict[str, Any]) -> str:
    return str(obj.get("apiVersion", "")).split("/")[0]


def _values(m: Any) -> list[str | None]:
    """Header or query values: a hit, a near miss, absent."""
    if not isinstance(m, dict):
        return [None]
    value = str(m.get("value", ""))
    if m.get("type", "Exact") == "Exact":
        return [value, value + "-other", None]
    sample = regex_sample(value)
    return [sample, None] if sample is not None else [None]


def _http_match(m: dict[str, Any]) -> dict[str, Any]:
    pm = m.get("path") or {}
    value = str(pm.get("value", "/")) if isinstance(pm, dict) else "/"
    kind = pm.get("type", "PathPrefix") if isinstance(pm, dict) else "PathPrefix"
    if kind == "Exact":
        paths = exact_paths(value)
    elif kind == "RegularExpression":
        sample = regex_sample(value)
        paths = [sample, sample + "x"] if sample else ["/"]
    else:
        paths = prefix_paths(value)
    return {"paths": paths, "method": m.get("method"),
            "headers": {str(h.get("name", "")).lower(): _values(h)
                        for h in m.get("headers") or [] if isinstance(h, dict)},
            "query": {str(q.get("name", "")): _values(q)
                      for q in m.get("queryParams") or [] if isinstance(q, dict)}}


def _grpc_match(m: dict[str, Any]) -> dict[str, Any]:
    method = m.get("method") or {}
    service, name = str(method.get("service", "")), str(method.get("method", ""))
    paths = [f"/{service or 'pkg.Svc'}/{name or 'Probe'}", f"/{service or 'pkg.Svc'}/Other"]
    return {"paths": paths, "method": "POST",
            "headers": {str(h.get("name", "")).lower(): _values(h)
                        for h in m.get("headers") or [] if isinstance(h, dict)}}


def _conditions(cond: Any) -> list[dict[str, Any]]:
    """Requests that meet a ServiceProfile condition (``not`` gives a baseline only)."""
    if not isinstance(cond, dict):
        return []
    if "any" in cond:
        return [m for c in cond["any"] or [] for m in _conditions(c)]
    merged: dict[str, Any] = {}
    for c in [cond, *(cond.get("all") or [])]:
        if not isinstance(c, dict):
            continue
        if "method" in c:
            merged["method"] = str(c["method"]).upper()
        if "pathRegex" in c:
            sample = regex_sample(str(c["pathRegex"]))
            if sample:
                merged["paths"] = [sample, sample + "x"]
    return [merged]


def routing_probes(objects: list[dict[str, Any]], world: World,
                   groups: tuple[str, ...] = _ROUTE_GROUPS) -> list[Probe]:
    """Probes for every Linkerd route, ServiceProfile and TrafficSplit; with ``groups``,
    only for the Service-parented routes of those API groups (Istio reads the
    ``gateway.networking.k8s.io`` ones, and only those)."""
    matches: dict[tuple[str, str], list[dict[str, Any]]] = {}
    whys: dict[tuple[str, str], str] = {}
    for obj in objects:
        if groups != _ROUTE_GROUPS and not (obj.get("kind") in ("HTTPRoute", "GRPCRoute")
                                            and _group(obj) in groups):
            continue
        try:
            _collect(obj, matches, whys)
        except _DAMAGED:
            continue
    out: list[Probe] = []
    for key in sorted(matches):
        out.extend(service_probes(key[0], key[1], world, matches[key], whys[key]))
    return out


def _collect(obj: dict[str, Any], matches: dict[tuple[str, str], list[dict[str, Any]]],
             whys: dict[tuple[str, str], str]) -> None:
    kind, ns = obj.get("kind"), str(dig(obj, "metadata", "namespace", default="default"))
    name = str(dig(obj, "metadata", "name", default=""))
    if kind in ("HTTPRoute", "GRPCRoute") and _group(obj) in _ROUTE_GROUPS:
        for p in dig(obj, "spec", "parentRefs", default=[]):
            if p.get("kind") != "Service":
                continue
            key = (str(p.get("namespace", ns)), str(p.get("name")))
            whys.setdefault(key, f"{kind} {ns}/{name}")
            for rule in dig(obj, "spec", "rules", default=[]):
                for m in rule.get("matches") or []:
                    if isinstance(m, dict):
                        matches.setdefault(key, []).append(
                            _grpc_match(m) if kind == "GRPCRoute" else _http_match(m))
                matches.setdefault(key, [])
    elif kind == "ServiceProfile" and _group(obj) == "linkerd.io":
        key = (ns, name.split(".")[0])
        whys.setdefault(key, f"ServiceProfile {ns}/{name}")
        for route in dig(obj, "spec", "routes", default=[]):
            matches.setdefault(key, []).extend(_conditions(route.get("condition")))
        matches.setdefault(key, [])
    elif kind == "TrafficSplit" and _group(obj) == "split.smi-spec.io":
        key = (ns, str(dig(obj, "spec", "service", default="")).split(".")[0])
        whys.setdefault(key, f"TrafficSplit {ns}/{name}")
        matches.setdefault(key, [])


def _clients(obj: dict[str, Any]) -> set[Client]:
    ns = str(dig(obj, "metadata", "namespace", default="default"))
    found: set[Client] = set()
    spec = obj.get("spec") or {}
    if obj.get("kind") == "AuthorizationPolicy":  # ServiceAccounts named directly
        return {Client(str(r.get("namespace", ns)), str(r["name"]))
                for r in spec.get("requiredAuthenticationRefs") or []
                if isinstance(r, dict) and r.get("kind") == "ServiceAccount" and r.get("name")}
    mesh = dig(spec, "client", "meshTLS", default={}) if obj.get("kind") == \
        "ServerAuthorization" else spec
    for ident in mesh.get("identities") or []:
        parts = str(ident).split(".")
        if len(parts) > 2 and "*" not in parts[:2]:
            found.add(Client(parts[1], parts[0]))
        elif len(parts) > 2 and parts[0] == "*" and "*" not in parts[1]:
            found.add(Client(parts[1], "default"))  # any account of that namespace
    for ref in (mesh.get("identityRefs") or []) + (mesh.get("serviceAccounts") or []):
        if not isinstance(ref, dict):
            continue
        if ref.get("kind") == "Namespace":
            found.add(Client(str(ref.get("name")), "default"))
        elif ref.get("name"):
            found.add(Client(str(ref.get("namespace", ns)), str(ref["name"])))
    return found


def authz_probes(objects: list[dict[str, Any]], world: World) -> list[Probe]:
    """Probes for every Service in a namespace whose inbound policy is configured."""
    clients: dict[str, set[Client]] = {}  # per namespace: policies apply in their own
    requests: dict[str, set[tuple[str, str]]] = {}
    for ns, notes in world.namespaces.items():
        if _DEFAULT in notes:
            requests.setdefault(ns, set())
    for ws in world.workloads.values():
        for w in ws:
            if _DEFAULT in dict(w.annotations):
                requests.setdefault(w.namespace, set())
    for obj in objects:
        try:
            ns = str(dig(obj, "metadata", "namespace", default="default"))
            if obj.get("kind") in _POLICY_KINDS and _group(obj) == "policy.linkerd.io":
                requests.setdefault(ns, set())
                if obj.get("kind") in ("MeshTLSAuthentication", "ServerAuthorization",
                                       "AuthorizationPolicy"):
                    clients.setdefault(ns, set()).update(_clients(obj))
            elif obj.get("kind") == "HTTPRoute" and any(
                    p.get("kind") == "Server" for p in dig(obj, "spec", "parentRefs",
                                                           default=[])):
                reqs = requests.setdefault(ns, set())
                for rule in dig(obj, "spec", "rules", default=[]):
                    for m in rule.get("matches") or []:
                        spec = _http_match(m)
                        for path in spec["paths"][:2]:
                            reqs |= {(path, str(spec["method"] or "GET")), (path, "PATCH")}
        except _DAMAGED:
            continue
    return identity_probes(world, requests, clients)
