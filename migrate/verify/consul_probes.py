"""Probes generated from a Consul source configuration.

Routing: each ServiceRouter route's ``match.http`` gives the request that hits it and
variants one condition away (exact and one off, raw-prefix boundaries, a regex sample, each
header and query parameter present, absent and other, a method not named); every Service with
a ServiceSplitter or ServiceResolver gets a baseline. The Kubernetes Services probed are those
named after the config entry (in any namespace: Consul CE has one namespace).
Authorization: each source a ServiceIntentions names (as the ServiceAccount of that name, the
identity consul-k8s binds), an unknown one and an unauthenticated client send the permissions'
requests to the destination's Services; every other Service gets the unknown and the
unauthenticated client, for the default that decides there.
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


def _consul(obj: dict[str, Any], kind: str) -> bool:
    return obj.get("kind") == kind and str(obj.get("apiVersion", "")).startswith(
        "consul.hashicorp.com/")


def _services(world: World, name: str) -> list[tuple[str, str]]:
    """Kubernetes Services a Consul service name stands for."""
    return sorted(k for k in world.services if k[1] == name or name == "*")


def _values(h: dict[str, Any]) -> list[str | None]:
    if "exact" in h:
        return [str(h["exact"]), str(h["exact"]) + "-other", None]
    if "prefix" in h:
        return [str(h["prefix"]) + "x", "other", None]
    if "suffix" in h:
        return ["x" + str(h["suffix"]), "other", None]
    if "regex" in h:
        sample = regex_sample(str(h["regex"]))
        return [sample, None] if sample else [None]
    return ["x", None]


def _match(http: dict[str, Any]) -> dict[str, Any]:
    if "pathExact" in http:
        paths = exact_paths(str(http["pathExact"]))
    elif "pathPrefix" in http:
        paths = prefix_paths(str(http["pathPrefix"]))
    elif "pathRegex" in http:
        sample = regex_sample(str(http["pathRegex"]))
        paths = [sample, sample + "x"] if sample else ["/"]
    else:
        paths = ["/"]
    methods = [str(m).upper() for m in http.get("methods") or []]
    return {"paths": paths, "method": methods[0] if methods else "GET",
            "headers": {str(h.get("name", "")).lower(): _values(h)
                        for h in http.get("header") or [] if isinstance(h, dict)},
            "query": {str(q.get("name", "")): _values(q)
                      for q in http.get("queryParam") or [] if isinstance(q, dict)}}


def routing_probes(objects: list[dict[str, Any]], world: World) -> list[Probe]:
    """Probes for every ServiceRouter, ServiceSplitter and ServiceResolver."""
    matches: dict[tuple[str, str], list[dict[str, Any]]] = {}
    whys: dict[tuple[str, str], str] = {}
    for obj in objects:
        try:
            kind = str(obj.get("kind"))
            if not any(_consul(obj, k) for k in ("ServiceRouter", "ServiceSplitter",
                                                 "ServiceResolver")):
                continue
            name = str(dig(obj, "metadata", "name", default=""))
            found = []
            if kind == "ServiceRouter":
                for route in dig(obj, "spec", "routes", default=[]):
                    http = dig(route, "match", "http", default=None)
                    if isinstance(http, dict):
                        found.append(_match(http))
            for key in _services(world, name):
                whys.setdefault(key, f"{kind} {name}")
                matches.setdefault(key, []).extend(found)
        except _DAMAGED:
            continue
    out: list[Probe] = []
    for key in sorted(matches):
        out.extend(service_probes(key[0], key[1], world, matches[key], whys[key]))
    return out


def _client(world: World, name: str, ns: str, source: dict[str, Any]) -> Client:
    """The caller a source name stands for: a workload running as that ServiceAccount."""
    wanted = source.get("namespace")
    for w_ns, ws in sorted(world.workloads.items()):
        if wanted and w_ns != wanted:
            continue
        if any(w.service_account == name for w in ws):
            return Client(w_ns, name)
    return Client(str(wanted or ns), name)


def authz_probes(objects: list[dict[str, Any]], world: World) -> list[Probe]:
    """Probes for the Services behind every ServiceIntentions destination."""
    clients: set[Client] = set()
    requests: dict[str, set[tuple[str, str]]] = {}
    services: set[tuple[str, str]] = set()
    defaults = [o for o in objects if _consul(o, "ServiceDefaults") or _consul(o, "ProxyDefaults")]
    for obj in objects:
        try:
            if not _consul(obj, "ServiceIntentions"):
                continue
            ns = str(dig(obj, "metadata", "namespace", default="default"))
            dest = str(dig(obj, "spec", "destination", "name", default=""))
            reqs: set[tuple[str, str]] = set()
            for source in dig(obj, "spec", "sources", default=[]):
                name = str(source.get("name", ""))
                if name and name != "*":
                    clients.add(_client(world, name, ns, source))
                for perm in source.get("permissions") or []:
                    http = perm.get("http") if isinstance(perm, dict) else None
                    if isinstance(http, dict):
                        spec = _match(http)
                        for path in spec["paths"][:2]:
                            reqs |= {(path, spec["method"]), (path, "PATCH")}
            for key in _services(world, dest):
                services.add(key)
                requests.setdefault(key[0], set()).update(reqs)
        except _DAMAGED:
            continue
    for obj in defaults:  # mTLS mode alone decides for unauthenticated callers
        name = str(dig(obj, "metadata", "name", default=""))
        if dig(obj, "spec", "mutualTLSMode", default=None):
            for key in (_services(world, name) if _consul(obj, "ServiceDefaults")
                        else sorted(world.services)):
                services.add(key)
                requests.setdefault(key[0], set())
    # A Service no intention names still has an access rule: the default (ACL default policy,
    # and the mTLS mode for plaintext callers). A target that opens or closes it differs for
    # any caller, so an unknown and an unauthenticated one probe it.
    # ("The default ACL policy configuration determines the default behavior for intentions":
    # developer.hashicorp.com/consul/docs/secure-mesh/intention/create)
    bare = {key for key, svc in world.services.items() if svc.selector and key not in services}
    return identity_probes(world, requests, clients, services) + identity_probes(
        world, {ns: set() for ns, _ in bare}, set(), bare)
