"""What Linkerd does with a request, read from the emitted Linkerd manifests.

Semantics (mapping-istio-linkerd.md sections 1.2-1.3, 2.5; linkerd2 policy-controller and
linkerd2-proxy at edge-26.8.3):
- routes with a Service parent (policy.linkerd.io and gateway.networking.k8s.io HTTPRoutes,
  GRPCRoutes) merge; a route using a filter Linkerd does not support (URLRewrite,
  RequestMirror, ExtensionRef, CORS) is ignored whole; the most specific match wins (path by
  characters matched: Exact and RegularExpression count the whole path; then method, headers,
  query parameters); ties go to the older route, then the name, then rule order; with routes
  attached, a request matching none gets 404; no route means the Service's endpoints;
- timeouts and retries come from the route's annotations (policy.linkerd.io routes also honour
  ``rules[].timeouts.request``);
- inbound, a Server selecting the pod and port decides: its HTTPRoutes (none: every request),
  AuthorizationPolicies on the Server, the route or the Namespace (all required
  authentications must hold), else its accessPolicy; no Server: the namespace's (or the
  cluster's) default inbound policy.
"""

from __future__ import annotations

import re
from typing import Any

from migrate.durations import to_millis
from migrate.verify.model import Outcome, Probe
from migrate.verify.world import World, dig

UNSUPPORTED_FILTERS = {"URLRewrite", "RequestMirror", "ExtensionRef", "CORS", "ExternalAuth"}
_ROUTE_KINDS = {"HTTPRoute", "GRPCRoute"}
_OPEN = {"all-unauthenticated", "cluster-unauthenticated", "audit"}


class LinkerdEvaluator:
    """Evaluates probes against Linkerd manifests."""

    def __init__(self, manifests: list[dict[str, Any]], world: World,
                 cluster_default: str = "all-unauthenticated", trust_domain: str = "cluster.local",
                 control_plane_namespace: str = "linkerd") -> None:
        self.world = world
        self.cluster_default = cluster_default
        self.identity_suffix = f"serviceaccount.identity.{control_plane_namespace}.{trust_domain}"
        self.routes: list[dict[str, Any]] = []
        self.servers: list[dict[str, Any]] = []
        self.policies: list[dict[str, Any]] = []
        self.authns: dict[tuple[str, str, str], dict[str, Any]] = {}
        for m in manifests:
            kind, api = m.get("kind"), str(m.get("apiVersion", ""))
            ns = dig(m, "metadata", "namespace", default="default")
            if kind in _ROUTE_KINDS and api.split("/")[0] in ("policy.linkerd.io",
                                                              "gateway.networking.k8s.io"):
                self.routes.append(m)
            elif kind == "Server":
                self.servers.append(m)
            elif kind == "AuthorizationPolicy" and api.startswith("policy.linkerd.io"):
                self.policies.append(m)
            elif kind in ("MeshTLSAuthentication", "NetworkAuthentication"):
                self.authns[(kind, ns, dig(m, "metadata", "name"))] = m

    # -- routing ---------------------------------------------------------------------------
    def route(self, probe: Probe) -> Outcome:
        """Where the client's proxy sends a request."""
        attached = [r for r in self.routes if self._parent_is(r, probe)]
        live = [r for r in attached if not _unsupported(r)]
        if not live:
            svc = self.world.services.get((probe.namespace, probe.service))
            name = self.world.backend(probe.namespace, dict(svc.selector)) if svc else ""
            annotations = dict(svc.annotations) if svc else {}
            return Outcome("routed", ((name or f"Service/{probe.namespace}/{probe.service}",
                                       1.0),),
                           retries=_retries(annotations))
        best: tuple[Any, ...] | None = None
        for r_index, r in enumerate(sorted(live, key=lambda r: str(dig(r, "metadata", "name")))):
            for i, rule in enumerate(dig(r, "spec", "rules", default=[])):
                for m in rule.get("matches") or [{}]:
                    score = self._score(r, m, probe)
                    if score is None:
                        continue
                    key = (score, -r_index, -i)
                    if best is None or key > best[0]:
                        best = (key, r, rule)
        if best is None:
            return Outcome("no-route", sources=tuple(_ref(r) for r in live))
        (_, _, neg_index), route, rule = best
        annotations = dig(route, "metadata", "annotations", default={})
        src = (_ref(route),)
        origins = str(annotations.get("meshmigrate.io/rules", "")).split(",")
        rule_path = origins[-neg_index] if 0 <= -neg_index < len(origins) else ""
        for f in rule.get("filters") or []:
            if f.get("type") == "RequestRedirect":
                r = f.get("requestRedirect") or {}
                return Outcome("redirect", detail=f"{r.get('statusCode', 302)} "
                               f"{dig(r, 'path', 'replaceFullPath', default=probe.path)}",
                               sources=src, rule_path=rule_path)
        timeout = annotations.get("timeout.linkerd.io/request") or (
            dig(rule, "timeouts", "request", default="")
            if str(route.get("apiVersion", "")).startswith("policy.linkerd.io") else "")
        return Outcome("routed", self._backends(route, rule), timeout=str(timeout),
                       retries=_retries(annotations), sources=src, rule_path=rule_path)

    def _parent_is(self, route: dict[str, Any], probe: Probe) -> bool:
        ns = dig(route, "metadata", "namespace", default="default")
        for p in dig(route, "spec", "parentRefs", default=[]):
            if p.get("kind") == "Service" and p.get("group", "core") in ("", "core") and \
                    p.get("name") == probe.service and p.get("namespace", ns) == probe.namespace \
                    and p.get("port") in (None, probe.port):
                return True
        return False

    def _score(self, route: dict[str, Any], m: dict[str, Any], probe: Probe
               ) -> tuple[int, int, int, int] | None:
        path = probe.path.partition("?")[0]
        headers = dict(probe.headers)
        if route.get("kind") == "GRPCRoute":
            method = m.get("method") or {}
            parts = path.strip("/").split("/")
            if method.get("service") and (len(parts) != 2 or parts[0] != method["service"]):
                return None
            if method.get("method") and (len(parts) != 2 or parts[1] != method["method"]):
                return None
            path_score = len(path) if method.get("method") else (
                len(method["service"]) + 1 if method.get("service") else 0)
            method_score = 0
        else:
            pm = m.get("path") or {"type": "PathPrefix", "value": "/"}
            value = str(pm.get("value", "/"))
            kind = pm.get("type", "PathPrefix")
            if kind == "Exact":
                if path != value:
                    return None
                path_score = len(path)
            elif kind == "RegularExpression":
                if not _full(value, path):
                    return None
                path_score = len(path)
            else:
                base = value.rstrip("/")
                if not (path == base or path.startswith(base + "/") or base == ""):
                    return None
                path_score = len(base)
            if m.get("method") and m["method"] != probe.method:
                return None
            method_score = 1 if m.get("method") else 0
        for h in m.get("headers") or []:
            got = headers.get(str(h.get("name", "")).lower())
            if got is None or not _value_ok(h, got):
                return None
        query = dict(q.split("=", 1) for q in probe.path.partition("?")[2].split("&") if "=" in q)
        for q in m.get("queryParams") or []:
            got = query.get(str(q.get("name", "")))
            if got is None or not _value_ok(q, got):
                return None
        return (path_score, method_score, len(m.get("headers") or []),
                len(m.get("queryParams") or []))

    def _backends(self, route: dict[str, Any], rule: dict[str, Any]
                  ) -> tuple[tuple[str, float], ...]:
        ns = dig(route, "metadata", "namespace", default="default")
        refs = [b for b in rule.get("backendRefs") or [] if isinstance(b, dict)]
        weights = [int(b.get("weight", 1)) for b in refs]
        total = sum(weights) or 1
        out: dict[str, float] = {}
        for b, w in zip(refs, weights):
            b_ns = b.get("namespace", ns)
            svc = self.world.services.get((b_ns, str(b.get("name"))))
            name = (self.world.backend(b_ns, dict(svc.selector)) if svc else "") or \
                f"Service/{b_ns}/{b.get('name')}"
            out[name] = out.get(name, 0.0) + w / total
        return tuple(sorted((k, round(v, 4)) for k, v in out.items() if v > 0))

    # -- authorization ---------------------------------------------------------------------
    def allowed(self, probe: Probe, workload: str, port: int) -> tuple[bool, tuple[str, ...]]:
        """Whether the workload's proxy lets the request in, and the deciding objects."""
        info = self.world.workload(workload)
        if info is None:
            return True, ()
        number, name = self.world.target_port(probe.namespace, probe.service, port, info)
        labels = dict(info.labels)
        server = next((s for s in sorted(self.servers, key=lambda s: dig(s, "metadata", "name"))
                       if dig(s, "metadata", "namespace") == info.namespace
                       and dig(s, "spec", "port") in (number, name)
                       and all(labels.get(k) == v for k, v in
                               dig(s, "spec", "podSelector", "matchLabels", default={}).items())),
                      None)
        if server is None:
            default = self.world.namespaces.get(info.namespace, {}).get(
                "config.linkerd.io/default-inbound-policy", self.cluster_default)
            return self._default_allows(default, probe), ()
        sname = dig(server, "metadata", "name")
        src = (_ref(server),)
        inbound = [r for r in self.routes
                   if dig(r, "metadata", "namespace") == info.namespace and any(
                       p.get("kind") == "Server" and p.get("name") == sname
                       for p in dig(r, "spec", "parentRefs", default=[]))]
        route_name = None
        if inbound:
            best = None
            for r in sorted(inbound, key=lambda r: str(dig(r, "metadata", "name"))):
                for rule in dig(r, "spec", "rules", default=[]):
                    for m in rule.get("matches") or [{}]:
                        score = self._score(r, m, probe)
                        if score is not None and (best is None or score > best[0]):
                            best = (score, dig(r, "metadata", "name"))
            if best is None:
                return False, src
            route_name = best[1]
        for p in self.policies:
            if dig(p, "metadata", "namespace") != info.namespace:
                continue
            target = dig(p, "spec", "targetRef", default={})
            hits = (target.get("kind") == "Server" and target.get("name") == sname) or \
                (target.get("kind") == "HTTPRoute" and target.get("name") == route_name) or \
                (target.get("kind") == "Namespace" and target.get("name") == info.namespace)
            if hits and self._refs_hold(p, probe):
                return True, (_ref(p),)
        access = str(dig(server, "spec", "accessPolicy", default="deny"))
        return self._default_allows(access, probe), src

    def _default_allows(self, policy: str, probe: Probe) -> bool:
        if policy in _OPEN:
            return True
        if policy in ("all-authenticated", "cluster-authenticated"):
            return probe.client.authenticated
        return False

    def _refs_hold(self, policy: dict[str, Any], probe: Probe) -> bool:
        ns = dig(policy, "metadata", "namespace", default="default")
        for ref in dig(policy, "spec", "requiredAuthenticationRefs", default=[]):
            kind = ref.get("kind")
            if kind == "ServiceAccount":
                ok = probe.client.authenticated and probe.client.service_account == \
                    ref.get("name") and probe.client.namespace == ref.get("namespace", ns)
            else:
                authn = self.authns.get((kind, ref.get("namespace", ns), ref.get("name")))
                if authn is None:
                    return False
                ok = self._mesh_tls(authn, probe) if kind == "MeshTLSAuthentication" else \
                    self._network(authn)
            if not ok:
                return False
        return True

    def _mesh_tls(self, authn: dict[str, Any], probe: Probe) -> bool:
        c = probe.client
        if not c.authenticated:
            return False
        identity = f"{c.service_account}.{c.namespace}.{self.identity_suffix}"
        for ident in dig(authn, "spec", "identities", default=[]):
            if ident == "*" or ident == identity or (
                    ident.startswith("*.") and identity.endswith(ident[1:])):
                return True
        for ref in dig(authn, "spec", "identityRefs", default=[]):
            if ref.get("kind") == "Namespace" and ref.get("name") == c.namespace:
                return True
            if ref.get("kind") == "ServiceAccount" and ref.get("name") == c.service_account \
                    and ref.get("namespace", dig(authn, "metadata", "namespace")) == c.namespace:
                return True
        return False

    @staticmethod
    def _network(authn: dict[str, Any]) -> bool:
        # Probes come from in-cluster pods with no particular address: only networks that
        # cover every address are certain to admit them.
        return any(n.get("cidr") in ("0.0.0.0/0", "::/0") and not n.get("except")
                   for n in dig(authn, "spec", "networks", default=[]))


def _retries(annotations: dict[str, str]) -> int:
    if annotations.get("retry.linkerd.io/http") or annotations.get("retry.linkerd.io/grpc"):
        return int(annotations.get("retry.linkerd.io/limit", "1"))
    return 0


def _unsupported(route: dict[str, Any]) -> bool:
    for rule in dig(route, "spec", "rules", default=[]):
        filters = list(rule.get("filters") or [])
        for b in rule.get("backendRefs") or []:
            filters += b.get("filters") or []
        if any(f.get("type") in UNSUPPORTED_FILTERS for f in filters):
            return True
    return False


def _full(pattern: str, text: str) -> bool:
    try:
        return re.fullmatch(pattern, text) is not None
    except re.error:
        return False


def _value_ok(m: dict[str, Any], value: str) -> bool:
    if m.get("type", "Exact") == "Exact":
        return value == m.get("value")
    return _full(str(m.get("value", "")), value)


def _ref(obj: dict[str, Any]) -> str:
    return (f"{obj.get('kind')}/{dig(obj, 'metadata', 'namespace', default='default')}/"
            f"{dig(obj, 'metadata', 'name', default='')}")


def same_duration(a: str, b: str) -> bool:
    """Whether two duration strings mean the same time (empty means none)."""
    return (to_millis(a) if a else None) == (to_millis(b) if b else None)
