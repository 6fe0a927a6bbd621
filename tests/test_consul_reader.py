"""ConsulReader: consul-k8s objects into the IR, one test per rule, and the shared corpus
(every Consul set reads without a crash and accounts for every field)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from migrate.dialects.base import ReadResult
from migrate.dialects.consul.read_routing import parse_filter
from migrate.dialects.consul.read_workloads import parse_upstreams
from migrate.dialects.consul.reader import ConsulReader
from migrate.ir.graph import CALLS
from migrate.ir.model import (
    AuthzPolicy,
    DestinationPolicy,
    MTLSPolicy,
    Opaque,
    Route,
    Service,
    StringMatch,
    Workload,
)
from migrate.losses import LossLog
from migrate.sources.files import read_files
from tests.conftest import corpus_cases, shared_sets
from tests.test_corpus import covered, leaves

CONSUL_SETS = shared_sets("consul")
API = "apiVersion: consul.hashicorp.com/v1alpha1"


def read(text: str, **options: Any) -> tuple[ReadResult, LossLog]:
    """Read inline YAML with a ConsulReader."""
    losses = LossLog()
    problems: list[Any] = []
    source = read_files(["-"], io.BytesIO(text.encode()))
    result = ConsulReader(losses, problems, **options).read(source)
    assert problems == [] and source.problems == []
    return result, losses


def app(name: str, ns: str = "shop", sa: str = "", annotations: str = "",
        pod_labels: str = "", service: bool = True) -> str:
    """An injected Deployment (pods labelled ``app: name`` unless ``pod_labels`` says
    otherwise) and, with ``service``, the Service that registers it as Consul ``name``."""
    svc = f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 8080, name: http}}]
""" if service else ""
    return svc + f"""
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  template:
    metadata:
      labels: {{{pod_labels or f"app: {name}"}}}
      annotations:
        consul.hashicorp.com/connect-inject: "true"
{annotations}
    spec:
      serviceAccountName: {sa or name}
      containers: [{{name: app, image: x, ports: [{{containerPort: 8080}}]}}]
"""


def codes(losses: LossLog) -> list[tuple[str, str]]:
    """(code, path) of every loss."""
    return [(loss.code, loss.path) for loss in losses]


def policy(result: ReadResult, ns: str, name: str) -> AuthzPolicy:
    """The authorization policy for one destination."""
    found = [p for p in result.graph.of(AuthzPolicy) if p.namespace == ns and p.name == name]
    assert len(found) == 1, [p.name for p in result.graph.of(AuthzPolicy)]
    return found[0]


def principals(p: AuthzPolicy) -> list[tuple[str, ...]]:
    """Principals of each rule, in order."""
    return [tuple(x for s in r.sources for x in s.principals) for r in p.rules]


# -- corpus ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", corpus_cases(CONSUL_SETS))
def test_corpus_set_reads_and_accounts_for_every_field(shared: Path, name: str) -> None:
    losses = LossLog()
    problems: list[Any] = []
    source = read_files([str(shared / "corpus" / "consul" / name)])
    result = ConsulReader(losses, problems).read(source)
    assert problems == []
    assert [loss for loss in losses if loss.code == "OBJECT_UNREADABLE"] == []
    assert result.raw, "the set has Consul objects"
    reported = {(loss.object, loss.path) for loss in losses}
    for ref, raw in result.raw.items():
        accounted = result.accounted[ref]
        missing = [leaf for leaf in leaves(raw.body) if not covered(leaf, accounted)]
        assert missing == [], f"{ref}: fields neither used nor reported: {missing}"
        for loss in losses:
            if loss.object == ref and loss.code == "FIELD_UNMODELLED":
                assert (ref, loss.path) in reported
    assert not any(k.startswith("consul.hashicorp.com/") for k in result.skipped)


def test_corpus_intentions_become_allow_lists(shared: Path) -> None:
    losses = LossLog()
    source = read_files([str(shared / "corpus" / "consul" / "consul-k8s-demo-hashicups")])
    result = ConsulReader(losses, []).read(source)
    # deny-all (* -> *) plus exact allows: every service gets an allow-list.
    assert principals(policy(result, "default", "products-api")) == [
        ("cluster.local/ns/default/sa/public-api",)]
    assert policy(result, "default", "nginx").rules == ()
    # Explicit upstreams are call edges for the namespace dependency graph.
    calls = set(result.graph.edges(CALLS))
    assert ("Deployment/default/public-api", "Service/default/products-api") in calls


# -- names, injection, annotations -------------------------------------------------------------
def test_injection_follows_the_connect_inject_annotation() -> None:
    text = app("web") + """
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: quiet, namespace: shop}
spec:
  template:
    metadata:
      annotations: {consul.hashicorp.com/connect-inject: "false"}
    spec: {containers: [{name: a, image: x}]}
"""
    result, _ = read(text)
    injection = {w.name: w.injection for w in result.graph.of(Workload)}
    assert injection == {"web": "sidecar", "quiet": "none"}
    assert result.graph.namespace("shop").injection == "none"  # type: ignore[union-attr]
    result, _ = read(text, inject_default=True)
    assert result.graph.namespace("shop").injection == "sidecar"  # type: ignore[union-attr]


def test_same_name_in_two_namespaces_is_one_consul_service_and_reported() -> None:
    result, losses = read(app("web", "a") + app("web", "b") + app("api", "a") + f"""
---
{API}
kind: ServiceIntentions
metadata: {{name: web, namespace: a}}
spec:
  destination: {{name: web}}
  sources: [{{name: api, action: allow}}]
""")
    shared = [(loss.object.namespace, loss.path) for loss in losses
              if loss.code == "CONSUL_SHARED_NAME"]
    assert shared == [("a", "metadata.name"), ("b", "metadata.name")]
    # The intention for the shared name applies in both namespaces.
    for ns in ("a", "b"):
        assert principals(policy(result, ns, "web")) == [("cluster.local/ns/a/sa/api",)]


def test_connect_service_annotation_renames_the_consul_service() -> None:
    result, _ = read(app("web-svc", annotations="        consul.hashicorp.com/connect-service:"
                                                " frontend") + app("api") + f"""
---
{API}
kind: ServiceIntentions
metadata: {{name: frontend, namespace: shop}}
spec:
  destination: {{name: frontend}}
  sources: [{{name: api, action: allow}}]
""")
    p = policy(result, "shop", "frontend-web-svc")
    assert p.selector == (("app", "web-svc"),)
    assert principals(p) == [("cluster.local/ns/shop/sa/api",)]


def test_source_principal_uses_the_pods_service_account() -> None:
    result, _ = read(app("web") + app("api", sa="api-runner") + f"""
---
{API}
kind: ServiceIntentions
metadata: {{name: web, namespace: shop}}
spec:
  destination: {{name: web}}
  sources: [{{name: api, action: allow}}, {{name: ghost, action: allow}}]
""")
    assert principals(policy(result, "shop", "web")) == [
        ("cluster.local/ns/shop/sa/api-runner",), ("*/sa/ghost",)]


def test_explicit_upstreams_become_calls_and_a_feature_use() -> None:
    ann = ('        consul.hashicorp.com/connect-service-upstreams: '
           '"api:9090, db.svc.other.ns.peer1.peer:5432"')
    result, _ = read(app("web", annotations=ann) + app("api", "back"))
    web = next(w for w in result.graph.of(Workload) if w.name == "web")
    assert ("api.back", "spec.template.metadata.annotations."
            "consul.hashicorp.com/connect-service-upstreams") in web.calls
    assert ("Deployment/shop/web", "Service/back/api") in set(result.graph.edges(CALLS))
    deps = result.graph.namespace_dependencies(["back", "shop"])
    assert deps.has_edge("shop", "back")
    features = {(u.feature, u.detail) for u in result.graph.features}
    assert ("multicluster", "upstream db (peer peer1)") in features
    assert any(f == "workload.explicit_upstreams" for f, _ in features)


def test_parse_upstreams_forms() -> None:
    parsed = parse_upstreams("a:1, b.ns2:2, c:3:dc2, d.svc.ns4.ns.p.ap:4, prepared_query:q:5")
    assert [(u.service, u.namespace, u.port, u.remote) for u in parsed] == [
        ("a", "", "1", ""), ("b", "ns2", "2", ""), ("c", "", "3", "datacenter dc2"),
        ("d", "ns4", "4", "partition p"), ("q", "", "5", "prepared query")]


def test_proxy_annotations_are_feature_uses() -> None:
    ann = ("        consul.hashicorp.com/transparent-proxy: \"false\"\n"
           "        consul.hashicorp.com/sidecar-proxy-cpu-limit: 200m\n"
           "        consul.hashicorp.com/enable-metrics: \"true\"\n"
           "        consul.hashicorp.com/connect-inject-status: injected")
    result, _ = read(app("web", annotations=ann))
    used = sorted(u.feature for u in result.graph.features if u.origin.ref.kind == "Deployment")
    assert used == ["telemetry", "workload.capture_annotations", "workload.proxy_annotations"]


# -- defaults and mTLS -------------------------------------------------------------------------
def test_protocol_and_strict_mtls_per_namespace() -> None:
    result, _ = read(app("web") + app("db") + f"""
---
{API}
kind: ServiceDefaults
metadata: {{name: web, namespace: shop}}
spec: {{protocol: http}}
---
{API}
kind: ProxyDefaults
metadata: {{name: global, namespace: consul}}
spec: {{config: {{protocol: http2}}}}
""")
    protocols = {s.key.name: s.mesh_protocol for s in result.graph.of(Service)}
    assert protocols == {"web": "http", "db": "http2"}
    mtls = result.graph.of(MTLSPolicy)
    assert [(m.namespace, m.selector, m.mode) for m in mtls] == [("shop", None, "STRICT")]


def test_permissive_service_needs_the_mesh_switch() -> None:
    defaults = app("web") + f"""
---
{API}
kind: ServiceDefaults
metadata: {{name: web, namespace: shop}}
spec: {{mutualTLSMode: permissive}}
"""
    result, losses = read(defaults)
    assert [m.mode for m in result.graph.of(MTLSPolicy)] == ["STRICT"]
    assert ("FIELD_INVALID", "spec.mutualTLSMode") in codes(losses)
    result, losses = read(defaults + f"""
---
{API}
kind: Mesh
metadata: {{name: mesh, namespace: consul}}
spec: {{allowEnablingPermissiveMutualTLS: true}}
""")
    modes = {(m.name, m.selector, m.mode) for m in result.graph.of(MTLSPolicy)}
    assert modes == {("consul-mtls", None, "STRICT"), ("web", (("app", "web"),), "PERMISSIVE")}


def test_upstream_override_health_check_is_a_destination_policy() -> None:
    result, _ = read(app("web") + app("api") + f"""
---
{API}
kind: ServiceDefaults
metadata: {{name: web, namespace: shop}}
spec:
  upstreamConfig:
    overrides:
    - name: api
      passiveHealthCheck: {{maxFailures: 5, baseEjectionTime: 30s, interval: 10s}}
""")
    dp = result.graph.of(DestinationPolicy)
    assert len(dp) == 1 and dp[0].service is not None and dp[0].service.name == "api"
    assert dp[0].outlier is not None and dp[0].outlier.consecutive_errors == 5
    features = {u.feature for u in result.graph.features}
    assert {"destination.outlier_detection", "destination.workload_selector"} <= features


# -- intentions --------------------------------------------------------------------------------
INTENTION_APPS = app("web") + app("api") + app("admin") + app("batch")


def test_exact_source_beats_wildcard_source_and_wildcard_destination() -> None:
    result, _ = read(INTENTION_APPS + f"""
---
{API}
kind: ServiceIntentions
metadata: {{name: web, namespace: shop}}
spec:
  destination: {{name: web}}
  sources:
  - {{name: "*", action: deny}}
  - {{name: api, action: allow}}
---
{API}
kind: ServiceIntentions
metadata: {{name: everything, namespace: shop}}
spec:
  destination: {{name: "*"}}
  sources:
  - {{name: admin, action: allow}}
  - {{name: batch, action: deny}}
  - {{name: "*", action: allow}}
""", default_intention="allow")
    # web: api allowed (exact beats * deny); admin is decided by "* -> web" deny, which
    # outranks "admin -> *" allow; everyone else is refused too: an allow-list of api.
    web = policy(result, "shop", "web")
    assert web.action == "ALLOW"
    assert principals(web) == [("cluster.local/ns/shop/sa/api",)]
    # api: no own intention; "* -> *" allows everyone except batch: a deny-list.
    api = policy(result, "shop", "api")
    assert api.action == "DENY"
    assert principals(api) == [("cluster.local/ns/shop/sa/batch",)]


def test_default_intention_decides_services_without_intentions() -> None:
    result, _ = read(app("web"))
    p = policy(result, "shop", "web")
    assert (p.action, p.rules, p.origin.ref.kind) == ("ALLOW", (), "Service")
    result, _ = read(app("web"), default_intention="allow")
    assert result.graph.of(AuthzPolicy) == []


def test_l7_permissions_first_match_and_fail_closed() -> None:
    result, losses = read(INTENTION_APPS + f"""
---
{API}
kind: ServiceIntentions
metadata: {{name: web, namespace: shop}}
spec:
  destination: {{name: web}}
  sources:
  - name: api
    permissions:
    - action: allow
      http: {{pathPrefix: /v1, methods: [get]}}
    - action: deny
      http: {{pathPrefix: /v1/admin}}
    - action: allow
      http: {{pathExact: /health}}
    - action: allow
      http: {{pathPrefix: /v1/admin/public}}
    - action: allow
      http:
        pathExact: /beta
        header: [{{name: x-beta, present: true}}]
""")
    rules = policy(result, "shop", "web").rules
    # The deny (/v1/admin...) only carves an exception out of allows it can share a request
    # with: /v1/admin/public; /health and /beta are disjoint from it and stay exact.
    assert [(r.operations[0].paths, r.operations[0].methods, r.inexpressible) for r in rules] == [
        (("/v1*",), ("GET",), ()),
        (("/health",), (), ()),
        (("/v1/admin/public*",), (), ("authz.operation.negated",)),
        (("/beta",), (), ("authz.operation.regex",)),
    ]
    approx = [loss.path for loss in losses if loss.code == "CONSUL_INTENTION_APPROX"]
    assert approx == ["spec.sources[0].permissions[3]"]


def test_wildcard_permissions_carved_by_named_sources_fail_closed() -> None:
    result, losses = read(INTENTION_APPS + f"""
---
{API}
kind: ServiceIntentions
metadata: {{name: web, namespace: shop}}
spec:
  destination: {{name: web}}
  sources:
  - {{name: batch, action: deny}}
  - name: "*"
    permissions: [{{action: allow, http: {{methods: [GET]}}}}]
""")
    rules = policy(result, "shop", "web").rules
    assert [r.inexpressible for r in rules] == [
        ("authz.source.negated",)]
    assert rules[0].sources[0].principals == ("*",)
    assert [loss.path for loss in losses if loss.code == "CONSUL_INTENTION_APPROX"] == [
        "spec.sources[1]"]


def test_intention_jwt_narrows_every_rule() -> None:
    result, _ = read(INTENTION_APPS + f"""
---
{API}
kind: ServiceIntentions
metadata: {{name: web, namespace: shop}}
spec:
  destination: {{name: web}}
  jwt: {{providers: [{{name: okta}}]}}
  sources: [{{name: api, action: allow}}]
""")
    assert [r.inexpressible for r in policy(result, "shop", "web").rules] == [
        ("authz.source.request_principals",)]


def test_unknown_destination_is_reported() -> None:
    _, losses = read(app("web") + f"""
---
{API}
kind: ServiceIntentions
metadata: {{name: ghost, namespace: shop}}
spec:
  destination: {{name: ghost}}
  sources: [{{name: web, action: allow}}]
""")
    assert ("CONSUL_SERVICE_UNRESOLVED", "spec.destination.name") in codes(losses)


# -- routing chain -----------------------------------------------------------------------------
META = "        consul.hashicorp.com/service-meta-version: "
# web, and api whose pods come in three Deployments: plain, v1 and v2 (meta and label).
CHAIN = (app("web") + app("api") +
         app("api-v1", service=False, pod_labels="app: api, version: v1",
             annotations=META + "v1") +
         app("api-v2", service=False, pod_labels="app: api, version: v2",
             annotations=META + "v2"))


def test_router_splitter_resolver_chain() -> None:
    result, losses = read(CHAIN + f"""
---
{API}
kind: ServiceRouter
metadata: {{name: web, namespace: shop}}
spec:
  routes:
  - match: {{http: {{pathPrefix: /api, methods: [GET, POST]}}}}
    destination: {{service: api, requestTimeout: 5s, numRetries: 3, retryOnConnectFailure: true}}
  - match: {{http: {{header: [{{name: x-canary, exact: "1"}}]}}}}
    destination: {{service: api, serviceSubset: v2}}
---
{API}
kind: ServiceSplitter
metadata: {{name: api, namespace: shop}}
spec:
  splits:
  - {{weight: 90, serviceSubset: v1}}
  - {{weight: 10, serviceSubset: v2}}
---
{API}
kind: ServiceResolver
metadata: {{name: api, namespace: shop}}
spec:
  defaultSubset: v1
  subsets:
    v1: {{filter: "Service.Meta.version == v1"}}
    v2: {{filter: 'Service.Meta.version == "v2"', onlyPassing: true}}
""")
    routes = {r.name: r for r in result.graph.of(Route)}
    web = routes["web"]
    assert (web.protocol, [h.name for h in web.hosts]) == ("http", ["web"])
    first, second, default = web.rules
    # Methods are an OR: one match per method.
    assert [(m.path, m.method) for m in first.matches] == [
        (StringMatch("prefix", "/api"), StringMatch("exact", "GET")),
        (StringMatch("prefix", "/api"), StringMatch("exact", "POST"))]
    # No subset named: the splitter applies.
    assert [(b.service.name, b.subset, b.weight) for b in first.backends] == [  # type: ignore
        ("api", "v1", 90), ("api", "v2", 10)]
    assert first.timeout == "5s" and first.retry is not None
    assert (first.retry.attempts, first.retry.retry_on) == (3, ("connect-failure",))
    # A subset named: the splitter is skipped.
    assert second.matches[0].headers == (("x-canary", StringMatch("exact", "1")),)
    assert [(b.host, b.subset, b.weight) for b in second.backends] == [("api", "v2", None)]
    # Consul's implicit catch-all goes to web itself.
    assert default.matches == () and [b.host for b in default.backends] == ["web"]
    # api's own route: its splitter for callers that dial api directly.
    assert [(b.subset, b.weight) for b in routes["api"].rules[0].backends] == [
        ("v1", 90), ("v2", 10)]
    # Subsets tied to pod labels through the service-meta annotations.
    dp = next(d for d in result.graph.of(DestinationPolicy) if d.name == "api")
    assert [(s.name, s.labels) for s in dp.subsets] == [
        ("v1", (("version", "v1"),)), ("v2", (("version", "v2"),))]
    assert [c for c, _ in codes(losses) if c.startswith("CONSUL")] == []


def test_resolver_redirect_and_default_subset_make_a_route() -> None:
    result, _ = read(app("web") + app("api") + f"""
---
{API}
kind: ServiceResolver
metadata: {{name: web, namespace: shop}}
spec:
  redirect: {{service: api}}
""")
    route = next(r for r in result.graph.of(Route) if r.name == "web")
    assert route.protocol == "tcp"
    assert "route.tcp" in {u.feature for u in result.graph.features}
    assert [(b.service.name, b.weight) for b in route.rules[0].backends] == [  # type: ignore
        ("api", None)]


def test_fractional_split_weights_keep_their_ratio() -> None:
    result, _ = read(app("web") + app("a") + app("b") + f"""
---
{API}
kind: ServiceSplitter
metadata: {{name: web, namespace: shop}}
spec:
  splits: [{{weight: 33.33, service: a}}, {{weight: 66.67, service: b}}]
""")
    route = next(r for r in result.graph.of(Route) if r.name == "web")
    assert [b.weight for b in route.rules[0].backends] == [3333, 6667]


def test_subset_filter_not_tied_to_labels_is_reported() -> None:
    result, losses = read(app("api") + f"""
---
{API}
kind: ServiceResolver
metadata: {{name: api, namespace: shop}}
spec:
  subsets:
    v2: {{filter: "Service.Meta.version != v1"}}
""")
    assert ("CONSUL_SUBSET_FILTER", "spec.subsets.v2.filter") in codes(losses)
    assert result.graph.of(DestinationPolicy)[0].subsets == ()


def test_parse_filter() -> None:
    parsed = parse_filter('Service.Meta.version == v2 and "canary" in Service.Tags')
    assert parsed is not None and parsed.meta == (("version", "v2"),)
    assert parsed.tags == ("canary",)
    assert parse_filter("Service.Meta.version == v1 or Service.Meta.version == v2") is None


def test_inverted_header_match_is_reported() -> None:
    result, _ = read(app("web") + f"""
---
{API}
kind: ServiceRouter
metadata: {{name: web, namespace: shop}}
spec:
  routes:
  - match: {{http: {{header: [{{name: x-test, exact: "1", invert: true}}]}}}}
    destination: {{service: web, prefixRewrite: /}}
""")
    features = {u.feature for u in result.graph.features}
    assert {"route.match.without_headers", "route.rewrite"} <= features


# -- kinds with no model -----------------------------------------------------------------------
def test_gateways_and_exports_are_opaque_feature_uses() -> None:
    result, _ = read(f"""
{API}
kind: TerminatingGateway
metadata: {{name: egress, namespace: consul}}
spec: {{services: [{{name: stripe}}]}}
---
{API}
kind: ExportedServices
metadata: {{name: default, namespace: consul}}
spec: {{services: [{{name: web, consumers: [{{peer: dc2}}]}}]}}
---
{API}
kind: ControlPlaneRequestLimit
metadata: {{name: limits, namespace: consul}}
spec: {{mode: permissive}}
""")
    opaque = {(o.kind, o.hosts) for o in result.graph.of(Opaque)}
    assert opaque == {("TerminatingGateway", ("stripe",)), ("ExportedServices", ("web",)),
                      ("ControlPlaneRequestLimit", ())}
    assert {u.feature for u in result.graph.features} == {
        "egress.service_entry", "multicluster", "control_plane.rate_limit"}


def test_unknown_field_is_reported_not_dropped() -> None:
    _, losses = read(app("web") + f"""
---
{API}
kind: ServiceDefaults
metadata: {{name: web, namespace: shop}}
spec: {{protocol: http, futureField: 1}}
""")
    assert ("FIELD_UNMODELLED", "spec.futureField") in codes(losses)


def test_bad_values_are_reported_not_raised() -> None:
    _, losses = read(app("web") + f"""
---
{API}
kind: ServiceSplitter
metadata: {{name: web, namespace: shop}}
spec:
  splits: [{{weight: lots}}]
---
{API}
kind: ServiceIntentions
metadata: {{name: web, namespace: shop}}
spec:
  destination: {{name: web}}
  sources: [{{name: api, action: maybe}}]
---
{API}
kind: ServiceDefaults
metadata: {{name: web, namespace: shop}}
spec: {{protocol: carrier-pigeon}}
""")
    found = codes(losses)
    assert ("FIELD_INVALID", "spec.splits[0].weight") in found
    assert ("FIELD_INVALID", "spec.sources[0].action") in found
    assert ("FIELD_INVALID", "spec.protocol") in found
    assert not any(c == "OBJECT_UNREADABLE" for c, _ in found)


def test_l7_config_on_a_tcp_service_is_reported() -> None:
    _, losses = read(app("web") + app("api") + f"""
---
{API}
kind: ServiceRouter
metadata: {{name: web, namespace: shop}}
spec:
  routes: [{{match: {{http: {{pathPrefix: /x}}}}, destination: {{service: api}}}}]
---
{API}
kind: ServiceIntentions
metadata: {{name: web, namespace: shop}}
spec:
  destination: {{name: web}}
  sources: [{{name: api, permissions: [{{action: allow, http: {{pathPrefix: /}}}}]}}]
""")
    found = codes(losses)
    assert ("FIELD_INVALID", "spec.routes") in found
    assert ("FIELD_INVALID", "spec.sources[0].permissions") in found


def test_kubernetes_service_annotation_picks_the_registering_service() -> None:
    ann = "        consul.hashicorp.com/kubernetes-service: web"
    extra = """
---
apiVersion: v1
kind: Service
metadata: {name: web-admin, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 9000}]
"""
    result, _ = read(app("web", annotations=ann) + extra)
    # web-admin selects the same pods but they register through web only: with the default
    # deny, only web gets a policy (web-admin is not a Consul service).
    assert [p.name for p in result.graph.of(AuthzPolicy)] == ["web"]


def test_ingress_gateway_listeners_mark_ingress_namespaces() -> None:
    result, losses = read(app("web", "front") + f"""
---
{API}
kind: IngressGateway
metadata: {{name: edge, namespace: consul}}
spec:
  listeners:
  - port: 8080
    protocol: http
    services: [{{name: web}}, {{name: ghost}}]
""")
    assert result.graph.ingress_namespaces() == {"front"}
    route = next(r for r in result.graph.of(Route) if r.ingress)
    assert (route.namespace, route.name, route.mesh) == ("consul", "edge-8080", False)
    assert ("CONSUL_SERVICE_UNRESOLVED", "spec.listeners[0].services[1]") in codes(losses)
    assert {u.feature for u in result.graph.features} >= {"ingress.gateway"}


def test_gateway_api_is_consul_api_gateway_ingress() -> None:
    result, losses = read(app("web") + """
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  parentRefs: [{name: api-gateway}, {kind: Service, name: web}]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
""")
    assert ("ingress.route", "spec") in {(u.feature, u.origin.path)
                                         for u in result.graph.features}
    # Consul ignores Service parents (no GAMMA): reported, not silently carried.
    assert ("FIELD_UNMODELLED", "spec.parentRefs[1]") in codes(losses)


def test_reading_is_independent_of_document_order() -> None:
    docs = (CHAIN + f"""
---
{API}
kind: ServiceSplitter
metadata: {{name: api, namespace: shop}}
spec:
  splits: [{{weight: 50, serviceSubset: v1}}, {{weight: 50, serviceSubset: v2}}]
---
{API}
kind: ServiceResolver
metadata: {{name: api, namespace: shop}}
spec:
  subsets:
    v1: {{filter: "Service.Meta.version == v1"}}
    v2: {{filter: "Service.Meta.version == v2"}}
---
{API}
kind: ServiceIntentions
metadata: {{name: api, namespace: shop}}
spec:
  destination: {{name: api}}
  sources: [{{name: web, action: allow}}]
""").split("\n---\n")

    def records(text: str) -> list[Any]:
        result, losses = read(text)
        graph = result.graph
        return [graph.of(Route), graph.of(AuthzPolicy), graph.of(DestinationPolicy),
                graph.of(MTLSPolicy), sorted(codes(losses))]

    assert records("\n---\n".join(docs)) == records("\n---\n".join(reversed(docs)))


KINDS = ("ServiceDefaults", "ProxyDefaults", "Mesh", "ServiceIntentions", "ServiceRouter",
         "ServiceSplitter", "ServiceResolver", "IngressGateway", "TerminatingGateway",
         "ExportedServices", "JWTProvider")
SHAPES = ("[1, 2]", "{sources: x, routes: 3, splits: {a: 1}, subsets: [1], listeners: 7}",
          "{sources: [{name: a, permissions: [3, {http: []}]}], destination: {name: [x]}}",
          "{routes: [{match: {http: {header: [1], methods: 5}}, destination: 2}]}",
          "{splits: [{weight: .inf}, {weight: 50, service: [x]}], redirect: [], "
          "subsets: {v1: {filter: 3}}, upstreamConfig: {overrides: [1, {name: {}}]}}",
          "{config: [x], protocol: {a: 1}, mutualTLSMode: 3, expose: {paths: [1]}}")


@pytest.mark.parametrize("shape", SHAPES)
def test_malformed_objects_never_break_the_read(shape: str) -> None:
    text = app("web", annotations="        consul.hashicorp.com/connect-service-upstreams: "
                                  "':::,a.b.c.d:x'") + "".join(f"""
---
{API}
kind: {kind}
metadata: {{name: web, namespace: shop}}
spec: {shape}
""" for kind in KINDS)
    result, losses = read(text)
    # Read to the end: every shape problem is a field loss, no handler gave up on an object.
    assert sum(result.read.get(kind, 0) for kind in KINDS) == len(KINDS)
    found = {code for code, _ in codes(losses)}
    assert "OBJECT_UNREADABLE" not in found
    assert found & {"FIELD_INVALID", "FIELD_UNMODELLED"}
