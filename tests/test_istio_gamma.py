"""Istio reads Service-parented Gateway API routes (GAMMA) as mesh routing: HTTPRoute, GRPCRoute
and TCPRoute with a Service parent become IR routes in Istio's own order, with Istio's filters
(URLRewrite, RequestMirror, CORS, header modifiers), timeouts and retries; Gateway-parented
routes stay ingress. Each case plans to Linkerd and Consul and checks the written manifests,
the losses and the equivalence check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from migrate.ir.model import Route, Rule, StringMatch
from migrate.losses import Loss
from migrate.pipeline import PlanOptions, PlanResult, plan_migration
from tests.helpers import plan_yaml

BASE = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: web, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: api-v2, namespace: shop}
spec:
  selector: {app: api, version: v2}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api, version: v1}}
    spec: {containers: [{name: api, image: api, ports: [{containerPort: 8080}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api-v2, namespace: shop}
spec:
  selector: {matchLabels: {app: api, version: v2}}
  template:
    metadata: {labels: {app: api, version: v2}}
    spec: {containers: [{name: api, image: api, ports: [{containerPort: 8080}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: web
        env: [{name: API, value: "http://api.shop:8080"}]
"""


def route(spec: str, kind: str = "HTTPRoute", name: str = "api", meta: str = "") -> str:
    return f"""
---
apiVersion: gateway.networking.k8s.io/v1
kind: {kind}
metadata: {{name: {name}, namespace: shop{meta}}}
spec:
{spec}"""


PARENT = '  parentRefs: [{group: "", kind: Service, name: api}]\n'


def plan(text: str, target: str, source: str = "istio") -> PlanResult:
    if source == "linkerd":  # the same namespaces, injected by Linkerd
        text = text.replace("labels: {istio-injection: enabled}",
                            "annotations: {linkerd.io/inject: enabled}")
    return plan_yaml(text, source, target)


def routes(result: PlanResult, kind: str = "HTTPRoute") -> list[Route]:
    return [r for r in result.read.graph.of(Route) if r.origin.ref.kind == kind]


def paths(rule: Rule) -> list[tuple[str, str] | None]:
    return [(m.path.kind, m.path.value) if m.path else None for m in rule.matches]


def manifests(result: PlanResult, kind: str, api: str = "") -> list[dict[str, Any]]:
    return [m.body for s in result.plan.steps for m in s.manifests
            if m.kind == kind and m.body["apiVersion"].startswith(api)]


def losses(result: PlanResult, code: str) -> list[Loss]:
    return [loss for loss in result.losses if loss.code == code]


def clean(result: PlanResult) -> None:
    """Every field accounted for, nothing unexplained, no input problem."""
    assert result.problems == []
    assert losses(result, "FIELD_UNMODELLED") == []
    assert result.plan.equivalence is not None
    assert result.plan.equivalence.unexplained == []


WEIGHTED = BASE + route(PARENT + """
  rules:
  - matches: [{path: {type: PathPrefix, value: /v2}, headers: [{name: x-canary, value: "on"}]}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-route, value: canary}]}
    backendRefs: [{name: api-v2, port: 8080}]
  - backendRefs:
    - {name: api, port: 8080, weight: 90}
    - {name: api-v2, port: 8080, weight: 10}
""")


def test_gamma_route_is_an_ir_route_not_an_opaque_object():
    result = plan(WEIGHTED, "linkerd")
    clean(result)
    [r] = routes(result)
    assert r.mesh and not r.ingress and [str(h) for h in r.hosts] == ["shop/api"]
    # PathPrefix /v2 is an exact match plus a segment prefix; the catch-all comes last.
    assert [paths(rule) for rule in r.rules] == [
        [("exact", "/v2")], [("prefix", "/v2/")], []]
    assert r.rules[0].request_headers.set == (("x-route", "canary"),)
    assert [(b.host, b.weight) for b in r.rules[2].backends] == [("api", 90), ("api-v2", 10)]
    codes = {loss.code for loss in result.losses}
    assert "GATEWAY_API_KEPT" not in codes and "GATEWAY_API_UNSUPPORTED_FILTER" not in codes


def test_gamma_route_to_linkerd_keeps_matches_weights_and_header_changes():
    result = plan(WEIGHTED, "linkerd")
    final = manifests(result, "HTTPRoute", "gateway.networking.k8s.io")
    assert len(final) == 1
    rules = final[0]["spec"]["rules"]
    assert final[0]["spec"]["parentRefs"][0]["name"] == "api"
    canary = [r for r in rules if r.get("matches") and
              r["matches"][0].get("headers") == [{"name": "x-canary", "type": "Exact",
                                                  "value": "on"}]]
    assert canary and all(r["backendRefs"][0]["name"] == "api-v2" for r in canary)
    assert canary[0]["filters"] == [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
        "set": [{"name": "x-route", "value": "canary"}]}}]
    split = [r for r in rules if not r.get("matches")]
    assert [(b["name"], b["weight"]) for b in split[0]["backendRefs"]] == [
        ("api", 90), ("api-v2", 10)]


def test_gamma_route_to_consul_is_a_router_and_a_splitter():
    result = plan(WEIGHTED, "consul")
    clean(result)
    [router] = manifests(result, "ServiceRouter")
    http = [r.get("match", {}).get("http") for r in router["spec"]["routes"]]
    assert http[:2] == [
        {"pathExact": "/v2", "header": [{"name": "x-canary", "exact": "on"}]},
        {"pathPrefix": "/v2/", "header": [{"name": "x-canary", "exact": "on"}]}]
    assert router["spec"]["routes"][0]["destination"]["requestHeaders"] == {
        "set": {"x-route": "canary"}}
    splits = [s["spec"]["splits"] for s in manifests(result, "ServiceSplitter")]
    assert [[(x["weight"], x["service"]) for x in s] for s in splits] == [
        [(90, "api"), (10, "api-v2")]]


ORDERED = BASE + route(PARENT + """
  rules:
  - matches: [{path: {type: RegularExpression, value: "/v[0-9]+/items"}}]
    backendRefs: [{name: api-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: api, port: 8080}]
  - matches:
    - {path: {type: PathPrefix, value: /v1}, method: POST}
    - {path: {type: Exact, value: /v1}}
    backendRefs: [{name: api-v2, port: 8080}]
""")


def test_istio_orders_gamma_matches_by_its_own_ranking():
    # conversion.go sortHTTPRoutes: Exact before PathPrefix before RegularExpression, longer
    # paths first, then a method match; the regex ranks below even the "/" prefix.
    [r] = routes(plan(ORDERED, "consul"))
    assert [(paths(x), x.origin_path) for x in r.rules] == [
        ([("exact", "/v1")], "spec.rules[2]"),      # Exact /v1
        ([("exact", "/v1")], "spec.rules[2]"),      # PathPrefix /v1 + POST (exact half)
        ([("prefix", "/v1/")], "spec.rules[2]"),    # ... and its segment prefix
        ([None], "spec.rules[1]"),                  # PathPrefix /: no path condition
        ([("regex", "/v[0-9]+/items")], "spec.rules[0]"),
    ]
    assert r.rules[1].matches[0].method == StringMatch("exact", "POST")
    assert r.rules[0].matches[0].method is None


def test_linkerd_reads_the_same_route_with_its_own_ranking():
    # Linkerd scores a RegularExpression by the whole path it matched: it comes first there.
    [r] = routes(plan(ORDERED, "consul", source="linkerd"))
    assert paths(r.rules[0]) == [("regex", "/v[0-9]+/items")]
    assert paths(r.rules[-1]) == [None]


def test_gamma_order_reaches_consul_and_linkerd_reports_the_regex_inversion():
    consul = plan(ORDERED, "consul")
    clean(consul)
    [router] = manifests(consul, "ServiceRouter")
    http = [x["match"]["http"] for x in router["spec"]["routes"]]
    # The "/" rule goes to the Service itself (Consul's default), and the regex rule after it
    # was never reached under Istio: neither is written.
    assert http == [{"pathExact": "/v1"}, {"pathExact": "/v1", "methods": ["POST"]},
                    {"pathPrefix": "/v1/", "methods": ["POST"]}]
    linkerd = plan(ORDERED, "linkerd")
    clean(linkerd)
    # Istio never sent a request to the regex rule ("/" came first), nor "POST /v1" to the
    # PathPrefix+POST match (Exact /v1 ranks first); Gateway API would, so the Linkerd routes
    # leave those matches out.
    unreachable = losses(linkerd, "ROUTE_RULE_UNREACHABLE")
    assert sorted(loss.path for loss in unreachable) == [
        "spec.rules[0].matches[0]", "spec.rules[2].matches[0]"]
    written = repr(manifests(linkerd, "HTTPRoute"))
    assert "/v[0-9]+/items" not in written


REWRITE = BASE + route(PARENT + """
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        hostname: api.internal
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
    backendRefs: [{name: api, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /shadow}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: api-v2, port: 8080}, percent: 10}
    backendRefs: [{name: api, port: 8080}]
  - backendRefs: [{name: api, port: 8080}]
""")


def test_url_rewrite_is_an_ir_rewrite_per_match():
    [r] = routes(plan(REWRITE, "consul"))
    by_path = {paths(x)[0] if x.matches else None: x.rewrite for x in r.rules}
    # /old -> /new and /old/x -> /new/x (segment replaced, separator kept).
    assert by_path[("exact", "/old")].prefix == "/new"
    assert by_path[("prefix", "/old/")].prefix == "/new/"
    assert by_path[("prefix", "/old/")].authority == "api.internal"
    assert by_path[("exact", "/shadow")] is None


def test_rewrite_reaches_consul_and_mirror_is_lost():
    result = plan(REWRITE, "consul")
    clean(result)
    [router] = manifests(result, "ServiceRouter")
    rewritten = {r["match"]["http"].get("pathExact") or r["match"]["http"].get("pathPrefix"):
                 r["destination"].get("prefixRewrite") for r in router["spec"]["routes"]}
    assert rewritten["/old"] == "/new" and rewritten["/old/"] == "/new/"
    assert [loss.path for loss in losses(result, "ROUTE_MIRROR")] == [
        "spec.rules[1].filters[0]"]
    # Consul has no authority rewrite in a ServiceRouter.
    assert losses(result, "ROUTE_REWRITE_AUTHORITY")


def test_rewrite_and_mirror_are_lost_to_linkerd_but_the_route_is_kept():
    result = plan(REWRITE, "linkerd")
    clean(result)
    assert losses(result, "ROUTE_REWRITE") and losses(result, "ROUTE_MIRROR")
    # Unlike a Linkerd source (which ignores such a route whole), the routing itself carries.
    final = manifests(result, "HTTPRoute", "gateway.networking.k8s.io")
    filters = [f["type"] for m in final for r in m["spec"]["rules"] for f in r.get("filters", [])]
    assert "URLRewrite" not in filters and "RequestMirror" not in filters
    values = {m["path"]["value"] for f in final for r in f["spec"]["rules"]
              for m in r.get("matches", [])}
    assert {"/old", "/shadow"} <= values


def test_the_same_route_read_by_linkerd_is_ignored_whole():
    result = plan(REWRITE, "consul", source="linkerd")
    assert routes(result) == []
    assert any("Linkerd ignores the whole route" in loss.message
               for loss in losses(result, "SOURCE_IGNORED"))


GRPC = BASE.replace("name: http, port: 8080}", "name: grpc, port: 8080, appProtocol: grpc}") + \
    route('  parentRefs: [{group: "", kind: Service, name: api, port: 8080}]\n' + """
  rules:
  - matches: [{method: {service: shop.Cart, method: Checkout}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {add: [{name: x-checkout, value: "1"}]}
    backendRefs: [{name: api-v2, port: 8080}]
  - matches: [{method: {service: shop.Cart}}]
    backendRefs: [{name: api, port: 8080}]
""", kind="GRPCRoute")


def test_grpc_route_methods_are_http2_path_matches():
    result = plan(GRPC, "linkerd")
    clean(result)
    [r] = routes(result, "GRPCRoute")
    assert [paths(x) for x in r.rules] == [[("exact", "/shop.Cart/Checkout")],
                                           [("prefix", "/shop.Cart/")]]
    assert {m.port for x in r.rules for m in x.matches} == {8080}
    assert r.rules[0].request_headers.add == (("x-checkout", "1"),)
    written = manifests(result, "GRPCRoute") + manifests(result, "HTTPRoute")
    text = repr(written)
    assert "Checkout" in text and "shop.Cart" in text


def test_grpc_route_to_consul():
    result = plan(GRPC, "consul")
    clean(result)
    [router] = manifests(result, "ServiceRouter")
    http = [r["match"]["http"] for r in router["spec"]["routes"]]
    assert http == [{"pathExact": "/shop.Cart/Checkout"}, {"pathPrefix": "/shop.Cart/"}]


TWO_PORTS = BASE.replace("ports: [{name: http, port: 8080}]",
                         "ports: [{name: http, port: 8080}, {name: http-admin, port: 9090}]", 1)
PORTED = TWO_PORTS + route("""  parentRefs: [{group: "", kind: Service, name: api, port: 8080}]
  rules:
  - timeouts: {request: 5s}
    backendRefs: [{name: api-v2, port: 8080}]
""")


def test_parent_port_becomes_a_port_match_on_every_rule():
    result = plan(PORTED, "linkerd")
    clean(result)
    [r] = routes(result)
    assert [[m.port for m in x.matches] for x in r.rules] == [[8080]]
    assert r.rules[0].timeout == "5s"
    # Linkerd's routes have no per-match port: the rule now applies on both ports.
    assert [loss.path for loss in losses(result, "ROUTE_MATCH_PORT")] == ["spec.parentRefs"]
    consul = plan(PORTED, "consul")
    clean(consul)
    assert "5s" in repr(manifests(consul, "ServiceRouter") + manifests(consul, "ServiceResolver"))


CONFLICT = BASE + """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api]
  http:
  - route: [{destination: {host: api}}]
""" + route(PARENT + """
  rules:
  - backendRefs: [{name: api-v2, port: 8080}]
""")


def test_route_and_virtual_service_on_one_host_are_reported_as_a_conflict():
    result = plan(CONFLICT, "linkerd")
    assert result.problems == []
    found = {(loss.object.kind, loss.path) for loss in losses(result, "ROUTE_HOST_CONFLICT")}
    assert found == {("VirtualService", "spec.hosts"), ("HTTPRoute", "spec.parentRefs")}
    message = losses(result, "ROUTE_HOST_CONFLICT")[0].message
    assert "IST0109" in message and "VirtualService shop/api" in message
    # Both are kept in the model under distinct names (the route's name was taken).
    names = sorted((r.origin.ref.kind, r.name) for r in result.read.graph.of(Route))
    assert names == [("HTTPRoute", "api-httproute"), ("VirtualService", "api")]
    assert result.plan.equivalence is not None
    assert result.plan.equivalence.unexplained == []


def test_two_gamma_routes_on_one_host_and_port_do_not_conflict():
    text = WEIGHTED + route(PARENT + """
  rules:
  - matches: [{path: {type: Exact, value: /health}}]
    backendRefs: [{name: api, port: 8080}]
""", name="health")
    result = plan(text, "consul")
    clean(result)
    assert losses(result, "ROUTE_HOST_CONFLICT") == []


TIMEOUTS = BASE + route(PARENT + """
  rules:
  - matches: [{path: {value: /slow}}]
    timeouts: {request: 10s, backendRequest: 2s}
    retry: {attempts: 3, codes: [503], backoff: 100ms}
    backendRefs: [{name: api, port: 8080}]
  - matches: [{path: {value: /once}}]
    timeouts: {request: 10s, backendRequest: 4s}
    backendRefs: [{name: api, port: 8080}]
  - timeouts: {request: 0s}
    backendRefs: [{name: api, port: 8080}]
""", meta=", annotations: {retry.linkerd.io/limit: '5', timeout.linkerd.io/request: 1s}")


def test_timeouts_and_retries_follow_istio_and_linkerd_annotations_are_not_read():
    result = plan(TIMEOUTS, "linkerd")
    clean(result)
    [r] = routes(result)
    slow = next(x for x in r.rules if x.origin_path == "spec.rules[0]")
    once = next(x for x in r.rules if x.origin_path == "spec.rules[1]")
    rest = next(x for x in r.rules if x.origin_path == "spec.rules[2]")
    assert slow.timeout == "10s" and slow.retry is not None
    assert (slow.retry.attempts, slow.retry.per_try_timeout) == (3, "2s")
    assert slow.retry.retry_on == ("connect-failure", "refused-stream", "unavailable",
                                   "cancelled", "503")
    # Without a retry, Istio uses backendRequest as the rule's timeout.
    assert once.timeout == "4s" and once.retry is None
    assert rest.timeout == "" and rest.retry is None
    ignored = {loss.path for loss in losses(result, "SOURCE_IGNORED")}
    assert {"metadata.annotations.retry.linkerd.io/limit",
            "metadata.annotations.timeout.linkerd.io/request",
            "spec.rules[1].timeouts.request"} <= ignored
    assert losses(result, "ROUTE_RETRY_BACKOFF")
    # Istio's implicit default retry applies rule by rule: the two rules without a retry
    # relied on it, and Linkerd has none.
    [default] = [loss for loss in losses(result, "ROUTE_RETRY_DEFAULT")
                 if loss.object.kind == "HTTPRoute"]
    assert default.message.endswith("(rules without retries: spec.rules[1], spec.rules[2])")


def test_rule_without_backends_answers_500_in_istio():
    text = BASE + route(PARENT + """
  rules:
  - matches: [{path: {type: Exact, value: /gone}}]
  - backendRefs: [{name: api, port: 8080}]
""")
    result = plan(text, "consul")
    clean(result)
    [r] = routes(result)
    assert r.rules[0].backends == () and paths(r.rules[0]) == [("exact", "/gone")]
    assert any(loss.feature == "route.direct_response" for loss in result.losses)
    # Linkerd reads the same rule as a route to the parent Service.
    [lr] = routes(plan(text, "consul", source="linkerd"))
    assert [b.host for b in lr.rules[0].backends] == ["api"]


def test_filter_istio_refuses_is_reported_and_the_rest_of_the_route_is_read():
    text = BASE + route(PARENT + """
  rules:
  - matches: [{path: {value: /ext}}]
    filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Thing, name: t}}]
    backendRefs: [{name: api, port: 8080}]
  - backendRefs: [{name: api-v2, port: 8080}]
""")
    result = plan(text, "consul")
    assert [loss.path for loss in losses(result, "FIELD_INVALID")] == [
        "spec.rules[0].filters[0]"]
    assert losses(result, "FIELD_UNMODELLED") == []
    [r] = routes(result)
    assert [b.host for b in r.rules[-1].backends] == ["api-v2"]


def test_gateway_parented_route_stays_an_ingress_report():
    text = BASE + route("""  parentRefs: [{name: public-gw}]
  hostnames: [shop.example.com]
  rules:
  - backendRefs: [{name: api, port: 8080}]
""")
    result = plan(text, "linkerd")
    assert routes(result) == []
    assert [loss.path for loss in losses(result, "INGRESS_ROUTE")] == ["spec.parentRefs"]


def test_mixed_parents_model_the_mesh_part_and_report_the_gateway_part():
    text = BASE + route("""  parentRefs: [{name: public-gw}, {group: "", kind: Service, name: api}]
  hostnames: [shop.example.com]
  rules:
  - backendRefs: [{name: api-v2, port: 8080}]
""")
    result = plan(text, "consul")
    clean(result)
    [r] = routes(result)
    assert [str(h) for h in r.hosts] == ["shop/api"]
    assert r.mesh and r.ingress and r.gateways == ("shop/public-gw",)
    assert [loss.path for loss in losses(result, "INGRESS_ROUTE")] == ["spec.parentRefs[0]"]
    # The ingress still uses the route: shop is retired only after the ingress step.
    kinds = [s.kind for s in result.plan.steps]
    assert kinds.index("ingress") < next(i for i, s in enumerate(result.plan.steps)
                                         if s.kind == "enforce" and "shop" in s.namespaces)


def test_hostnames_and_section_name_of_a_mesh_route_are_ignored_by_istio():
    text = BASE + route("""  parentRefs: [{group: "", kind: Service, name: api, sectionName: http}]
  hostnames: [api.shop.svc.cluster.local]
  rules:
  - backendRefs: [{name: api-v2, port: 8080}]
""")
    result = plan(text, "linkerd")
    clean(result)
    ignored = {loss.path for loss in losses(result, "SOURCE_IGNORED")}
    assert {"spec.hostnames", "spec.parentRefs[0].sectionName"} <= ignored
    assert not losses(result, "ROUTE_MATCH_AUTHORITY")


TCP = BASE.replace("name: http, port: 8080}", "name: tcp, port: 8080}") + """
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: api, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: api, port: 8080}]
  rules:
  - backendRefs: [{name: api, port: 8080, weight: 80}, {name: api-v2, port: 8080, weight: 20}]
"""


@pytest.mark.parametrize("target", ["linkerd", "consul"])
def test_tcp_route_with_a_service_parent_is_a_tcp_route(target: str):
    result = plan(TCP, target)
    clean(result)
    [r] = routes(result, "TCPRoute")
    assert r.protocol == "tcp"
    assert [(b.host, b.weight) for b in r.rules[0].backends] == [("api", 80), ("api-v2", 20)]
    if target == "linkerd":
        written = manifests(result, "TCPRoute")
        assert written and written[-1]["spec"]["parentRefs"][0]["name"] == "api"


def test_a_route_with_a_broken_service_parent_is_reported_not_planned():
    text = BASE + route("""  parentRefs: [{group: "", kind: Service, name: 7}]
  rules: [{backendRefs: [{name: api, port: 8080}]}]
""")
    result = plan(text, "linkerd")
    assert routes(result) == []
    assert [loss.path for loss in losses(result, "FIELD_INVALID")] == ["spec.parentRefs[0].name"]
    assert losses(result, "FIELD_UNMODELLED") == []


def test_gamma_routes_istio_keeps_in_separate_virtual_services_conflict():
    # One with the parent's port, one without: Istio keys its VirtualServices by port too.
    text = WEIGHTED + route("""  parentRefs: [{group: "", kind: Service, name: api, port: 8080}]
  rules:
  - matches: [{path: {type: Exact, value: /health}}]
    backendRefs: [{name: api, port: 8080}]
""", name="health")
    result = plan(text, "consul")
    assert sorted(loss.object.name for loss in losses(result, "ROUTE_HOST_CONFLICT")) == [
        "api", "health"]


def test_bookinfo_corpus_gamma_routes_are_read_and_conflict_with_its_virtual_services(
        shared: Path) -> None:
    # ../shared/corpus/istio/bookinfo has Service-parented HTTPRoutes (gateway-api/) next to
    # VirtualServices for the same hosts (networking/); test_corpus checks the plan's
    # manifests against the CRD schemas.
    result = plan_migration(PlanOptions(source="istio", target="linkerd",
                                        paths=[str(shared / "corpus" / "istio" / "bookinfo")]))
    assert result.problems == []
    assert result.plan.equivalence is not None
    assert result.plan.equivalence.unexplained == []
    gamma = sorted(r.origin.ref.name for r in routes(result))
    assert gamma == ["details", "productpage", "ratings", "reviews"]
    conflicts = {(loss.object.kind, loss.object.name)
                 for loss in losses(result, "ROUTE_HOST_CONFLICT")}
    assert {("HTTPRoute", name) for name in gamma} <= conflicts
    # The Gateway-parented bookinfo route stays an ingress report.
    assert any(loss.object.name == "bookinfo" for loss in losses(result, "INGRESS_ROUTE"))
