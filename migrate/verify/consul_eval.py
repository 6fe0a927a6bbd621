"""What Consul service mesh does with a request, read from consul-k8s config-entry CRDs.

Semantics (mapping-consul-others.md section 1; consul agent/consul/discoverychain/compile.go):
- a client dials a Consul service, named after the Kubernetes Service (or the pods'
  ``consul.hashicorp.com/connect-service`` annotation); in Consul CE every Kubernetes namespace
  collapses into one Consul namespace, so same-named Services in two namespaces are one service
  (``mirror_namespaces=True`` models Enterprise mirroring instead);
- L7 entries (ServiceRouter, ServiceSplitter, L7 intention permissions) only apply when the
  service's protocol is http, http2 or grpc (ServiceDefaults ``protocol``, else ProxyDefaults
  ``global`` ``config.protocol``, else tcp); Consul refuses them otherwise (section 1.6);
- ServiceRouter ``routes`` are tried in order, the first whose ``match.http`` matches wins
  (``pathExact``, ``pathPrefix`` as a raw string prefix, ``pathRegex`` on the whole path,
  ``header``, ``queryParam``, ``methods``); no match goes to the service itself;
- a destination without ``serviceSubset`` goes through that service's ServiceSplitter, whose
  splits go to a subset (resolver) or to another service's splitter (flattened), a split back
  to the splitter's own service goes to its resolver (compile.go getSplitterOrResolverNode);
- ServiceResolver ``redirect`` replaces the service (and subset), ``defaultSubset`` applies to
  un-subsetted references, a subset's ``filter`` selects instances by ``Service.Meta`` (pod
  annotations ``consul.hashicorp.com/service-meta-<key>``) or ``Service.Tags``
  (``consul.hashicorp.com/service-tags``);
- timeout: the route's ``requestTimeout``, else the resolver's; retries: ``numRetries``, or
  Envoy's default of one when only retry conditions are set;
- intentions are evaluated at the destination: the most precise matching source wins (exact
  name over ``*``; an exact destination over ``*``), ties go to deny; an L7 source's
  ``permissions`` are first-match, and a request matching none falls through to the default
  (a parameter: default deny, as with ACLs managed by the Helm chart); a source identity is the
  caller's ServiceAccount name (consul-k8s binds the ACL service identity to it, section 1.3);
- mTLS is strict unless ``mutualTLSMode: permissive`` (ServiceDefaults over ProxyDefaults) and
  the Mesh entry has ``allowEnablingPermissiveMutualTLS``; plaintext is then accepted and
  intentions are not enforced for it (section 1.7, "mTLS mode").
"""

from __future__ import annotations

import re
from typing import Any

from migrate.verify import changes, consul_filter, injection
from migrate.verify.model import Outcome, Probe
from migrate.verify.world import WorkloadInfo, World, dig, rule_origin, unique

L7 = ("http", "http2", "grpc")
CONNECT_SERVICE = "consul.hashicorp.com/connect-service"
META_PREFIX = "consul.hashicorp.com/service-meta-"
TAGS = "consul.hashicorp.com/service-tags"
_KINDS = ("ServiceDefaults", "ServiceRouter", "ServiceSplitter", "ServiceResolver",
          "ServiceIntentions", "ProxyDefaults", "Mesh")
_MAX_DEPTH = 8  # Consul rejects chains with cycles; this only guards damaged input


def _ref(obj: dict[str, Any]) -> str:
    return (f"{obj.get('kind')}/{dig(obj, 'metadata', 'namespace', default='default')}/"
            f"{dig(obj, 'metadata', 'name', default='')}")


class ConsulEvaluator:
    """Evaluates probes against consul.hashicorp.com config entries."""

    def __init__(self, objects: list[dict[str, Any]], world: World,
                 default_allow: bool = False, mirror_namespaces: bool = False,
                 inject_default: bool = False) -> None:
        self.world = world
        self.inject_default = inject_default
        """Helm ``connectInject.default``: pods without the annotation are injected."""
        self.default_allow = default_allow
        self.mirror = mirror_namespaces
        self.entries: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.intentions: list[dict[str, Any]] = []
        for obj in sorted(unique(objects), key=_ref):
            kind, api = obj.get("kind"), str(obj.get("apiVersion", ""))
            if kind not in _KINDS or not api.startswith("consul.hashicorp.com/"):
                continue
            ns = str(dig(obj, "metadata", "namespace", default="default"))
            if kind == "ServiceIntentions":
                self.intentions.append(obj)
            else:
                key = (str(kind), ns if self.mirror else "",
                       str(dig(obj, "metadata", "name", default="")))
                self.entries.setdefault(key, obj)

    def _intentions_for(self, dest: str) -> list[dict[str, Any]]:
        """Intentions whose destination is ``dest`` or ``*``, in input order (indexed once)."""
        if not hasattr(self, "_by_dest"):
            self._by_dest: dict[str, list[tuple[int, dict[str, Any]]]] = {}
            for i, intention in enumerate(self.intentions):
                name = str(dig(intention, "spec", "destination", "name", default=""))
                self._by_dest.setdefault(name, []).append((i, intention))
        pairs = self._by_dest.get(dest, []) + (self._by_dest.get("*", []) if dest != "*" else [])
        return [obj for _, obj in sorted(pairs, key=lambda pair: pair[0])]

    # -- names -----------------------------------------------------------------------------
    def _entry(self, kind: str, name: str, ns: str) -> dict[str, Any] | None:
        return self.entries.get((kind, ns if self.mirror else "", name))

    def service_name(self, namespace: str, service: str) -> str:
        """The Consul service a Kubernetes Service's pods register as."""
        svc = self.world.services.get((namespace, service))
        pods = [self.world.workload(w) for w in
                self.world.select(namespace, dict(svc.selector))] if svc else []
        names = {dict(p.annotations).get(CONNECT_SERVICE) for p in pods if p is not None}
        if len(names) == 1 and None not in names:
            return str(names.pop())
        return service

    def workload_name(self, info: WorkloadInfo, service: str) -> str:
        """The Consul service a workload registers as, when reached through ``service``."""
        named = dict(info.annotations).get(CONNECT_SERVICE)
        return named or service

    def protocol(self, name: str, ns: str) -> str:
        """The Consul protocol of a service (tcp unless configured)."""
        defaults = self._entry("ServiceDefaults", name, ns)
        proto = dig(defaults, "spec", "protocol", default="") if defaults else ""
        if not proto:
            proxy = self._entry("ProxyDefaults", "global", ns) or next(
                (e for (k, _, n), e in sorted(self.entries.items())
                 if k == "ProxyDefaults" and n == "global"), None)
            proto = dig(proxy, "spec", "config", "protocol", default="") if proxy else ""
        return str(proto or "tcp").lower()

    def _endpoints(self, name: str, ns: str) -> list[WorkloadInfo]:
        if not hasattr(self, "_by_name"):
            # Indexed once: a scan of every Service per probe made large meshes quadratic.
            self._by_name: dict[str, list[tuple[tuple[str, str], Any]]] = {}
            for key, svc in sorted(self.world.services.items()):
                self._by_name.setdefault(key[1], []).append((key, svc))
            self._by_connect: dict[str, list[WorkloadInfo]] = {}
            for ws in self.world.workloads.values():
                for info in ws:
                    named = dict(info.annotations).get(CONNECT_SERVICE)
                    if named:
                        self._by_connect.setdefault(named, []).append(info)
        found: dict[str, WorkloadInfo] = {}
        for (s_ns, s_name), svc in self._by_name.get(name, []):
            if s_name != name or (self.mirror and s_ns != ns) or not svc.selector:
                continue
            for wid in self.world.select(s_ns, dict(svc.selector)):
                info = self.world.workload(wid)
                if info is not None and dict(info.annotations).get(CONNECT_SERVICE,
                                                                   name) == name:
                    found[wid] = info
        for info in self._by_connect.get(name, []):
            if not self.mirror or info.namespace == ns:
                found[info.id] = info
        return [found[k] for k in sorted(found)]

    def _backend(self, name: str, subset: str, ns: str,
                 resolver: dict[str, Any] | None) -> str:
        pods = self._endpoints(name, ns)
        if subset:
            spec = dig(resolver, "spec", "subsets", subset, default=None) if resolver else None
            if not isinstance(spec, dict):
                return f"Service/{ns}/{name}#{subset} (undefined subset)"
            expr = str(spec.get("filter", ""))
            pods = [p for p in pods if _instance_matches(expr, p, name)]
            if not pods:
                return f"Service/{ns}/{name}#{subset}"
        if pods:
            return "+".join(p.id for p in pods)
        svc = self.world.services.get((ns, name)) or next(
            (s for (_, n), s in sorted(self.world.services.items()) if n == name), None)
        return (self.world.backend(svc.namespace, dict(svc.selector)) if svc else "") or \
            f"Service/{ns}/{name}"

    # -- routing ---------------------------------------------------------------------------
    def route(self, probe: Probe) -> Outcome:
        """Where the client's proxy sends a request (the compiled discovery chain)."""
        ns = probe.namespace
        name = self.service_name(ns, probe.service)
        l7 = self.protocol(name, ns) in L7
        router = self._entry("ServiceRouter", name, ns) if l7 else None
        sources: set[str] = set()
        dest: dict[str, Any] = {}
        matched: dict[str, Any] | None = None
        rule_path = origin = ""
        if router is not None:
            sources.add(_ref(router))
            for index, r in enumerate(dig(router, "spec", "routes", default=[])):
                if isinstance(r, dict) and _route_matches(r.get("match"), probe):
                    dest = r.get("destination") if isinstance(r.get("destination"), dict) \
                        else {}
                    rule_path, origin = f"spec.routes[{index}]", rule_origin(router, index)
                    matched = r.get("match") if isinstance(r.get("match"), dict) else None
                    break
        service = str(dest.get("service") or name)
        shares: dict[str, float] = {}
        split_ops: list[dict[str, Any]] = []
        self._split_or_resolve(service, str(dest.get("serviceSubset") or ""), ns, 1.0,
                               shares, sources, 0, use_splitter=not dest.get("serviceSubset"),
                               split_ops=split_ops)
        resolver = self._entry("ServiceResolver", service, ns)
        timeout = str(dest.get("requestTimeout") or
                      (dig(resolver, "spec", "requestTimeout", default="") if resolver else ""))
        if timeout in ("0", "0s"):
            timeout = ""
        rewrite, req, resp = changes.consul_route(dest, matched, probe.path)
        for split in split_ops:  # a split's header changes apply to the requests it takes
            _, s_req, s_resp = changes.consul_route(split, None, probe.path)
            req, resp = changes.union(req, s_req), changes.union(resp, s_resp)
        return Outcome("routed", tuple(sorted((k, round(v, 4)) for k, v in shares.items()
                                              if v > 0)),
                       timeout=timeout, retries=_retries(dest), rewrite=rewrite,
                       request_headers=req, response_headers=resp,
                       sources=tuple(sorted(sources)),
                       rule_path=rule_path, origin_path=origin)

    def _split_or_resolve(self, service: str, subset: str, ns: str, share: float,
                          out: dict[str, float], sources: set[str], depth: int,
                          use_splitter: bool, split_ops: list[dict[str, Any]] | None = None
                          ) -> None:
        splitter = self._entry("ServiceSplitter", service, ns) \
            if use_splitter and depth < _MAX_DEPTH and self.protocol(service, ns) in L7 else None
        if splitter is None:
            self._resolve(service, subset, ns, share, out, sources, depth)
            return
        sources.add(_ref(splitter))
        splits = [s for s in dig(splitter, "spec", "splits", default=[]) if isinstance(s, dict)]
        for split in splits:
            weight = float(split.get("weight") or 0) / 100.0
            if split_ops is not None and weight > 0:
                split_ops.append(split)
            target = str(split.get("service") or service)
            sub = str(split.get("serviceSubset") or "")
            if sub or target == service:
                self._resolve(target, sub, ns, share * weight, out, sources, depth + 1)
            else:  # another service's splitter, flattened into this one
                self._split_or_resolve(target, "", ns, share * weight, out, sources,
                                       depth + 1, True, split_ops)

    def _resolve(self, service: str, subset: str, ns: str, share: float,
                 out: dict[str, float], sources: set[str], depth: int) -> None:
        resolver = self._entry("ServiceResolver", service, ns)
        if resolver is not None:
            sources.add(_ref(resolver))
            redirect = dig(resolver, "spec", "redirect", default=None)
            if isinstance(redirect, dict) and depth < _MAX_DEPTH and (
                    redirect.get("service") or redirect.get("serviceSubset")):
                self._resolve(str(redirect.get("service") or service),
                              str(redirect.get("serviceSubset") or ""), ns, share, out,
                              sources, depth + 1)
                return
            if not subset:
                subset = str(dig(resolver, "spec", "defaultSubset", default="") or "")
        name = self._backend(service, subset, ns, resolver)
        out[name] = out.get(name, 0.0) + share

    # -- authorization ---------------------------------------------------------------------
    def allowed(self, probe: Probe, workload: str, port: int) -> tuple[bool, tuple[str, ...]]:
        """Whether the destination proxy lets the request in, and the deciding entries."""
        info = self.world.workload(workload)
        if info is None or not injection.consul(info, self.inject_default):
            return True, ()  # no proxy in the pod: nothing is enforced there
        ns = info.namespace
        dest = self.workload_name(info, self.service_name(probe.namespace, probe.service))
        if not probe.client.authenticated:
            permissive, src = self._permissive(dest, ns)
            return permissive, src
        l7 = self.protocol(dest, ns) in L7
        best: tuple[int, int, dict[str, Any], dict[str, Any]] | None = None
        for intention in self._intentions_for(dest):
            d_name = str(dig(intention, "spec", "destination", "name", default=""))
            d_ns = dig(intention, "spec", "destination", "namespace",
                       default=dig(intention, "metadata", "namespace", default="default"))
            if d_name not in (dest, "*") or (self.mirror and d_ns not in (ns, "*")):
                continue
            for source in dig(intention, "spec", "sources", default=[]):
                if not isinstance(source, dict):
                    continue
                precision = self._source_precision(source, probe, d_ns)
                if precision is None or (source.get("permissions") and not l7):
                    continue  # an L7 source on a TCP service is refused by Consul
                rank = precision + (10 if d_name != "*" else 0)
                deny = 1 if str(source.get("action", "")).lower() == "deny" else 0
                if best is None or (rank, deny) > best[:2]:
                    best = (rank, deny, intention, source)
        if best is None:
            return self.default_allow, ()
        _, _, intention, source = best
        ref = (_ref(intention),)
        if dig(intention, "spec", "jwt", default=None):
            return False, ref  # a JWT is required from every source; probes carry none
        if source.get("permissions"):
            for perm in source["permissions"]:
                if isinstance(perm, dict) and _permission_matches(perm, probe):
                    return str(perm.get("action", "")).lower() == "allow", ref
            return self.default_allow, ref
        return str(source.get("action", "")).lower() == "allow", ref

    def authorization_rules(self, probe: Probe, workload: str, port: int
                            ) -> set[tuple[str, str]]:
        """The intention sources (``spec.sources[i]``) and L7 permissions
        (``spec.sources[i].permissions[j]``) at the workload's destination that the request
        matches, whichever decided (for coverage). Plaintext requests meet no intention."""
        info = self.world.workload(workload)
        if info is None or not injection.consul(info, self.inject_default) or \
                not probe.client.authenticated:
            return set()
        out: set[tuple[str, str]] = set()
        for intention, d_ns in self._destination_intentions(probe, info):
            for i, source in enumerate(dig(intention, "spec", "sources", default=[]) or []):
                if not isinstance(source, dict) or \
                        self._source_precision(source, probe, d_ns) is None:
                    continue
                perms = source.get("permissions") or []
                if not perms:
                    out.add((_ref(intention), f"spec.sources[{i}]"))
                out |= {(_ref(intention), f"spec.sources[{i}].permissions[{j}]")
                        for j, perm in enumerate(perms)
                        if isinstance(perm, dict) and _permission_matches(perm, probe)}
        return out

    def targets(self, probe: Probe, workload: str) -> set[str]:
        """The intentions whose destination is the workload's Consul service (or ``*``), when
        its proxy enforces them (for coverage)."""
        info = self.world.workload(workload)
        if info is None or not injection.consul(info, self.inject_default):
            return set()
        return {_ref(i) for i, _ in self._destination_intentions(probe, info)}

    def _destination_intentions(self, probe: Probe, info: WorkloadInfo
                                ) -> list[tuple[dict[str, Any], str]]:
        """The intentions (with their destination namespace) for the workload's service."""
        dest = self.workload_name(info, self.service_name(probe.namespace, probe.service))
        out = []
        for intention in self._intentions_for(dest):
            d_name = str(dig(intention, "spec", "destination", "name", default=""))
            d_ns = dig(intention, "spec", "destination", "namespace",
                       default=dig(intention, "metadata", "namespace", default="default"))
            if d_name in (dest, "*") and not (self.mirror and d_ns not in (info.namespace, "*")):
                out.append((intention, str(d_ns)))
        return out

    def _source_precision(self, source: dict[str, Any], probe: Probe,
                          dest_ns: str) -> int | None:
        if source.get("peer") or source.get("samenessGroup") or source.get("partition") not in (
                None, "", "default"):
            return None  # another cluster or partition: never a local probe
        name = str(source.get("name", ""))
        if name not in (probe.client.service_account, "*"):
            return None
        if not self.mirror:
            return 2 if name != "*" else 1
        s_ns = str(source.get("namespace") or dest_ns)
        if s_ns not in (probe.client.namespace, "*"):
            return None
        return {(True, True): 3, (True, False): 2, (False, False): 1}.get(
            (s_ns != "*", name != "*"), 1)

    def _permissive(self, dest: str, ns: str) -> tuple[bool, tuple[str, ...]]:
        mesh = next((e for (k, _, _), e in sorted(self.entries.items()) if k == "Mesh"), None)
        enabled = bool(dig(mesh, "spec", "allowEnablingPermissiveMutualTLS", default=False))
        defaults = self._entry("ServiceDefaults", dest, ns)
        mode = dig(defaults, "spec", "mutualTLSMode", default="") if defaults else ""
        src = defaults
        if not mode:
            proxy = next((e for (k, _, n), e in sorted(self.entries.items())
                          if k == "ProxyDefaults" and n == "global"), None)
            mode = dig(proxy, "spec", "mutualTLSMode", default="") if proxy else ""
            src = proxy
        refs = tuple(_ref(o) for o in (src, mesh) if o is not None)
        return str(mode).lower() == "permissive" and enabled, refs


def _instance_matches(expr: str, info: WorkloadInfo, service: str) -> bool:
    notes = dict(info.annotations)
    meta = {k[len(META_PREFIX):]: v for k, v in notes.items() if k.startswith(META_PREFIX)}
    # consul-k8s adds these to every instance (control-plane/connect-inject/constants).
    meta.setdefault("k8s-namespace", info.namespace)
    tags = [t.strip() for t in notes.get(TAGS, "").split(",") if t.strip()]
    return consul_filter.matches(expr, meta, tags, service)


def _retries(dest: dict[str, Any]) -> int:
    if isinstance(dest.get("numRetries"), int) and dest["numRetries"] > 0:
        return int(dest["numRetries"])
    if dest.get("retryOn") or dest.get("retryOnStatusCodes") or dest.get("retryOnConnectFailure"):
        return 1  # Envoy's RetryPolicy.num_retries default
    return 0


def _full(pattern: str, text: str) -> bool:
    try:
        return re.fullmatch(pattern, text) is not None
    except re.error:
        return False


def _path_ok(m: dict[str, Any], path: str) -> bool:
    if m.get("caseInsensitive") is True:
        path = path.lower()
        m = {k: (v.lower() if isinstance(v, str) and k.startswith("path") else v)
             for k, v in m.items()}
    if "pathExact" in m and path != str(m["pathExact"]):
        return False
    if "pathPrefix" in m and not path.startswith(str(m["pathPrefix"])):
        return False
    return not ("pathRegex" in m and not _full(str(m["pathRegex"]), path))


def _header_ok(h: dict[str, Any], got: str | None) -> bool:
    if h.get("present") is True or not any(k in h for k in ("exact", "prefix", "suffix",
                                                            "regex", "contains")):
        result = got is not None
    elif got is None:
        result = False
    else:
        value = got.lower() if h.get("ignoreCase") is True else got
        want = {k: (str(v).lower() if h.get("ignoreCase") is True else str(v))
                for k, v in h.items() if k in ("exact", "prefix", "suffix", "regex",
                                               "contains")}
        result = all([value == want["exact"] if "exact" in want else True,
                      value.startswith(want["prefix"]) if "prefix" in want else True,
                      value.endswith(want["suffix"]) if "suffix" in want else True,
                      want["contains"] in value if "contains" in want else True,
                      _full(want["regex"], value) if "regex" in want else True])
    return result != (h.get("invert") is True)


def _http_matches(m: dict[str, Any], probe: Probe) -> bool:
    path = probe.path.partition("?")[0]
    if not _path_ok(m, path):
        return False
    methods = [str(x).upper() for x in m.get("methods") or []]
    if "*" in methods:
        methods = []  # read as any method, as the reader does (dialects/consul/methods.py)
    if methods and probe.method not in methods:
        return False
    headers = dict(probe.headers)
    for h in m.get("header") or []:
        if isinstance(h, dict) and not _header_ok(h, headers.get(str(h.get("name", "")).lower())):
            return False
    query = dict(q.split("=", 1) for q in probe.path.partition("?")[2].split("&") if "=" in q)
    for q in m.get("queryParam") or []:
        if not isinstance(q, dict):
            continue
        got = query.get(str(q.get("name", "")))
        if got is None or ("exact" in q and got != str(q["exact"])) or \
                ("regex" in q and not _full(str(q["regex"]), got)):
            return False
    return True


def _route_matches(match: Any, probe: Probe) -> bool:
    """A ServiceRouter route's ``match`` (absent: matches everything)."""
    if not isinstance(match, dict):
        return match is None
    http = match.get("http")
    return _http_matches(http, probe) if isinstance(http, dict) else http is None


def _permission_matches(perm: dict[str, Any], probe: Probe) -> bool:
    if perm.get("jwt"):
        return False  # probes carry no JWT
    http = perm.get("http")
    return _http_matches(http, probe) if isinstance(http, dict) else True
