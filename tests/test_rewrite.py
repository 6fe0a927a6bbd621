"""Path and authority rewrites through the IR (:class:`migrate.ir.model.Rewrite`): each reader's
source forms, each writer's target forms, and the Istio <-> Consul pairs end to end with the
emitted manifests checked against the CRD schemas.

The model's ``prefix`` is Envoy's ``prefix_rewrite``, which both Istio's ``rewrite.uri`` and
Consul's ``prefixRewrite`` compile to; Linkerd has no rewrite (a URLRewrite filter makes it
ignore the whole HTTPRoute), so there it stays a loss on both sides."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from migrate import mappings
from migrate.check import check_capabilities
from migrate.dialects.base import Manifest
from migrate.dialects.consul.reader import ConsulReader
from migrate.dialects.istio.writer import IstioWriter
from migrate.dialects.linkerd.reader import LinkerdReader
from migrate.emit.manifests import annotated, file_name
from migrate.ir.model import Rewrite, Route, RouteMatch, Rule, StringMatch
from migrate.losses import LossLog
from migrate.pipeline import PlanResult
from migrate.sources.files import read_files
from migrate.validate import SchemaSet, validate_manifest
from tests.helpers import plan_yaml
from tests.test_consul_reader import API, app
from tests.test_consul_writer import vs
from tests.test_istio_writer import convert as istio_convert
from tests.test_istio_writer import read as read_istio


def plan(source: str, target: str, text: str, **options: Any) -> PlanResult:
    """The whole pipeline on inline YAML."""
    return plan_yaml(text, source, target, **options)


def kinds(result: PlanResult, kind: str) -> list[dict[str, Any]]:
    """Emitted bodies of one kind, in plan order."""
    return [m.body for s in result.plan.steps for m in s.manifests if m.kind == kind]


def to_istio(text: str, **options: Any) -> tuple[list[Manifest], LossLog]:
    """Istio input read, checked against Istio's table and written by the Istio writer (the
    pipeline refuses a migration from a mesh to itself; the writer does not care)."""
    out, losses = istio_convert(text, **options)
    return [m for ms in out.routing.values() for m in ms], losses


def named(found_in: list[Manifest], kind: str, name: str) -> dict[str, Any]:
    """The one manifest body of a kind and name."""
    [body] = [m.body for m in found_in if m.kind == kind and m.body["metadata"]["name"] == name]
    return body


def found(losses: Any, code: str) -> list[tuple[str, str, str]]:
    """(object, path, severity) of every loss with ``code``."""
    return [(str(x.object), x.path, x.severity.value) for x in losses if x.code == code]


@pytest.fixture(scope="module")
def schemas(shared: Path) -> SchemaSet:
    """Istio, Gateway API and Consul CRD schemas (what the pairs below emit)."""
    crds = shared / "crds"
    return SchemaSet.from_paths([
        str(crds / "gateway-api" / "v1.6.1" / "standard"),
        str(crds / "istio" / "1.30.3" / "crd-all.gen.yaml"),
        str(crds / "consul"),
    ])


def invalid(result: PlanResult | list[Manifest], schemas: SchemaSet) -> list[Any]:
    """Schema and name violations of everything a plan (or a writer) emits."""
    emitted = result if isinstance(result, list) else \
        [m for step in result.plan.steps for m in step.manifests]
    out: list[Any] = []
    for m in emitted:
        out += validate_manifest(annotated(m), file_name(m.body), schemas, require_schema=True)
    return out


ISTIO_RULES = """
  - name: api
    match: [{uri: {prefix: /api/}}, {uri: {exact: /old}}]
    rewrite: {uri: /v2/, authority: reviews.internal}
    route: [{destination: {host: reviews}}]
  - name: regex
    match: [{uri: {prefix: /legacy}}]
    rewrite:
      uriRegexRewrite: {match: "^/legacy/(.*)", rewrite: "/\\\\1"}
    route: [{destination: {host: reviews}}]
  - name: rest
    rewrite: {uri: /}
    route: [{destination: {host: reviews}}]
"""


# -- readers ------------------------------------------------------------------------------------
def test_istio_reader_carries_uri_and_authority_and_reports_regex_rewrites():
    graph, losses = read_istio(vs(ISTIO_RULES))
    [route] = [r for r in graph.of(Route) if r.name == "reviews"]
    api, regex, rest = route.rules
    assert api.rewrite == Rewrite(prefix="/v2/", authority="reviews.internal",
                                  origin_path="spec.http[0].rewrite.uri",
                                  authority_path="spec.http[0].rewrite.authority")
    assert regex.rewrite is None  # no model: only the feature use below
    assert rest.rewrite == Rewrite(prefix="/", origin_path="spec.http[2].rewrite.uri",
                                   authority_path="spec.http[2].rewrite.authority")
    uses = sorted((u.feature, u.origin.path) for u in graph.features
                  if u.feature.startswith("route.rewrite"))
    assert uses == [("route.rewrite", "spec.http[0].rewrite.uri"),
                    ("route.rewrite", "spec.http[2].rewrite.uri"),
                    ("route.rewrite.authority", "spec.http[0].rewrite.authority"),
                    ("route.rewrite.regex", "spec.http[1].rewrite.uriRegexRewrite")]
    assert [x for x in losses if x.code == "FIELD_UNMODELLED"] == []


CONSUL_ROUTER = app("web") + app("api") + f"""
---
{API}
kind: ServiceDefaults
metadata: {{name: api, namespace: shop}}
spec: {{protocol: http}}
---
{API}
kind: ServiceRouter
metadata: {{name: api, namespace: shop}}
spec:
  routes:
  - match: {{http: {{pathExact: /api/health}}}}
    destination: {{prefixRewrite: /healthz}}
  - match: {{http: {{pathPrefix: /v1/}}}}
    destination: {{service: api, prefixRewrite: /}}
  - match: {{http: {{pathPrefix: /plain}}}}
    destination: {{service: api}}
"""


def test_consul_reader_carries_prefix_rewrite_on_each_route():
    losses = LossLog()
    source = read_files(["-"], io.BytesIO(CONSUL_ROUTER.encode()))
    graph = ConsulReader(losses, []).read(source).graph
    [route] = [r for r in graph.of(Route) if r.name == "api"]
    health, v1, plain = route.rules[:3]
    assert health.rewrite == Rewrite(prefix="/healthz",
                                     origin_path="spec.routes[0].destination.prefixRewrite")
    assert v1.rewrite == Rewrite(prefix="/",
                                 origin_path="spec.routes[1].destination.prefixRewrite")
    assert plain.rewrite is None
    assert [x for x in losses if x.code == "FIELD_UNMODELLED"] == []


def test_linkerd_prefix_redirect_is_not_mistaken_for_a_rewrite():
    """A RequestRedirect with ReplacePrefixMatch answers the client; it is no rewrite, and the
    model's redirects replace whole paths: reported as route.redirect.prefix everywhere."""
    text = """
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{name: http, port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: moved, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: api, port: 8080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
"""
    losses = LossLog()
    source = read_files(["-"], io.BytesIO(text.encode()))
    graph = LinkerdReader(losses, []).read(source).graph
    # Linkerd's segment prefix reads as an exact and a raw "/old/" prefix: two rules.
    redirects = [r for route in graph.of(Route) for r in route.rules]
    assert len(redirects) == 2
    assert all(r.rewrite is None and r.redirect is not None and r.redirect.path == ""
               for r in redirects)
    uses = {(u.feature, u.origin.path) for u in graph.features}
    assert ("route.redirect.prefix",
            "spec.rules[0].filters[0].requestRedirect.path.replacePrefixMatch") in uses
    assert not any(u.feature.startswith("route.rewrite") for u in graph.features)


# -- writers ------------------------------------------------------------------------------------
def test_istio_virtual_service_writes_uri_and_authority_and_reports_the_regex():
    emitted, losses = to_istio(vs(ISTIO_RULES))
    api, regex, rest = named(emitted, "VirtualService", "reviews")["spec"]["http"]
    assert api["rewrite"] == {"uri": "/v2/", "authority": "reviews.internal"}
    assert "rewrite" not in regex
    assert rest["rewrite"] == {"uri": "/"}
    assert found(losses, "ROUTE_REWRITE") == []
    assert found(losses, "ROUTE_REWRITE_REGEX") == [
        ("VirtualService/shop/reviews", "spec.http[1].rewrite.uriRegexRewrite", "dropped")]


def test_istio_virtual_service_writes_a_whole_path_rewrite_by_its_match():
    """ReplaceFullPath has no Istio source form, so the IR is edited here: under an exact
    match ``uri`` replaces the whole path already, under a prefix it takes a regex."""
    graph, losses = read_istio(vs(ISTIO_RULES))
    [route] = [r for r in graph.of(Route) if r.name == "reviews"]
    base = route.rules[2]
    rules = tuple(Rule(**{**base.__dict__, "index": i, "origin_path": f"spec.http[{i}]",
                          "matches": (RouteMatch(path=StringMatch(kind, value)),),
                          "rewrite": Rewrite(full_path=new)})
                  for i, (kind, value, new) in enumerate([("exact", "/a", "/x"),
                                                          ("prefix", "/b", "/y")]))
    graph.add(Route(**{**route.__dict__, "rules": rules}))  # same key: replaces the route
    table = mappings.table("istio")
    check_capabilities(graph, table, "1.30", losses)
    out = IstioWriter(losses, table, "1.30").write(graph, ["shop"])
    [body] = [m.body for ms in out.routing.values() for m in ms
              if m.kind == "VirtualService" and m.body["metadata"]["name"] == "reviews"]
    assert [r["rewrite"] for r in body["spec"]["http"]] == [
        {"uri": "/x"}, {"uriRegexRewrite": {"match": "/.*", "rewrite": "/y"}}]


def test_istio_gateway_api_mode_writes_url_rewrite_filters(schemas: SchemaSet):
    slash = """  - name: slash
    match: [{uri: {prefix: /s}, method: {regex: "P.*"}}]
    rewrite: {uri: /t/, authority: "reviews:9080"}
    route: [{destination: {host: reviews}}]
"""
    text = vs(ISTIO_RULES.replace("  - name: rest\n", slash + "  - name: rest\n"))
    emitted, losses = to_istio(text, routes_api="gateway-api")
    assert invalid(emitted, schemas) == []
    route = named(emitted, "HTTPRoute", "reviews")
    got = [(r.get("matches"), [f for f in r.get("filters", []) if f["type"] == "URLRewrite"])
           for r in route["spec"]["rules"]]

    def rewrite(kind: str, value: str, host: str = "") -> list[dict[str, Any]]:
        key = "replacePrefixMatch" if kind == "ReplacePrefixMatch" else "replaceFullPath"
        body: dict[str, Any] = {"hostname": host} if host else {}
        return [{"type": "URLRewrite", "urlRewrite": {**body, "path": {"type": kind,
                                                                        key: value}}}]
    prefix = "ReplacePrefixMatch"
    # Split per match (CEL: one PathPrefix match per ReplacePrefixMatch rule); the exact match
    # had its whole path replaced by Envoy, hence ReplaceFullPath; the regex rewrite is lost;
    # the match-all rule gets its implicit PathPrefix "/" written; methods expanded from one
    # match become one rule each.
    assert got == [
        ([{"path": {"type": "PathPrefix", "value": "/api/"}}],
         rewrite(prefix, "/v2/", "reviews.internal")),
        ([{"path": {"type": "Exact", "value": "/old"}}],
         rewrite("ReplaceFullPath", "/v2/", "reviews.internal")),
        ([{"path": {"type": "PathPrefix", "value": "/legacy"}}], []),
        ([{"path": {"type": "PathPrefix", "value": "/s"}, "method": "POST"}],
         rewrite(prefix, "/t/")),
        ([{"path": {"type": "PathPrefix", "value": "/s"}, "method": "PUT"}],
         rewrite(prefix, "/t/")),
        ([{"path": {"type": "PathPrefix", "value": "/s"}, "method": "PATCH"}],
         rewrite(prefix, "/t/")),
        ([{"path": {"type": "PathPrefix", "value": "/"}}], rewrite(prefix, "/")),
    ]
    # "/s" with "/t/": Envoy gave /s/x -> /t//x, Gateway API gives /t/x.
    assert found(losses, "ROUTE_REWRITE") == [
        ("VirtualService/shop/reviews", "spec.http[2].rewrite.uri", "degraded")]
    assert ("VirtualService/shop/reviews", "spec.http[2].rewrite.authority", "dropped") in \
        found(losses, "ROUTE_GATEWAY_API")


def test_consul_router_writes_prefix_rewrite_only_where_consul_takes_it(schemas: SchemaSet):
    text = vs(ISTIO_RULES + """
  - name: re
    match: [{uri: {regex: "/r/[0-9]+"}}]
    rewrite: {uri: /r}
    route: [{destination: {host: reviews}}]
""")
    result = plan("istio", "consul", text, verify=False)
    assert invalid(result, schemas) == []
    [router] = kinds(result, "ServiceRouter")
    got = [(r.get("match", {}).get("http"), r["destination"].get("prefixRewrite"))
           for r in router["spec"]["routes"]]
    assert got == [({"pathPrefix": "/api/"}, "/v2/"), ({"pathExact": "/old"}, "/v2/"),
                   ({"pathPrefix": "/legacy"}, None), ({"pathPrefix": "/"}, "/")]
    # The match-all rule ends the router, so the regex rule after it is never reached
    # (Istio does not reach it either); its rewrite is reported only where it is written.
    assert found(result.losses, "ROUTE_REWRITE_AUTHORITY") == [
        ("VirtualService/shop/reviews", "spec.http[0].rewrite.authority", "dropped")]
    assert found(result.losses, "ROUTE_REWRITE_REGEX") == [
        ("VirtualService/shop/reviews", "spec.http[1].rewrite.uriRegexRewrite", "dropped")]


def test_consul_router_reports_a_rewrite_under_a_regex_match(schemas: SchemaSet):
    text = vs("""
  - match: [{uri: {regex: "/r/[0-9]+"}}, {uri: {prefix: /p}}]
    rewrite: {uri: /r}
    route: [{destination: {host: reviews}}]
""")
    result = plan("istio", "consul", text, verify=False)
    assert invalid(result, schemas) == []
    [router] = kinds(result, "ServiceRouter")
    got = [(r["match"]["http"], r["destination"].get("prefixRewrite"))
           for r in router["spec"]["routes"]]
    assert got == [({"pathRegex": "/r/[0-9]+"}, None), ({"pathPrefix": "/p"}, "/r")]
    assert found(result.losses, "ROUTE_REWRITE") == [
        ("VirtualService/shop/reviews", "spec.http[0].rewrite.uri", "dropped")]


def test_linkerd_target_reports_every_rewrite_and_writes_no_url_rewrite():
    result = plan("istio", "linkerd", vs(ISTIO_RULES), verify=False)
    assert "URLRewrite" not in str(kinds(result, "HTTPRoute"))
    assert sorted(found(result.losses, "ROUTE_REWRITE")) == [
        ("VirtualService/shop/reviews", "spec.http[0].rewrite.uri", "dropped"),
        ("VirtualService/shop/reviews", "spec.http[2].rewrite.uri", "dropped")]
    assert found(result.losses, "ROUTE_REWRITE_AUTHORITY") == [
        ("VirtualService/shop/reviews", "spec.http[0].rewrite.authority", "dropped")]


# -- pairs --------------------------------------------------------------------------------------
def _no_unexplained(result: PlanResult) -> list[Any]:
    eq = result.plan.equivalence
    assert eq is not None and eq.probes > 0
    return [(str(d.probe), d.aspect) for d in eq.unexplained]


def test_pair_istio_rewrite_to_consul_prefix_rewrite(schemas: SchemaSet):
    text = vs("""
  - match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /}
    route: [{destination: {host: reviews, subset: v2}}]
""")
    result = plan("istio", "consul", text)
    assert invalid(result, schemas) == []
    [router] = kinds(result, "ServiceRouter")
    assert router["spec"]["routes"] == [{"match": {"http": {"pathPrefix": "/api/"}},
                                         "destination": {"service": "reviews",
                                                         "serviceSubset": "v2",
                                                         "prefixRewrite": "/"}}]
    assert not [x for x in result.losses if x.code.startswith("ROUTE_REWRITE")]
    assert _no_unexplained(result) == []


def test_pair_consul_prefix_rewrite_to_istio_rewrite(schemas: SchemaSet):
    result = plan("consul", "istio", CONSUL_ROUTER)
    assert invalid(result, schemas) == []
    [body] = [b for b in kinds(result, "VirtualService") if b["metadata"]["name"] == "api"]
    got = [(r.get("match"), r.get("rewrite")) for r in body["spec"]["http"]]
    assert got[:3] == [([{"uri": {"exact": "/api/health"}}], {"uri": "/healthz"}),
                       ([{"uri": {"prefix": "/v1/"}}], {"uri": "/"}),
                       ([{"uri": {"prefix": "/plain"}}], None)]
    assert not [x for x in result.losses if x.code.startswith("ROUTE_REWRITE")]
    assert _no_unexplained(result) == []


def test_pair_consul_prefix_rewrite_to_linkerd_is_a_loss():
    result = plan("consul", "linkerd", CONSUL_ROUTER)
    assert "URLRewrite" not in str(kinds(result, "HTTPRoute"))
    assert sorted(found(result.losses, "ROUTE_REWRITE")) == [
        ("ServiceRouter/shop/api", "spec.routes[0].destination.prefixRewrite", "dropped"),
        ("ServiceRouter/shop/api", "spec.routes[1].destination.prefixRewrite", "dropped")]


def test_pair_consul_prefix_rewrite_to_istio_gateway_api_routes(schemas: SchemaSet):
    result = plan("consul", "istio", CONSUL_ROUTER, istio_routes="gateway-api")
    assert invalid(result, schemas) == []
    [route] = [b for b in kinds(result, "HTTPRoute") if b["metadata"]["name"] == "api"]
    got = [(r.get("matches"), [f["urlRewrite"] for f in r.get("filters", [])
                           if f["type"] == "URLRewrite"]) for r in route["spec"]["rules"]]
    # Consul's exact match had its whole path replaced (ReplaceFullPath); "/v1/" -> "/"
    # joins the same way in Envoy and in Gateway API (both end with "/"): no loss.
    assert got[:2] == [
        ([{"path": {"type": "Exact", "value": "/api/health"}}],
         [{"path": {"type": "ReplaceFullPath", "replaceFullPath": "/healthz"}}]),
        ([{"path": {"type": "PathPrefix", "value": "/v1/"}}],
         [{"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}]),
    ]
    assert not [x for x in result.losses if x.code.startswith("ROUTE_REWRITE")]
    assert _no_unexplained(result) == []
