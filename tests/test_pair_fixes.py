"""Direct tests for conversion fixes the cross-pair goldens and round trips revealed."""

from __future__ import annotations

from migrate.dialects.linkerd.read_routes import _literal_prefix
from migrate.pipeline import PlanResult
from tests.helpers import plan_yaml


def plan(text: str, source: str, target: str) -> PlanResult:
    """Plan inline YAML in one direction."""
    return plan_yaml(text, source, target)


SHOP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, annotations: {linkerd.io/inject: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: app, image: api:1, ports: [{containerPort: 8080}]}]
"""


def route(name: str, rules: str, annotations: str = "{}") -> str:
    return f"""
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: shop, annotations: {annotations}}}
spec:
  parentRefs: [{{group: core, kind: Service, name: api}}]
  rules:
{rules}
"""


def test_literal_prefix_regex_is_a_raw_prefix():
    assert _literal_prefix("/accounts/.*") == "/accounts/"
    assert _literal_prefix("/a-b_c/.*") == "/a-b_c/"
    for regex in ("/a.b/.*", "/x", ".*", "/a/(b)?.*", "/v[12]/.*", "accounts/.*"):
        assert _literal_prefix(regex) is None, regex


def test_gateway_route_timeouts_request_is_honoured_by_the_linkerd_side():
    # Linkerd honours rules[].timeouts.request on gateway.networking.k8s.io routes too: a
    # conversion that keeps it must not diverge.
    text = SHOP + route("api", "  - timeouts: {request: 3s}\n"
                               "    backendRefs: [{name: api, port: 8080}]")
    result = plan(text, "linkerd", "istio")
    vs = [m.body for s in result.plan.steps for m in s.manifests
          if m.body["kind"] == "VirtualService"]
    assert vs and vs[0]["spec"]["http"][0]["timeout"] == "3s"
    assert result.plan.equivalence is not None
    assert result.plan.equivalence.divergences == []


def test_several_linkerd_routes_on_one_service_merge_into_one_consul_router():
    text = SHOP + route("api-slow", "  - matches: [{path: {type: PathPrefix, value: /slow}}]\n"
                                    "    timeouts: {request: 9s}\n"
                                    "    backendRefs: [{name: api, port: 8080}]") + \
        route("api-fast", "  - matches: [{path: {type: Exact, value: /slow/ping}}]\n"
                          "    timeouts: {request: 1s}\n"
                          "    backendRefs: [{name: api, port: 8080}]")
    result = plan(text, "linkerd", "consul")
    assert [loss.code for loss in result.losses if loss.code == "CONSUL_ROUTER_CONFLICT"] == []
    routers = [m.body for s in result.plan.steps for m in s.manifests
               if m.body["kind"] == "ServiceRouter"]
    assert len(routers) == 1
    # Most specific first, as Gateway API precedence decides: the exact path, then the prefix.
    paths = [r["match"]["http"] for r in routers[0]["spec"]["routes"]]
    assert paths[0] == {"pathExact": "/slow/ping"}
    assert [r["destination"]["requestTimeout"] for r in routers[0]["spec"]["routes"]][:2] == \
        ["1s", "9s"]
    assert result.plan.equivalence is not None and result.plan.equivalence.unexplained == []


def test_equally_specific_routes_of_two_objects_report_their_order():
    text = SHOP + route("a", "  - matches: [{path: {type: PathPrefix, value: /x}}]\n"
                             "    timeouts: {request: 2s}\n"
                             "    backendRefs: [{name: api, port: 8080}]") + \
        route("b", "  - matches: [{path: {type: PathPrefix, value: /x}}]\n"
                   "    timeouts: {request: 4s}\n"
                   "    backendRefs: [{name: api, port: 8080}]")
    result = plan(text, "linkerd", "consul")
    assert [(loss.code, loss.object.name) for loss in result.losses
            if loss.code == "ROUTE_ORDER"] == [("ROUTE_ORDER", "b")]


def test_reading_meshmigrate_output_reports_no_bookkeeping_annotation():
    text = SHOP + route("api", "  - backendRefs: [{name: api, port: 8080}]",
                        "{meshmigrate.io/source: VirtualService/shop/api, "
                        "meshmigrate.io/rules: 'spec.http[0]'}")
    result = plan(text, "linkerd", "istio")
    assert [loss.path for loss in result.losses if loss.code == "FIELD_UNMODELLED"] == []


def test_linkerd_retry_loss_names_the_annotation_that_set_it():
    text = SHOP + route("api", "  - backendRefs: [{name: api, port: 8080}]",
                        "{retry.linkerd.io/http: 5xx, retry.linkerd.io/timeout: 300ms}")
    result = plan(text, "linkerd", "consul")
    assert [loss.path for loss in result.losses if loss.code == "CONSUL_RETRY"] == [
        "metadata.annotations.retry.linkerd.io/timeout"]


CONSUL = """
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata:
      labels: {app: api}
      annotations: {consul.hashicorp.com/connect-inject: "true"}
    spec:
      containers: [{name: app, image: api:1, ports: [{containerPort: 8080}]}]
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata: {name: api, namespace: shop}
spec: {protocol: http}
"""


def test_consul_virtual_splitter_service_is_not_unresolved():
    text = CONSUL + """
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata: {name: api-split, namespace: shop}
spec: {protocol: http}
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceSplitter
metadata: {name: api-split, namespace: shop}
spec:
  splits: [{weight: 100, service: api}]
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceRouter
metadata: {name: api, namespace: shop}
spec:
  routes:
  - match: {http: {pathPrefix: /v2}}
    destination: {service: api-split, requestTimeout: 2s}
"""
    result = plan(text, "consul", "istio")
    assert [loss.code for loss in result.losses if loss.code == "CONSUL_SERVICE_UNRESOLVED"] == []
    assert result.plan.equivalence is not None and result.plan.equivalence.unexplained == []


def test_consul_catch_all_route_adds_no_unreachable_default():
    text = CONSUL + """
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceRouter
metadata: {name: api, namespace: shop}
spec:
  routes:
  - match: {http: {header: [{name: x-canary, exact: "1"}]}}
    destination: {requestTimeout: 1s}
  - match: {http: {pathPrefix: /}}
    destination: {requestTimeout: 5s}
"""
    result = plan(text, "consul", "linkerd")
    assert [loss.code for loss in result.losses if loss.code == "ROUTE_ORDER"] == []
    routes = [m.body for m in result.plan.steps[-1].manifests if m.body["kind"] == "HTTPRoute"]
    assert len(routes) == 2  # the header rule and the / rule; no third catch-all
