"""What Linkerd does with a request, read from the emitted Linkerd manifests.

Semantics (mapping-istio-linkerd.md sections 1.2-1.3, 2.5; linkerd2 policy-controller and
linkerd2-proxy at edge-26.8.3):
- routes with a Service parent (policy.linkerd.io and gateway.networking.k8s.io HTTPRoutes,
  GRPCRoutes) merge; a route using a filter Linkerd does not support (URLRewrite,
  RequestMirror, ExtensionRef, CORS) is ignored whole; the most specific match wins, ranked by
  :func:`migrate.verify.gateway.score` with the register's ``linkerd.route-match-order`` (path
  characters matched, then headers, query parameters, method); ties go to the older route,
  then the name, then rule order; with routes attached, a request matching none gets 404; no
  route means the Service's endpoints;
- timeouts and retries come from the route's annotations (``rules[].timeouts.request`` also
  sets the timeout, on the gateway flavour from 2.20; the annotation wins); ``limit`` or
  ``timeout`` alone retry too (``linkerd.retry-without-conditions``);
- a ServiceProfile or TrafficSplit on the Service overrides all of that (linkerd_profile.py);
- inbound, a Server selecting the pod and port decides: its HTTPRoutes (none: every request),
  AuthorizationPolicies on the Server, the route or the Namespace (all required
  authentications must hold), ServerAuthorizations on the Server (any one whose client
  matches), else its accessPolicy; no Server: the default inbound policy of the pod
  (``config.linkerd.io/default-inbound-policy`` on the pod template), else of its namespace,
  else the cluster's (Helm ``proxy.defaultInboundPolicy``, passed in).
"""

from __future__ import annotations

from typing import Any, Iterator

from migrate import facts
from migrate.dialects.linkerd.injected import injected_labels
from migrate.durations import to_millis
from migrate.verify import changes, gateway, injection
from migrate.verify.index import ByNamespace, ByParent
from migrate.verify.linkerd_profile import Profiles
from migrate.verify.model import Outcome, Probe
from migrate.verify.world import WorkloadInfo, World, dig, rule_origin, unique

# fact: linkerd.unsupported-filter-ignores-route
UNSUPPORTED_FILTERS = {"URLRewrite", "RequestMirror", "ExtensionRef", "CORS", "ExternalAuth"}
_ROUTE_KINDS = {"HTTPRoute", "GRPCRoute"}
# fact: linkerd.audit-policy
_OPEN = {"all-unauthenticated", "cluster-unauthenticated", "audit"}


class LinkerdEvaluator:
    """Evaluates probes against Linkerd manifests."""

    def __init__(self, manifests: list[dict[str, Any]], world: World,
                 cluster_default: str = "all-unauthenticated", trust_domain: str = "cluster.local",
                 control_plane_namespace: str = "linkerd", cluster_domain: str = "cluster.local"
                 ) -> None:
        self.world = world
        manifests = unique(manifests)  # once, for the profiles and the rest
        self.profiles = Profiles(manifests, world, cluster_domain, deduplicated=True)
        self.server_authorizations = ByNamespace()
        self.cluster_default = cluster_default
        self.identity_suffix = f"serviceaccount.identity.{control_plane_namespace}.{trust_domain}"
        self.routes = ByParent()
        self.servers = ByNamespace()
        self.policies = ByNamespace()
        self.authns: dict[tuple[str, str, str], dict[str, Any]] = {}
        # Per-namespace lookups worked out once and asked for every probe.
        self._sorted_servers: dict[str, list[tuple[dict[str, Any], Any,
                                                   set[tuple[str, str]]]]] = {}
        self._targets: dict[str, list[tuple[dict[str, Any], Any, Any]]] = {}
        self._sas: dict[str, list[dict[str, Any]]] = {}
        self._server_of: dict[tuple[Any, ...], dict[str, Any] | None] = {}
        self._inbound: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for m in manifests:
            try:
                self._index(m)
            except (TypeError, AttributeError, ValueError, KeyError):
                continue  # damaged: reported by the reader, left out here too

    def _index(self, m: dict[str, Any]) -> None:
        kind, api = m.get("kind"), str(m.get("apiVersion", ""))
        ns = str(dig(m, "metadata", "namespace", default="default"))
        if kind in _ROUTE_KINDS and api.split("/")[0] in ("policy.linkerd.io",
                                                          "gateway.networking.k8s.io"):
            self.routes.append(m)
        elif not api.startswith("policy.linkerd.io"):
            return
        elif kind == "Server":
            self.servers.append(m)
        elif kind == "ServerAuthorization":
            self.server_authorizations.append(m)
        elif kind == "AuthorizationPolicy":
            self.policies.append(m)
        elif kind in ("MeshTLSAuthentication", "NetworkAuthentication"):
            self.authns[(str(kind), ns, str(dig(m, "metadata", "name", default="")))] = m

    # -- routing ---------------------------------------------------------------------------
    def route(self, probe: Probe) -> Outcome:
        """Where the client's proxy sends a request."""
        profile = self.profiles.route(probe)
        if profile is not None:
            # fact: linkerd.serviceprofile-overrides
            return profile  # a ServiceProfile (or TrafficSplit) overrides HTTPRoutes
        attached = [r for r in self.routes.parented("Service", probe.namespace, probe.service)
                    if gateway.parent_is(r, probe)]
        live = [r for r in attached if not _unsupported(r)]
        if not live:
            svc = self.world.services.get((probe.namespace, probe.service))
            name = self.world.backend(probe.namespace, dict(svc.selector)) if svc else ""
            annotations = dict(svc.annotations) if svc else {}
            return Outcome("routed", ((name or f"Service/{probe.namespace}/{probe.service}",
                                       1.0),),
                           retries=_retries(annotations))
        best = gateway.best_match(live, probe)
        if best is None:
            return Outcome("no-route", sources=tuple(_ref(r) for r in live))
        route, rule, index, match = best
        annotations = dig(route, "metadata", "annotations", default={})
        src = (_ref(route),)
        rule_path, origin = f"spec.rules[{index}]", rule_origin(route, index)
        redirect = gateway.redirect_of(rule, probe)
        if redirect is not None:
            return Outcome("redirect", detail=redirect, sources=src, rule_path=rule_path,
                           origin_path=origin)
        # Both flavours honour rules[].timeouts.request on the Linkerd versions this evaluator
        # models (2.20); the annotation beats it.
        # fact: linkerd.gateway-rule-timeouts
        # fact: linkerd.timeout-annotation-wins
        timeout = annotations.get("timeout.linkerd.io/request") or dig(
            rule, "timeouts", "request", default="")
        if str(timeout) in ("0", "0s"):
            timeout = ""  # Gateway API: zero disables the timeout
        forward = gateway.rule_backends(self.world, route, rule, probe, parent_default=True)
        if forward is None:
            return Outcome("error", detail="500", sources=src, rule_path=rule_path,
                           origin_path=origin)
        # URLRewrite never gets here: Linkerd ignores a route using it (UNSUPPORTED_FILTERS).
        _, req, resp = changes.gateway_rule(rule, match, probe.path)
        return Outcome("routed", forward, timeout=str(timeout),
                       retries=_retries(annotations), request_headers=req,
                       response_headers=resp, sources=src, rule_path=rule_path,
                       origin_path=origin)

    def _score(self, route: dict[str, Any], m: dict[str, Any], probe: Probe
               ) -> gateway.Score | None:
        return gateway.score(route, m, probe)

    # -- authorization ---------------------------------------------------------------------
    def allowed(self, probe: Probe, workload: str, port: int) -> tuple[bool, tuple[str, ...]]:
        """Whether the workload's proxy lets the request in, and the deciding objects."""
        info = self.world.workload(workload)
        if info is None or not injection.linkerd(self.world, info):
            return True, ()  # no proxy in the pod: nothing is enforced there
        server = self._server(probe, info, port)
        if server is None:
            key = "config.linkerd.io/default-inbound-policy"
            default = dict(info.annotations).get(key) or self.world.namespaces.get(
                info.namespace, {}).get(key, self.cluster_default)
            return self._default_allows(default, probe), ()
        src = (_ref(server),)
        route_name = self._inbound_route(probe, info, server)
        if route_name is False:
            return False, src
        grant = next(self._grants(probe, info, server, route_name), None)
        if grant is not None:
            return True, (grant,)
        access = str(dig(server, "spec", "accessPolicy", default="deny"))
        return self._default_allows(access, probe), src

    def authorization_rules(self, probe: Probe, workload: str, port: int
                            ) -> set[tuple[str, str]]:
        """The authorizations (each one rule, ``spec``) at the workload's Server that admit
        the request, whichever decided (for coverage)."""
        info = self.world.workload(workload)
        if info is None or not injection.linkerd(self.world, info):
            return set()
        server = self._server(probe, info, port)
        route_name = self._inbound_route(probe, info, server) if server is not None else False
        if server is None or route_name is False:
            return set()
        return {(ref, "spec") for ref in self._grants(probe, info, server, route_name)}

    def _server(self, probe: Probe, info: WorkloadInfo, port: int) -> dict[str, Any] | None:
        """The Server selecting the pod and the container port the request reaches."""
        number, name = self.world.target_port(probe.namespace, probe.service, port, info)
        injected = tuple(sorted(_injected(info).items()))
        key = (info.namespace, info.labels, injected, number, name)
        if key not in self._server_of:  # the same pod and port are asked about for every probe
            pod = set(info.labels) | set(injected)
            self._server_of[key] = next(
                (s for s, s_port, selector in self._servers_by_name(info.namespace)
                 if s_port in (number, name) and selector <= pod), None)
        return self._server_of[key]

    def _inbound_route(self, probe: Probe, info: WorkloadInfo, server: dict[str, Any]
                       ) -> str | None | bool:
        """The name of the Server's inbound route the request takes; None when the Server
        has none (every request); False when it has routes and none matches (refused)."""
        inbound = self._inbound_routes(info.namespace, str(dig(server, "metadata", "name")))
        if not inbound:
            return None
        best = None
        for r in inbound:
            for rule in dig(r, "spec", "rules", default=[]):
                for m in rule.get("matches") or [{}]:
                    score = self._score(r, m, probe)
                    if score is not None and (best is None or score > best[0]):
                        best = (score, dig(r, "metadata", "name"))
        return False if best is None else str(best[1])

    def _grants(self, probe: Probe, info: WorkloadInfo, server: dict[str, Any],
                route_name: str | None) -> Iterator[str]:
        """The authorizations that admit the request at the Server, in the order the
        evaluator asks them (the first one decides)."""
        sname = dig(server, "metadata", "name")
        for p, kind, target in self._policy_targets(info.namespace):
            hits = (kind == "Server" and target == sname) or \
                (kind == "HTTPRoute" and target == route_name) or \
                (kind == "Namespace" and target == info.namespace)
            if hits and self._refs_hold(p, probe):
                yield _ref(p)
        for sa in self._authorizations_sorted(info.namespace):
            if self._authorizes(sa, server) and self._client_ok(sa, probe):
                yield _ref(sa)

    def _inbound_routes(self, namespace: str, server: str) -> list[dict[str, Any]]:
        """The routes with a Server as parent, sorted by name (worked out once per Server)."""
        key = (namespace, server)
        if key not in self._inbound:
            self._inbound[key] = sorted(
                (r for r in self.routes.parented("Server", namespace, server)
                 if _ns(r) == namespace and any(
                     p.get("kind") == "Server" and p.get("name") == server
                     for p in dig(r, "spec", "parentRefs", default=[]))),
                key=lambda r: str(dig(r, "metadata", "name")))
        return self._inbound[key]

    def _policy_targets(self, namespace: str) -> list[tuple[dict[str, Any], Any, Any]]:
        """A namespace's AuthorizationPolicies with their targetRef kind and name, in input
        order (worked out once, asked for every probe)."""
        cache = self._targets
        if namespace not in cache:
            found = []
            for p in self.policies.in_ns(namespace):
                target = dig(p, "spec", "targetRef", default={})
                if _ns(p) == namespace and isinstance(target, dict):
                    found.append((p, target.get("kind"), target.get("name")))
            cache[namespace] = found
        return cache[namespace]

    def _authorizations_sorted(self, namespace: str) -> list[dict[str, Any]]:
        """A namespace's ServerAuthorizations in a stable order (sorted once)."""
        cache = self._sas
        if namespace not in cache:
            cache[namespace] = sorted(self.server_authorizations.in_ns(namespace), key=_ref)
        return cache[namespace]

    def _servers_by_name(self, namespace: str
                         ) -> list[tuple[dict[str, Any], Any, set[tuple[str, str]]]]:
        """A namespace's Servers sorted by name, each with its port and its podSelector
        matchLabels as pairs (worked out once, asked for every probe)."""
        cache = self._sorted_servers
        if namespace not in cache:
            servers = sorted((s for s in self.servers.in_ns(namespace) if _ns(s) == namespace),
                             key=lambda s: str(dig(s, "metadata", "name")))
            cache[namespace] = [
                (s, dig(s, "spec", "port"),
                 {(str(k), str(v)) for k, v in
                  dig(s, "spec", "podSelector", "matchLabels", default={}).items()})
                for s in servers]
        return cache[namespace]

    def targets(self, probe: Probe, workload: str) -> set[str]:
        """The Servers and authorizations that govern the workload's pods, when its proxy
        enforces them (for coverage)."""
        info = self.world.workload(workload)
        if info is None or not injection.linkerd(self.world, info):
            return set()
        return self.policy_refs(workload)

    def policy_refs(self, workload: str) -> set[str]:
        """Source objects that decide a workload's inbound policy (their losses may explain an
        authorization divergence there): the workload (its default-inbound-policy annotation,
        and what was written for its ports), its Namespace (the namespace default), the
        Servers selecting it and the authorizations on those Servers."""
        info = self.world.workload(workload)
        if info is None:
            return set()
        labels = {**dict(info.labels), **_injected(info)}
        # Only Servers on the workload's own ports: one on the proxy's admin port (every pod
        # of the namespace, in emojivoto) governs nothing a probe reaches.
        ports = {p for pair in info.ports for p in pair if p != ""}
        servers = [s for s in self.servers.in_ns(info.namespace) if _ns(s) == info.namespace
                   and dig(s, "spec", "port") in ports and all(
                       labels.get(k) == v for k, v in
                       dig(s, "spec", "podSelector", "matchLabels", default={}).items())]
        names = {dig(s, "metadata", "name") for s in servers}
        routes = {(r.get("kind"), dig(r, "metadata", "name")) for r in self.routes
                  if _ns(r) == info.namespace and any(
                      p.get("kind") == "Server" and p.get("name") in names
                      for p in dig(r, "spec", "parentRefs", default=[]))}
        refs = {workload, f"Namespace/{info.namespace}"} | {_ref(s) for s in servers}
        refs |= {_ref(sa) for sa in self.server_authorizations.in_ns(info.namespace)
                 if any(self._authorizes(sa, s) for s in servers)}
        for p in self.policies.in_ns(info.namespace):
            target = dig(p, "spec", "targetRef", default={})
            if _ns(p) == info.namespace and (
                    (target.get("kind") == "Server" and target.get("name") in names)
                    or (target.get("kind") == "Namespace" and target.get("name") == info.namespace)
                    or (target.get("kind"), target.get("name")) in routes):
                refs.add(_ref(p))
        return refs

    @staticmethod
    def _authorizes(sa: dict[str, Any], server: dict[str, Any]) -> bool:
        """Whether a ServerAuthorization names the Server (by name or by label selector)."""
        if _ns(sa) != _ns(server):
            return False
        target = dig(sa, "spec", "server", default={})
        if "name" in target:
            return bool(target["name"] == dig(server, "metadata", "name"))
        labels = dig(server, "metadata", "labels", default={})
        wanted = dig(target, "selector", "matchLabels", default=None)
        return isinstance(wanted, dict) and all(labels.get(k) == v for k, v in wanted.items())

    def _client_ok(self, sa: dict[str, Any], probe: Probe) -> bool:
        """ServerAuthorization ``client``: ``unauthenticated`` admits anyone; ``meshTLS``
        admits identities and service accounts (``unauthenticatedTLS``: TLS without identity,
        which no probe sends); ``networks`` must cover every address (see ``_network``)."""
        client = dig(sa, "spec", "client", default={})
        if "networks" in client and not self._network({"spec": {"networks":
                                                                 client["networks"]}}):
            return False
        if client.get("unauthenticated") is True:
            return True
        mesh = client.get("meshTLS")
        c = probe.client
        if not isinstance(mesh, dict) or not c.authenticated:
            return False
        ns = dig(sa, "metadata", "namespace", default="default")
        if any(s.get("name") == c.service_account and s.get("namespace", ns) == c.namespace
               for s in mesh.get("serviceAccounts") or [] if isinstance(s, dict)):
            return True
        return self._mesh_tls({"spec": {"identities": mesh.get("identities") or []}}, probe)

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
                    and ref.get("namespace", _ns(authn)) == c.namespace:
                return True
        return False

    @staticmethod
    def _network(authn: dict[str, Any]) -> bool:
        # Probes come from in-cluster pods with no particular address: networks that cover
        # every address, or every one of the cluster's networks, are certain to admit them.
        # fact: linkerd.cluster-networks
        listed = {n.get("cidr") for n in dig(authn, "spec", "networks", default=[])
                  if isinstance(n, dict) and not n.get("except")}
        return bool(listed & {"0.0.0.0/0", "::/0"}) or \
            set(facts.value("linkerd.cluster-networks", "networks")) <= listed


def _retries(annotations: dict[str, str]) -> int:
    """Retries a request gets (policy-controller ``parse_http_retry``): any retry annotation
    builds a policy, ``limit`` or ``timeout`` alone too (they retry failed and refused
    requests); ``limit`` defaults to 1, and ``"0"`` (limit or timeout) counts as unset."""
    # fact: linkerd.retry-without-conditions
    limit = str(annotations.get("retry.linkerd.io/limit", "")).strip()
    count = int(limit) if limit.isdigit() else 0
    timeout = str(annotations.get("retry.linkerd.io/timeout", "")).strip()
    timed = bool(timeout) and to_millis(timeout) not in (None, 0)
    conditions = annotations.get("retry.linkerd.io/http") or annotations.get(
        "retry.linkerd.io/grpc")
    if not (count or timed or conditions):
        return 0
    return count or 1


def _unsupported(route: dict[str, Any]) -> bool:
    for rule in dig(route, "spec", "rules", default=[]):
        filters = list(rule.get("filters") or [])
        for b in rule.get("backendRefs") or []:
            filters += b.get("filters") or []
        if any(f.get("type") in UNSUPPORTED_FILTERS for f in filters):
            return True
    return False


def _ns(obj: dict[str, Any]) -> str:
    # An object without a namespace is read into ``default``, as the reader (and kubectl
    # apply without -n) does; comparing the raw field would miss it.
    return str(dig(obj, "metadata", "namespace", default="default") or "default")


def _ref(obj: dict[str, Any]) -> str:
    return (f"{obj.get('kind')}/{dig(obj, 'metadata', 'namespace', default='default')}/"
            f"{dig(obj, 'metadata', 'name', default='')}")


def same_duration(a: str, b: str) -> bool:
    """Whether two duration strings mean the same time (empty means none)."""
    return (to_millis(a) if a else None) == (to_millis(b) if b else None)


def _injected(info: WorkloadInfo) -> dict[str, str]:
    """The labels Linkerd's injector adds to the workload's pods (a Server may select by
    them; the pod template does not hold them)."""
    # fact: linkerd.injected-pod-labels
    kind, _, rest = info.id.partition("/")
    return injected_labels(kind, info.namespace, rest.partition("/")[2])
