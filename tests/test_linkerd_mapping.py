"""One test per Istio -> Linkerd mapping rule (mapping-istio-linkerd.md sections 2-3)."""

from __future__ import annotations

from tests.helpers import codes, manifests, plan_yaml

BASE = """
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
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""


def vs(http: str) -> str:
    return BASE + f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: shop}}
spec:
  hosts: [reviews]
  http:
{http}
"""


def routes(result, api="policy.linkerd.io/v1beta3"):
    return [m for m in manifests(result, "HTTPRoute") if m["apiVersion"] == api
            and m["spec"]["parentRefs"][0]["kind"] == "Service"]


def test_weighted_subsets_become_per_subset_services_and_weights():
    result = plan_yaml(vs("""
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
"""))
    subset_services = {m["metadata"]["name"]: m for m in manifests(result, "Service")
                       if "meshmigrate.io/subset-of" in m["metadata"].get("labels", {})}
    assert set(subset_services) == {"reviews-v1", "reviews-v2"}
    assert subset_services["reviews-v2"]["spec"]["selector"] == {"app": "reviews", "version": "v2"}
    assert subset_services["reviews-v2"]["spec"]["ports"][0]["port"] == 9080
    [route] = routes(result)
    assert route["spec"]["parentRefs"] == [{"group": "core", "kind": "Service", "name": "reviews"}]
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {"name": "reviews-v1", "port": 9080, "weight": 80},
        {"name": "reviews-v2", "port": 9080, "weight": 20}]


def test_timeout_and_retries_become_route_annotations():
    result = plan_yaml(vs("""
  - timeout: 1.5s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,gateway-error,503,connect-failure"}
    route: [{destination: {host: reviews}}]
"""))
    [route] = routes(result)
    assert route["metadata"]["annotations"] == {
        "retry.linkerd.io/http": "5xx,gateway-error,503",  # no spaces: Linkerd splits on ","
        "retry.linkerd.io/limit": "3",
        "retry.linkerd.io/timeout": "500ms",
        "timeout.linkerd.io/request": "1500ms",
        "meshmigrate.io/rules": "spec.http[0]"}
    assert "timeouts" not in route["spec"]["rules"][0]
    assert "ROUTE_RETRY_CONDITION" in codes(result)


def test_rules_with_different_policies_split_into_routes():
    result = plan_yaml(vs("""
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - timeout: 10s
    route: [{destination: {host: reviews, subset: v1}}]
"""))
    names = sorted(r["metadata"]["name"] for r in routes(result))
    assert names == ["reviews", "reviews-2"]
    header_route = next(r for r in routes(result) if r["metadata"]["name"] == "reviews")
    assert header_route["spec"]["rules"][0]["matches"] == [
        {"headers": [{"name": "end-user", "type": "Exact", "value": "jason"}]}]
    # Distinct specificity: no tie between the two routes, so no order loss.
    assert "ROUTE_ORDER" not in codes(result)


def test_header_changes_and_redirects_use_supported_filters_only():
    result = plan_yaml(vs("""
  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new, redirectCode: 308}
  - headers:
      request: {set: {x-env: prod}, remove: [x-debug]}
      response: {add: {x-served-by: mesh}}
    route: [{destination: {host: reviews}}]
"""))
    [route] = routes(result)
    redirect, plain = route["spec"]["rules"]
    assert redirect["filters"] == [{"type": "RequestRedirect", "requestRedirect": {
        "path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}, "statusCode": 301}}]
    assert plain["filters"] == [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
        "set": [{"name": "x-env", "value": "prod"}], "remove": ["x-debug"]}}]
    assert plain["backendRefs"][0]["filters"] == [{"type": "ResponseHeaderModifier",
                                                   "responseHeaderModifier": {"add": [
                                                       {"name": "x-served-by",
                                                        "value": "mesh"}]}}]
    assert "ROUTE_REDIRECT_CODE" in codes(result)


def test_unsupported_filters_are_losses_never_emitted():
    result = plan_yaml(vs("""
  - rewrite: {uri: /v2}
    mirror: {host: reviews}
    corsPolicy: {allowOrigins: [{exact: "https://a"}]}
    fault:
      delay: {fixedDelay: 1s, percentage: {value: 5}}
      abort: {httpStatus: 500, percentage: {value: 1}}
    route: [{destination: {host: reviews}}]
"""))
    text = repr(manifests(result))
    for forbidden in ("URLRewrite", "RequestMirror", "CORS", "ExtensionRef"):
        assert forbidden not in text
    lost = {(loss.code, loss.severity.value) for loss in result.losses}
    assert {("ROUTE_REWRITE", "dropped"), ("ROUTE_MIRROR", "dropped"), ("ROUTE_CORS", "dropped"),
            ("ROUTE_FAULT_DELAY", "dropped"), ("ROUTE_FAULT_ABORT", "manual")} <= lost
    assert len(routes(result)) == 1  # the rule itself still routes


def test_shadowed_rule_is_left_out_to_keep_first_match_meaning():
    result = plan_yaml(vs("""
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {exact: /api/health}}]
    route: [{destination: {host: reviews, subset: v2}}]
"""))
    [route] = routes(result)
    assert len(route["spec"]["rules"]) == 1
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == "reviews-v1"
    unreachable = [x for x in result.losses if x.code == "ROUTE_RULE_UNREACHABLE"]
    assert [x.path for x in unreachable] == ["spec.http[1].match[0]"]


def test_overlapping_rules_that_change_meaning_are_reported_with_both_named():
    result = plan_yaml(vs("""
  - match: [{uri: {prefix: /api}, headers: {x-canary: {exact: "1"}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /api/v2}}]
    route: [{destination: {host: reviews, subset: v1}}]
"""))
    [order] = [x for x in result.losses if x.code == "ROUTE_ORDER"]
    assert "spec.http[0].match[0]" in order.message and "spec.http[1].match[0]" in order.message
    assert order.severity.value == "degraded"


def test_prefix_ignore_case_and_method_patterns():
    result = plan_yaml(vs("""
  - match: [{uri: {prefix: /Docs}, ignoreUriCase: true, method: {regex: "P(UT|OST)"}}]
    route: [{destination: {host: reviews}}]
"""))
    [route] = routes(result)
    matches = route["spec"]["rules"][0]["matches"]
    assert [m["method"] for m in matches] == ["POST", "PUT"]
    assert matches[0]["path"] == {"type": "RegularExpression", "value": "(?i)/Docs.*"}
    assert "ROUTE_METHOD" in codes(result)


def test_outlier_detection_becomes_failure_accrual():
    result = plan_yaml(BASE.replace("  subsets:", """  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 7, baseEjectionTime: 45s, interval: 10s}
  subsets:"""))
    patch = [m for m in manifests(result, "Service") if m["metadata"]["name"] == "reviews"]
    assert patch[0]["metadata"]["annotations"] == {
        "balancer.linkerd.io/failure-accrual": "consecutive",
        "balancer.linkerd.io/failure-accrual-consecutive-max-failures": "7",
        "balancer.linkerd.io/failure-accrual-consecutive-min-penalty": "45s"}
    [loss] = [x for x in result.losses if x.code == "DESTINATION_OUTLIER_DETECTION"]
    assert "interval" in loss.message


def test_older_target_version_turns_features_into_losses():
    result = plan_yaml(vs("""
  - retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: reviews}}]
"""), target_version="2.15")
    too_old = [x for x in result.losses if x.code == "VERSION_TOO_OLD"]
    assert {x.feature for x in too_old} == {"route.retry"}
    [route] = routes(result)
    # Nothing the old version would ignore: only the rule-provenance annotation remains.
    assert route["metadata"]["annotations"] == {"meshmigrate.io/rules": "spec.http[0]"}
