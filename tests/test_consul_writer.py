"""Istio IR -> Consul (consul-k8s) manifests: one test per mapping rule, plus schema validity of
everything written for the samples and the shared corpus (mapping-consul-others.md section 1).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from migrate import mappings
from migrate.dialects.base import Manifest, TargetConfig
from migrate.dialects.consul.writer import ConsulWriter
from migrate.dialects.istio.reader import IstioReader
from migrate.emit.manifests import annotated, file_name
from migrate.ir.graph import MeshGraph
from migrate.ir.model import (
    AuthzOperation,
    AuthzPolicy,
    AuthzRule,
    AuthzSource,
    DestinationPolicy,
    FeatureUse,
    MTLSPolicy,
    Origin,
    Route,
    Service,
    Workload,
)
from migrate.losses import Loss, LossLog, ObjectRef
from migrate.names import valid_name
from migrate.sources.files import read_files
from migrate.validate import SchemaSet, validate_manifest
from tests.conftest import SAMPLES, shared_sets

SHOP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: shop}
spec:
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec:
      serviceAccountName: reviews
      containers: [{name: app, image: x, ports: [{containerPort: 9080}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v2, namespace: shop}
spec:
  template:
    metadata: {labels: {app: reviews, version: v2}}
    spec:
      serviceAccountName: reviews
      containers: [{name: app, image: x, ports: [{containerPort: 9080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: frontend, namespace: shop}
spec:
  selector: {app: frontend}
  ports: [{name: http, port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend, namespace: shop}
spec:
  template:
    metadata: {labels: {app: frontend}}
    spec:
      serviceAccountName: frontend
      containers: [{name: app, image: x, ports: [{containerPort: 8080}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""


def vs(http: str, host: str = "reviews") -> str:
    return SHOP + f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {host}, namespace: shop}}
spec:
  hosts: [{host}]
  http:
{http}
"""


def authz(spec: str, name: str = "reviews-policy") -> str:
    return f"""---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: shop}}
spec:
{spec}
"""


def read(text: str) -> tuple[MeshGraph, LossLog]:
    losses = LossLog()
    graph = IstioReader(losses, []).read(read_files(["-"], io.BytesIO(text.encode()))).graph
    return graph, losses


def moving(graph: MeshGraph) -> list[str]:
    """Every namespace the input configures, except Istio's root (the planner's choice is
    narrower; the writer only needs the list)."""
    found = {s.key.namespace for s in graph.of(Service)}
    for cls in (Workload, Route, DestinationPolicy, MTLSPolicy, AuthzPolicy):
        found |= {r.namespace for r in graph.of(cls)}  # type: ignore[attr-defined]
    return sorted(found - {"istio-system"})


def write(text: str, graph: MeshGraph | None = None,
          losses: LossLog | None = None) -> tuple[TargetConfig, list[Loss]]:
    if graph is None or losses is None:
        graph, losses = read(text)
    out = ConsulWriter(losses, mappings.table("consul"), "2.0").write(graph, moving(graph))
    return out, list(losses)


def bodies(bucket: dict[str, list[Manifest]], kind: str) -> dict[str, dict[str, Any]]:
    return {m.name: m.body for ms in bucket.values() for m in ms if m.kind == kind}


def codes(losses: list[Loss]) -> set[str]:
    return {loss.code for loss in losses}


# -- routing ------------------------------------------------------------------------------------

def test_rules_keep_their_order_and_weights_go_to_a_virtual_splitter():
    out, _ = write(vs("""
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /api}}, {uri: {exact: /health}, method: {exact: GET}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
"""))
    router = bodies(out.routing, "ServiceRouter")["reviews"]
    assert router["metadata"]["namespace"] == "shop"
    assert [r.get("match") for r in router["spec"]["routes"]] == [
        {"http": {"header": [{"name": "end-user", "exact": "jason"}]}},
        {"http": {"pathPrefix": "/api"}},
        {"http": {"pathExact": "/health", "methods": ["GET"]}},
        None,  # the weighted catch-all, last as in Istio
    ]
    dests = [r["destination"] for r in router["spec"]["routes"]]
    assert dests[:3] == [{"service": "reviews", "serviceSubset": "v2"},
                         {"service": "reviews", "serviceSubset": "v1"},
                         {"service": "reviews", "serviceSubset": "v1"}]
    virtual = dests[3]["service"]
    assert virtual != "reviews"
    splitter = bodies(out.routing, "ServiceSplitter")[virtual]
    assert splitter["spec"]["splits"] == [
        {"weight": 80, "service": "reviews", "serviceSubset": "v1"},
        {"weight": 20, "service": "reviews", "serviceSubset": "v2"}]
    # A virtual service needs its own protocol so Consul accepts the splitter.
    assert bodies(out.routing, "ServiceDefaults")[virtual]["spec"] == {"protocol": "http"}


def test_uneven_weights_are_scaled_to_exactly_100():
    out, _ = write(vs("""
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 1}
    - {destination: {host: reviews, subset: v2}, weight: 1}
    - {destination: {host: frontend}, weight: 1}
"""))
    [splitter] = bodies(out.routing, "ServiceSplitter").values()
    weights = [s["weight"] for s in splitter["spec"]["splits"]]
    # Consul gives a remainder within epsilon to the first split; the sum must be exact.
    assert weights == [33.34, 33.33, 33.33] and round(sum(weights), 2) == 100


def test_subsets_become_resolver_filters_and_pod_annotations():
    out, losses = write(vs("""
  - route: [{destination: {host: reviews, subset: v2}}]
"""))
    resolver = bodies(out.routing, "ServiceResolver")["reviews"]
    assert resolver["spec"]["subsets"] == {
        "v1": {"filter": 'Service.Meta.version == "v1"'},
        "v2": {"filter": 'Service.Meta.version == "v2"'}}
    patches = {m.name: m for ms in out.routing.values() for m in ms if m.kind == "Deployment"}
    assert set(patches) == {"reviews-v1", "reviews-v2"}
    assert patches["reviews-v2"].patch
    assert patches["reviews-v2"].body["spec"]["template"]["metadata"]["annotations"] == {
        "consul.hashicorp.com/service-meta-version": "v2"}
    assert "CONSUL_SUBSET_META" in codes(losses)
    router = bodies(out.routing, "ServiceRouter")["reviews"]
    assert router["spec"]["routes"] == [
        {"destination": {"service": "reviews", "serviceSubset": "v2"}}]


def test_direct_catch_all_needs_no_router_but_a_timeout_does():
    out, _ = write(vs("""
  - route: [{destination: {host: reviews}}]
"""))
    assert bodies(out.routing, "ServiceRouter") == {}
    out, _ = write(vs("""
  - timeout: 1.5s
    route: [{destination: {host: reviews}}]
"""))
    router = bodies(out.routing, "ServiceRouter")["reviews"]
    assert router["spec"]["routes"] == [
        {"destination": {"service": "reviews", "requestTimeout": "1500ms"}}]


def test_retries_keep_consul_conditions_and_report_the_rest():
    out, losses = write(vs("""
  - retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,gateway-error,503,retriable-headers"}
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /x}}]
    retries: {attempts: 2}
    route: [{destination: {host: reviews}}]
"""))
    routes = bodies(out.routing, "ServiceRouter")["reviews"]["spec"]["routes"]
    # The first rule catches everything: Istio never reaches the second, so it is not written.
    assert routes == [{"destination": {
        "service": "reviews", "numRetries": 3, "retryOn": ["5xx", "gateway-error"],
        "retryOnStatusCodes": [503]}}]
    retry_losses = sorted(loss.path for loss in losses if loss.code == "CONSUL_RETRY")
    assert retry_losses == ["spec.http[0].retries.perTryTimeout", "spec.http[0].retries.retryOn"]


def test_istio_default_retry_conditions_apply_when_retry_on_is_absent():
    out, _ = write(vs("""
  - match: [{uri: {prefix: /x}}]
    retries: {attempts: 2}
    route: [{destination: {host: reviews}}]
"""))
    [route] = bodies(out.routing, "ServiceRouter")["reviews"]["spec"]["routes"]
    # Istio's default conditions; its default 503 retry is off since istiod's
    # EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY defaults to true (pilot/pkg/features).
    assert route["destination"] == {
        "service": "reviews", "numRetries": 2,
        "retryOn": ["connect-failure", "refused-stream", "unavailable", "cancelled"]}


def test_header_changes_land_on_the_route_destination():
    out, _ = write(vs("""
  - headers:
      request: {set: {x-a: "1"}, remove: [x-b]}
      response: {add: {x-c: "2"}}
    route: [{destination: {host: reviews}}]
"""))
    [route] = bodies(out.routing, "ServiceRouter")["reviews"]["spec"]["routes"]
    assert route["destination"]["requestHeaders"] == {"set": {"x-a": "1"}, "remove": ["x-b"]}
    assert route["destination"]["responseHeaders"] == {"add": {"x-c": "2"}}


def test_unmatched_requests_are_reported_when_no_rule_catches_all():
    out, losses = write(vs("""
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: reviews, subset: v1}}]
"""))
    assert len(bodies(out.routing, "ServiceRouter")["reviews"]["spec"]["routes"]) == 1
    assert "CONSUL_ROUTE_UNMATCHED" in codes(losses)


def test_protocol_is_declared_for_services_with_l7_config():
    out, losses = write(vs("""
  - route: [{destination: {host: reviews, subset: v1}}]
"""))
    for bucket in (out.policy_staged, out.policy_enforced):
        assert bodies(bucket, "ServiceDefaults")["reviews"]["spec"]["protocol"] == "http"
    assert "CONSUL_PROTOCOL" not in codes(losses)


def test_undeclared_protocol_is_assumed_http_and_tcp_gets_no_router():
    unnamed = SHOP.replace("ports: [{name: http, port: 9080}]", "ports: [{port: 9080}]")
    out, losses = write(unnamed + vs("  - route: [{destination: {host: reviews, subset: v1}}]")
                        [len(SHOP):])
    assert bodies(out.policy_enforced, "ServiceDefaults")["reviews"]["spec"]["protocol"] == \
        "http"
    assert [(loss.code, loss.severity.value) for loss in losses
            if loss.code == "CONSUL_PROTOCOL"] == [("CONSUL_PROTOCOL", "degraded")]
    tcp = SHOP.replace("ports: [{name: http, port: 9080}]", "ports: [{name: tcp-db, port: 9080}]")
    out, losses = write(tcp + vs("  - route: [{destination: {host: reviews, subset: v1}}]")
                        [len(SHOP):])
    assert bodies(out.routing, "ServiceRouter") == {}
    assert ("CONSUL_PROTOCOL", "manual") in {(loss.code, loss.severity.value) for loss in losses}
    assert bodies(out.policy_enforced, "ServiceDefaults")["reviews"]["spec"]["protocol"] == "tcp"


# -- authorization ------------------------------------------------------------------------------

def test_l7_allow_rules_become_ordered_permissions_closed_by_a_deny():
    out, _ = write(SHOP + authz("""
  selector: {matchLabels: {app: reviews}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]
    to: [{operation: {methods: [GET], paths: [/api/*]}}]
  - to: [{operation: {paths: [/health]}}]
"""))
    intention = bodies(out.policy_staged, "ServiceIntentions")["reviews"]["spec"]
    assert intention["destination"] == {"name": "reviews"}
    by_name = {s["name"]: s for s in intention["sources"]}
    # The exact source hides "*", so it also carries the grants every caller has.
    assert by_name["frontend"]["permissions"] == [
        {"action": "allow", "http": {"methods": ["GET"], "pathPrefix": "/api/"}},
        {"action": "allow", "http": {"pathExact": "/health"}},
        {"action": "deny", "http": {"pathPrefix": "/"}}]
    assert by_name["*"]["permissions"] == [
        {"action": "allow", "http": {"pathExact": "/health"}},
        {"action": "deny", "http": {"pathPrefix": "/"}}]
    assert bodies(out.policy_staged, "ServiceDefaults")["reviews"]["spec"]["protocol"] == "http"


def test_l4_allow_names_the_source_service_and_denies_the_rest():
    out, _ = write(SHOP + authz("""
  selector: {matchLabels: {app: reviews}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]
"""))
    sources = bodies(out.policy_staged, "ServiceIntentions")["reviews"]["spec"]["sources"]
    assert sources == [{"name": "frontend", "action": "allow"}, {"name": "*", "action": "deny"}]
    # Services without any policy keep Istio's allow-by-default under default-deny ACLs.
    other = bodies(out.policy_staged, "ServiceIntentions")["frontend"]["spec"]["sources"]
    assert other == [{"name": "*", "action": "allow"}]


def test_deny_rules_take_precedence_over_allow_rules():
    graph, losses = read(SHOP + authz("""
  selector: {matchLabels: {app: reviews}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]
"""))
    ref = ObjectRef("AuthorizationPolicy", "shop", "no-admin", "security.istio.io/v1")
    graph.add(AuthzPolicy("shop", "no-admin", (("app", "reviews"),), "DENY", (
        AuthzRule((), (AuthzOperation(paths=("/admin*",), origin_path="spec.rules[0].to[0]"),),
                  "spec.rules[0]"),
        AuthzRule((AuthzSource(service_accounts=("shop/frontend",)),),
                  (AuthzOperation(methods=("DELETE",)),), "spec.rules[1]")),
        False, Origin(ref, "spec")))
    graph.link()
    out, _ = write("", graph, losses)
    sources = {s["name"]: s for s in bodies(out.policy_staged, "ServiceIntentions")["reviews"][
        "spec"]["sources"]}
    assert sources["frontend"]["permissions"] == [
        {"action": "deny", "http": {"methods": ["DELETE"]}},
        {"action": "deny", "http": {"pathPrefix": "/admin"}},
        {"action": "allow", "http": {"pathPrefix": "/"}}]
    # For everyone else the deny and the default deny agree: one L4 deny.
    assert sources["*"] == {"name": "*", "action": "deny"}


def test_istio_deny_policy_becomes_deny_permissions_ahead_of_the_allows():
    out, losses = write(SHOP + authz("""
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]
    to: [{operation: {paths: [/admin]}}]
""", name="deny-admin"))
    sources = bodies(out.policy_staged, "ServiceIntentions")["reviews"]["spec"]["sources"]
    # No ALLOW policy applies, so everything else stays allowed: Istio's default is allow.
    assert sources == [
        {"name": "frontend", "permissions": [
            {"action": "deny", "http": {"pathExact": "/admin"}},
            {"action": "allow", "http": {"pathPrefix": "/"}}]},
        {"name": "*", "action": "allow"}]
    assert "CONSUL_AUTHZ_DENY_UNMODELLED" not in codes(losses)


def test_a_deny_use_no_reader_modelled_is_reported_not_dropped():
    # Every shipped reader models its DENY rules; this net catches a reader that records the
    # feature but not the policy (so a future reader cannot drop a deny silently).
    graph, losses = read(SHOP)
    ref = ObjectRef("AuthorizationPolicy", "shop", "deny-admin", "security.istio.io/v1")
    graph.use(FeatureUse("authz.deny", Origin(ref, "spec.action"), "DENY"))
    _, reported = write("", graph, losses)
    [loss] = [loss for loss in reported if loss.code == "CONSUL_AUTHZ_DENY_UNMODELLED"]
    assert loss.object.name == "deny-admin" and loss.severity.value == "manual"


def test_identity_without_a_matching_service_is_a_loss_and_fails_closed():
    out, losses = write(SHOP + authz("""
  selector: {matchLabels: {app: reviews}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/legacy-sa]}}]
"""))
    sources = bodies(out.policy_staged, "ServiceIntentions")["reviews"]["spec"]["sources"]
    assert sources == [{"name": "*", "action": "deny"}]
    [loss] = [loss for loss in losses if loss.code == "CONSUL_AUTHZ_IDENTITY"]
    assert loss.path == "spec.rules[0].from[0].source.principals[0]"


def test_namespace_sources_become_the_services_of_that_namespace():
    out, losses = write(SHOP + authz("""
  selector: {matchLabels: {app: reviews}}
  rules:
  - from: [{source: {namespaces: [shop]}}]
"""))
    sources = bodies(out.policy_staged, "ServiceIntentions")["reviews"]["spec"]["sources"]
    assert sources == [{"name": "frontend", "action": "allow"},
                       {"name": "reviews", "action": "allow"},
                       {"name": "*", "action": "deny"}]
    assert "CONSUL_AUTHZ_NAMESPACE" in codes(losses)


def test_ip_block_sources_fail_closed():
    out, losses = write(SHOP + authz("""
  selector: {matchLabels: {app: reviews}}
  rules:
  - from: [{source: {ipBlocks: [10.0.0.0/8]}}]
"""))
    sources = bodies(out.policy_staged, "ServiceIntentions")["reviews"]["spec"]["sources"]
    assert sources == [{"name": "*", "action": "deny"}]
    assert "CONSUL_AUTHZ_SOURCE" in codes(losses)


# -- mTLS and coexistence phases ----------------------------------------------------------------

STRICT = """---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}
"""


def test_staged_form_is_permissive_and_enforced_form_is_strict():
    out, _ = write(SHOP + STRICT)
    staged = bodies(out.policy_staged, "ServiceDefaults")
    enforced = bodies(out.policy_enforced, "ServiceDefaults")
    assert {n: b["spec"]["mutualTLSMode"] for n, b in staged.items()} == {
        "frontend": "permissive", "reviews": "permissive"}
    assert {n: b["spec"]["mutualTLSMode"] for n, b in enforced.items()} == {
        "frontend": "strict", "reviews": "strict"}
    [mesh] = out.prerequisites
    assert mesh.kind == "Mesh" and mesh.name == "mesh"
    assert mesh.body["spec"]["allowEnablingPermissiveMutualTLS"] is True
    # Intentions do not apply to permissive plaintext, so the final ones are applied at once.
    assert set(bodies(out.policy_staged, "ServiceIntentions")) == {"frontend", "reviews"}
    assert bodies(out.policy_enforced, "ServiceIntentions") == {}
    assert out.remove_at_enforce == {}


def test_permissive_source_stays_permissive_unless_intentions_narrow_callers():
    permissive = STRICT.replace("STRICT", "PERMISSIVE")
    out, losses = write(SHOP + permissive + authz("""
  selector: {matchLabels: {app: reviews}}
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]}]
"""))
    enforced = bodies(out.policy_enforced, "ServiceDefaults")
    assert enforced["frontend"]["spec"]["mutualTLSMode"] == "permissive"
    assert enforced["reviews"]["spec"]["mutualTLSMode"] == "strict"
    assert ("CONSUL_MTLS_MODE", "degraded") in {(loss.code, loss.severity.value)
                                                for loss in losses}


def test_same_named_services_in_two_namespaces_collide_in_consul_ce():
    text = SHOP + SHOP.replace("namespace: shop", "namespace: zoo").replace(
        "name: shop,", "name: zoo,")
    out, losses = write(text)
    [loss] = [loss for loss in losses if loss.code == "CONSUL_NAME_COLLISION"
              and loss.object.name == "reviews"]
    assert loss.object.namespace == "zoo" and loss.severity.value == "manual"
    names = [(m.namespace, m.name) for ms in out.policy_enforced.values() for m in ms]
    assert ("shop", "reviews") in names and ("zoo", "reviews") not in names


def test_every_manifest_records_its_sources():
    out, _ = write(vs("""
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v2}, weight: 50}
""") + STRICT)
    for bucket in (out.routing, out.policy_staged, out.policy_enforced):
        for ms in bucket.values():
            assert all(m.sources for m in ms)
    assert all(m.sources for m in out.prerequisites)


def test_table_loads_and_covers_every_feature():
    table = mappings.table("consul")
    assert set(table.entries) == set(mappings.features())
    assert table.default_version in table.versions
    assert table.supports("route.http", table.default_version)
    assert not table.supports("route.mirror", table.default_version)


# -- validity over samples and the shared corpus ------------------------------------------------

@pytest.fixture(scope="module")
def consul_schemas(shared: Path) -> SchemaSet:
    return SchemaSet.from_paths([str(shared / "crds" / "consul")])


@pytest.mark.parametrize("name", [f"samples:{p.name}" for p in sorted((SAMPLES / "istio")
                                                                       .iterdir()) if p.is_dir()]
                         + shared_sets("istio"))
def test_every_manifest_is_schema_valid_with_valid_names(shared: Path,
                                                         consul_schemas: SchemaSet, name: str):
    path = SAMPLES / "istio" / name.split(":")[1] if name.startswith("samples:") else \
        shared / "corpus" / "istio" / name
    losses = LossLog()
    graph = IstioReader(losses, []).read(read_files([str(path)])).graph
    out, _ = write("", graph, losses)
    manifests = list(out.prerequisites) + [
        m for bucket in (out.routing, out.policy_staged, out.policy_enforced,
                         out.remove_at_enforce, out.routing_final, out.remove_at_cleanup)
        for ms in bucket.values() for m in ms]
    assert manifests, "the set yields Consul configuration"
    violations = []
    for m in manifests:
        require = m.body["apiVersion"].startswith("consul.hashicorp.com/")
        violations += validate_manifest(annotated(m), file_name(m.body), consul_schemas,
                                        require_schema=require)
        assert valid_name(m.name, service=m.kind == "Service")
    assert violations == []
    # consul-k8s rejects a second object for the same config entry in one namespace.
    keys = [(m.kind, m.namespace, m.name) for bucket in (out.routing, out.policy_staged)
            for ms in bucket.values() for m in ms if not m.patch]
    assert len(keys) == len(set(keys))


# -- value-level details ------------------------------------------------------------------------

def test_match_values_take_the_forms_consul_accepts():
    out, losses = write(vs("""
  - match:
    - uri: {prefix: api}
      ignoreUriCase: true
      headers: {x-empty: {exact: ""}, x-pre: {prefix: ab}}
      queryParams: {q: {prefix: "a.b"}}
    - method: {regex: "P(UT|OST)"}
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v2}}]
"""))
    first, second, _ = bodies(out.routing, "ServiceRouter")["reviews"]["spec"]["routes"]
    assert first["match"]["http"] == {
        "pathRegex": "api.*", "caseInsensitive": True,
        "header": [{"name": "x-empty", "regex": "^$"}, {"name": "x-pre", "prefix": "ab"}],
        "queryParam": [{"name": "q", "regex": "a\\.b.*"}]}
    assert second["match"]["http"] == {"methods": ["POST", "PUT"]}
    assert "ROUTE_METHOD" in codes(losses)


def test_a_second_route_for_the_same_host_is_reported_not_merged():
    text = vs("  - route: [{destination: {host: reviews, subset: v1}}]") + """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-extra, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v2}}]
"""
    out, losses = write(text)
    [router] = [m for ms in out.routing.values() for m in ms if m.kind == "ServiceRouter"]
    written = {s.name for s in router.sources if s.kind == "VirtualService"}
    reported = {loss.object.name for loss in losses if loss.code == "CONSUL_ROUTER_CONFLICT"}
    # One router per Consul service: one VirtualService is converted (key order decides), the
    # other is reported, never silently merged.
    assert len(written) == len(reported) == 1
    assert written | reported == {"reviews", "reviews-extra"}


def test_meta_keys_are_sanitized_for_consul_and_annotations():
    text = SHOP.replace("{labels: {app: reviews, version: v1}}",
                        "{labels: {app: reviews, version: v1, app.kubernetes.io/version: v1}}"
                        ).replace("- {name: v1, labels: {version: v1}}",
                                  "- {name: v1, labels: {app.kubernetes.io/version: v1}}")
    out, _ = write(text)
    resolver = bodies(out.routing, "ServiceResolver")["reviews"]
    assert resolver["spec"]["subsets"]["v1"] == {
        "filter": 'Service.Meta.app_kubernetes_io_version == "v1"'}
    patch = bodies(out.routing, "Deployment")["reviews-v1"]
    assert patch["spec"]["template"]["metadata"]["annotations"] == {
        "consul.hashicorp.com/service-meta-app_kubernetes_io_version": "v1"}


def test_port_narrowed_allow_operation_fails_closed():
    text = SHOP.replace("ports: [{name: http, port: 9080}]",
                        "ports: [{name: http, port: 9080}, {name: http-admin, port: 9090}]")
    out, losses = write(text + authz("""
  selector: {matchLabels: {app: reviews}}
  rules:
  - to: [{operation: {ports: ["9080"]}}]
"""))
    sources = bodies(out.policy_staged, "ServiceIntentions")["reviews"]["spec"]["sources"]
    assert sources == [{"name": "*", "action": "deny"}]
    [loss] = [loss for loss in losses if loss.code == "CONSUL_AUTHZ_OPERATION"]
    assert loss.path == "spec.rules[0].to[0].operation" and loss.severity.value == "manual"


def test_l7_rules_on_a_tcp_service_fail_closed():
    tcp = SHOP.replace("ports: [{name: http, port: 9080}]", "ports: [{name: tcp-db, port: 9080}]")
    out, losses = write(tcp + authz("""
  selector: {matchLabels: {app: reviews}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}]
    to: [{operation: {methods: [GET]}}]
"""))
    sources = bodies(out.policy_staged, "ServiceIntentions")["reviews"]["spec"]["sources"]
    assert sources == [{"name": "*", "action": "deny"}]
    assert "CONSUL_AUTHZ_OPERATION" in codes(losses)
    assert bodies(out.policy_staged, "ServiceDefaults")["reviews"]["spec"]["protocol"] == "tcp"


def test_output_does_not_depend_on_document_order():
    text = vs("""
  - match: [{uri: {prefix: /a}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 70}
    - {destination: {host: reviews, subset: v2}, weight: 30}
""") + STRICT + authz("""
  selector: {matchLabels: {app: reviews}}
  rules: [{from: [{source: {namespaces: [shop]}}], to: [{operation: {paths: [/x]}}]}]
""")
    docs = text.split("\n---\n")

    def dump(t: str) -> list[tuple[str, ...]]:
        out, losses = write(t)
        found = []
        for bucket in (out.prerequisites, *[m for b in (out.routing, out.policy_staged,
                                                         out.policy_enforced)
                                              for m in b.values()]):
            for m in bucket:
                found.append((m.kind, m.namespace, m.name, repr(m.body), repr(m.sources)))
        return found + [(loss.code, loss.path, loss.message) for loss in losses]

    assert dump("\n---\n".join(docs)) == dump("\n---\n".join(reversed(docs)))


def test_route_for_a_service_missing_from_the_input_is_reported():
    out, losses = write(vs("  - route: [{destination: {host: ghost}}]", host="ghost"))
    assert bodies(out.routing, "ServiceRouter") == {}
    [loss] = [loss for loss in losses if loss.code == "CONSUL_PROTOCOL"]
    assert loss.object.name == "ghost" and "not in the input" in loss.message
