"""IstioWriter: one test per IR -> Istio mapping rule, the staged and enforced policy forms,
the Gateway API routes mode, a round trip over the golden inputs, and CRD validity of
everything written for the samples and the shared Istio corpus."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from migrate import mappings
from migrate.check import check_capabilities
from migrate.dialects.base import Manifest, TargetConfig
from migrate.dialects.istio.reader import IstioReader
from migrate.dialects.istio.writer import IstioWriter
from migrate.durations import to_millis
from migrate.ir.graph import MeshGraph
from migrate.ir.hosts import service_of_host
from migrate.ir.model import (
    AuthzOperation,
    AuthzPolicy,
    AuthzRule,
    AuthzSource,
    Backend,
    MTLSPolicy,
    Origin,
    Route,
    RouteMatch,
    Rule,
    ServiceKey,
    StringMatch,
)
from migrate.losses import LossLog, ObjectRef
from migrate.names import valid_name
from migrate.pipeline import _namespaces
from migrate.sources.files import read_files
from migrate.validate import SchemaSet, validate_manifest
from tests.conftest import REPO, SAMPLES, corpus_cases, shared_sets

BUCKETS = ("routing", "policy_staged", "policy_enforced", "remove_at_enforce", "routing_final",
           "remove_at_cleanup")


def read(text: str, losses: LossLog | None = None) -> tuple[MeshGraph, LossLog]:
    """The IR of inline Istio YAML, built by the Istio reader."""
    losses = losses if losses is not None else LossLog()
    source = read_files(["-"], io.BytesIO(text.encode()))
    assert not source.problems, source.problems
    result = IstioReader(losses, []).read(source)
    return result.graph, losses


def write(graph: MeshGraph, losses: LossLog, namespaces: list[str] | None = None,
          **options: Any) -> TargetConfig:
    """Capability check plus IstioWriter for the namespaces the pipeline would migrate."""
    table = mappings.table("istio")
    check_capabilities(graph, table, "1.30", losses)
    ns = namespaces if namespaces is not None else _namespaces(graph, "istio-system")[0]
    return IstioWriter(losses, table, "1.30", **options).write(graph, ns)


def convert(text: str, **options: Any) -> tuple[TargetConfig, LossLog]:
    graph, losses = read(text)
    return write(graph, losses, **options), losses


def bodies(out: TargetConfig, bucket: str, kind: str) -> list[dict[str, Any]]:
    return [m.body for ms in getattr(out, bucket).values() for m in ms if m.kind == kind]


def one(out: TargetConfig, bucket: str, kind: str, name: str) -> dict[str, Any]:
    [found] = [b for b in bodies(out, bucket, kind) if b["metadata"]["name"] == name]
    return found


def codes(losses: LossLog) -> list[str]:
    return [loss.code for loss in losses]


SERVICE = """
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: {port}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  template:
    metadata: {{labels: {{app: {name}, version: v1}}}}
    spec:
      serviceAccountName: {name}
      containers: [{{name: app, image: x, ports: [{{containerPort: {port}}}]}}]
"""


def svc(name: str, ns: str = "shop", port: int = 9080) -> str:
    return SERVICE.format(name=name, ns=ns, port=port)


REVIEWS = svc("reviews") + """
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


def vs(http: str, extra: str = "") -> str:
    return REVIEWS + f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: shop}}
spec:
  hosts: [reviews]
  http:
{http}
{extra}"""


# -- routes -----------------------------------------------------------------------------------
def test_rules_keep_first_match_order_names_and_ports():
    text = (REPO / "tests/golden/03-rule-order/input.yaml").read_text()
    out, losses = convert(text)
    [route] = bodies(out, "routing", "VirtualService")
    rules = route["spec"]["http"]
    assert [r.get("name") for r in rules] == ["legacy", "v1-health", "beta", "v2-admin", None]
    assert rules[0]["match"] == [{"uri": {"prefix": "/v1"}}]
    assert rules[2]["match"] == [{"uri": {"prefix": "/v2"}, "headers": {"x-beta": {"exact": "1"}}}]
    assert rules[1]["route"] == [{"destination": {"host": "api-health", "port": {"number": 80}}}]
    # First match is Istio's own order: nothing to drop or report, unlike a Linkerd target.
    assert "ROUTE_ORDER" not in codes(losses) and "ROUTE_RULE_UNREACHABLE" not in codes(losses)
    assert route["metadata"]["annotations"]["meshmigrate.io/rules"] == ",".join(
        f"spec.http[{i}]" for i in range(5))


def test_weighted_subsets_and_their_destination_rule():
    out, _ = convert(vs("""
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
"""))
    [route] = bodies(out, "routing", "VirtualService")
    assert route["spec"]["http"][0]["route"] == [
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 80},
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 20}]
    dr = one(out, "routing", "DestinationRule", "reviews")
    assert dr["spec"] == {"host": "reviews", "subsets": [
        {"name": "v1", "labels": {"version": "v1"}}, {"name": "v2", "labels": {"version": "v2"}}]}
    manifest = next(m for m in out.routing["shop"] if m.kind == "VirtualService")
    assert {r.kind for r in manifest.sources} == {"VirtualService", "DestinationRule"}


def test_timeout_and_retries_are_written_in_canonical_durations():
    out, _ = convert(vs("""
  - timeout: 1500ms
    retries: {attempts: 3, perTryTimeout: 250ms, retryOn: "5xx,connect-failure"}
    route: [{destination: {host: reviews}}]
"""))
    [rule] = bodies(out, "routing", "VirtualService")[0]["spec"]["http"]
    assert rule["timeout"] == "1.5s"
    assert rule["retries"] == {"attempts": 3, "perTryTimeout": "0.25s",
                               "retryOn": "5xx,connect-failure"}


def test_istio_source_keeps_istio_default_retries_by_writing_none():
    out, _ = convert(vs("  - route: [{destination: {host: reviews}}]"))
    [rule] = bodies(out, "routing", "VirtualService")[0]["spec"]["http"]
    assert "retries" not in rule


def test_source_without_default_retries_gets_attempts_zero():
    # A Linkerd or Consul source never retried unless told: Istio's implicit default
    # (2 attempts, retry.go ConvertPolicy) is switched off with attempts 0.
    graph, losses = read(vs("  - route: [{destination: {host: reviews}}]"))
    graph.mesh = "linkerd"
    out = write(graph, losses)
    [rule] = bodies(out, "routing", "VirtualService")[0]["spec"]["http"]
    assert rule["retries"] == {"attempts": 0}


def test_explicit_zero_attempts_stay_zero():
    out, _ = convert(vs("""
  - retries: {attempts: 0}
    route: [{destination: {host: reviews}}]
"""))
    [rule] = bodies(out, "routing", "VirtualService")[0]["spec"]["http"]
    assert rule["retries"] == {"attempts": 0}


def test_header_operations_redirect_and_matches():
    out, _ = convert(vs("""
  - match: [{uri: {regex: "/r/.*"}, ignoreUriCase: true, method: {exact: GET},
             queryParams: {q: {prefix: ab}}, headers: {x-present: {}}}]
    redirect: {uri: /new, authority: example.org, redirectCode: 302}
  - headers: {request: {set: {x-a: "1"}, remove: [x-b]}, response: {add: {x-c: "2"}}}
    route:
    - destination: {host: reviews}
      headers: {request: {set: {x-d: "3"}}}
"""))
    first, second = bodies(out, "routing", "VirtualService")[0]["spec"]["http"]
    assert first["match"] == [{"uri": {"regex": "/r/.*"}, "ignoreUriCase": True,
                               "method": {"exact": "GET"}, "headers": {"x-present": {}},
                               "queryParams": {"q": {"regex": "ab.*"}}}]
    assert first["redirect"] == {"uri": "/new", "authority": "example.org", "redirectCode": 302}
    assert "route" not in first
    assert second["headers"] == {"request": {"set": {"x-a": "1"}, "remove": ["x-b"]},
                                 "response": {"add": {"x-c": "2"}}}
    assert second["route"][0]["headers"] == {"request": {"set": {"x-d": "3"}}}


def test_destination_in_another_namespace_is_written_in_full():
    out, _ = convert(vs("  - route: [{destination: {host: ratings.other.svc.cluster.local}}]")
                     + "---\n" + svc("ratings", "other"))
    [rule] = bodies(out, "routing", "VirtualService")[0]["spec"]["http"]
    assert rule["route"][0]["destination"]["host"] == "ratings.other.svc.cluster.local"


def test_istio_virtual_service_outside_the_service_namespace_moves_to_it():
    text = REVIEWS + """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-from-web, namespace: web}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  http: [{route: [{destination: {host: reviews.shop.svc.cluster.local, subset: v2}}]}]
"""
    out, _ = convert(text)
    [route] = bodies(out, "routing", "VirtualService")
    # An Istio VirtualService applies to every client: it is applied with the Service's
    # namespace, before any caller moves; the host becomes the short name there.
    assert route["metadata"]["namespace"] == "shop"
    assert route["spec"]["hosts"] == ["reviews"]
    assert "exportTo" not in route["spec"]
    assert route["spec"]["http"][0]["route"][0]["destination"] == {"host": "reviews",
                                                                   "subset": "v2"}


def test_tcp_rules_share_the_virtual_service_of_the_host():
    out, _ = convert(vs("  - route: [{destination: {host: reviews}}]", """  tcp:
  - match: [{port: 9090}]
    route:
    - {destination: {host: reviews, port: {number: 9090}}, weight: 70}
    - {destination: {host: reviews, subset: v2, port: {number: 9090}}, weight: 30}
"""))
    [route] = bodies(out, "routing", "VirtualService")
    assert route["spec"]["tcp"] == [{"match": [{"port": 9090}], "route": [
        {"destination": {"host": "reviews", "port": {"number": 9090}}, "weight": 70},
        {"destination": {"host": "reviews", "subset": "v2", "port": {"number": 9090}},
         "weight": 30}]}]
    assert "http" in route["spec"]


def _route(ns: str, name: str, host: ServiceKey, rules: tuple[Rule, ...]) -> Route:
    origin = Origin(ObjectRef("HTTPRoute", ns, name, "gateway.networking.k8s.io/v1"), "spec")
    return Route(ns, name, "http", (host,), rules, ingress=False, mesh=True, gateways=(),
                 origin=origin)


def _rule(index: int, path: StringMatch | None, backend: str, ns: str = "shop",
          weight: int | None = None) -> Rule:
    matches = (RouteMatch(path=path, origin_path=f"spec.rules[{index}].matches[0]"),) \
        if path else ()
    return Rule(index, "", matches, (Backend(ServiceKey(ns, backend), backend, weight=weight),),
                origin_path=f"spec.rules[{index}]")


def test_routes_of_one_service_from_a_gateway_api_source_merge_by_precedence():
    graph, losses = read(svc("reviews"))
    graph.mesh = "linkerd"
    host = ServiceKey("shop", "reviews")
    graph.add(_route("shop", "a-broad", host, (
        _rule(0, StringMatch("prefix", "/api"), "reviews"),)))
    graph.add(_route("shop", "b-exact", host, (
        _rule(0, StringMatch("exact", "/api/health"), "reviews"),
        _rule(1, StringMatch("prefix", "/api"), "reviews"))))
    out = write(graph, losses)
    [route] = bodies(out, "routing", "VirtualService")
    assert route["metadata"]["name"] == "reviews"
    uris = [r["match"][0]["uri"] for r in route["spec"]["http"]]
    # Gateway API picks the exact path first, whichever route holds it.
    assert uris == [{"exact": "/api/health"}, {"prefix": "/api"}, {"prefix": "/api"}]
    # Two equally specific overlapping prefixes from different routes: Gateway API let the
    # older route win, which the input does not say.
    assert "ROUTE_ORDER" in codes(losses)


def test_consumer_route_of_a_gateway_api_source_stays_in_its_namespace():
    graph, losses = read(svc("reviews"))
    graph.mesh = "linkerd"
    graph.add(_route("web", "reviews-for-web", ServiceKey("shop", "reviews"),
                     (_rule(0, None, "reviews"),)))
    out = write(graph, losses)
    [route] = bodies(out, "routing", "VirtualService")
    assert route["metadata"]["namespace"] == "web"
    assert route["spec"]["exportTo"] == ["."]
    assert route["spec"]["hosts"] == ["reviews.shop.svc.cluster.local"]


def test_relative_weights_become_percentages():
    graph, losses = read(svc("reviews") + "---\n" + svc("web-v1") + "---\n" + svc("web-v2"))
    graph.mesh = "linkerd"
    host = ServiceKey("shop", "reviews")
    backends = (Backend(ServiceKey("shop", "web-v1"), "web-v1", weight=1),
                Backend(ServiceKey("shop", "web-v2"), "web-v2", weight=3))
    graph.add(_route("shop", "split", host, (Rule(0, "", (), backends, origin_path="r0"),)))
    out = write(graph, losses)
    [rule] = bodies(out, "routing", "VirtualService")[0]["spec"]["http"]
    # Per-version Services of a TrafficSplit stay Services (they exist), no subsets invented.
    assert [(r["destination"]["host"], r["weight"]) for r in rule["route"]] == [
        ("web-v1", 25), ("web-v2", 75)]
    assert "ROUTE_WEIGHT_ROUNDED" not in codes(losses)
    graph.add(_route("shop", "split", host, (Rule(0, "", (), (
        backends[0], Backend(ServiceKey("shop", "web-v2"), "web-v2", weight=2)),
        origin_path="r0"),)))
    out = write(graph, losses)
    [rule] = bodies(out, "routing", "VirtualService")[0]["spec"]["http"]
    assert [r["weight"] for r in rule["route"]] == [33, 67]
    assert "ROUTE_WEIGHT_ROUNDED" in codes(losses)


def test_subset_no_destination_policy_defines_is_kept_and_reported():
    out, losses = convert(vs("  - route: [{destination: {host: reviews, subset: v9}}]"))
    [rule] = bodies(out, "routing", "VirtualService")[0]["spec"]["http"]
    assert rule["route"] == [{"destination": {"host": "reviews", "subset": "v9"}}]
    [loss] = [x for x in losses if x.code == "ROUTE_BACKEND_UNKNOWN"]
    assert "v9" in loss.message and loss.path == "spec.http[0].route[0]"


def test_unparsable_timeout_is_left_out_and_reported():
    graph, losses = read(svc("reviews"))
    graph.add(_route("shop", "r", ServiceKey("shop", "reviews"), (
        Rule(0, "", (), (Backend(ServiceKey("shop", "reviews"), "reviews"),), timeout="soon",
             origin_path="spec.rules[0]"),)))
    out = write(graph, losses)
    [rule] = bodies(out, "routing", "VirtualService")[0]["spec"]["http"]
    assert "timeout" not in rule
    assert "ROUTE_DURATION" in codes(losses)


# -- destinations -----------------------------------------------------------------------------
def test_destination_rule_drops_istio_mutual_keeps_outlier_detection_and_simple_tls():
    text = svc("pay") + """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pay, namespace: shop}
spec:
  host: pay
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
    outlierDetection: {consecutive5xxErrors: 7, baseEjectionTime: 1m, interval: 5s}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: only-mtls, namespace: shop}
spec:
  host: pay
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: bank, namespace: shop}
spec:
  host: api.bank.example.com
  trafficPolicy: {tls: {mode: SIMPLE}}
"""
    out, losses = convert(text)
    rules = {b["metadata"]["name"]: b["spec"] for b in bodies(out, "routing", "DestinationRule")}
    assert rules == {
        "pay": {"host": "pay", "trafficPolicy": {"outlierDetection": {
            "consecutive5xxErrors": 7, "baseEjectionTime": "60s"}}},
        "bank": {"host": "api.bank.example.com", "trafficPolicy": {"tls": {"mode": "SIMPLE"}}}}
    assert {"DESTINATION_TLS_MESH", "DESTINATION_OUTLIER_DETECTION",
            "DESTINATION_TLS_ORIGINATION"} <= set(codes(losses))


# -- mTLS ---------------------------------------------------------------------------------------
def test_strict_is_staged_permissive_and_enforced_strict():
    text = (REPO / "tests/golden/04-mtls-strict/input.yaml").read_text()
    out, _ = convert(text)
    staged = {b["metadata"]["name"]: b["spec"] for b in
              bodies(out, "policy_staged", "PeerAuthentication")}
    final = {b["metadata"]["name"]: b["spec"] for b in
             bodies(out, "policy_enforced", "PeerAuthentication")}
    assert staged == {
        "default": {"mtls": {"mode": "PERMISSIVE"}},
        "ledger-metrics": {"selector": {"matchLabels": {"app": "ledger"}},
                           "mtls": {"mode": "PERMISSIVE"},
                           "portLevelMtls": {"9090": {"mode": "PERMISSIVE"}}}}
    assert final == {
        "default": {"mtls": {"mode": "STRICT"}},
        "ledger-metrics": {"selector": {"matchLabels": {"app": "ledger"}},
                           "mtls": {"mode": "STRICT"},
                           "portLevelMtls": {"9090": {"mode": "PERMISSIVE"}}}}


def test_permissive_needs_no_enforce_form_and_mesh_wide_mode_is_copied_per_namespace():
    text = svc("pay") + """---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: legacy, namespace: shop}
spec:
  selector: {matchLabels: {app: pay}}
  mtls: {mode: PERMISSIVE}
"""
    out, losses = convert(text)
    staged = {(b["metadata"]["namespace"], b["metadata"]["name"]): b["spec"]
              for b in bodies(out, "policy_staged", "PeerAuthentication")}
    assert staged == {("shop", "default"): {"mtls": {"mode": "PERMISSIVE"}},
                      ("shop", "legacy"): {"selector": {"matchLabels": {"app": "pay"}},
                                           "mtls": {"mode": "PERMISSIVE"}}}
    assert [b["metadata"]["name"] for b in bodies(out, "policy_enforced", "PeerAuthentication")] \
        == ["default"]
    assert "istio-system" not in out.policy_staged
    assert "MTLS_MESH_WIDE" in codes(losses)


def test_namespace_wide_port_modes_are_written_per_workload():
    graph, losses = read(svc("pay") + "---\n" + svc("db", port=5432))
    graph.add(MTLSPolicy("shop", "ports", None, "STRICT", ((5432, "PERMISSIVE"),), False,
                         Origin(ObjectRef("Server", "shop", "ports"), "spec")))
    out = write(graph, losses)
    final = {b["metadata"]["name"]: b["spec"] for b in
             bodies(out, "policy_enforced", "PeerAuthentication")}
    assert final["ports"] == {"mtls": {"mode": "STRICT"}}
    assert final["ports-db"] == {"selector": {"matchLabels": {"app": "db", "version": "v1"}},
                                 "mtls": {"mode": "STRICT"},
                                 "portLevelMtls": {"5432": {"mode": "PERMISSIVE"}}}
    assert set(final) == {"ports", "ports-db", "ports-pay"}


# -- authorization --------------------------------------------------------------------------
def test_allow_policy_staged_with_a_plaintext_companion_scoped_like_the_identities():
    text = (REPO / "tests/golden/05-authz-paths/input.yaml").read_text()
    out, _ = convert(text)
    main = one(out, "policy_staged", "AuthorizationPolicy", "orders")
    assert main["spec"] == {
        "selector": {"matchLabels": {"app": "orders"}}, "action": "ALLOW",
        "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/web/sa/frontend"]}}],
                   "to": [{"operation": {"methods": ["GET", "POST"], "paths": ["/api/*"]}}]},
                  {"from": [{"source": {"namespaces": ["ops"]}}]}]}
    companion = one(out, "policy_staged", "AuthorizationPolicy", "orders-plaintext")
    assert companion["spec"] == {
        "selector": {"matchLabels": {"app": "orders"}}, "action": "ALLOW",
        "rules": [{"from": [{"source": {"notPrincipals": ["*"]}}],
                   "to": [{"operation": {"methods": ["GET", "POST"], "paths": ["/api/*"]}}]},
                  {"from": [{"source": {"notPrincipals": ["*"]}}]}]}
    assert [b["metadata"]["name"] for b in bodies(out, "remove_at_enforce",
                                                  "AuthorizationPolicy")] == ["orders-plaintext"]
    assert [b["spec"] for b in bodies(out, "policy_enforced", "AuthorizationPolicy")] == \
        [main["spec"]]


def test_rules_without_identities_need_no_companion():
    out, _ = convert(svc("pay") + """---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: pay, namespace: shop}
spec:
  selector: {matchLabels: {app: pay}}
  rules:
  - from: [{source: {ipBlocks: [10.0.0.0/8]}}]
  - to: [{operation: {ports: ["9080"]}}]
""")
    names = [b["metadata"]["name"] for b in bodies(out, "policy_staged", "AuthorizationPolicy")]
    assert names == ["pay"]
    assert not out.remove_at_enforce and not out.policy_enforced
    spec = one(out, "policy_staged", "AuthorizationPolicy", "pay")["spec"]
    assert spec["rules"] == [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]},
                             {"to": [{"operation": {"ports": ["9080"]}}]}]


def test_companion_keeps_ip_blocks_of_a_source_that_also_names_identities():
    out, _ = convert(svc("pay") + """---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: pay, namespace: shop}
spec:
  rules:
  - from: [{source: {namespaces: [web], ipBlocks: [10.1.0.0/16]}}]
""")
    companion = one(out, "policy_staged", "AuthorizationPolicy", "pay-plaintext")
    assert companion["spec"] == {"action": "ALLOW", "rules": [{"from": [{"source": {
        "notPrincipals": ["*"], "ipBlocks": ["10.1.0.0/16"]}}]}]}


def _policy(action: str, sources: tuple[AuthzSource, ...],
            ops: tuple[AuthzOperation, ...] = (), inexpressible: tuple[str, ...] = ()
            ) -> AuthzPolicy:
    ref = ObjectRef("ServiceIntentions", "shop", "pay", "consul.hashicorp.com/v1alpha1")
    return AuthzPolicy("shop", "pay", (("app", "pay"),), action,
                       (AuthzRule(sources, ops, "spec.sources[0]", inexpressible),), False,
                       Origin(ref, "spec"))


def test_service_accounts_become_principals_in_the_target_trust_domain():
    graph, losses = read(svc("pay"))
    graph.add(_policy("ALLOW", (AuthzSource(service_accounts=("web/frontend",)),)))
    out = write(graph, losses, trust_domain="example.org")
    spec = one(out, "policy_staged", "AuthorizationPolicy", "pay")["spec"]
    assert spec["rules"][0]["from"] == [
        {"source": {"principals": ["example.org/ns/web/sa/frontend"]}}]


def test_principals_and_service_accounts_together_keep_only_both():
    graph, losses = read(svc("pay"))
    graph.add(_policy("ALLOW", (AuthzSource(
        principals=("cluster.local/ns/web/sa/a", "cluster.local/ns/web/sa/b"),
        service_accounts=("web/a",)),)))
    out = write(graph, losses)
    spec = one(out, "policy_staged", "AuthorizationPolicy", "pay")["spec"]
    assert spec["rules"][0]["from"] == [{"source": {"principals": ["cluster.local/ns/web/sa/a"]}}]
    assert "AUTHZ_SOURCE_NARROWED" in codes(losses)


def test_deny_policy_is_written_and_its_plaintext_window_reported():
    graph, losses = read(svc("pay"))
    graph.add(_policy("DENY", (AuthzSource(namespaces=("evil",)),),
                      (AuthzOperation(methods=("DELETE",)),), inexpressible=("authz.condition",)))
    out = write(graph, losses)
    spec = one(out, "policy_staged", "AuthorizationPolicy", "pay")["spec"]
    # The DENY keeps its rule without the inexpressible narrowing: it denies more, never less.
    assert spec == {"selector": {"matchLabels": {"app": "pay"}}, "action": "DENY",
                    "rules": [{"from": [{"source": {"namespaces": ["evil"]}}],
                               "to": [{"operation": {"methods": ["DELETE"]}}]}]}
    assert not out.remove_at_enforce
    assert "AUTHZ_DENY_PLAINTEXT" in codes(losses)


def test_allow_rule_with_a_condition_is_left_out_failing_closed():
    out, losses = convert(svc("pay") + """---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: pay, namespace: shop}
spec:
  rules:
  - from: [{source: {namespaces: [web]}}]
    when: [{key: "request.headers[x-token]", values: ["a"]}]
""")
    spec = one(out, "policy_staged", "AuthorizationPolicy", "pay")["spec"]
    assert spec == {"action": "ALLOW"}  # no rule left: an ALLOW policy that matches nothing
    assert "AUTHZ_CONDITION" in codes(losses)
    assert not out.remove_at_enforce


def test_deny_policy_is_written_as_a_deny_policy():
    out, losses = convert(svc("pay") + """---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-delete, namespace: shop}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: [DELETE]}}]}]
""")
    [policy] = bodies(out, "policy_staged", "AuthorizationPolicy")
    assert policy["metadata"]["name"] == "no-delete"
    assert policy["spec"]["action"] == "DENY"
    assert policy["spec"]["rules"] == [{"to": [{"operation": {"methods": ["DELETE"]}}]}]
    assert "AUTHZ_NOT_MODELLED" not in codes(losses)


def test_audit_policy_the_reader_did_not_model_is_reported():
    out, losses = convert(svc("pay") + """---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-delete, namespace: shop}
spec:
  action: AUDIT
  rules: [{to: [{operation: {methods: [DELETE]}}]}]
""")
    assert not bodies(out, "policy_staged", "AuthorizationPolicy")
    [loss] = [loss for loss in losses if loss.code == "AUTHZ_NOT_MODELLED"]
    assert loss.object.name == "audit-delete" and loss.feature == "authz.audit"


def test_mesh_wide_policy_is_written_into_each_migrated_namespace():
    policy = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-allow, namespace: istio-system}
spec:
  rules: [{from: [{source: {ipBlocks: [10.0.0.0/8]}}]}]
"""
    out, losses = convert("---\n".join([svc("pay"), svc("web", "front"), policy]))
    placed = sorted((b["metadata"]["namespace"], b["metadata"]["name"])
                    for b in bodies(out, "policy_staged", "AuthorizationPolicy"))
    assert placed == [("front", "mesh-allow"), ("shop", "mesh-allow")]
    assert "AUTHZ_MESH_WIDE" in codes(losses)


# -- Gateway API routes mode ----------------------------------------------------------------
def test_gateway_api_mode_writes_service_parented_http_routes():
    out, losses = convert(vs("""
  - match: [{uri: {prefix: /v2}}]
    timeout: 2s
    retries: {attempts: 3}
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
"""), routes_api="gateway-api")
    assert not bodies(out, "routing", "VirtualService")
    [route] = bodies(out, "routing", "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "reviews"}]
    first, second = route["spec"]["rules"]
    assert first["matches"] == [{"path": {"type": "PathPrefix", "value": "/v2"}}]
    assert first["timeouts"] == {"request": "2s"}
    assert first["backendRefs"] == [{"name": "reviews-v2", "port": 9080}]
    assert second["backendRefs"] == [{"name": "reviews-v1", "port": 9080, "weight": 90},
                                     {"name": "reviews-v2", "port": 9080, "weight": 10}]
    subsets = {b["metadata"]["name"]: b["spec"]["selector"]
               for b in bodies(out, "routing", "Service")}
    assert subsets == {"reviews-v1": {"app": "reviews", "version": "v1"},
                       "reviews-v2": {"app": "reviews", "version": "v2"}}
    assert {"ROUTE_GATEWAY_API", "ROUTE_PREFIX_SEGMENT"} <= set(codes(losses))


def test_gateway_api_mode_reports_first_match_inversions():
    text = (REPO / "tests/golden/03-rule-order/input.yaml").read_text()
    out, losses = convert(text, routes_api="gateway-api")
    [route] = bodies(out, "routing", "HTTPRoute")
    assert len(route["spec"]["rules"]) == 4  # /v1/health is never reached in Istio: dropped
    assert {"ROUTE_ORDER", "ROUTE_RULE_UNREACHABLE"} <= set(codes(losses))


def test_gateway_api_mode_splits_more_than_sixteen_rules_over_routes():
    http = "\n".join(f"  - match: [{{uri: {{exact: /p{i:02d}}}}}]\n"
                     f"    route: [{{destination: {{host: reviews}}}}]" for i in range(20))
    out, _ = convert(vs(http), routes_api="gateway-api")
    routes = bodies(out, "routing", "HTTPRoute")
    assert [r["metadata"]["name"] for r in routes] == ["reviews", "reviews-02"]
    assert [len(r["spec"]["rules"]) for r in routes] == [16, 4]
    assert routes[1]["spec"]["rules"][0]["matches"] == [
        {"path": {"type": "Exact", "value": "/p16"}}]
    assert routes[1]["spec"]["parentRefs"] == routes[0]["spec"]["parentRefs"]


def test_gateway_api_mode_keeps_tcp_rules_as_virtual_services():
    out, _ = convert(vs("  - route: [{destination: {host: reviews}}]", """  tcp:
  - route: [{destination: {host: reviews, port: {number: 9090}}}]
"""), routes_api="gateway-api")
    [route] = bodies(out, "routing", "VirtualService")
    assert set(route["spec"]) == {"hosts", "tcp"}
    [http_route] = bodies(out, "routing", "HTTPRoute")
    assert http_route["spec"]["rules"] == [{"backendRefs": [{"name": "reviews", "port": 9080}]}]


def test_policy_is_written_only_for_migrated_namespaces():
    text = "---\n".join([svc("pay"), svc("web", "front"), """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: front}
spec: {mtls: {mode: STRICT}}
"""])
    graph, losses = read(text)
    out = write(graph, losses, namespaces=["shop"])
    assert not out.policy_staged and not out.policy_enforced
    out = write(graph, losses, namespaces=["front", "shop"])
    assert list(out.policy_staged) == ["front"]


def test_unknown_routes_api_is_refused():
    with pytest.raises(ValueError):
        IstioWriter(LossLog(), mappings.table("istio"), "1.30", routes_api="grpc")


# -- round trip -------------------------------------------------------------------------------
# What survives Istio -> IR -> Istio (the fields compared below):
# - VirtualService (mesh): hosts (as Services), per http rule name, match (uri, ignoreUriCase,
#   method, headers, queryParams, port), destinations (Service, subset, port) with weights,
#   timeout and retries (attempts, perTryTimeout, retryOn; durations by value), request and
#   response header changes on rules and destinations, redirect (uri, authority, port,
#   scheme, code); tcp rules (port matches, destinations, weights). NOT: rewrite, mirror(s),
#   fault, corsPolicy, directResponse, delegate, scheme/authority/sourceLabels/
#   withoutHeaders matches, retry backoff, exportTo (all reported by the capability table).
# - DestinationRule: host, subsets (name, labels), outlierDetection consecutive errors and
#   base ejection time, tls mode SIMPLE/DISABLE. NOT: ISTIO_MUTUAL (auto mTLS does it),
#   loadBalancer, connectionPool, portLevelSettings, subset traffic policies.
# - AuthorizationPolicy ALLOW (enforced form): selector, rules with principals, namespaces,
#   ipBlocks, ports, methods, paths. PeerAuthentication (enforced form): selector, mode,
#   portLevelMtls.
GOLDEN = sorted(p.parent.name for p in (REPO / "tests" / "golden").glob("*/input.yaml"))


def _duration(value: Any) -> int | None:
    return to_millis(str(value)) if value is not None else None


def _key(host: str, ns: str) -> str:
    key = service_of_host(host, ns)
    return str(key) if key else host


def _vs_view(body: dict[str, Any]) -> dict[str, Any]:
    ns = body["metadata"]["namespace"]
    spec = body["spec"]

    def dest(d: dict[str, Any]) -> tuple[Any, ...]:
        x = d["destination"]
        return (_key(x["host"], ns), x.get("subset", ""), (x.get("port") or {}).get("number"),
                d.get("weight"), d.get("headers") or {})

    def rule(r: dict[str, Any]) -> dict[str, Any]:
        retries = r.get("retries")
        return {
            "name": r.get("name", ""),
            "match": [{k: m[k] for k in ("uri", "ignoreUriCase", "method", "headers",
                                         "queryParams", "port") if m.get(k)}
                      for m in r.get("match") or []],
            "route": [dest(d) for d in r.get("route") or []],
            "timeout": _duration(r.get("timeout")),
            "retries": None if retries is None else (
                retries.get("attempts", 0), _duration(retries.get("perTryTimeout")),
                retries.get("retryOn", "")),
            "headers": r.get("headers") or {},
            "redirect": {k: v for k, v in (r.get("redirect") or {}).items()
                         if k != "derivePort" and not (k == "redirectCode" and v == 301)},
        }

    return {"hosts": sorted(_key(h, ns) for h in spec["hosts"]),
            "http": [rule(r) for r in spec.get("http") or []],
            "tcp": [{"match": [m["port"] for m in r.get("match") or []],
                     "route": [dest(d) for d in r["route"]]} for r in spec.get("tcp") or []]}


def _dr_view(body: dict[str, Any]) -> dict[str, Any] | None:
    ns, spec = body["metadata"]["namespace"], body["spec"]
    policy = spec.get("trafficPolicy") or {}
    od = policy.get("outlierDetection")
    view = {"host": _key(spec["host"], ns),
            "subsets": [(s["name"], s.get("labels") or {}) for s in spec.get("subsets") or []],
            "outlier": None if od is None else (
                od.get("consecutive5xxErrors", od.get("consecutiveErrors")),
                _duration(od.get("baseEjectionTime"))),
            "tls": (policy.get("tls") or {}).get("mode") if (policy.get("tls") or {}).get(
                "mode") in ("SIMPLE", "DISABLE") else None}
    return view if view["subsets"] or view["outlier"] or view["tls"] else None


def _authz_view(body: dict[str, Any]) -> dict[str, Any]:
    spec = body["spec"]
    return {"ns": body["metadata"]["namespace"], "selector": spec.get("selector"),
            "action": spec.get("action", "ALLOW"), "rules": spec.get("rules") or []}


def _pa_view(body: dict[str, Any]) -> dict[str, Any]:
    spec = body["spec"]
    return {"ns": body["metadata"]["namespace"], "selector": spec.get("selector"),
            "mode": (spec.get("mtls") or {}).get("mode", "UNSET"),
            "ports": {str(k): v for k, v in (spec.get("portLevelMtls") or {}).items()}}


def _final(out: TargetConfig, kind: str) -> list[dict[str, Any]]:
    """Each object in its last form (enforced replaces staged)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for bucket in ("routing", "policy_staged", "policy_enforced"):
        for b in bodies(out, bucket, kind):
            found[(b["metadata"]["namespace"], b["metadata"]["name"])] = b
    removed = {(b["metadata"]["namespace"], b["metadata"]["name"])
               for b in bodies(out, "remove_at_enforce", kind)}
    return [b for k, b in sorted(found.items()) if k not in removed]


@pytest.mark.parametrize("case", GOLDEN)
def test_round_trip_of_golden_inputs(case: str):
    text = (REPO / "tests" / "golden" / case / "input.yaml").read_text()
    docs = [d for d in yaml.safe_load_all(text) if d]
    items = [i for d in docs for i in (d.get("items") if d.get("kind") == "List" else [d])]
    out, _ = convert(text)

    def mesh_vs(d: dict[str, Any]) -> bool:
        if d["kind"] != "VirtualService":
            return False
        gateways = d["spec"].get("gateways") or []
        return not gateways or "mesh" in gateways

    expected_vs = sorted((_vs_view(d) for d in items if mesh_vs(d)), key=str)
    assert sorted((_vs_view(b) for b in _final(out, "VirtualService")), key=str) == expected_vs
    expected_dr = [v for v in (_dr_view(d) for d in items if d["kind"] == "DestinationRule")
                   if v is not None]
    assert sorted((_dr_view(b) for b in _final(out, "DestinationRule")), key=str) == \
        sorted(expected_dr, key=str)
    expected_az = [_authz_view(d) for d in items if d["kind"] == "AuthorizationPolicy"
                   and d["spec"].get("action", "ALLOW") == "ALLOW"]
    assert sorted((_authz_view(b) for b in _final(out, "AuthorizationPolicy")), key=str) == \
        sorted(expected_az, key=str)
    expected_pa = [_pa_view(d) for d in items if d["kind"] == "PeerAuthentication"]
    assert sorted((_pa_view(b) for b in _final(out, "PeerAuthentication")), key=str) == \
        sorted(expected_pa, key=str)


# -- validity against the CRDs --------------------------------------------------------------
ISTIO_SETS = shared_sets("istio")
SAMPLE_SETS = sorted(p.name for p in (SAMPLES / "istio").iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def schemas(shared: Path) -> SchemaSet:
    crds = shared / "crds"
    return SchemaSet.from_paths([str(crds / "istio" / "1.30.3" / "crd-all.gen.yaml"),
                                 str(crds / "gateway-api" / "v1.6.1" / "standard")])


def _all(out: TargetConfig) -> list[Manifest]:
    return [m for bucket in BUCKETS for ms in getattr(out, bucket).values() for m in ms]


def _check_valid(path: Path, schemas: SchemaSet, routes_api: str,
                 reader: type = IstioReader) -> None:
    losses = LossLog()
    graph = reader(losses, []).read(read_files([str(path)])).graph
    out = write(graph, losses, routes_api=routes_api)
    manifests = _all(out)
    assert manifests, "nothing written"
    for m in manifests:
        assert m.sources, f"{m.kind} {m.name} records no source object"
        core = m.body["apiVersion"] == "v1"
        problems = validate_manifest(m.body, f"{m.kind}/{m.namespace}/{m.name}", schemas,
                                     require_schema=not core)
        assert not problems, [str(p) for p in problems]
        assert valid_name(m.name, service=m.kind == "Service")


@pytest.mark.parametrize("routes_api", ["virtualservice", "gateway-api"])
@pytest.mark.parametrize("name", SAMPLE_SETS)
def test_sample_manifests_validate(name: str, routes_api: str, schemas: SchemaSet):
    _check_valid(SAMPLES / "istio" / name, schemas, routes_api)


@pytest.mark.parametrize("routes_api", ["virtualservice", "gateway-api"])
@pytest.mark.parametrize("name", corpus_cases(ISTIO_SETS))
def test_corpus_manifests_validate(name: str, routes_api: str, shared: Path,
                                   schemas: SchemaSet):
    _check_valid(shared / "corpus" / "istio" / name, schemas, routes_api)


@pytest.mark.parametrize("routes_api", ["virtualservice", "gateway-api"])
@pytest.mark.parametrize("mesh,name", corpus_cases(
    [("linkerd", n) for n in shared_sets("linkerd")]
    + [("consul", n) for n in shared_sets("consul")], 2))
def test_other_sources_give_valid_istio_manifests(mesh: str, name: str, routes_api: str,
                                                  shared: Path, schemas: SchemaSet):
    # The other readers' IR (Linkerd: GAMMA routes, ServiceProfiles, Servers; Consul:
    # routers, splitters, intentions) through the same writer.
    if mesh == "linkerd":
        from migrate.dialects.linkerd.reader import LinkerdReader as reader
    else:
        from migrate.dialects.consul.reader import ConsulReader as reader
    _check_valid(shared / "corpus" / mesh / name, schemas, routes_api, reader)


def test_output_is_deterministic():
    text = (SAMPLES / "istio" / "shop" / "dump.yaml").read_text()
    first, _ = convert(text)
    second, _ = convert(text)
    assert [m.body for m in _all(first)] == [m.body for m in _all(second)]
