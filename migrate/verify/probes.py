"""Probes generated from the source configuration itself.

For routing, each match block of each mesh VirtualService gives the request that hits it and
variants one condition away: the exact path and one character off, a prefix at and past a
segment boundary, each header present, absent and with another value, each method named and
one not named. For authorization, each identity a policy names, an unknown identity and an
unauthenticated client send each operation a policy names (and one it does not), on each port.
Damaged objects (already reported by the reader) give no probes.

This module generates Istio's probes and holds the helpers the Linkerd and Consul generators
(linkerd_probes.py, consul_probes.py) share: path variants, regex samples, per-Service match
variants and identity probes.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from migrate.verify.istio_eval import _host_key
from migrate.verify.model import Client, Probe, probe_order
from migrate.verify.world import World, dig

UNKNOWN = Client("meshmigrate-probe", "unknown")
ANONYMOUS = Client()
DEFAULT_CLIENT = Client("meshmigrate-probe", "client")
MAX_PER_SERVICE = 400
ROOT_NAMESPACE = "istio-system"
_DAMAGED = (TypeError, AttributeError, ValueError, KeyError)


def _paths(uri: Any) -> list[str]:
    if not isinstance(uri, dict):
        return []
    if "exact" in uri:
        v = str(uri["exact"])
        return [v, v + "x"]
    if "prefix" in uri:
        v = str(uri["prefix"])
        base = v.rstrip("/")
        return list(dict.fromkeys([v, v + "x", base + "/x", base or "/"]))
    return []


def _header_values(m: Any) -> list[str | None]:
    """A value that matches, then values that do not (None: header absent)."""
    if not isinstance(m, dict):
        return [None]
    if "exact" in m:
        return [str(m["exact"]), str(m["exact"]) + "-other", None]
    if "prefix" in m:
        return [str(m["prefix"]) + "x", "other", None]
    return ["x", None]


def _is_istio(obj: dict[str, Any], kind: str, group: str) -> bool:
    return obj.get("kind") == kind and str(obj.get("apiVersion", "")).startswith(group)


def routing_probes(objects: list[dict[str, Any]], world: World) -> list[Probe]:
    """Probes for every mesh VirtualService's rules, and for every Gateway API route with a
    Service parent (Istio reads those too: GAMMA)."""
    from migrate.verify import linkerd_probes  # the Gateway API samples live there

    out: list[Probe] = []
    for vs in objects:
        if _is_istio(vs, "VirtualService", "networking.istio.io"):
            try:
                out.extend(_vs_probes(vs, world))
            except _DAMAGED:
                continue
    return out + linkerd_probes.routing_probes(objects, world, ("gateway.networking.k8s.io",))


def _vs_probes(vs: dict[str, Any], world: World) -> list[Probe]:
    gateways = dig(vs, "spec", "gateways", default=[])
    if gateways and "mesh" not in gateways:
        return []
    ns = dig(vs, "metadata", "namespace", default="default")
    out: list[Probe] = []
    for host in dig(vs, "spec", "hosts", default=[]):
        key = _host_key(str(host), ns)
        svc = world.services.get(key) if key else None
        if svc is None or not svc.ports:
            continue
        port = svc.ports[0][0]
        probes = [Probe(svc.namespace, svc.name, port, "/", "GET", (), DEFAULT_CLIENT,
                        "baseline")]
        for i, rule in enumerate(dig(vs, "spec", "http", default=[])):
            for j, m in enumerate(rule.get("match") or [] if isinstance(rule, dict) else []):
                if isinstance(m, dict):
                    why = f"{ns}/{dig(vs, 'metadata', 'name')} http[{i}].match[{j}]"
                    probes.extend(_match_probes(svc.namespace, svc.name, port, m, why))
        if svc.grpc:
            probes = [g for g in map(_as_grpc, probes) if g is not None]
        out.extend(sorted(set(probes), key=probe_order)[:MAX_PER_SERVICE])
    return out


def _as_grpc(probe: Probe) -> Probe | None:
    """The probe as a gRPC call (``POST /<service>/<method>``), or None when its path cannot
    be one: a gRPC client never sends another shape, so such a probe tests nothing real."""
    parts = probe.path.partition("?")[0].strip("/").split("/")
    if len(parts) == 1 and parts[0]:
        path = f"/{parts[0]}/Probe"
    elif len(parts) == 2 and all(parts):
        path = f"/{parts[0]}/{parts[1]}"
    else:
        return None
    return Probe(probe.namespace, probe.service, probe.port, path, "POST", probe.headers,
                 probe.client, probe.why)


def _match_probes(ns: str, name: str, port: int, m: dict[str, Any], why: str) -> list[Probe]:
    paths = _paths(m.get("uri")) or ["/"]
    method = m.get("method")
    methods = [str(method["exact"])] if isinstance(method, dict) and "exact" in method else ["GET"]
    hit = {str(k).lower(): _header_values(v)[0] for k, v in (m.get("headers") or {}).items()}
    base = tuple(sorted((k, v) for k, v in hit.items() if v is not None))
    out = [Probe(ns, name, port, path, verb, base, DEFAULT_CLIENT, why)
           for path in paths for verb in dict.fromkeys(methods + ["DELETE"])]
    for header, sm in (m.get("headers") or {}).items():
        for value in _header_values(sm)[1:]:
            headers = {**hit, str(header).lower(): value}
            out.append(Probe(ns, name, port, paths[0], methods[0],
                             tuple(sorted((k, v) for k, v in headers.items() if v is not None)),
                             DEFAULT_CLIENT, why))
    return out


def _named_clients(policy: dict[str, Any]) -> set[Client]:
    found: set[Client] = set()
    for rule in dig(policy, "spec", "rules", default=[]):
        for f in rule.get("from") or [] if isinstance(rule, dict) else []:
            src = (f.get("source") or {}) if isinstance(f, dict) else {}
            for principal in src.get("principals") or []:
                parts = str(principal).split("/")
                if len(parts) == 5 and parts[1] == "ns" and "*" not in parts[2]:
                    found.add(Client(parts[2], parts[4] if parts[4] != "*" else "default"))
            for ns in src.get("namespaces") or []:
                if "*" not in str(ns):
                    found.add(Client(str(ns), "default"))
            for sa in src.get("serviceAccounts") or []:
                n, _, s = str(sa).partition("/")
                if s:
                    found.add(Client(n, s))
    return found


NAMESPACE_MEMBERS = 3
"""Service accounts of a namespace's workloads a namespace-wide source is probed with."""


def _namespace_members(clients: set[Client], world: World) -> set[Client]:
    """For a namespace a policy names as a whole (probed as its ``default`` account), the
    service accounts its workloads really run as (the first few): a target that cannot name
    a namespace lists its identities instead, and only these probes check that list."""
    out: set[Client] = set()
    for c in clients:
        if c.service_account == "default":
            accounts = sorted({w.service_account for w in world.workloads.get(c.namespace, [])})
            out |= {Client(c.namespace, sa) for sa in accounts[:NAMESPACE_MEMBERS]}
    return out


def _policy_requests(policy: dict[str, Any]) -> set[tuple[str, str]]:
    reqs: set[tuple[str, str]] = set()
    for rule in dig(policy, "spec", "rules", default=[]):
        for t in rule.get("to") or [] if isinstance(rule, dict) else []:
            op = (t.get("operation") or {}) if isinstance(t, dict) else {}
            methods = [str(x) for x in op.get("methods") or ["GET"] if "*" not in str(x)]
            for path in op.get("paths") or ["/"]:
                path = str(path)
                concrete = path[:-1] + "x" if path.endswith("*") else (
                    "/x" + path[1:] if path.startswith("*") else path)
                for method in methods + ["PATCH"]:
                    reqs.add((concrete, method))
                    if path.endswith("*"):
                        reqs.add((path[:-1].rstrip("/") or "/", method))
    return reqs


def authz_probes(objects: list[dict[str, Any]], world: World) -> list[Probe]:
    """Probes for every Service in front of workloads authorization or mTLS covers.

    Each Service gets the requests and identities of the policies that apply to its pods (a
    policy applies in its own namespace, to the pods its selector matches, or everywhere from
    Istio's root namespace, whose usual name is assumed: probe generators see no settings).
    Taking every identity a namespace or the mesh names made the probe count grow with the
    square of the mesh, for no request a policy would treat differently.
    """
    policies = [o for o in objects if _is_istio(o, "AuthorizationPolicy", "security.istio.io")]
    peer = [o for o in objects if _is_istio(o, "PeerAuthentication", "security.istio.io")]
    by_ns: dict[str, list[tuple[dict[str, str] | None, set[Client], set[tuple[str, str]]]]] = {}
    # Tagged rather than tested with ``p in policies``: that compares whole dicts against
    # every policy, quadratic on a large mesh.
    for is_authz, p in [(True, p) for p in policies] + [(False, p) for p in peer]:
        ns = str(dig(p, "metadata", "namespace", default="default"))
        entries = by_ns.setdefault(ns, [])
        try:
            selector = dig(p, "spec", "selector", "matchLabels", default=None)
            named = _named_clients(p) if is_authz else set()
            reqs = _policy_requests(p) if is_authz else set()
            entries.append((dict(selector) if isinstance(selector, dict) else None, named, reqs))
        except _DAMAGED:
            continue
    mesh_wide = by_ns.get(ROOT_NAMESPACE, [])
    out: list[Probe] = []
    for (ns, name), svc in sorted(world.services.items()):
        if ns not in by_ns or not svc.selector:
            continue
        labels = [dict(w.labels) for w in world.workloads.get(ns, [])
                  if all(dict(w.labels).get(k) == v for k, v in svc.selector)]
        clients: set[Client] = {UNKNOWN, ANONYMOUS}
        requests: set[tuple[str, str]] = {("/", "GET"), ("/", "DELETE")}
        for selector, named, reqs in by_ns[ns] + (mesh_wide if ns != ROOT_NAMESPACE else []):
            if selector is None or any(all(pod.get(k) == v for k, v in selector.items())
                                       for pod in labels):
                clients |= named
                requests |= reqs
        clients |= _namespace_members(clients, world)
        # The first MAX_PER_SERVICE probes in sorted order, made in that order (Probe sorts
        # by port, path, method, then client) instead of all made and sorted: requests times
        # identities grows with the square of a policy's rules (9 minutes at 2,000 rules).
        ordered = (Probe(ns, name, port, path, method, (), client, "authorization")
                   for port in sorted({port for port, _, _ in svc.ports})
                   for path, method in sorted(requests)
                   for client in sorted(clients))
        out.extend(islice(ordered, MAX_PER_SERVICE))
    return out


# -- helpers the other meshes' probe generators share ---------------------------------------
def prefix_paths(prefix: str) -> list[str]:
    """A raw prefix, one character past it, past the segment, and the bare segment."""
    return _paths({"prefix": prefix})


def exact_paths(path: str) -> list[str]:
    """The exact path and one character off."""
    return _paths({"exact": path})


_REGEX_FILLS = [(r"\[\^/\]\+", "x"), (r"\[\^/\]\*", "x"), (r"\\d\+", "1"), (r"\\d\*", "1"),
                (r"\[0-9\]\+", "1"), (r"\[0-9\]\*", "1"), (r"\\w\+", "x"), (r"\.\+", "x"),
                (r"\.\*", "x"), (r"\[a-z\]\+", "x"), (r"\[a-zA-Z0-9_-\]\+", "x")]


def regex_sample(pattern: str) -> str | None:
    """A path the regular expression matches in full, guessed by filling its common wildcards
    (``[^/]+``, ``.*``, ``\\d+``...), or None when the guess does not match."""
    import re

    text = pattern.removeprefix("^").removesuffix("$")
    for wild, fill in _REGEX_FILLS:
        text = re.sub(wild, fill, text)
    text = re.sub(r"\\(.)", r"\1", text).replace("?", "")
    try:
        return text if re.fullmatch(pattern, text) else None
    except re.error:
        return None


def service_probes(ns: str, name: str, world: World, matches: list[dict[str, Any]],
                   why: str) -> list[Probe]:
    """Probes for one Service from mesh-neutral match descriptions: each dict may give
    ``paths`` (the hit first), ``method``, ``headers`` and ``query`` (name -> values, the hit
    first, None for absent). A baseline ``GET /`` is always included; gRPC Services get
    gRPC-shaped probes only."""
    svc = world.services.get((ns, name))
    if svc is None or not svc.ports:
        return []
    port = svc.ports[0][0]
    probes = [Probe(ns, name, port, "/", "GET", (), DEFAULT_CLIENT, "baseline")]
    for m in matches:
        paths = list(m.get("paths") or ["/"])
        method = str(m.get("method") or "GET")
        headers: dict[str, list[str | None]] = m.get("headers") or {}
        query: dict[str, list[str | None]] = m.get("query") or {}
        hit_h = {k: v[0] for k, v in headers.items() if v and v[0] is not None}
        hit_q = {k: v[0] for k, v in query.items() if v and v[0] is not None}

        def make(path: str, verb: str, hs: dict[str, Any], qs: dict[str, Any]) -> Probe:
            q = "&".join(f"{k}={v}" for k, v in sorted(qs.items()) if v is not None)
            return Probe(ns, name, port, path + (f"?{q}" if q else ""), verb,
                         tuple(sorted((k, v) for k, v in hs.items() if v is not None)),
                         DEFAULT_CLIENT, why)

        probes += [make(p, verb, hit_h, hit_q) for p in paths
                   for verb in dict.fromkeys([method, "DELETE"])]
        for h, values in sorted(headers.items()):
            probes += [make(paths[0], method, {**hit_h, h: v}, hit_q) for v in values[1:]]
        for q, values in sorted(query.items()):
            probes += [make(paths[0], method, hit_h, {**hit_q, q: v}) for v in values[1:]]
    if svc.grpc:
        probes = [g for g in map(_as_grpc, probes) if g is not None]
    return sorted(set(probes), key=probe_order)[:MAX_PER_SERVICE]


def identity_probes(world: World, namespaces: dict[str, set[tuple[str, str]]],
                    clients: set[Client] | dict[str, set[Client]],
                    services: set[tuple[str, str]] | None = None) -> list[Probe]:
    """Authorization probes: every client sends every request to every port of the Services
    (with a selector) in the given namespaces, or of the given Services. ``clients`` is one
    set for every namespace, or a set per namespace (key ``*``: every namespace); an unknown
    identity and an unauthenticated client are always added."""
    out: list[Probe] = []
    for (ns, name), svc in sorted(world.services.items()):
        if ns not in namespaces or not svc.selector or (
                services is not None and (ns, name) not in services):
            continue
        named = clients if isinstance(clients, set) else \
            clients.get(ns, set()) | clients.get("*", set())
        probes = {Probe(ns, name, port, path, method, (), client, "authorization")
                  for port, _, _ in svc.ports
                  for path, method in sorted(namespaces[ns] | {("/", "GET"), ("/", "DELETE")})
                  for client in sorted(named | {UNKNOWN, ANONYMOUS})}
        out.extend(sorted(probes, key=probe_order)[:MAX_PER_SERVICE])
    return out
