"""LinkerdReader: Linkerd configuration into the mesh-neutral IR, one test per rule, and every
Linkerd set of ../shared/corpus read with every field accounted for."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from migrate.check import check_capabilities
from migrate.dialects.base import ReadResult
from migrate.dialects.linkerd.read_policy import identity_source
from migrate.dialects.linkerd.read_serviceprofile import milli
from migrate.dialects.linkerd.reader import DEFAULT_CLUSTER_NETWORKS, LinkerdReader
from migrate.ir.model import (
    AuthzOperation,
    AuthzPolicy,
    AuthzSource,
    DestinationPolicy,
    EgressPolicy,
    MTLSPolicy,
    Namespace,
    Opaque,
    Route,
    StringMatch,
    Workload,
)
from migrate.losses import LossLog
from migrate.mappings import table
from migrate.sources.files import read_files
from migrate.sources.model import SourceResult
from tests.conftest import corpus_cases, shared_sets
from tests.test_corpus import covered, leaves

LINKERD_SETS = shared_sets("linkerd")


def read(text: str, **settings: object) -> tuple[ReadResult, LossLog]:
    """Read inline YAML with a fresh LinkerdReader."""
    losses = LossLog()
    problems: list = []
    source = read_files(["-"], stdin=io.BytesIO(text.encode()))
    assert source.problems == []
    result = LinkerdReader(losses, problems, **settings).read(source)  # type: ignore[arg-type]
    assert problems == []
    return result, losses


def authz(result: ReadResult) -> dict[str, AuthzPolicy]:
    return {p.name: p for p in result.graph.of(AuthzPolicy)}


def routes(result: ReadResult) -> dict[str, Route]:
    return {r.name: r for r in result.graph.of(Route)}


def losses_of(losses: LossLog, code: str) -> list:
    return [loss for loss in losses if loss.code == code]


def features(result: ReadResult) -> set[str]:
    return {u.feature for u in result.graph.features}


WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers:
      - name: web
        ports: [{name: http, containerPort: 8080}, {name: admin, containerPort: 9090}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
"""


# -- the reader's declarations ---------------------------------------------------------
def test_reader_declares_mesh_groups_and_rejects_unknown_default_policy():
    assert LinkerdReader.MESH == "linkerd"
    assert "policy.linkerd.io" in LinkerdReader.MESH_GROUPS
    assert "v1beta3" in LinkerdReader.GROUPS["policy.linkerd.io"]
    assert LinkerdReader.GROUPS["split.smi-spec.io"] >= {"v1alpha1", "v1alpha4"}
    assert ("linkerd.io", "ServiceProfile") in LinkerdReader.HANDLERS
    with pytest.raises(ValueError):
        LinkerdReader(LossLog(), [], cluster_default_policy="allow-all")


def test_unknown_version_is_an_input_problem_not_a_crash():
    losses, problems = LossLog(), []
    source = read_files(["-"], stdin=io.BytesIO(b"""
apiVersion: policy.linkerd.io/v9
kind: Server
metadata: {name: s, namespace: shop}
spec: {port: 80}
"""))
    LinkerdReader(losses, problems).read(source)
    assert len(problems) == 1 and "unknown apiVersion" in problems[0].message


# -- injection ---------------------------------------------------------------------------
def test_injection_from_namespace_and_pod_annotations():
    result, _ = read("""
apiVersion: v1
kind: Namespace
metadata: {name: a, annotations: {linkerd.io/inject: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: b}
---
apiVersion: v1
kind: Namespace
metadata: {name: c, annotations: {linkerd.io/inject: ingress}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: quiet, namespace: a}
spec: {template: {metadata: {annotations: {linkerd.io/inject: disabled}}, spec: {containers: []}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: plain, namespace: a}
spec: {template: {spec: {containers: []}}}
""")
    ns = {n.name: n.injection for n in result.graph.of(Namespace)}
    assert ns == {"a": "sidecar", "b": "none", "c": "sidecar"}
    workloads = {w.name: w.injection for w in result.graph.of(Workload)}
    assert workloads == {"quiet": "none", "plain": "inherit"}
    assert "injection.ingress" in features(result)


def test_config_annotations_on_pods_are_feature_uses():
    result, _ = read("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: shop}
spec:
  template:
    metadata:
      annotations:
        config.linkerd.io/opaque-ports: "5432"
        config.linkerd.io/skip-outbound-ports: "4222"
        config.linkerd.io/proxy-cpu-limit: "1"
        config.linkerd.io/access-log: json
    spec: {containers: []}
""")
    details = {(u.feature, u.detail) for u in result.graph.features}
    assert ("protocol.opaque", "config.linkerd.io/opaque-ports=5432") in details
    assert ("workload.capture_annotations", "config.linkerd.io/skip-outbound-ports=4222") in details
    assert ("workload.proxy_annotations", "config.linkerd.io/proxy-cpu-limit=1") in details
    assert ("telemetry", "config.linkerd.io/access-log=json") in details


def test_client_annotations_on_pods_have_no_effect_and_service_app_protocol_is_opaque():
    result, losses = read("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  template:
    metadata: {annotations: {retry.linkerd.io/http: 5xx}}
    spec: {containers: []}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {ports: [{port: 5432, appProtocol: linkerd.io/opaque}]}
""")
    (loss,) = losses_of(losses, "SOURCE_IGNORED")
    assert loss.path == "spec.template.metadata.annotations.retry.linkerd.io/http"
    assert result.graph.of(Route) == []
    assert ("protocol.opaque", "linkerd.io/opaque on port 5432") in {
        (u.feature, u.detail) for u in result.graph.features}


# -- identities --------------------------------------------------------------------------
@pytest.mark.parametrize("identity, expected", [
    ("web.shop.serviceaccount.identity.linkerd.cluster.local",
     AuthzSource(principals=("cluster.local/ns/shop/sa/web",))),
    ("*.shop.serviceaccount.identity.linkerd.cluster.local", AuthzSource(namespaces=("shop",))),
    ("*.shop.serviceaccount.identity.linkerd.east.example",
     AuthzSource(principals=("east.example/ns/shop/sa/*",))),
    ("*.serviceaccount.identity.linkerd.cluster.local",
     AuthzSource(principals=("cluster.local/*",))),
    ("*", AuthzSource(principals=("*",))),
    ("spiffe://cluster.local/vm/db", AuthzSource(principals=("cluster.local/vm/db",))),
    ("*.example.com", None),
])
def test_identity_becomes_ir_source(identity: str, expected: AuthzSource | None):
    assert identity_source(identity, "cluster.local") == expected


# -- authorization -----------------------------------------------------------------------
SERVER = """
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web-http, namespace: shop, labels: {tier: front}}
spec:
  podSelector: {matchLabels: {app: web}}
  port: http
  proxyProtocol: HTTP/1
"""


def test_authorization_policy_on_server_with_meshtls_and_network():
    result, losses = read(WEB + "---" + SERVER + """
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: callers, namespace: shop}
spec:
  identities: [api.shop.serviceaccount.identity.linkerd.cluster.local]
  identityRefs:
  - {kind: ServiceAccount, name: batch, namespace: jobs}
  - {kind: Namespace, name: ops}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: inside, namespace: shop}
spec: {networks: [{cidr: 10.0.0.0/8}]}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-callers, namespace: shop}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: callers}
  - {group: policy.linkerd.io, kind: NetworkAuthentication, name: inside}
""")
    policy = authz(result)["web-callers"]
    assert policy.selector == (("app", "web"),) and policy.action == "ALLOW"
    (rule,) = policy.rules
    # Identities OR'ed, each AND the network; the named port resolved through the pods.
    assert [(s.principals, s.namespaces, s.service_accounts, s.ip_blocks) for s in rule.sources] \
        == [(("cluster.local/ns/shop/sa/api",), (), (), ("10.0.0.0/8",)),
            ((), ("ops",), (), ("10.0.0.0/8",)),
            ((), (), ("jobs/batch",), ("10.0.0.0/8",))]
    assert [op.ports for op in rule.operations] == [(8080,)]
    assert rule.inexpressible == ()
    # Port 9090 has no Server: the default (all-unauthenticated) keeps it open.
    default = authz(result)["web-default-inbound"]
    assert default.rules[0].sources == () and default.rules[0].operations[0].ports == (9090,)


def test_route_scoped_policy_gets_paths_methods_and_server_port():
    result, _ = read(WEB + "---" + SERVER + """
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: web-read, namespace: shop}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web-http}]
  rules:
  - matches:
    - {path: {value: /books/}, method: GET}
    - {path: {type: Exact, value: /health}}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: web-read, namespace: shop}
spec:
  targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: web-read}
  requiredAuthenticationRefs:
  - {kind: ServiceAccount, name: api}
""")
    policy = authz(result)["web-read"]
    (rule,) = policy.rules
    assert rule.sources == (AuthzSource(service_accounts=("shop/api",),
                                        origin_path="spec.requiredAuthenticationRefs"),)
    ops = {(op.methods, op.paths, op.ports) for op in rule.operations}
    # PathPrefix /books/ covers /books and everything under it.
    assert ops == {(("GET",), ("/books", "/books/*"), (8080,)), ((), ("/health",), (8080,))}
    # The route policy's ALLOW already refuses everything else on these pods (as the Server's
    # default deny does): no deny-all record is needed for the Server itself.
    assert set(authz(result)) == {"web-read", "web-default-inbound"}


def test_regex_route_makes_the_route_policy_inexpressible():
    result, _ = read(WEB + "---" + SERVER + """
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: edit, namespace: shop}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web-http}]
  rules: [{matches: [{path: {type: RegularExpression, value: "/a/[0-9]+/edit"}}]}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: edit, namespace: shop}
spec:
  targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: edit}
  requiredAuthenticationRefs: []
""")
    (rule,) = authz(result)["edit"].rules
    assert rule.operations == () and rule.inexpressible == ("authz.operation.regex",)


def test_set_based_selector_expands_into_one_policy_per_value():
    result, _ = read("""
apiVersion: policy.linkerd.io/v1beta1
kind: Server
metadata: {name: prom, namespace: shop}
spec:
  port: 4191
  podSelector:
    matchExpressions: [{key: app, operator: In, values: [web, api]}]
---
apiVersion: policy.linkerd.io/v1beta1
kind: Server
metadata: {name: metrics, namespace: shop}
spec:
  port: 9100
  podSelector:
    matchExpressions: [{key: app, operator: In, values: [web, api]}]
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: scrape, namespace: shop}
spec:
  server: {name: metrics}
  client: {unauthenticated: true}
""")
    policies = authz(result)
    assert {n: p.selector for n, p in policies.items()} == {
        "scrape-1": (("app", "api"),), "scrape-2": (("app", "web"),)}
    assert policies["scrape-1"].rules[0].sources == ()
    assert policies["scrape-1"].rules[0].operations[0].ports == (9100,)


def test_server_authorization_by_selector_and_networks():
    result, _ = read(WEB + "---" + SERVER + """
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: front, namespace: shop}
spec:
  server: {selector: {matchLabels: {tier: front}}}
  client:
    meshTLS: {serviceAccounts: [{name: api}, {name: cron, namespace: jobs}]}
    networks: [{cidr: 10.1.0.0/16, except: [10.1.2.0/24]}]
""")
    (rule,) = authz(result)["front"].rules
    assert rule.sources[0].service_accounts == ("jobs/cron", "shop/api")
    assert rule.sources[0].ip_blocks == ("10.1.0.0/16",)
    assert rule.inexpressible == ("authz.source.negated",)


def test_unknown_named_port_is_reported_not_guessed():
    result, _ = read(SERVER)
    assert authz(result) == {}
    assert "authz.unresolved" in features(result)


def test_missing_authentication_or_target_is_reported():
    result, losses = read(WEB + "---" + SERVER + """
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: a, namespace: shop}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web-http}
  requiredAuthenticationRefs: [{kind: MeshTLSAuthentication, name: nowhere}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: b, namespace: shop}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: gone}
""")
    unresolved = {(str(loss.object), loss.path) for loss in losses_of(losses,
                                                                       "LINKERD_REF_UNRESOLVED")}
    assert unresolved == {("AuthorizationPolicy/shop/a", "spec.requiredAuthenticationRefs[0]"),
                          ("AuthorizationPolicy/shop/b", "spec.targetRef")}
    assert "a" not in authz(result) and "b" not in authz(result)


def test_server_access_policy_and_proxy_admin_port():
    result, losses = read(WEB + """
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: open, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}, port: 8080, accessPolicy: cluster-authenticated}
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: audit, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}, port: 9090, accessPolicy: audit}
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: admin, namespace: shop}
spec: {podSelector: {matchLabels: {}}, port: linkerd-admin}
""")
    (rule,) = authz(result)["open"].rules
    assert rule.sources == (AuthzSource(principals=("*",), ip_blocks=DEFAULT_CLUSTER_NETWORKS),)
    assert authz(result)["audit"].rules[0].sources == ()
    assert "authz.dry_run" in features(result)
    assert [str(loss.object) for loss in losses_of(losses, "AUTHZ_PROXY_ADMIN")] == \
        ["Server/shop/admin"]


def test_server_nobody_authorizes_denies_its_pods():
    result, _ = read(WEB + "---" + SERVER)
    assert authz(result)["web-http"].rules == ()
    assert authz(result)["web-http"].selector == (("app", "web"),)
    # Port 9090 has no Server; the default policy keeps it open to anyone.
    (rule,) = authz(result)["web-default-inbound"].rules
    assert rule.sources == () and rule.operations[0].ports == (9090,)


def test_unauthenticated_server_port_stays_permissive_under_strict_default():
    result, _ = read(WEB + "---" + SERVER + """
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: public, namespace: shop}
spec: {server: {name: web-http}, client: {unauthenticated: true}}
""", cluster_default_policy="all-authenticated")
    mtls = {p.name: p for p in result.graph.of(MTLSPolicy)}
    assert mtls["linkerd-default-inbound-policy"].mode == "STRICT"
    assert mtls["linkerd-default-inbound-policy"].mesh_wide
    assert mtls["web-http-plaintext"].port_modes == ((8080, "PERMISSIVE"),)
    assert mtls["web-http-plaintext"].selector == (("app", "web"),)
    # Port 9090 under all-authenticated: any meshed identity.
    (rule,) = authz(result)["web-default-inbound"].rules
    assert rule.sources == (AuthzSource(principals=("*",)),)


# -- default inbound policy --------------------------------------------------------------
def test_cluster_default_deny_closes_every_workload():
    result, _ = read(WEB, cluster_default_policy="deny")
    (mesh,) = [p for p in result.graph.of(MTLSPolicy) if p.mesh_wide]
    assert mesh.mode == "PERMISSIVE" and mesh.origin.ref.name == "linkerd-config"
    assert authz(result)["web-default-inbound"].rules == ()
    # With the Namespace in the input the record is namespace-wide (covers unseen pods too).
    result, _ = read(WEB + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
                     cluster_default_policy="deny")
    assert {n: (p.selector, p.rules) for n, p in authz(result).items()} == {
        "linkerd-default-deny": (None, ())}


def test_namespace_annotation_beats_cluster_and_pod_beats_namespace():
    result, _ = read("""
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  annotations: {config.linkerd.io/default-inbound-policy: all-authenticated}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: public, namespace: shop}
spec:
  template:
    metadata:
      labels: {app: public}
      annotations: {config.linkerd.io/default-inbound-policy: cluster-unauthenticated}
    spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
""", cluster_default_policy="deny")
    mtls = {p.name: p for p in result.graph.of(MTLSPolicy)}
    assert mtls["linkerd-default-inbound"].mode == "STRICT"
    assert mtls["linkerd-default-inbound"].selector is None
    assert mtls["public-default-inbound"].mode == "PERMISSIVE"
    assert mtls["public-default-inbound"].selector == (("app", "public"),)
    (rule,) = authz(result)["public-default-inbound"].rules
    assert rule.sources == (AuthzSource(ip_blocks=DEFAULT_CLUSTER_NETWORKS),)
    assert rule.operations == ()


def test_require_identity_ports_become_port_level_strict():
    result, _ = read("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: shop}
spec:
  template:
    metadata:
      labels: {app: db}
      annotations: {config.linkerd.io/proxy-require-identity-inbound-ports: "5432,6000-6001"}
    spec: {containers: []}
""")
    (policy,) = result.graph.of(MTLSPolicy)
    assert policy.mode == "UNSET"
    assert policy.port_modes == ((5432, "STRICT"), (6000, "STRICT"), (6001, "STRICT"))


# -- routes ------------------------------------------------------------------------------
GAMMA = WEB + """
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: web, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: web-v2, port: 80, weight: 10}, {name: web, port: 80, weight: 90}]
    timeouts: {request: 5s}
  - matches: [{path: {type: Exact, value: /api/login}, method: POST}]
"""


def test_gamma_route_rules_are_most_specific_first():
    result, _ = read(GAMMA)
    route = routes(result)["web"]
    assert route.hosts == (route.hosts[0],) and str(route.hosts[0]) == "shop/web"
    order = [(r.matches[0].path.kind, r.matches[0].path.value) if r.matches[0].path else None
             for r in route.rules]
    # Exact /api/login (with a method) and exact /api outrank the /api/ prefix, then /.
    assert order == [("exact", "/api/login"), ("exact", "/api"), ("prefix", "/api/"), None]
    assert [r.index for r in route.rules] == [0, 1, 2, 3]
    assert all(m.port == 80 for r in route.rules for m in r.matches)
    login = route.rules[0]
    assert login.matches[0].method == StringMatch("exact", "POST")
    # No backendRefs: the parent Service is the backend.
    assert [(b.service.name, b.port) for b in login.backends] == [("web", 80)]
    assert [(b.host, b.weight) for b in route.rules[1].backends] == [("web-v2", 10), ("web", 90)]
    assert route.rules[1].timeout == "5s"


def test_route_with_unsupported_filter_is_not_read():
    result, losses = read(WEB + """
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{kind: Service, group: core, name: web}]
  rules:
  - filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    backendRefs: [{name: web, port: 80}]
""")
    assert routes(result) == {}
    (loss,) = losses_of(losses, "SOURCE_IGNORED")
    assert loss.path == "spec.rules[0].filters[0]" and "URLRewrite" in loss.message
    assert losses_of(losses, "FIELD_UNMODELLED") == []


def test_service_profile_shadows_routes_and_annotations():
    result, losses = read(GAMMA.replace(
        "metadata: {name: web, namespace: shop}\nspec:\n  selector",
        "metadata:\n  name: web\n  namespace: shop\n  annotations:\n"
        "    retry.linkerd.io/http: 5xx\n    balancer.linkerd.io/failure-accrual: consecutive\n"
        "spec:\n  selector") + """
---
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: web.shop.svc.cluster.local, namespace: shop}
spec:
  retryBudget: {retryRatio: 0.2, minRetriesPerSecond: 10, ttl: 10s}
  routes:
  - name: list
    condition: {method: GET, pathRegex: /api/list}
    isRetryable: true
    timeout: 300ms
  - name: either
    condition:
      any: [{pathRegex: /a}, {pathRegex: /b}]
  - name: not-admin
    condition: {not: [{pathRegex: /admin}]}
""")
    shadowed = {(str(loss.object), loss.path) for loss in losses_of(losses, "ROUTE_SHADOWED")}
    assert shadowed == {
        ("HTTPRoute/shop/web", "spec"),
        ("Service/shop/web", "metadata.annotations.retry.linkerd.io/http"),
        ("Service/shop/web", "metadata.annotations.balancer.linkerd.io/failure-accrual")}
    assert all("ServiceProfile shop/web.shop.svc.cluster.local" in loss.message
               for loss in losses_of(losses, "ROUTE_SHADOWED"))
    (route,) = result.graph.of(Route)
    assert route.origin.ref.kind == "ServiceProfile"
    rules = [(r.name, [m.path.value for m in r.matches], r.timeout, r.retry is not None)
             for r in route.rules]
    # Profile order is kept (first match); the negated rule is left out; a catch-all ends it.
    assert rules == [("list", ["/api/list"], "300ms", True), ("either", ["/a", "/b"], "", False),
                     ("default", [], "", False)]
    assert result.graph.of(DestinationPolicy) == []
    assert {"destination.retry_budget", "route.match.negated"} <= features(result)


def test_profile_without_routes_overrides_nothing():
    result, losses = read(GAMMA + """
---
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: web.shop.svc.cluster.local, namespace: shop}
spec: {opaquePorts: [5432]}
""")
    assert losses_of(losses, "ROUTE_SHADOWED") == []
    assert set(routes(result)) == {"web"}
    assert "protocol.opaque" in features(result)


def test_annotations_route_beats_service_and_timeout_beats_field():
    result, _ = read(GAMMA.replace(
        "metadata: {name: web, namespace: shop}\nspec:\n  selector",
        "metadata:\n  name: web\n  namespace: shop\n  annotations:\n"
        "    retry.linkerd.io/http: 5xx\n    retry.linkerd.io/limit: '3'\n"
        "    timeout.linkerd.io/request: 1s\nspec:\n  selector").replace(
        "metadata: {name: web, namespace: shop}\nspec:\n  parentRefs",
        "metadata:\n  name: web\n  namespace: shop\n  annotations:\n"
        "    retry.linkerd.io/http: 502-504,gateway-error\nspec:\n  parentRefs"))
    route = routes(result)["web"]
    retry = route.rules[0].retry
    assert retry is not None and retry.retry_on == ("502", "503", "504", "gateway-error")
    assert retry.attempts == 1  # the route's annotations replace the Service's retry policy
    assert {r.timeout for r in route.rules} == {"1s"}


def test_service_retry_conditions_split_between_http_and_grpc_routes():
    service = """
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: shop
  annotations: {retry.linkerd.io/http: 5xx, retry.linkerd.io/grpc: unavailable}
spec: {selector: {app: api}, ports: [{port: 80}]}
"""
    route = """
---
apiVersion: gateway.networking.k8s.io/v1
kind: {kind}
metadata:
  name: r
  namespace: shop
  annotations: {{{wrong}: "5xx"}}
spec:
  parentRefs: [{{kind: Service, group: "", name: api}}]
  rules: [{{backendRefs: [{{name: api, port: 80}}]}}]
"""
    http, losses = read(service + route.format(kind="HTTPRoute", wrong="retry.linkerd.io/grpc"))
    assert routes(http)["r"].rules[0].retry.retry_on == ("5xx",)
    assert [loss.path for loss in losses_of(losses, "SOURCE_IGNORED")] == [
        "metadata.annotations.retry.linkerd.io/grpc"]
    grpc, _ = read(service + route.format(kind="GRPCRoute", wrong="retry.linkerd.io/http"))
    assert routes(grpc)["r"].rules[0].retry.retry_on == ("unavailable",)


def test_service_annotations_without_routes_get_a_route_and_failure_accrual():
    result, _ = read(WEB.replace(
        "metadata: {name: web, namespace: shop}\nspec:\n  selector",
        "metadata:\n  name: web\n  namespace: shop\n  annotations:\n"
        "    timeout.linkerd.io/request: 2s\n    timeout.linkerd.io/idle: 1m\n"
        "    balancer.linkerd.io/failure-accrual: consecutive\n"
        "    balancer.linkerd.io/failure-accrual-consecutive-max-failures: '5'\n"
        "    balancer.linkerd.io/failure-accrual-consecutive-jitter-ratio: '0.2'\n"
        "spec:\n  selector"))
    (route,) = result.graph.of(Route)
    assert route.origin.ref.kind == "Service" and route.rules[0].timeout == "2s"
    (dp,) = result.graph.of(DestinationPolicy)
    assert dp.outlier is not None and dp.outlier.consecutive_errors == 5
    assert dp.outlier.base_ejection_time == "1s"
    details = {(u.feature, u.detail) for u in result.graph.features}
    assert ("destination.outlier_detection", "jitter-ratio=0.2") in details
    assert ("route.timeout.stream", "timeout.linkerd.io/idle=1m") in details


def test_traffic_split_weights_and_merge_with_profile():
    result, _ = read("""
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: web-split, namespace: shop}
spec:
  service: web
  backends: [{service: web-v1, weight: 750m}, {service: web-v2, weight: "0.25"}]
---
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: web.shop.svc.cluster.local, namespace: shop}
spec:
  routes: [{name: r, condition: {method: GET}, timeout: 1s}]
""")
    (route,) = result.graph.of(Route)
    assert [[(b.host, b.weight) for b in r.backends] for r in route.rules] == \
        [[("web-v1", 750), ("web-v2", 250)]] * 2
    assert route.rules[0].timeout == "1s"
    assert milli("1") == 1000 and milli("x") is None


def test_grpc_and_tcp_routes():
    result, _ = read("""
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rpc, namespace: shop}
spec:
  parentRefs: [{kind: Service, group: "", name: api}]
  rules:
  - matches: [{method: {service: shop.Api, method: Get}}, {method: {service: shop.Api}}]
    backendRefs: [{name: api, port: 9000}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db, namespace: shop}
spec:
  parentRefs: [{kind: Service, group: "", name: db, port: 5432}]
  rules: [{backendRefs: [{name: db-new, port: 5432}]}]
""")
    rpc = routes(result)["rpc"]
    assert [m.path for r in rpc.rules for m in r.matches] == [
        StringMatch("exact", "/shop.Api/Get"), StringMatch("prefix", "/shop.Api/")]
    db = routes(result)["db"]
    assert db.protocol == "tcp" and db.rules[0].backends[0].host == "db-new"
    assert "route.tcp" in features(result)


def test_grpc_route_wins_over_http_route_on_the_same_service():
    result, losses = read("""
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rpc, namespace: shop}
spec:
  parentRefs: [{kind: Service, group: "", name: api}]
  rules: [{backendRefs: [{name: api, port: 9000}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{kind: Service, group: "", name: api}, {kind: Service, group: "", name: web}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
""")
    assert [str(h) for h in routes(result)["web"].hosts] == ["shop/web"]
    (loss,) = losses_of(losses, "SOURCE_IGNORED")
    assert str(loss.object) == "HTTPRoute/shop/web" and "GRPCRoute" in loss.message


def test_opaque_kinds_are_feature_uses():
    result, _ = read("""
apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {name: rl, namespace: shop}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web-http}
  total: {requestsPerSecond: 100}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: out, namespace: shop}
spec: {trafficPolicy: Deny}
---
apiVersion: workload.linkerd.io/v1beta1
kind: ExternalWorkload
metadata: {name: vm, namespace: shop}
spec:
  meshTLS: {identity: "spiffe://root.linkerd.cluster.local/vm", serverName: vm}
  workloadIPs: [{ip: 10.0.0.9}]
""")
    assert {o.kind for o in result.graph.of(Opaque)} == {
        "HTTPLocalRateLimitPolicy", "ExternalWorkload"}
    assert {"ratelimit.inbound", "workload.vm"} <= features(result)
    # EgressNetwork is modelled: a namespace's egress policy (tests/test_egress.py has more).
    [egress] = result.graph.of(EgressPolicy)
    assert (egress.namespace, egress.name, egress.mode, egress.mesh_wide) == \
        ("shop", "out", "REGISTRY_ONLY", False)
    assert "egress.mesh_only" in features(result)


# -- the field ledger ----------------------------------------------------------------------
def test_unmodelled_and_invalid_fields_are_reported():
    result, losses = read("""
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: s, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  port: [80]
  accessPolicy: everyone
  futureField: 1
""")
    found = {(loss.code, loss.path) for loss in losses}
    assert ("FIELD_UNMODELLED", "spec.futureField") in found
    assert ("FIELD_INVALID", "spec.port") in found
    assert ("FIELD_INVALID", "spec.accessPolicy") in found
    assert losses_of(losses, "OBJECT_UNREADABLE") == []


def test_output_does_not_depend_on_document_order():
    text = (GAMMA + "---" + SERVER + """
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: any, namespace: shop}
spec: {server: {name: web-http}, client: {unauthenticated: true}}
""")
    docs = text.split("\n---\n")
    shuffled = docs[:]
    random.Random(7).shuffle(shuffled)
    a, _ = read("\n---\n".join(docs))
    b, _ = read("\n---\n".join(shuffled))
    for cls in (Route, AuthzPolicy, MTLSPolicy):
        assert a.graph.of(cls) == b.graph.of(cls)


# -- the shared corpus ---------------------------------------------------------------------
@pytest.mark.parametrize("name", corpus_cases(LINKERD_SETS))
def test_corpus_set_reads_and_accounts_for_every_field(shared: Path, name: str):
    losses: LossLog = LossLog()
    problems: list = []
    source: SourceResult = read_files([str(shared / "corpus" / "linkerd" / name)])
    result = LinkerdReader(losses, problems).read(source)
    assert problems == []
    assert losses_of(losses, "OBJECT_UNREADABLE") == []
    assert result.raw, "the set has Linkerd objects"
    reported = {(loss.object, loss.path) for loss in losses}
    for ref, raw in result.raw.items():
        missing = [leaf for leaf in leaves(raw.body) if not covered(leaf, result.accounted[ref])]
        assert missing == [], f"{ref}: fields neither used nor reported: {missing}"
        for loss in losses:
            if loss.object == ref and loss.code == "FIELD_UNMODELLED":
                assert (ref, loss.path) in reported
    # The IR goes through the capability check of every target table.
    for target in ("istio", "consul", "linkerd"):
        capability = table(target)
        check_capabilities(result.graph, capability, capability.default_version, LossLog())


def test_corpus_emojivoto_policy_becomes_authorization(shared: Path):
    source = read_files([str(shared / "corpus" / "linkerd" / "emojivoto")])
    result = LinkerdReader(LossLog(), []).read(source)
    policies = authz(result)
    (rule,) = policies["web-public"].rules
    # unauthenticated from 0.0.0.0/0 and ::/0: any client, no network restriction left
    assert rule.sources == ()
    assert rule.operations == (AuthzOperation(ports=(8080,), origin_path="spec.port"),)
    assert policies["internal-grpc-voting-grpc"].rules[0].sources[0].service_accounts == \
        ("emojivoto/web",)


# -- robustness ----------------------------------------------------------------------------
FUZZ = WEB + "---" + SERVER + """
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: m, namespace: shop}
spec:
  identities: ["*"]
  identityRefs: [{kind: Namespace, name: ops}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: n, namespace: shop}
spec: {networks: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: a, namespace: shop}
spec:
  targetRef: {group: policy.linkerd.io, kind: HTTPRoute, name: in}
  requiredAuthenticationRefs:
  - {kind: MeshTLSAuthentication, name: m}
  - {kind: NetworkAuthentication, name: n}
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: sa, namespace: shop}
spec:
  server: {selector: {matchLabels: {tier: front}}}
  client: {meshTLS: {serviceAccounts: [{name: api}]}, networks: [{cidr: 0.0.0.0/0}]}
---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: in, namespace: shop}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: web-http}]
  rules: [{matches: [{path: {value: /a}, method: GET, headers: [{name: x, value: y}]}]}]
---
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: web.shop.svc.cluster.local, namespace: shop}
spec:
  routes: [{name: r, condition: {all: [{method: GET}, {pathRegex: /x}]}, isRetryable: true}]
  dstOverrides: [{authority: "web.shop.svc.cluster.local:80", weight: 1}]
---
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: ts, namespace: shop}
spec: {service: api, backends: [{service: api-v1, weight: 1}]}
""" + GAMMA.split("---\n", 2)[-1]


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def test_wrong_types_anywhere_never_escape_the_reader():
    import copy

    import yaml

    docs = [d for d in yaml.safe_load_all(FUZZ) if d]
    unreadable = []
    for i, doc in enumerate(docs):
        for where in _paths(doc):
            if where[0] != "spec":
                continue
            for junk in (7, "x", None, [1], {"a": 1}):
                bad = copy.deepcopy(doc)
                target = bad
                for key in where[:-1]:
                    target = target[key]
                target[where[-1]] = junk
                losses = LossLog()
                text = yaml.safe_dump_all([*docs[:i], bad, *docs[i + 1:]])
                result = LinkerdReader(losses, []).read(
                    read_files(["-"], stdin=io.BytesIO(text.encode())))
                unreadable += [(str(loss.object), where, junk) for loss in losses
                               if loss.code == "OBJECT_UNREADABLE" and loss.object in result.raw]
    assert unreadable == []
