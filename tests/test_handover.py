"""Linkerd's Service-parented Gateway API routes during a move to Istio: Istio applies such
routes too, so step 00 re-creates them in the policy.linkerd.io flavour (which only Linkerd
reads) with exactly what Linkerd read, deletes the ones Linkerd ignores, and later steps delete
and restore the copies; routes with no Linkerd flavour are reported (migrate/dialects/linkerd/
handover.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.dialects.linkerd.handover import gateway_reads_timeouts, hand_over_mesh_routes
from migrate.pipeline import PlanResult
from migrate.validate import SchemaSet, validate_manifest
from tests.helpers import plan_yaml, texts

ROUTES = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, annotations: {linkerd.io/inject: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{name: http, port: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: api, ports: [{containerPort: 8080}]}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: api
  namespace: shop
  annotations: {timeout.linkerd.io/request: 5s}
  resourceVersion: "42"
spec:
  parentRefs: [{group: core, kind: Service, name: api, port: 8080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    timeouts: {request: 1s}
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-version, value: v2}]}
    - type: RequestHeaderModifier
      requestHeaderModifier: {add: [{name: x-canary, value: "1"}]}
    backendRefs: [{name: api, port: 8080}]
status: {parents: []}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api-health, namespace: shop}
spec:
  parentRefs: [{group: core, kind: Service, name: api, port: 8080}]
  rules:
  - matches: [{path: {type: Exact, value: /health}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /healthz}}
    backendRefs: [{name: api, port: 8080}]
"""
GRPC = """---
apiVersion: v1
kind: Service
metadata: {name: rpc, namespace: shop}
spec: {selector: {app: api}, ports: [{name: grpc, port: 9090}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: rpc, namespace: shop}
spec:
  parentRefs: [{group: core, kind: Service, name: rpc, port: 9090}]
  rules: [{backendRefs: [{name: rpc, port: 9090}]}]
"""


def plan(target: str, text: str = ROUTES) -> PlanResult:
    return plan_yaml(text, "linkerd", target)


@pytest.fixture(scope="module")
def linkerd_schemas(shared: Path) -> SchemaSet:
    """Linkerd's CRDs: the copies must be valid policy.linkerd.io routes."""
    return SchemaSet.from_paths([
        str(shared / "crds" / "linkerd" / "edge-26.8.3" / "rendered" / "install_crds.golden.yaml")])


def test_routes_istio_would_apply_are_handed_over_at_step_00(linkerd_schemas: SchemaSet):
    result = plan("istio")
    first = result.plan.steps[0]
    [copy] = [m.body for m in first.manifests if m.kind == "HTTPRoute"]
    assert copy["apiVersion"] == "policy.linkerd.io/v1beta3"
    assert copy["metadata"]["annotations"]["timeout.linkerd.io/request"] == "5s"
    assert "resourceVersion" not in copy["metadata"] and "status" not in copy
    [rule] = copy["spec"]["rules"]
    # timeouts stay: Linkerd 2.20 (the version assumed when none is known) reads them on the
    # Gateway API flavour too (fact linkerd.gateway-rule-timeouts); the response header
    # change moves onto the backend, where the flavour has it.
    assert rule["timeouts"] == {"request": "1s"}
    assert rule["filters"] == [{"type": "RequestHeaderModifier",
                                "requestHeaderModifier": {"add": [{"name": "x-canary",
                                                                   "value": "1"}]}}]
    assert rule["backendRefs"] == [{"name": "api", "port": 8080, "filters": [
        {"type": "ResponseHeaderModifier",
         "responseHeaderModifier": {"set": [{"name": "x-version", "value": "v2"}]}}]}]
    assert not validate_manifest(copy, "copy", linkerd_schemas)
    # Copies first, then the originals go, the URLRewrite route too (Linkerd ignored it).
    commands = texts(first.commands)
    apply = next(i for i, c in enumerate(commands) if "-k steps/00-prerequisites" in c)
    deletes = [c for c in commands[apply:] if c.startswith("kubectl delete")]
    assert deletes == [
        "kubectl delete httproute.gateway.networking.k8s.io/api -n shop --ignore-not-found",
        "kubectl delete httproute.gateway.networking.k8s.io/api-health -n shop "
        "--ignore-not-found"]
    # Rollback brings both originals back before removing the copy.
    assert texts(first.rollback[:2]) == [
        "kubectl apply -k steps/00-prerequisites/rollback",
        "kubectl delete httproute.policy.linkerd.io/api -n shop --ignore-not-found"]
    assert {b["metadata"]["name"] for b in first.rollback_manifests} == {"api", "api-health"}


def test_later_steps_retire_the_copy_not_the_original():
    result = plan("istio")
    retire = [s for s in result.plan.steps if s.kind == "enforce"]
    commands = [c for s in retire for c in texts(s.commands)]
    assert "kubectl delete httproute.policy.linkerd.io/api -n shop --ignore-not-found" in commands
    assert not [c for c in commands if "httproute.gateway.networking.k8s.io" in c]
    restored = [b for s in retire for b in s.rollback_manifests if b["kind"] == "HTTPRoute"]
    assert [b["apiVersion"] for b in restored] == ["policy.linkerd.io/v1beta3"]


def test_a_route_kind_without_a_linkerd_flavour_is_reported():
    result = plan("istio", ROUTES + GRPC)
    [loss] = [x for x in result.losses if x.code == "PLAN_SHARED_ROUTE"]
    assert (loss.object.kind, loss.object.name, loss.severity.value) == (
        "GRPCRoute", "rpc", "degraded")
    assert "PLAN_SHARED_ROUTE" not in {x.code for x in plan("istio").losses}


def test_a_target_that_ignores_gateway_mesh_routes_needs_no_handover():
    result = plan("consul", ROUTES + GRPC)
    first = result.plan.steps[0]
    assert not [m for m in first.manifests if m.kind == "HTTPRoute"]
    assert not [c for c in texts(first.commands) if "httproute" in c]
    assert "PLAN_SHARED_ROUTE" not in {x.code for x in result.losses}


def test_a_policy_route_of_the_same_name_keeps_the_original_in_place():
    text = ROUTES + """---
apiVersion: policy.linkerd.io/v1beta3
kind: HTTPRoute
metadata: {name: api, namespace: shop}
spec:
  parentRefs: [{group: core, kind: Service, name: api, port: 8080}]
  rules: [{matches: [{path: {type: PathPrefix, value: /v3}}]}]
"""
    result = plan("istio", text)
    copies = [m for m in result.plan.steps[0].manifests if m.kind == "HTTPRoute"]
    assert copies == []
    shared = {x.object.name for x in result.losses if x.code == "PLAN_SHARED_ROUTE"}
    assert shared == {"api"}


def test_fact_linkerd_gateway_rule_timeouts():
    """linkerd.gateway-rule-timeouts: from 2.20 Linkerd reads rules[].timeouts on
    gateway.networking.k8s.io HTTPRoutes, so the step-00 copy keeps them (dropping them took
    request timeouts away from Linkerd callers for the whole overlap); an older Linkerd ignored
    them there, so its copy must not start enforcing them."""
    assert gateway_reads_timeouts("2.20") and gateway_reads_timeouts("")
    assert not gateway_reads_timeouts("2.19")
    raw = plan("istio").read.raw
    rules = {}
    for version in ("2.19", "2.20", ""):
        handed, _ = hand_over_mesh_routes(raw, version)
        [copy] = [h.replacement for h in handed if h.replacement]
        rules[version] = copy["spec"]["rules"][0]
    assert rules["2.20"]["timeouts"] == {"request": "1s"} == rules[""]["timeouts"]
    assert "timeouts" not in rules["2.19"]
