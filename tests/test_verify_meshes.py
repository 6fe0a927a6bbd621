"""The equivalence check for every mesh: Linkerd and Consul evaluators and probe generators,
Istio as a target, hand-written conversions between the three meshes (the correct one gives
no divergence, each deliberate breakage an unexplained one), and the coexistence check."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from migrate.verify.coexist import coexistence
from migrate.verify.compare import compare
from migrate.verify.consul_eval import ConsulEvaluator
from migrate.verify.consul_filter import matches
from migrate.verify.consul_probes import authz_probes as consul_authz
from migrate.verify.consul_probes import routing_probes as consul_routing
from migrate.verify.istio_eval import IstioEvaluator
from migrate.verify.linkerd_eval import LinkerdEvaluator
from migrate.verify.linkerd_probes import authz_probes as linkerd_authz
from migrate.verify.linkerd_probes import routing_probes as linkerd_routing
from migrate.verify.model import BUDGET_RETRIES, Client, Probe
from migrate.verify.probes import ANONYMOUS, UNKNOWN, regex_sample
from migrate.verify.registry import EVALUATORS, PROBES
from migrate.verify.world import World
from tests.conftest import corpus_cases, shared_sets

V1, V2 = "Deployment/shop/web-v1", "Deployment/shop/web-v2"
FRONTEND = Client("front", "frontend")
L5D_FRONTEND = "frontend.front.serviceaccount.identity.linkerd.cluster.local"


def service(name: str, ns: str = "shop", **selector: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": selector or {"app": name},
                     "ports": [{"port": 80, "targetPort": 8080}]}}


def deployment(name: str, ns: str, labels: dict[str, str], sa: str,
               annotations: dict[str, str] | None = None) -> dict[str, Any]:
    # In Consul's mesh: consul-k8s injects only annotated pods by default (Helm
    # connectInject.default false); Istio and Linkerd read their own keys.
    meta: dict[str, Any] = {"labels": labels, "annotations": {
        "consul.hashicorp.com/connect-inject": "true", **(annotations or {})}}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"template": {"metadata": meta, "spec": {
                "serviceAccountName": sa,
                "containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]}}}}


def kube(consul_meta: bool = False) -> list[dict[str, Any]]:
    """Namespace shop: Service web over web-v1 and web-v2; namespace front: the caller."""
    def meta(v: str) -> dict[str, str] | None:
        return {"consul.hashicorp.com/service-meta-version": v} if consul_meta else None
    return [service("web"),
            deployment("web-v1", "shop", {"app": "web", "version": "v1"}, "web", meta("v1")),
            deployment("web-v2", "shop", {"app": "web", "version": "v2"}, "web", meta("v2")),
            service("frontend", "front"),
            deployment("frontend", "front", {"app": "frontend"}, "frontend")]


def probe(path: str = "/", method: str = "GET", client: Client = FRONTEND,
          svc: str = "web", headers: tuple[tuple[str, str], ...] = ()) -> Probe:
    return Probe("shop", svc, 80, path, method, headers, client)


def subset_services() -> list[dict[str, Any]]:
    return [service("web-v1", app="web", version="v1"),
            service("web-v2", app="web", version="v2")]


# -- Linkerd as a source -------------------------------------------------------------------
def test_linkerd_service_profile_overrides_routes_first_match_timeout_and_budget():
    profile = {"apiVersion": "linkerd.io/v1alpha2", "kind": "ServiceProfile",
               "metadata": {"name": "web.shop.svc.cluster.local", "namespace": "shop"},
               "spec": {"routes": [
                   {"name": "books", "condition": {"all": [{"method": "GET"},
                                                           {"pathRegex": "/books/[^/]*"}]},
                    "timeout": "300ms", "isRetryable": True},
                   {"name": "any-books", "condition": {"pathRegex": "/books/.*"},
                    "timeout": "5s"}],
                   "dstOverrides": [
                       {"authority": "web-v1.shop.svc.cluster.local:80", "weight": "750m"},
                       {"authority": "web-v2.shop.svc.cluster.local:80", "weight": "250m"}]}}
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "web", "namespace": "shop",
                          "annotations": {"timeout.linkerd.io/request": "9s"}},
             "spec": {"parentRefs": [{"kind": "Service", "group": "", "name": "web"}],
                      "rules": [{"backendRefs": [{"name": "web-v2", "port": 80}]}]}}
    world = World(kube() + subset_services())
    ev = LinkerdEvaluator([profile, route], world)
    first = ev.route(probe("/books/1"))
    assert first.backends == ((V1, 0.75), (V2, 0.25))  # dstOverrides, not the HTTPRoute
    assert (first.timeout, first.retries) == ("300ms", BUDGET_RETRIES)
    second = ev.route(probe("/books/1", "POST"))  # the first route wants GET: the second wins
    assert (second.timeout, second.retries) == ("5s", 0)
    other = ev.route(probe("/other"))  # no route matches: still routed, with neither
    assert (other.status, other.timeout, other.retries) == ("routed", "", 0)
    # Without the profile the HTTPRoute (and its annotation timeout) applies.
    plain = LinkerdEvaluator([route], world).route(probe("/books/1"))
    assert (plain.backends, plain.timeout) == (((V2, 1.0),), "9s")


def test_linkerd_traffic_split_weights():
    split = {"apiVersion": "split.smi-spec.io/v1alpha2", "kind": "TrafficSplit",
             "metadata": {"name": "web", "namespace": "shop"},
             "spec": {"service": "web", "backends": [{"service": "web-v1", "weight": 80},
                                                     {"service": "web-v2", "weight": 20}]}}
    ev = LinkerdEvaluator([split], World(kube() + subset_services()))
    assert ev.route(probe()).backends == ((V1, 0.8), (V2, 0.2))


def test_linkerd_default_inbound_policy_pod_over_namespace_over_cluster():
    objects = kube()
    objects[1]["spec"]["template"]["metadata"]["annotations"] = {
        "config.linkerd.io/default-inbound-policy": "deny"}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "shop", "annotations": {
            "linkerd.io/inject": "enabled",
            "config.linkerd.io/default-inbound-policy": "all-authenticated"}}}
    world = World(objects + [ns])
    ev = LinkerdEvaluator([], world)
    assert not ev.allowed(probe(), V1, 80)[0]  # the pod says deny
    assert ev.allowed(probe(), V2, 80)[0]  # the namespace says all-authenticated
    assert not ev.allowed(probe(client=ANONYMOUS), V2, 80)[0]
    bare = World(kube())
    assert LinkerdEvaluator([], bare).allowed(probe(client=ANONYMOUS), V1, 80)[0]
    assert not LinkerdEvaluator([], bare, cluster_default="deny").allowed(probe(), V1, 80)[0]


def test_linkerd_server_authorization():
    server = {"apiVersion": "policy.linkerd.io/v1beta3", "kind": "Server",
              "metadata": {"name": "web", "namespace": "shop", "labels": {"tier": "web"}},
              "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": 8080}}
    by_sa = {"apiVersion": "policy.linkerd.io/v1beta1", "kind": "ServerAuthorization",
             "metadata": {"name": "front", "namespace": "shop"},
             "spec": {"server": {"selector": {"matchLabels": {"tier": "web"}}},
                      "client": {"meshTLS": {"serviceAccounts": [
                          {"name": "frontend", "namespace": "front"}]}}}}
    ev = LinkerdEvaluator([server, by_sa], World(kube()))
    assert ev.allowed(probe(), V1, 80) == (True, ("ServerAuthorization/shop/front",))
    assert not ev.allowed(probe(client=UNKNOWN), V1, 80)[0]
    anyone = copy.deepcopy(by_sa)
    anyone["spec"] = {"server": {"name": "web"}, "client": {"unauthenticated": True}}
    assert LinkerdEvaluator([server, anyone], World(kube())).allowed(
        probe(client=ANONYMOUS), V1, 80)[0]


def test_linkerd_probes_from_routes_profiles_and_identities():
    objects = kube() + linkerd_source()
    profile = {"apiVersion": "linkerd.io/v1alpha2", "kind": "ServiceProfile",
               "metadata": {"name": "frontend.front.svc.cluster.local", "namespace": "front"},
               "spec": {"routes": [{"name": "r", "condition": {
                   "method": "POST", "pathRegex": r"/orders/\d+"}}]}}
    world = World(objects + [profile])
    routing = linkerd_routing(objects + [profile], world)
    web = {(p.path, p.method) for p in routing if p.service == "web"}
    assert {("/api", "GET"), ("/api/x", "GET"), ("/apix", "GET"), ("/api/admin", "GET"),
            ("/api/adminx", "GET"), ("/api", "DELETE")} <= web
    assert ("/orders/1", "POST") in {(p.path, p.method) for p in routing
                                     if p.service == "frontend"}
    by_sa = {"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "AuthorizationPolicy",
             "metadata": {"name": "bot", "namespace": "shop"},
             "spec": {"targetRef": {"group": "policy.linkerd.io", "kind": "Server",
                                    "name": "web"},
                      "requiredAuthenticationRefs": [{"kind": "ServiceAccount", "name": "bot",
                                                      "namespace": "ops"}]}}
    clients = {p.client for p in linkerd_authz(objects + [by_sa], world)}
    assert {FRONTEND, Client("ops", "bot"), UNKNOWN, ANONYMOUS} <= clients


# -- Consul --------------------------------------------------------------------------------
def test_consul_filter_expressions():
    meta = {"version": "v2", "zone": "a"}
    assert matches('Service.Meta.version == v2', meta, [], "web")
    assert matches('Service.Meta.version == "v2" and not Service.Meta.zone == b', meta, [], "w")
    assert matches('Service.Tags contains canary', {}, ["canary"], "web")
    assert not matches('Service.Meta.version != v2 or Service.Tags contains x', meta, [], "w")
    assert not matches('Service.Meta.version ===', meta, [], "web")  # not understood: nothing


def test_consul_router_splitter_resolver_chain():
    objects = consul_source()
    world = World(kube(consul_meta=True))
    ev = ConsulEvaluator(objects, world)
    admin = ev.route(probe("/admin"))
    assert (admin.backends, admin.rule_path) == (((V2, 1.0),), "spec.routes[0]")
    api = ev.route(probe("/apix"))  # a raw prefix, unlike Gateway API's segments
    assert (api.backends, api.timeout, api.retries) == (((V1, 0.9), (V2, 0.1)), "3s", 2)
    assert ev.route(probe("/")).backends == ((V1, 0.9), (V2, 0.1))  # no route: the splitter
    # A tcp service ignores router and splitter; the resolver's default subset still applies.
    tcp = [o for o in objects if o["kind"] != "ServiceDefaults"]
    tcp[-1] = copy.deepcopy(tcp[-1])
    resolver = next(o for o in tcp if o["kind"] == "ServiceResolver")
    resolver["spec"]["defaultSubset"] = "v2"
    assert ConsulEvaluator(tcp, world).route(probe("/admin")).backends == ((V2, 1.0),)


def test_consul_nested_splitters_and_redirect():
    world = World(kube(consul_meta=True) + [service("web-new", app="web", version="v2")])
    defaults = [{"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ServiceDefaults",
                 "metadata": {"name": n, "namespace": "shop"}, "spec": {"protocol": "http"}}
                for n in ("web", "web-new")]
    outer = {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ServiceSplitter",
             "metadata": {"name": "web", "namespace": "shop"},
             "spec": {"splits": [{"weight": 50, "service": "web", "serviceSubset": "v1"},
                                 {"weight": 50, "service": "web-new"}]}}
    inner = {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ServiceSplitter",
             "metadata": {"name": "web-new", "namespace": "shop"},
             "spec": {"splits": [{"weight": 20, "service": "web-new"},
                                 {"weight": 80, "service": "web", "serviceSubset": "v1"}]}}
    resolver = {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ServiceResolver",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"subsets": {"v1": {"filter": "Service.Meta.version == v1"}}}}
    ev = ConsulEvaluator(defaults + [outer, inner, resolver], world)
    assert ev.route(probe()).backends == ((V1, 0.9), (V2, 0.1))
    redirect = {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ServiceResolver",
                "metadata": {"name": "web-new", "namespace": "shop"},
                "spec": {"redirect": {"service": "web", "serviceSubset": "v1"}}}
    ev = ConsulEvaluator(defaults + [outer, inner, resolver, redirect], world)
    assert ev.route(probe()).backends == ((V1, 1.0),)


def test_consul_intentions_precedence_permissions_default_and_permissive():
    def intentions(*sources: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ServiceIntentions",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"destination": {"name": "web"}, "sources": list(sources)}}
    http = {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "ServiceDefaults",
            "metadata": {"name": "web", "namespace": "shop"}, "spec": {"protocol": "http"}}
    world = World(kube())
    exact = ConsulEvaluator([intentions({"name": "*", "action": "allow"},
                                        {"name": "frontend", "action": "deny"})], world)
    assert not exact.allowed(probe(), V1, 80)[0]  # the exact source beats the wildcard
    assert exact.allowed(probe(client=UNKNOWN), V1, 80)[0]
    l7 = ConsulEvaluator([http, intentions({"name": "frontend", "permissions": [
        {"action": "deny", "http": {"pathPrefix": "/admin"}},
        {"action": "allow", "http": {"pathPrefix": "/", "methods": ["GET"]}}]})], world)
    assert l7.allowed(probe("/x"), V1, 80)[0]
    assert not l7.allowed(probe("/admin/x"), V1, 80)[0]  # first match is terminal
    assert not l7.allowed(probe("/x", "POST"), V1, 80)[0]  # nothing matches: the default
    opened = ConsulEvaluator([http, intentions({"name": "frontend", "permissions": [
        {"action": "deny", "http": {"pathExact": "/admin"}}]})], world, default_allow=True)
    assert opened.allowed(probe("/x", "POST"), V1, 80)[0]
    assert not ConsulEvaluator([], world).allowed(probe(), V1, 80)[0]  # default deny
    assert ConsulEvaluator([], world, default_allow=True).allowed(probe(), V1, 80)[0]
    # Plaintext: refused under strict mTLS, admitted (intentions not enforced) when permissive
    # is both set and enabled on the Mesh entry.
    assert not exact.allowed(probe(client=ANONYMOUS), V1, 80)[0]
    permissive = copy.deepcopy(http)
    permissive["spec"]["mutualTLSMode"] = "permissive"
    mesh = {"apiVersion": "consul.hashicorp.com/v1alpha1", "kind": "Mesh",
            "metadata": {"name": "mesh", "namespace": "consul"},
            "spec": {"allowEnablingPermissiveMutualTLS": True}}
    assert not ConsulEvaluator([permissive], world).allowed(probe(client=ANONYMOUS), V1, 80)[0]
    assert ConsulEvaluator([permissive, mesh], world).allowed(probe(client=ANONYMOUS), V1,
                                                              80)[0]


def test_consul_probes_from_routers_and_intentions():
    objects = kube(consul_meta=True) + consul_source()
    world = World(objects)
    paths = {(p.path, p.method) for p in consul_routing(objects, world)}
    assert {("/admin", "GET"), ("/adminx", "GET"), ("/api", "GET"), ("/apix", "GET"),
            ("/api/x", "GET"), ("/", "GET")} <= paths
    clients = {p.client for p in consul_authz(objects, world)}
    assert {FRONTEND, UNKNOWN, ANONYMOUS} <= clients


# -- Istio as a target ---------------------------------------------------------------------
def test_istio_reads_gateway_api_routes_with_service_parents():
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "web", "namespace": "shop"},
             "spec": {"parentRefs": [{"kind": "Service", "group": "", "name": "web"}], "rules": [
                 {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                  "backendRefs": [{"name": "web-v2", "port": 80}],
                  "timeouts": {"request": "2s"}, "retry": {"attempts": 3}},
                 {"matches": [{"path": {"type": "Exact", "value": "/"}}],
                  "backendRefs": [{"name": "web-v1", "port": 80}]}]}}
    ev = IstioEvaluator([route], World(kube() + subset_services()))
    api = ev.route(probe("/api/x"))
    assert (api.backends, api.timeout, api.retries) == (((V2, 1.0),), "2s", 3)
    root = ev.route(probe("/"))
    assert (root.backends, root.detail) == (((V1, 1.0),), "default")  # Istio's default retries
    assert ev.route(probe("/apix")).status == "no-route"  # segment prefix


# -- hand-written conversions ----------------------------------------------------------------
def linkerd_source() -> list[dict[str, Any]]:
    return subset_services() + [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
         "metadata": {"name": "web", "namespace": "shop",
                      "annotations": {"timeout.linkerd.io/request": "2s"}},
         "spec": {"parentRefs": [{"kind": "Service", "group": "", "name": "web", "port": 80}],
                  "rules": [
                      {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                       "backendRefs": [{"name": "web-v1", "port": 80, "weight": 90},
                                       {"name": "web-v2", "port": 80, "weight": 10}]},
                      {"matches": [{"path": {"type": "Exact", "value": "/api/admin"}}],
                       "backendRefs": [{"name": "web-v2", "port": 80}]}]}},
        {"apiVersion": "policy.linkerd.io/v1beta3", "kind": "Server",
         "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "port": 8080,
                  "accessPolicy": "deny"}},
        {"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "MeshTLSAuthentication",
         "metadata": {"name": "front", "namespace": "shop"},
         "spec": {"identities": [L5D_FRONTEND]}},
        {"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "front", "namespace": "shop"},
         "spec": {"targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": "web"},
                  "requiredAuthenticationRefs": [{"group": "policy.linkerd.io",
                                                  "kind": "MeshTLSAuthentication",
                                                  "name": "front"}]}}]


def istio_of_linkerd() -> list[dict[str, Any]]:
    """The correct Istio form: the more specific exact rule first, Gateway API's segment
    prefix as an exact and a ``/``-terminated prefix match, no retries."""
    return [
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
         "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"hosts": ["web.shop.svc.cluster.local"], "http": [
             {"match": [{"uri": {"exact": "/api/admin"}}],
              "route": [{"destination": {"host": "web-v2"}}], "timeout": "2s",
              "retries": {"attempts": 0}},
             {"match": [{"uri": {"exact": "/api"}}, {"uri": {"prefix": "/api/"}}],
              "route": [{"destination": {"host": "web-v1"}, "weight": 90},
                        {"destination": {"host": "web-v2"}, "weight": 10}],
              "timeout": "2s", "retries": {"attempts": 0}}]}},
        {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
         "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"selector": {"matchLabels": {"app": "web"}}, "mtls": {"mode": "STRICT"}}},
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"selector": {"matchLabels": {"app": "web"}}, "action": "ALLOW",
                  "rules": [{"from": [{"source": {"principals": [
                      "cluster.local/ns/front/sa/frontend"]}}]}]}}]


def consul_source() -> list[dict[str, Any]]:
    api = "consul.hashicorp.com/v1alpha1"

    def entry(kind: str, spec: dict[str, Any], name: str = "web") -> dict[str, Any]:
        return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "shop"},
                "spec": spec}
    return [
        entry("ServiceDefaults", {"protocol": "http"}),
        entry("ServiceRouter", {"routes": [
            {"match": {"http": {"pathExact": "/admin"}},
             "destination": {"serviceSubset": "v2"}},
            {"match": {"http": {"pathPrefix": "/api"}},
             "destination": {"requestTimeout": "3s", "numRetries": 2}}]}),
        entry("ServiceSplitter", {"splits": [{"weight": 90, "serviceSubset": "v1"},
                                             {"weight": 10, "serviceSubset": "v2"}]}),
        entry("ServiceIntentions", {"destination": {"name": "web"}, "sources": [
            {"name": "frontend", "action": "allow"}, {"name": "*", "action": "deny"}]}),
        entry("ServiceResolver", {"subsets": {
            "v1": {"filter": "Service.Meta.version == v1"},
            "v2": {"filter": "Service.Meta.version == v2"}}}),
    ]


def linkerd_of_consul() -> list[dict[str, Any]]:
    """The correct Linkerd form: per-subset Services, Consul's raw prefix as a regex, the
    router's timeout and retries on a route of their own, the intention as a Server policy."""
    def route(name: str, rules: list[dict[str, Any]], notes: dict[str, str] | None = None
              ) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": "shop"}
        if notes:
            meta["annotations"] = notes
        return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": meta,
                "spec": {"parentRefs": [{"kind": "Service", "group": "", "name": "web"}],
                         "rules": rules}}
    split = [{"name": "web-v1", "port": 80, "weight": 90},
             {"name": "web-v2", "port": 80, "weight": 10}]
    return subset_services() + [
        route("web", [{"matches": [{"path": {"type": "Exact", "value": "/admin"}}],
                       "backendRefs": [{"name": "web-v2", "port": 80}]},
                      {"backendRefs": split}]),
        route("web-api", [{"matches": [{"path": {"type": "RegularExpression",
                                                 "value": "/api.*"}}],
                           "backendRefs": copy.deepcopy(split)}],
              {"timeout.linkerd.io/request": "3s", "retry.linkerd.io/http": "5xx",
               "retry.linkerd.io/limit": "2"}),
        *[o for o in linkerd_source() if o["kind"] in ("Server", "MeshTLSAuthentication",
                                                       "AuthorizationPolicy")],
        # No intention names frontend, so Consul's default (deny, ACLs on) holds there; the
        # writer carries it as a Server that admits nobody (Linkerd's default admits all).
        {"apiVersion": "policy.linkerd.io/v1beta3", "kind": "Server",
         "metadata": {"name": "frontend", "namespace": "front"},
         "spec": {"podSelector": {"matchLabels": {"app": "frontend"}}, "port": 8080,
                  "accessPolicy": "deny"}}]


def istio_source() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
         "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"hosts": ["web"], "http": [
             {"match": [{"uri": {"exact": "/admin"}}],
              "route": [{"destination": {"host": "web", "subset": "v2"}}]},
             {"match": [{"uri": {"prefix": "/api"}}],
              "route": [{"destination": {"host": "web", "subset": "v1"}, "weight": 90},
                        {"destination": {"host": "web", "subset": "v2"}, "weight": 10}],
              "timeout": "3s", "retries": {"attempts": 2}},
             {"route": [{"destination": {"host": "web", "subset": "v1"}}]}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
         "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"host": "web", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                             {"name": "v2", "labels": {"version": "v2"}}]}},
        {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
         "metadata": {"name": "default", "namespace": "shop"},
         "spec": {"mtls": {"mode": "STRICT"}}},
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"selector": {"matchLabels": {"app": "web"}}, "rules": [
             {"from": [{"source": {"principals": ["cluster.local/ns/front/sa/frontend"]}}]}]}}]


def consul_of_istio() -> list[dict[str, Any]]:
    """The correct Consul form: the rules in order (a catch-all route last), the split as a
    splitter, subsets by service meta patched onto the pods, the ALLOW as an intention."""
    out = copy.deepcopy(consul_source())
    router = next(o for o in out if o["kind"] == "ServiceRouter")
    router["spec"]["routes"].append({"destination": {"serviceSubset": "v1"}})
    router["spec"]["routes"][1]["destination"]["service"] = "web"
    intentions = next(o for o in out if o["kind"] == "ServiceIntentions")
    intentions["spec"]["sources"] = [{"name": "frontend", "action": "allow"}]
    for name, version in (("web-v1", "v1"), ("web-v2", "v2")):
        out.append({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "namespace": "shop"},
                    "spec": {"template": {"metadata": {"annotations": {
                        "consul.hashicorp.com/service-meta-version": version}}}}})
    return out


def _find(objects: list[dict[str, Any]], kind: str, name: str = "web") -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


# Breakages, per target mesh: a wrong weight, reversed rule order, a dropped source, an extra
# allow.
def istio_wrong_weight(t: list[dict[str, Any]]) -> None:
    for d in _find(t, "VirtualService")["spec"]["http"][1]["route"]:
        d["weight"] = 50


def istio_reversed_order(t: list[dict[str, Any]]) -> None:
    _find(t, "VirtualService")["spec"]["http"].reverse()


def istio_dropped_source(t: list[dict[str, Any]]) -> None:
    _find(t, "AuthorizationPolicy")["spec"]["rules"][0]["from"][0]["source"]["principals"] = \
        ["cluster.local/ns/front/sa/other"]


def istio_extra_allow(t: list[dict[str, Any]]) -> None:
    t.append({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
              "metadata": {"name": "oops", "namespace": "shop"},
              "spec": {"selector": {"matchLabels": {"app": "web"}}, "rules": [{}]}})


def linkerd_wrong_weight(t: list[dict[str, Any]]) -> None:
    _find(t, "HTTPRoute", "web-api")["spec"]["rules"][0]["backendRefs"][0]["weight"] = 10


def linkerd_reversed_order(t: list[dict[str, Any]]) -> None:
    # Consul tried /admin first; a converter that let a broader rule win breaks that.
    rules = _find(t, "HTTPRoute")["spec"]["rules"]
    rules[0]["matches"][0]["path"] = {"type": "PathPrefix", "value": "/"}
    rules[1]["matches"] = [{"path": {"type": "Exact", "value": "/admin"}}]


def linkerd_dropped_source(t: list[dict[str, Any]]) -> None:
    _find(t, "MeshTLSAuthentication", "front")["spec"]["identities"] = []


def linkerd_extra_allow(t: list[dict[str, Any]]) -> None:
    _find(t, "Server")["spec"]["accessPolicy"] = "all-authenticated"


def consul_wrong_weight(t: list[dict[str, Any]]) -> None:
    for s in _find(t, "ServiceSplitter")["spec"]["splits"]:
        s["weight"] = 50


def consul_reversed_order(t: list[dict[str, Any]]) -> None:
    _find(t, "ServiceRouter")["spec"]["routes"].reverse()


def consul_dropped_source(t: list[dict[str, Any]]) -> None:
    _find(t, "ServiceIntentions")["spec"]["sources"] = []


def consul_extra_allow(t: list[dict[str, Any]]) -> None:
    _find(t, "ServiceIntentions")["spec"]["sources"].append({"name": "*", "action": "allow"})


CASES: dict[str, tuple[str, str, Callable[[], list[dict[str, Any]]],
                       Callable[[], list[dict[str, Any]]], list[Callable[..., None]]]] = {
    "linkerd-to-istio": ("linkerd", "istio", lambda: kube() + linkerd_source(), istio_of_linkerd,
                         [istio_wrong_weight, istio_reversed_order, istio_dropped_source,
                          istio_extra_allow]),
    "consul-to-linkerd": ("consul", "linkerd", lambda: kube(True) + consul_source(),
                          linkerd_of_consul,
                          [linkerd_wrong_weight, linkerd_reversed_order, linkerd_dropped_source,
                           linkerd_extra_allow]),
    "istio-to-consul": ("istio", "consul", lambda: kube() + istio_source(), consul_of_istio,
                        [consul_wrong_weight, consul_reversed_order, consul_dropped_source,
                         consul_extra_allow]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_correct_conversion_has_no_divergence(case: str):
    src_mesh, tgt_mesh, source, target, _ = CASES[case]
    result = compare(source(), target(), {}, [], source_mesh=src_mesh, target_mesh=tgt_mesh)
    assert result.probes > 10 and not result.not_evaluated
    assert result.divergences == [], [f"{d.probe} {d.aspect}: {d.source} / {d.target}"
                                      for d in result.divergences]
    assert any(p.why == "authorization" for p in _probes(src_mesh, source()))


def _probes(mesh: str, objects: list[dict[str, Any]]) -> list[Probe]:
    world = World(objects)
    return [p for gen in PROBES[mesh] for p in gen(objects, world)]


@pytest.mark.parametrize("case,index", [(c, i) for c in sorted(CASES) for i in range(4)])
def test_broken_conversion_is_an_unexplained_divergence(case: str, index: int):
    src_mesh, tgt_mesh, source, target, breakages = CASES[case]
    broken = target()
    breakages[index](broken)
    result = compare(source(), broken, {}, [], source_mesh=src_mesh, target_mesh=tgt_mesh)
    assert result.unexplained, f"{breakages[index].__name__} was not caught"
    aspect = {0: {"backends"}, 1: {"backends", "timeout", "retries"}, 2: {"authorization"},
              3: {"authorization"}}
    assert {d.aspect for d in result.unexplained} <= aspect[index]


def test_a_divergence_with_a_loss_on_its_object_is_explained():
    from migrate.losses import Loss, ObjectRef, Severity

    src_mesh, tgt_mesh, source, target, breakages = CASES["istio-to-consul"]
    broken = target()
    consul_wrong_weight(broken)
    loss = Loss("ROUTE_WEIGHT_ROUNDED", Severity.DEGRADED, "route.http",
                ObjectRef("VirtualService", "shop", "web", "networking.istio.io/v1"),
                "spec.http[1].route", "weights rounded", "")
    result = compare(source(), broken, {}, [loss], source_mesh=src_mesh, target_mesh=tgt_mesh)
    assert result.divergences and not result.unexplained
    other_rule = Loss("ROUTE_WEIGHT_ROUNDED", Severity.DEGRADED, "route.http", loss.object,
                      "spec.http[0].route", "elsewhere", "")
    result = compare(source(), broken, {}, [other_rule], source_mesh=src_mesh,
                     target_mesh=tgt_mesh)
    assert result.unexplained  # a loss on another rule explains nothing here


def test_every_mesh_has_an_evaluator_and_probes_and_unknown_pairs_say_so():
    assert sorted(EVALUATORS) == sorted(PROBES) == ["consul", "istio", "linkerd"]
    result = compare(kube(), [], {}, [], source_mesh="kuma", target_mesh="istio")
    assert result.probes == 0 and "kuma" in result.not_evaluated
    assert result.to_json()["not_evaluated"] == result.not_evaluated


def test_regex_samples():
    assert regex_sample(r"/books/[^/]+/\d+") == "/books/x/1"
    assert regex_sample("/a(b|c)") is None


# -- coexistence -----------------------------------------------------------------------------
def three_namespaces() -> list[dict[str, Any]]:
    """a -> b -> c, Istio with STRICT mTLS in b and c and a weighted route for c."""
    objects: list[dict[str, Any]] = []
    for ns in ("a", "b", "c"):
        objects += [service("svc", ns), deployment("svc", ns, {"app": "svc"}, f"sa-{ns}")]
    objects += [deployment("svc-v2", "c", {"app": "svc", "v": "2"}, "sa-c"),
                service("svc-v2", "c", app="svc", v="2")]
    for ns in ("b", "c"):
        objects.append({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                        "metadata": {"name": "default", "namespace": ns},
                        "spec": {"mtls": {"mode": "STRICT"}}})
    objects.append({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                    "metadata": {"name": "svc", "namespace": "c"},
                    "spec": {"hosts": ["svc"], "http": [{"route": [
                        {"destination": {"host": "svc-v2"}}]}]}})
    return objects


def linkerd_step(ns: str) -> list[dict[str, Any]]:
    """What moving a namespace applies: Linkerd's form of its routes (none for a and b)."""
    if ns != "c":
        return []
    return [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "svc", "namespace": "c"},
             "spec": {"parentRefs": [{"kind": "Service", "group": "", "name": "svc"}],
                      "rules": [{"backendRefs": [{"name": "svc-v2", "port": 80}]}]}}]


def plan_steps(order: list[str]) -> list[tuple[list[dict[str, Any]], list[str], set[str]]]:
    steps, moved = [], set()
    for ns in order:
        moved = moved | {ns}
        # The move injects Linkerd's proxy, as the planner's commands do.
        steps.append((linkerd_step(ns), [f"kubectl annotate namespace {ns} linkerd.io/inject="
                                         "enabled --overwrite"] +
                      ([f"kubectl delete peerauthentication.security.istio.io/default -n {ns}"]
                       if ns != "a" else []), set(moved)))
    steps.append(([], [f"kubectl annotate namespace {ns} config.linkerd.io/default-inbound-"
                       f"policy=all-authenticated --overwrite" for ns in ("b", "c")],
                  set(moved)))
    return steps


def test_coexistence_callee_first_keeps_every_call_and_caller_first_breaks_one():
    deps = [("a", "b"), ("b", "c")]
    good = coexistence(plan_steps(["c", "b", "a"]), three_namespaces(), deps)
    assert [s["moved"] for s in good] == [["c"], ["b", "c"], ["a", "b", "c"], ["a", "b", "c"]]
    assert all(s["calls_checked"] > 0 for s in good)
    assert [(s["refused"], s["routing_changed"]) for s in good] == [([], [])] * 4
    bad = coexistence(plan_steps(["a", "b", "c"]), three_namespaces(), deps)
    first = bad[0]["refused"]
    assert first and {(r["caller"], r["callee"]) for r in first} == {("a", "b")}
    assert all(r["plaintext"] and "PeerAuthentication/b/default" in r["why"] for r in first)
    # b moves before c: b's proxy no longer has c's route (applied only when c moves).
    assert {(r["caller"], r["callee"]) for r in bad[1]["routing_changed"]} == {("b", "c")}
    assert bad[1]["refused"] and bad[-1]["refused"] == []


def test_coexistence_reports_enforcement_before_callers_moved():
    deps = [("a", "b"), ("b", "c")]
    steps = plan_steps(["c", "b", "a"])
    early = [steps[0], (steps[-1][0], steps[-1][1], {"c"})]  # enforce while b is on Istio
    result = coexistence(early, three_namespaces(), deps)
    assert result[0]["refused"] == []
    assert [(r["caller"], r["callee"]) for r in result[1]["refused"]] and all(
        "linkerd refuses" in r["why"] for r in result[1]["refused"])


# -- the shared corpus -----------------------------------------------------------------------
@pytest.mark.parametrize("mesh,name", corpus_cases([(m, s) for m in ("linkerd", "consul")
                                                    for s in shared_sets(m)], 2))
def test_corpus_sets_evaluate_without_errors(shared, mesh: str, name: str):
    from migrate.sources.files import read_files
    from migrate.verify.registry import Settings, generate

    objects = [o.body for o in read_files([str(shared / "corpus" / mesh / name)]).objects]
    world = World(objects)
    evaluator = EVALUATORS[mesh](objects, world, Settings())
    probes = generate(mesh, objects, world)
    assert probes
    for p in probes:  # any exception fails the test: evaluators must survive real configs
        outcome = evaluator.route(p)
        for backend, _ in outcome.backends:
            for wid in backend.split("+"):
                if wid.startswith("Deployment/"):
                    evaluator.allowed(p, wid, p.port)


def test_corpus_consul_intentions_and_linkerd_traffic_split(shared):
    from migrate.sources.files import read_files
    from migrate.verify.registry import Settings

    objects = [o.body for o in read_files(
        [str(shared / "corpus" / "consul" / "learn-consul-k8s-traffic")]).objects]
    consul = EVALUATORS["consul"](objects, World(objects), Settings())
    call = Probe("default", "public-api", 8080, "/", "GET", (), Client("default", "frontend"))
    assert consul.allowed(call, "Deployment/default/public-api", 8080) == (
        True, ("ServiceIntentions/default/frontend-to-public-api",))
    call = Probe("default", "postgres", 5432, "/", "GET", (), Client("default", "frontend"))
    assert consul.allowed(call, "Deployment/default/postgres", 5432) == (
        False, ("ServiceIntentions/default/deny-all",))
    objects = [o.body for o in read_files(
        [str(shared / "corpus" / "linkerd" / "emojivoto")]).objects]
    linkerd = EVALUATORS["linkerd"](objects, World(objects), Settings())
    outcome = linkerd.route(Probe("emojivoto", "web-apex", 80))
    # Three copies of web-svc-ts (100-0.yml, 75-25.yml, web-svc-ts.yml with 500m each): the
    # one read last counts, as in the reader; weights are Kubernetes quantities.
    assert outcome.backends == (("Deployment/emojivoto/web", 0.5),
                                ("Deployment/emojivoto/web-svc-2", 0.5))
    assert any(s.startswith("TrafficSplit/") for s in outcome.sources)


def test_coexistence_renders_for_the_runbook():
    from migrate.verify.coexist import render_markdown

    bad = coexistence(plan_steps(["a", "b", "c"]), three_namespaces(), [("a", "b"), ("b", "c")])
    text = render_markdown(bad)
    assert text.startswith("| step | moved so far | calls checked | refused | rerouted |")
    assert "- step 1: a -> b `GET b/svc:80/` from a/sa-a refused at Deployment/b/svc" in text
    assert "was routed to Deployment/c/svc-v2 100%" in text
    assert render_markdown(bad) == text  # deterministic


# -- every pair the pipeline wires ---------------------------------------------------------
def _pairs() -> list[tuple[str, str]]:
    from migrate.pipeline import SOURCES, TARGETS

    return [(s, t) for s in sorted(SOURCES) for t in sorted(TARGETS)
            if s != t and s in EVALUATORS and t in EVALUATORS]


@pytest.mark.parametrize("pair", _pairs(), ids="-to-".join)
def test_every_wired_pair_verifies_its_samples_without_unexplained_divergence(pair):
    from migrate.pipeline import PlanOptions, plan_migration
    from tests.conftest import SAMPLES

    cases = sorted(p for p in (SAMPLES / pair[0]).iterdir() if p.is_dir())
    assert cases, f"samples/{pair[0]} has no sample sets"
    for case in cases:
        eq = plan_migration(PlanOptions(pair[0], pair[1], [str(case)])).plan.equivalence
        assert eq is not None and (eq.source_mesh, eq.target_mesh) == pair
        assert not eq.not_evaluated and eq.probes > 0
        assert eq.unexplained == [], [f"{d.probe} {d.aspect}: {d.source} / {d.target}"
                                      for d in eq.unexplained]


# -- damaged input ---------------------------------------------------------------------------
_BAD: list[Any] = [None, 5, "x", [], {}, [1], {"a": 1}, True, -3, 1.5, [None], ["*"], "500m"]


def _paths(o: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    items = o.items() if isinstance(o, dict) else enumerate(o) if isinstance(o, list) else []
    for k, v in items:
        found += [prefix + (k,), *_paths(v, prefix + (k,))]
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_manifests_on_either_side_never_raise(case: str):
    src_mesh, tgt_mesh, source, target, _ = CASES[case]
    count = 0
    for side in (0, 1):
        base = [source(), target()]
        for i, obj in enumerate(base[side]):
            for path in _paths(obj):
                damaged = copy.deepcopy(base)
                node = damaged[side][i]
                for key in path[:-1]:
                    node = node[key]
                node[path[-1]] = _BAD[count % len(_BAD)]
                count += 1
                result = compare(damaged[0], damaged[1], {}, [], source_mesh=src_mesh,
                                 target_mesh=tgt_mesh)
                assert not result.not_evaluated  # and nothing raised
    assert count > 100
    result = coexistence([(target(), [], {"shop"})], [{"kind": "Service", "spec": 5}, *source()],
                         [("front", "shop")], source_mesh=src_mesh, target_mesh=tgt_mesh)
    assert result[0]["calls_checked"] > 0
