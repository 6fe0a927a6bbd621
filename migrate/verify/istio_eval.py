"""What Istio does with a request, read from Istio's own manifests.

Semantics (istio/api networking/v1 virtual_service.proto, security/v1beta1
authorization_policy.proto, peer_authentication.proto): VirtualService http rules are tried in
list order and the first match wins; no VirtualService means the Service's endpoints; a
VirtualService with no matching rule answers 404. Authorization is CUSTOM, then DENY, then
ALLOW (when any ALLOW policy applies, one must match); STRICT mTLS refuses plaintext.

Istio also reads ``gateway.networking.k8s.io`` HTTPRoutes and GRPCRoutes whose parent is a
Service (GAMMA; pilot/pkg/config/kube/gateway/conversion.go turns them into VirtualServices):
those follow Istio's own ordering of the converted rules (``gateway.istio_rank``: like Gateway
API precedence, except that a regular expression ranks below every prefix), ``timeouts.request``
and the experimental ``retry.attempts`` (Istio 1.30 converts it; mapping-istio-linkerd.md
section 6); without it the implicit default retry policy applies as for any VirtualService.
Istio makes a mesh VirtualService of such a route, so a VirtualService for the same host is a
conflict in which Istio applies one of them (IST0109); which one is not defined, and the
Istio reader reports it (ROUTE_HOST_CONFLICT). Here the VirtualService is taken.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from migrate.verify import changes, gateway, injection
from migrate.verify.index import ByNamespace, ByParent
from migrate.verify.model import Outcome, Probe
from migrate.verify.world import World, dig, rule_origin

DEFAULT_RETRIES = 2  # istio pilot/pkg/networking/core/route/retry/retry.go


def _host_key(host: str, namespace: str) -> tuple[str, str] | None:
    parts = host.lower().split(".")
    if "*" in host or not parts[0]:
        return None
    if len(parts) == 1:
        return namespace, parts[0]
    if len(parts) == 2 or parts[2] == "svc":
        return parts[1], parts[0]
    return None


def string_match(m: Any, value: str | None, ignore_case: bool = False) -> bool:
    """Istio StringMatch against a value (None: absent)."""
    if not isinstance(m, dict):
        return False
    if value is None:
        return False
    if not m:
        return True  # presence
    if ignore_case:
        value = value.lower()
        m = {k: str(v).lower() for k, v in m.items()}
    if "exact" in m:
        return value == str(m["exact"])
    if "prefix" in m:
        return value.startswith(str(m["prefix"]))
    if "regex" in m:
        try:
            return re.fullmatch(str(m["regex"]), value) is not None
        except re.error:
            return False
    return False


class IstioEvaluator:
    """Evaluates probes against Istio manifests."""

    def __init__(self, objects: list[dict[str, Any]], world: World,
                 root_namespace: str = "istio-system", trust_domain: str = "cluster.local"):
        self.world = world
        self.root = root_namespace
        self.trust_domain = trust_domain
        self.vs: dict[tuple[str, str], dict[str, Any]] = {}
        self.dr: dict[tuple[str, str], dict[str, Any]] = {}
        self.pa = ByNamespace()
        self.ap = ByNamespace()
        self.routes = ByParent()
        self._applying: dict[tuple[str, tuple[tuple[str, str], ...]], list[dict[str, Any]]] = {}
        """AuthorizationPolicies applying to a namespace's pods with given labels (cached)."""
        self._rules: dict[int, tuple[Any, ...]] = {}
        """What a rule forwards to, by ``id(rule)``: it depends on the rule, not the request
        (the rules are held by ``self.vs``, so their ids stay theirs)."""
        self._modes: dict[tuple[Any, ...], tuple[str, tuple[str, ...]]] = {}
        """_mtls_mode answers per (namespace, pod labels, port)."""
        for obj in sorted(objects, key=lambda o: (str(dig(o, "metadata", "namespace",
                                                          default="")),
                                                  str(dig(o, "metadata", "name", default="")))):
            try:
                self._index(obj)
            except (TypeError, AttributeError, ValueError, KeyError):
                continue  # damaged: reported by the reader, left out here too

    def _index(self, obj: dict[str, Any]) -> None:
        kind, api = obj.get("kind"), str(obj.get("apiVersion", ""))
        if kind in ("HTTPRoute", "GRPCRoute") and api.startswith("gateway.networking.k8s.io/"):
            self.routes.append(obj)
            return
        if not api.startswith(("networking.istio.io", "security.istio.io")):
            return
        ns = dig(obj, "metadata", "namespace", default="default")
        if kind == "VirtualService":
            gateways = dig(obj, "spec", "gateways", default=[])
            if gateways and "mesh" not in gateways:
                return
            for host in dig(obj, "spec", "hosts", default=[]):
                key = _host_key(str(host), ns)
                if key:
                    self.vs.setdefault(key, obj)
        elif kind == "DestinationRule":
            key = _host_key(str(dig(obj, "spec", "host", default="")), ns)
            if key:
                self.dr.setdefault(key, obj)
        elif kind == "PeerAuthentication":
            self.pa.append(obj)
        elif kind == "AuthorizationPolicy":
            self.ap.append(obj)

    # -- routing ---------------------------------------------------------------------------
    def route(self, probe: Probe) -> Outcome:
        """Where a request goes, with which timeout and retries."""
        key = (probe.namespace, probe.service)
        vs = self.vs.get(key)
        attached = [r for r in self.routes.parented("Service", probe.namespace, probe.service)
                    if gateway.parent_is(r, probe)]
        if vs is None and attached:
            return self._gateway_route(attached, probe)
        if vs is None:
            svc = self.world.services.get(key)
            name = self.world.backend(probe.namespace, dict(svc.selector)) if svc else ""
            return Outcome("routed", ((name or f"Service/{key[0]}/{key[1]}", 1.0),),
                           retries=DEFAULT_RETRIES, detail="default")
        ns = dig(vs, "metadata", "namespace", default="default")
        src = f"VirtualService/{ns}/{dig(vs, 'metadata', 'name')}"
        for index, rule in enumerate(dig(vs, "spec", "http", default=[])):
            if not isinstance(rule, dict):
                continue
            rule_path = f"spec.http[{index}]"
            matches = rule.get("match") or [{}]
            matched = next((m for m in matches if isinstance(m, dict)
                            and self._matches(m, probe)), None)
            if matched is None:
                continue
            origin = rule_origin(vs, index)
            if isinstance(rule.get("redirect"), dict):
                r = rule["redirect"]
                return Outcome("redirect", detail=f"{r.get('redirectCode', 301)} "
                               f"{r.get('uri', probe.path)}", sources=(src,),
                               rule_path=rule_path, origin_path=origin)
            forward = self._rules.get(id(rule))
            if forward is None:
                retries = dig(rule, "retries", "attempts", default=None)
                retry_on = str(dig(rule, "retries", "retryOn", default="")) \
                    if "retries" in rule else "default"
                backends, used = self._backends(rule, ns)
                forward = self._rules[id(rule)] = (
                    backends, str(rule.get("timeout", "")),
                    DEFAULT_RETRIES if retries is None else int(retries), retry_on,
                    _mirrors(rule, ns), used)
            backends, timeout, attempts, retry_on, mirror, used = forward
            rewrite, req, resp, fault = changes.istio_rule(rule, matched, probe.path)
            return Outcome("routed", backends, timeout=timeout, retries=attempts,
                           detail=retry_on, mirror=mirror, rewrite=rewrite,
                           request_headers=req, response_headers=resp, fault=fault,
                           sources=(src, *used), rule_path=rule_path, origin_path=origin)
        return Outcome("no-route", sources=(src,))

    def _gateway_route(self, routes: list[dict[str, Any]], probe: Probe) -> Outcome:
        best = gateway.best_match(routes, probe, istio=True)
        if best is None:
            return Outcome("no-route", sources=tuple(_ref(r) for r in routes))
        route, rule, index, match = best
        src, origin = (_ref(route),), rule_origin(route, index)
        redirect = gateway.redirect_of(rule, probe)
        if redirect is not None:
            return Outcome("redirect", detail=redirect, sources=src,
                           rule_path=f"spec.rules[{index}]", origin_path=origin)
        attempts = dig(rule, "retry", "attempts", default=None)
        timeout = str(dig(rule, "timeouts", "request", default=""))
        backend = dig(rule, "timeouts", "backendRequest", default=None)
        if backend and not isinstance(rule.get("retry"), dict):
            # conversion.go convertHTTPRoute: without a retry, backendRequest is the timeout.
            timeout = str(backend)
        if timeout in ("0", "0s"):
            timeout = ""  # Gateway API HTTPRouteTimeouts: zero disables the timeout
        forward = gateway.rule_backends(self.world, route, rule, probe, parent_default=False)
        if forward is None:
            return Outcome("error", detail="500", sources=src, rule_path=f"spec.rules[{index}]",
                           origin_path=origin)
        rewrite, req, resp = changes.gateway_rule(rule, match, probe.path)
        return Outcome("routed", forward, mirror=gateway.mirrors(route, rule),
                       rewrite=rewrite, request_headers=req, response_headers=resp,
                       timeout=timeout,
                       retries=DEFAULT_RETRIES if attempts is None else int(attempts),
                       detail="default" if attempts is None else "",
                       sources=src, rule_path=f"spec.rules[{index}]", origin_path=origin)

    def _matches(self, m: dict[str, Any], probe: Probe) -> bool:
        if "port" in m and m["port"] != probe.port:
            return False
        ignore = bool(m.get("ignoreUriCase"))
        if "uri" in m and not string_match(m["uri"], probe.path, ignore):
            return False
        if "method" in m and not string_match(m["method"], probe.method):
            return False
        headers = dict(probe.headers)
        for name, sm in (m.get("headers") or {}).items():
            if not string_match(sm, headers.get(str(name).lower())):
                return False
        for name, sm in (m.get("withoutHeaders") or {}).items():
            if string_match(sm, headers.get(str(name).lower())):
                return False
        query = dict(q.split("=", 1) for q in probe.path.partition("?")[2].split("&") if "=" in q)
        for name, sm in (m.get("queryParams") or {}).items():
            if not string_match(sm, query.get(str(name))):
                return False
        return True

    def _backends(self, rule: dict[str, Any], ns: str
                  ) -> tuple[tuple[tuple[str, float], ...], tuple[str, ...]]:
        dests = [d for d in rule.get("route") or [] if isinstance(d, dict)]
        weights = [d.get("weight") for d in dests]
        if len(dests) == 1 and weights[0] is None:
            weights = [100]
        total = sum(w or 0 for w in weights) or 1
        out: dict[str, float] = {}
        used: set[str] = set()
        for d, w in zip(dests, weights):
            host = str(dig(d, "destination", "host", default=""))
            key = _host_key(host, ns)
            name = host
            if key:
                svc = self.world.services.get(key)
                labels = dict(svc.selector) if svc else {}
                subset = dig(d, "destination", "subset", default="")
                if subset:
                    dr = self.dr.get(key)
                    if dr is not None:
                        used.add(_ref(dr))
                    sub = next((s for s in dig(dr, "spec", "subsets", default=[])
                                if isinstance(s, dict) and s.get("name") == subset), None)
                    labels = {**labels, **(sub.get("labels") or {})} if sub else {}
                name = self.world.backend(key[0], labels) or \
                    (f"Service/{key[0]}/{key[1]}" + (f"#{subset}" if subset else ""))
            out[name] = out.get(name, 0.0) + (w or 0) / total
        return tuple(sorted((k, round(v, 4)) for k, v in out.items() if v > 0)), \
            tuple(sorted(used))

    # -- authorization ---------------------------------------------------------------------
    def allowed(self, probe: Probe, workload: str, port: int) -> tuple[bool, tuple[str, ...]]:
        """Whether the workload's sidecar lets the request in, and the deciding policies."""
        info = self.world.workload(workload)
        if info is None or not injection.istio(self.world, info):
            return True, ()  # no proxy in the pod: nothing is enforced there
        # The sidecar sees the container port the Service port leads to; AuthorizationPolicy
        # ``ports`` and PeerAuthentication ``portLevelMtls`` name that port, not the Service's
        # (istio/api security/v1beta1 authorization.proto Operation.ports, "workload port").
        port = self.world.target_port(probe.namespace, probe.service, port, info)[0] or port
        labels = dict(info.labels)
        mode, pa_src = self._mtls_mode(info.namespace, labels, port)
        if mode == "STRICT" and not probe.client.authenticated:
            return False, pa_src
        cache = self._applying
        key = (info.namespace, info.labels)
        if key not in cache:  # the same pods are asked about for every probe
            cache[key] = [p for p in self.ap.in_ns(info.namespace, self.root)
                          if self._applies(p, info.namespace, labels)]
        applying = cache[key]
        for action in ("CUSTOM", "DENY"):
            for p in applying:
                if str(dig(p, "spec", "action", default="ALLOW")) == action and \
                        self._policy_matches(p, probe, port):
                    return False, (_ref(p),)
        allows = [p for p in applying if str(dig(p, "spec", "action", default="ALLOW")) == "ALLOW"]
        if not allows:
            return True, pa_src
        hit = [p for p in allows if self._policy_matches(p, probe, port)]
        return (bool(hit), tuple(_ref(p) for p in (hit or allows)))

    def authorization_rules(self, probe: Probe, workload: str, port: int
                            ) -> set[tuple[str, str]]:
        """The rules (policy, ``spec.rules[i]``) of the AuthorizationPolicies applying at the
        workload that the request matches, whichever decided (for coverage)."""
        info = self.world.workload(workload)
        if info is None or not injection.istio(self.world, info):
            return set()
        port = self.world.target_port(probe.namespace, probe.service, port, info)[0] or port
        labels = dict(info.labels)
        return {(_ref(p), f"spec.rules[{i}]")
                for p in self.ap.in_ns(info.namespace, self.root)
                if self._applies(p, info.namespace, labels)
                for i, rule in enumerate(dig(p, "spec", "rules", default=[]) or [])
                if isinstance(rule, dict) and self._rule_matches(rule, probe, port)}

    def targets(self, probe: Probe, workload: str) -> set[str]:
        """The policies whose target (namespace, selector) holds the workload's pods, when its
        proxy enforces them (for coverage)."""
        info = self.world.workload(workload)
        if info is None or not injection.istio(self.world, info):
            return set()
        return self.policy_refs(workload)

    def policy_refs(self, workload: str) -> set[str]:
        """Every PeerAuthentication and AuthorizationPolicy that applies to a workload, and its
        Namespace (without a PeerAuthentication, the namespace's PERMISSIVE default decides;
        a target that cannot keep it reports that on the Namespace): their losses may explain
        an authorization divergence there."""
        info = self.world.workload(workload)
        if info is None:
            return set()
        labels = dict(info.labels)
        return {_ref(p) for p in self.ap.in_ns(info.namespace, self.root) +
                self.pa.in_ns(info.namespace, self.root) if self._applies(p, info.namespace, labels)
                } | {f"Namespace/{info.namespace}"}

    def _mtls_mode(self, ns: str, labels: dict[str, str], port: int) -> tuple[str, tuple[str, ...]]:
        key = (ns, tuple(sorted(labels.items())), port)
        found = self._modes.get(key)
        if found is None:  # the same pods and port are asked about for every probe
            found = self._modes[key] = self._find_mtls_mode(ns, labels, port)
        return found

    def _find_mtls_mode(self, ns: str, labels: dict[str, str], port: int
                        ) -> tuple[str, tuple[str, ...]]:
        mode, src = "PERMISSIVE", ()
        for scope in ("mesh", "namespace", "workload"):
            for p in self.pa.in_ns(self.root, ns):
                p_ns = dig(p, "metadata", "namespace", default="default")
                selector = dig(p, "spec", "selector", "matchLabels", default=None)
                if scope == "mesh" and not (p_ns == self.root and selector is None):
                    continue
                if scope == "namespace" and not (p_ns == ns and selector is None):
                    continue
                if scope == "workload" and not (p_ns == ns and isinstance(selector, dict) and
                                                all(labels.get(k) == v for k, v in
                                                    selector.items())):
                    continue
                m = str(dig(p, "spec", "mtls", "mode", default="UNSET"))
                port_mode = dig(p, "spec", "portLevelMtls", port, "mode", default=None) or \
                    dig(p, "spec", "portLevelMtls", str(port), "mode", default=None)
                if port_mode and scope == "workload":
                    m = str(port_mode)
                if m != "UNSET":
                    mode, src = ("PERMISSIVE" if m == "DISABLE" else m), (_ref(p),)
        return mode, src

    def _applies(self, p: dict[str, Any], ns: str, labels: dict[str, str]) -> bool:
        p_ns = dig(p, "metadata", "namespace", default="default")
        if p_ns not in (ns, self.root):
            return False
        selector = dig(p, "spec", "selector", "matchLabels", default=None)
        return selector is None or all(labels.get(k) == v for k, v in selector.items())

    def _policy_matches(self, p: dict[str, Any], probe: Probe, port: int) -> bool:
        rules = dig(p, "spec", "rules", default=None)
        if rules is None:
            rules = []
        return any(self._rule_matches(r, probe, port) for r in rules if isinstance(r, dict))

    def _rule_matches(self, rule: dict[str, Any], probe: Probe, port: int) -> bool:
        if rule.get("when"):
            return False  # conditions are not evaluated: the rule is taken as not matching
        froms = [f.get("source") or {} for f in rule.get("from") or [] if isinstance(f, dict)]
        if froms and not any(self._source_matches(s, probe) for s in froms):
            return False
        tos = [t.get("operation") or {} for t in rule.get("to") or [] if isinstance(t, dict)]
        return not tos or any(self._operation_matches(o, probe, port) for o in tos)

    def _source_matches(self, s: dict[str, Any], probe: Probe) -> bool:
        c = probe.client
        principal = f"{self.trust_domain}/ns/{c.namespace}/sa/{c.service_account}" \
            if c.authenticated else None
        checks = []
        if "principals" in s:
            checks.append(principal is not None and any(_glob(x, principal)
                                                         for x in s["principals"]))
        if "notPrincipals" in s:
            checks.append(principal is None or not any(_glob(x, principal)
                                                       for x in s["notPrincipals"]))
        if "namespaces" in s:
            checks.append(c.authenticated and any(_glob(x, c.namespace) for x in s["namespaces"]))
        if "notNamespaces" in s:
            checks.append(not c.authenticated or not any(_glob(x, c.namespace)
                                                         for x in s["notNamespaces"]))
        if "serviceAccounts" in s:
            checks.append(c.authenticated and f"{c.namespace}/{c.service_account}" in
                          s["serviceAccounts"])
        for key in ("ipBlocks", "remoteIpBlocks", "requestPrincipals"):
            if key in s:
                checks.append(False)  # probes carry no IP or JWT
        return all(checks)

    @staticmethod
    def _operation_matches(o: dict[str, Any], probe: Probe, port: int) -> bool:
        path = probe.path.partition("?")[0]
        if "ports" in o and str(port) not in [str(x) for x in o["ports"]]:
            return False
        if "notPorts" in o and str(port) in [str(x) for x in o["notPorts"]]:
            return False
        if "methods" in o and not any(_glob(m, probe.method) for m in o["methods"]):
            return False
        if "notMethods" in o and any(_glob(m, probe.method) for m in o["notMethods"]):
            return False
        if "paths" in o and not any(_glob(p, path) for p in o["paths"]):
            return False
        if "notPaths" in o and any(_glob(p, path) for p in o["notPaths"]):
            return False
        return "hosts" not in o


def _mirrors(rule: dict[str, Any], ns: str) -> tuple[str, ...]:
    """The Services a VirtualService rule mirrors to (``mirror``, or ``mirrors`` since 1.21;
    virtual_service.proto HTTPRoute.mirror/mirrors), as ``Service/ns/name``."""
    found = [rule["mirror"]] if isinstance(rule.get("mirror"), dict) else []
    found += [m.get("destination") for m in rule.get("mirrors") or [] if isinstance(m, dict)]
    out = set()
    for dest in found:
        key = _host_key(str(dig(dest, "host", default="")), ns) if isinstance(dest, dict) \
            else None
        if key:
            out.add(f"Service/{key[0]}/{key[1]}")
    return tuple(sorted(out))


def _glob(pattern: Any, value: str) -> bool:
    """Istio string match in authorization: exact, ``prefix*``, ``*suffix``, ``*``."""
    pattern = str(pattern)
    if pattern == "*":
        return bool(value)
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return fnmatch.fnmatchcase(value, pattern) if "*" in pattern else value == pattern


def _ref(obj: dict[str, Any]) -> str:
    return (f"{obj.get('kind')}/{dig(obj, 'metadata', 'namespace', default='default')}/"
            f"{dig(obj, 'metadata', 'name', default='')}")
