"""Authorization scope on every target (issue 15): namespace- and mesh-wide policies become
the target's namespace defaults, Servers select what the policies select, policies that
select nothing are reported, TLS is reported wherever it sits, declared protocols are
honoured and headless Services are reported. Every plan here also passes the equivalence
check with no unexplained divergence (plan_migration runs it)."""

from __future__ import annotations

from typing import Any

from migrate.pipeline import PlanResult
from tests.helpers import plan_yaml, texts

DEFAULT = "config.linkerd.io/default-inbound-policy"

API = """
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: api, version: v1}}
  template:
    metadata: {labels: {app: api, version: v1}}
    spec: {containers: [{name: api, image: api, ports: [{containerPort: 8080}]}]}
"""
SHOP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: web, labels: {istio-injection: enabled}}
---""" + API + """---
apiVersion: apps/v1
kind: Deployment
metadata: {name: front, namespace: web}
spec:
  selector: {matchLabels: {app: front}}
  template:
    metadata: {labels: {app: front}}
    spec:
      containers:
      - {name: front, image: front, env: [{name: API, value: "http://api.shop:8080"}]}
"""

ALLOW_FRONT = """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-front, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/web/sa/default"]}}]
    to: [{operation: {methods: ["GET"], paths: ["/items"]}}]
"""

DENY_ALL = """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: shop}
spec: {}
"""


def plan(text: str, source: str = "istio", target: str = "linkerd") -> PlanResult:
    """Plan and hold the equivalence check to zero unexplained divergences."""
    result = plan_yaml(text, source, target)
    assert result.plan.equivalence is not None
    assert result.plan.equivalence.unexplained == [], result.plan.equivalence.unexplained
    return result


def step_manifests(result: PlanResult, kind: str, step_kind: str) -> list[dict[str, Any]]:
    return [m.body for s in result.plan.steps if s.kind == step_kind
            for m in s.manifests if m.kind == kind]


def commands(result: PlanResult, step_kind: str) -> list[str]:
    return [c for s in result.plan.steps if s.kind == step_kind for c in texts(s.commands)]


def losses(result: PlanResult, code: str) -> list[tuple[str, str, str]]:
    return [(str(loss.object), loss.path, loss.severity.value) for loss in result.losses
            if loss.code == code]


def server(name: str, ns: str, labels: dict[str, str], port: int, access: str,
           protocol: str = "HTTP/1") -> dict[str, Any]:
    return {"apiVersion": "policy.linkerd.io/v1beta3", "kind": "Server",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"podSelector": {"matchLabels": labels}, "port": port,
                     "proxyProtocol": protocol, "accessPolicy": access}}


def server_sources(result: PlanResult, step_kind: str) -> list[str]:
    return [",".join(str(r) for r in m.sources) for s in result.plan.steps
            if s.kind == step_kind for m in s.manifests if m.kind == "Server"]


# -- 1. namespace- and mesh-wide policies -> the target's defaults ---------------------------
def test_namespace_wide_deny_becomes_the_namespace_default_deny_from_the_move():
    result = plan(SHOP + DENY_ALL + ALLOW_FRONT)
    # Staged with the namespace's switch (the source refused everything there too) ...
    assert (f"kubectl annotate namespace shop linkerd.io/inject=enabled {DEFAULT}=deny "
            "--overwrite") in commands(result, "move")
    # ... and nothing left to change at enforce: the value is already final.
    assert not any(DEFAULT in c for c in commands(result, "enforce"))
    sources = ("AuthorizationPolicy/shop/allow-front,AuthorizationPolicy/shop/deny-all,"
               "Deployment/shop/api-v1")
    assert step_manifests(result, "Server", "move") == [
        server("api-v1-8080", "shop", {"app": "api"}, 8080, "deny")]
    assert server_sources(result, "move") == [sources]
    # The grant's plaintext twin keeps the route (GET /items) for callers still on Istio.
    twins = {m["metadata"]["name"]: m["spec"]
             for m in step_manifests(result, "AuthorizationPolicy", "move")
             if m["metadata"]["name"].endswith("-plaintext")}
    assert twins == {"allow-front-r0s0-api-v1-8080-r1-plaintext": {
        "targetRef": {"group": "policy.linkerd.io", "kind": "HTTPRoute",
                      "name": "api-v1-8080-r1"},
        "requiredAuthenticationRefs": [{"group": "policy.linkerd.io",
                                        "kind": "NetworkAuthentication",
                                        "name": "plaintext-staging"}]}}
    assert step_manifests(result, "Server", "enforce") == [
        server("api-v1-8080", "shop", {"app": "api"}, 8080, "deny")]
    assert server_sources(result, "enforce") == [sources]


def test_mesh_wide_allow_nothing_denies_every_migrated_namespace():
    root = """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-deny, namespace: istio-system}
spec: {}
"""
    result = plan(SHOP + ALLOW_FRONT + root)
    move = commands(result, "move")
    for ns in ("shop", "web"):
        assert f"kubectl annotate namespace {ns} linkerd.io/inject=enabled {DEFAULT}=deny " \
               "--overwrite" in move
    # Carried over, so the capability check says so only as info.
    assert {loss.severity.value for loss in result.losses if loss.code == "AUTHZ_MESH_WIDE"} \
        == {"info"}


def test_strict_namespace_stages_cluster_unauthenticated_then_all_authenticated():
    strict = """
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}
"""
    result = plan(SHOP + strict)
    assert (f"kubectl annotate namespace shop linkerd.io/inject=enabled "
            f"{DEFAULT}=cluster-unauthenticated --overwrite") in commands(result, "move")
    assert f"kubectl annotate namespace shop {DEFAULT}=all-authenticated --overwrite" in \
        commands(result, "enforce")
    sources = "Deployment/shop/api-v1,PeerAuthentication/shop/default"
    assert step_manifests(result, "Server", "move") == [
        server("api-v1-8080", "shop", {}, 8080, "cluster-unauthenticated")]
    assert step_manifests(result, "Server", "enforce") == [
        server("api-v1-8080", "shop", {}, 8080, "all-authenticated")]
    assert server_sources(result, "enforce") == [sources]


def test_allow_nothing_on_a_workload_is_staged_deny_not_audit():
    nothing = """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: closed, namespace: shop}
spec: {selector: {matchLabels: {app: api}}}
"""
    result = plan(SHOP + nothing)
    assert step_manifests(result, "Server", "move") == [
        server("api-v1-8080", "shop", {"app": "api"}, 8080, "deny")]


def test_namespace_wide_allow_with_rules_reports_what_the_default_refuses():
    wide = """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: from-web, namespace: shop}
spec:
  rules: [{from: [{source: {namespaces: [web]}}]}]
"""
    result = plan(SHOP + wide)
    assert losses(result, "AUTHZ_NAMESPACE_DEFAULT") == [
        ("AuthorizationPolicy/shop/from-web", "spec", "info")]
    assert any(f"{DEFAULT}=deny" in c for c in commands(result, "move"))


def test_namespace_wide_allow_all_sets_no_default():
    open_ = """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: open, namespace: shop}
spec: {rules: [{}]}
"""
    result = plan(SHOP + open_)
    assert not any(DEFAULT in c for s in result.plan.steps for c in texts(s.commands))


def test_linkerd_namespace_deny_becomes_an_istio_namespace_wide_allow_nothing():
    text = """
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  annotations: {linkerd.io/inject: enabled, config.linkerd.io/default-inbound-policy: deny}
---""" + API
    result = plan(text, "linkerd", "istio")
    [policy] = step_manifests(result, "AuthorizationPolicy", "move")
    assert policy["metadata"]["namespace"] == "shop"
    assert policy["spec"] == {"action": "ALLOW"}


def test_consul_target_writes_mesh_wide_policies_into_each_service():
    root = """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-web, namespace: istio-system}
spec:
  selector: {matchLabels: {app: api}}
  rules: [{from: [{source: {principals: ["cluster.local/ns/web/sa/front"]}}]}]
---
apiVersion: v1
kind: Service
metadata: {name: front, namespace: web}
spec:
  selector: {app: front}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: front, namespace: web}
"""
    text = SHOP.replace("      containers:\n      - {name: front",
                        "      serviceAccountName: front\n      containers:\n      - {name: front")
    result = plan(text + root, "istio", "consul")
    intentions = {m["metadata"]["name"]: m["spec"]
                  for m in step_manifests(result, "ServiceIntentions", "move")}
    assert intentions["api"] == {"destination": {"name": "api"},
                                 "sources": [{"name": "front", "action": "allow"},
                                             {"name": "*", "action": "deny"}]}
    # Carried over, so the capability check says so only as info.
    assert {loss.severity.value for loss in result.losses if loss.code == "AUTHZ_MESH_WIDE"} \
        == {"info"}


# -- 2. selection from the policies' selectors ----------------------------------------------
CANARY = """
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api-v2, namespace: shop}
spec:
  selector: {matchLabels: {app: api, version: v2}}
  template:
    metadata: {labels: {app: api, version: v2}}
    spec: {containers: [{name: api, image: api, ports: [{containerPort: 8080}]}]}
"""


def test_one_server_covers_every_version_the_policy_selects():
    result = plan(SHOP + CANARY + ALLOW_FRONT)
    sources = ("AuthorizationPolicy/shop/allow-front,Deployment/shop/api-v1,"
               "Deployment/shop/api-v2")
    assert step_manifests(result, "Server", "enforce") == [
        server("api-v1-8080", "shop", {"app": "api"}, 8080, "deny")]
    assert server_sources(result, "enforce") == [sources]


def test_versions_with_different_policies_keep_their_own_labels():
    v2_only = """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: v2-extra, namespace: shop}
spec:
  selector: {matchLabels: {app: api, version: v2}}
  rules: [{from: [{source: {namespaces: [shop]}}]}]
"""
    result = plan(SHOP + CANARY + ALLOW_FRONT + v2_only)
    selectors = sorted((s["metadata"]["name"], s["spec"]["podSelector"]["matchLabels"])
                       for s in step_manifests(result, "Server", "enforce"))
    # api-v1's joint selector (app: api) would pick api-v2, whose policies differ: it keeps
    # its own labels; api-v2's joint selector (app: api, version: v2) picks only itself.
    assert selectors == [("api-v1-8080", {"app": "api", "version": "v1"}),
                         ("api-v2-8080", {"app": "api", "version": "v2"})]


# -- 3. policies that select nothing --------------------------------------------------------
GHOST = """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ghost, namespace: shop}
spec:
  selector: {matchLabels: {app: ghost}}
  rules: [{from: [{source: {namespaces: [web]}}]}]
"""


def test_policy_selecting_nothing_is_reported_on_every_target():
    for target in ("linkerd", "consul"):
        result = plan(SHOP + GHOST, "istio", target)
        assert losses(result, "AUTHZ_SELECTS_NOTHING") == [
            ("AuthorizationPolicy/shop/ghost", "spec", "info")], target


def test_policy_selecting_nothing_is_reported_for_an_istio_target():
    text = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, annotations: {linkerd.io/inject: enabled}}
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: ghost, namespace: shop}
spec:
  podSelector: {matchLabels: {app: ghost}}
  port: 8080
  accessPolicy: all-authenticated
"""
    result = plan(text, "linkerd", "istio")
    assert [(o, s) for o, _, s in losses(result, "AUTHZ_SELECTS_NOTHING")] == [
        ("Server/shop/ghost", "info")]


# -- 4. TLS origination at port level ---------------------------------------------------------
def test_port_level_tls_origination_is_reported_like_the_top_level_form():
    dr = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api.shop.svc.cluster.local
  trafficPolicy:
    portLevelSettings:
    - port: {number: 8080}
      tls: {mode: SIMPLE}
"""
    result = plan(SHOP + dr)
    assert losses(result, "DESTINATION_TLS_ORIGINATION") == [
        ("DestinationRule/shop/api", "spec.trafficPolicy.portLevelSettings[0].tls", "manual")]


# -- 5. the protocol Consul declares ---------------------------------------------------------
CONSUL = """
apiVersion: v1
kind: Service
metadata: {name: db, namespace: bank}
spec:
  selector: {app: db}
  ports: [{name: http, port: 7000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: bank}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata:
      labels: {app: db}
      annotations: {consul.hashicorp.com/connect-inject: "true"}
    spec:
      serviceAccountName: db
      containers: [{name: db, image: db, ports: [{containerPort: 7000}]}]
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata: {name: db, namespace: bank}
spec: {protocol: tcp}
"""


def test_consul_tcp_service_is_an_opaque_linkerd_server():
    result = plan(CONSUL, "consul", "linkerd")
    [srv] = step_manifests(result, "Server", "enforce")
    assert srv["spec"]["proxyProtocol"] == "opaque"
    assert any("config.linkerd.io/opaque-ports=" in c and "7000" in c
               for c in commands(result, "move"))


def test_consul_tcp_service_behind_an_http_port_name_is_reported_for_istio():
    result = plan(CONSUL, "consul", "istio")
    assert losses(result, "SERVICE_PROTOCOL") == [
        ("Service/bank/db", "spec.ports[0]", "degraded")]


# -- 6. headless Services ---------------------------------------------------------------------
HEADLESS = SHOP.replace("  selector: {app: api}\n  ports:",
                        "  clusterIP: None\n  selector: {app: api}\n  ports:")


def test_headless_service_with_istio_callers_is_reported_with_its_calls():
    for target in ("linkerd", "consul"):
        result = plan(HEADLESS, "istio", target)
        [loss] = [x for x in result.losses if x.code == "HEADLESS_MESH_TLS"]
        assert str(loss.object) == "Service/shop/api" and loss.severity.value == "manual"
        assert "Deployment web/front" in loss.message
        assert "tls.mode: DISABLE" in loss.action


def test_non_headless_service_is_not_reported():
    result = plan(SHOP, "istio", "linkerd")
    assert not losses(result, "HEADLESS_MESH_TLS")
