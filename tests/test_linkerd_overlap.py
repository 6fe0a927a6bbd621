"""Overlapping path and method ALLOW rules -> Linkerd inbound routes (issue 4).

Istio lets a caller in when any matching rule allows it; Linkerd checks only the one inbound
route it picks for a request. Each case plans an Istio (or Consul) input to Linkerd, checks
which callers the route covering the overlap authorizes, asks both evaluators about requests
in and around the overlap, and runs the plan's own equivalence check.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any

import pytest

from migrate.dialects.linkerd import inbound_overlap
from migrate.dialects.linkerd.inbound_overlap import Atom, PathForm, atoms_of, plan_routes
from migrate.emit.manifests import annotated, file_name
from migrate.names import NameRegistry
from migrate.pipeline import PlanOptions, PlanResult, plan_migration
from migrate.validate import SchemaSet, validate_manifest
from migrate.verify.compare import final_state
from migrate.verify.consul_eval import ConsulEvaluator
from migrate.verify.istio_eval import IstioEvaluator
from migrate.verify.linkerd_eval import LinkerdEvaluator
from migrate.verify.model import Client, Probe
from migrate.verify.world import World
from tests.helpers import codes, docs, plan_yaml, texts
from tests.test_linkerd_policy import APP

WORKLOAD = "Deployment/pay/api"
A, B, C = Client("web", "a"), Client("web", "b"), Client("web", "c")


def allow(*rules: str, name: str = "allow") -> str:
    """An Istio ALLOW policy on the api pods with the given rules (see :func:`rule`)."""
    body = "\n".join(rules)
    return f"""---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: pay}}
spec:
  selector: {{matchLabels: {{app: api}}}}
  rules:
{body}
"""


def rule(sa: str, operation: str) -> str:
    """A rule letting service account ``web/<sa>`` do one ``to.operation`` (inline YAML)."""
    return (f'  - from: [{{source: {{principals: ["cluster.local/ns/web/sa/{sa}"]}}}}]\n'
            f"    to: [{{operation: {operation}}}]")


def final_target(result: PlanResult) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """The Linkerd objects (and namespace annotations) once every step ran."""
    return final_state(([m.body for m in s.manifests], texts(s.commands))
                       for s in result.plan.steps)


def inbound(result: PlanResult) -> dict[str, list[dict[str, Any]]]:
    """Inbound route name -> its matches, in the final state."""
    target, _ = final_target(result)
    return {m["metadata"]["name"]: [x for r in m["spec"]["rules"] for x in r["matches"]]
            for m in target
            if m["kind"] == "HTTPRoute" and m["spec"]["parentRefs"][0]["kind"] == "Server"}


def callers(result: PlanResult, route: str) -> set[str]:
    """Service accounts the AuthorizationPolicies on a route let in."""
    target, _ = final_target(result)
    authns = {m["metadata"]["name"]: m["spec"] for m in target
              if m["kind"] == "MeshTLSAuthentication"}
    found = set()
    for p in target:
        if p["kind"] == "AuthorizationPolicy" and p["spec"]["targetRef"]["name"] == route:
            for ref in p["spec"]["requiredAuthenticationRefs"]:
                found |= {r["name"] for r in authns[ref["name"]].get("identityRefs", [])}
    return found


def route_with(result: PlanResult, match: dict[str, Any]) -> str:
    """The one inbound route holding a match."""
    [name] = [n for n, ms in inbound(result).items() if match in ms]
    return name


def decisions(result: PlanResult, source: str, requests: list[tuple[str, str, Client]]
              ) -> list[tuple[str, str, str, bool, bool]]:
    """(method, path, caller, source allows, Linkerd allows) for each request."""
    objects = docs(source)
    world = World(objects)
    target, annotations = final_target(result)
    for ns, values in annotations.items():
        world.namespaces.setdefault(ns, {}).update(values)
    istio = IstioEvaluator(objects, world)
    linkerd = LinkerdEvaluator(target, world)
    out = []
    for method, path, client in requests:
        p = Probe("pay", "api", 80, path, method, (), client)
        out.append((method, path, client.service_account,
                    istio.allowed(p, WORKLOAD, 80)[0], linkerd.allowed(p, WORKLOAD, 80)[0]))
    return out


def assert_same(result: PlanResult, source: str, requests: list[tuple[str, str, Client]]
                ) -> None:
    """Both meshes decide every request alike, and the plan's check finds no divergence."""
    table = decisions(result, source, requests)
    assert [row for row in table if row[3] != row[4]] == [], table
    eq = result.plan.equivalence
    assert eq is not None and eq.probes > 0
    assert eq.divergences == [], [f"{d.probe} {d.aspect}: {d.source} / {d.target}"
                                  for d in eq.divergences]


def grid(paths: list[str], methods: tuple[str, ...] = ("GET", "POST"),
         clients: tuple[Client, ...] = (A, B, C)) -> list[tuple[str, str, Client]]:
    """Every (method, path, caller) combination."""
    return [(m, p, c) for p in paths for m in methods for c in clients]


# -- the model: path forms and their intersections -----------------------------------------
def test_path_forms_nest_and_meet_as_sets_of_paths():
    root, api, json_ = PathForm(None, "/"), PathForm(None, "/api"), PathForm(None, "", ".json")
    assert root.contains(api) and not api.contains(root)
    assert api.contains(PathForm("/api/x")) and not api.contains(PathForm("/ap"))
    assert not api.contains(json_) and not json_.contains(api)
    both = api.meet(json_)
    assert both == PathForm(None, "/api", ".json")
    assert PathForm(None, "/a").meet(PathForm(None, "/b")) is None
    assert PathForm("/x").meet(root) == PathForm("/x") and PathForm("/x").meet(api) is None
    # "starts with /ab, ends with b" holds "/ab" itself, which the regex alone misses.
    assert PathForm(None, "/ab", "b").matches() == [
        {"type": "RegularExpression", "value": "/ab.*b"}, {"type": "Exact", "value": "/ab"}]
    assert atoms_of(["*"], []) == [Atom(PathForm())] and Atom(PathForm()).universal


def test_routes_are_ordered_narrowest_first_and_carry_covering_grants():
    wide = atoms_of(["/*"], ["GET"])
    narrow = atoms_of(["/api*"], [])
    plan = plan_routes([wide, narrow])
    assert not plan.capped
    # The intersection GET /api* is added and authorizes both grants; it comes first.
    assert plan.routes == [
        ([Atom(PathForm(None, "/api"), "GET")], [0, 1]),
        ([Atom(PathForm(None, "/"), "GET")], [0]),
        ([Atom(PathForm(None, "/api"))], [1])]


# -- Istio input ----------------------------------------------------------------------------
def test_prefix_inside_prefix_gives_the_wide_caller_the_narrow_route_too():
    source = APP + allow(rule("a", '{paths: ["/*"]}'), rule("b", '{paths: ["/api*"]}'))
    result = plan_yaml(source)
    api = route_with(result, {"path": {"type": "RegularExpression", "value": "/api.*"}})
    root = route_with(result, {"path": {"type": "RegularExpression", "value": "/.*"}})
    assert callers(result, api) == {"a", "b"}
    assert callers(result, root) == {"a"}
    # Both regexes count the whole path in Linkerd, so they tie; the narrow route must come
    # first by name (and so by apply order).
    assert api < root
    assert_same(result, source, grid(["/", "/api", "/api/x", "/apix", "/other"]))
    assert "AUTHZ_ROUTE_OVERLAP" not in codes(result)


def test_exact_path_inside_prefix():
    source = APP + allow(rule("a", '{paths: ["/api/*"]}'), rule("b", '{paths: ["/api/v1"]}'))
    result = plan_yaml(source)
    exact = route_with(result, {"path": {"type": "Exact", "value": "/api/v1"}})
    assert callers(result, exact) == {"a", "b"}
    assert callers(result, route_with(
        result, {"path": {"type": "RegularExpression", "value": "/api/.*"}})) == {"a"}
    assert_same(result, source, grid(["/api/v1", "/api/v2", "/api/v1/x", "/api"]))


def test_method_rules_overlapping_path_rules():
    # a: GET anywhere; b: any method under /api; c: POST anywhere. Neither of a and b
    # covers the other, so GET /api* needs a route of its own that lets both in.
    source = APP + allow(rule("a", '{methods: [GET], paths: ["/*"]}'),
                         rule("b", '{paths: ["/api*"]}'),
                         rule("c", "{methods: [POST]}"))
    result = plan_yaml(source)
    get_api = route_with(result, {"method": "GET",
                                  "path": {"type": "RegularExpression", "value": "/api.*"}})
    post_api = route_with(result, {"method": "POST",
                                   "path": {"type": "RegularExpression", "value": "/api.*"}})
    assert callers(result, get_api) == {"a", "b"}
    assert callers(result, post_api) == {"b", "c"}
    assert_same(result, source, grid(["/", "/api", "/api/x", "/x"],
                                     methods=("GET", "POST", "PUT")))


def test_prefix_and_suffix_overlap_through_their_intersection():
    source = APP + allow(rule("a", '{paths: ["/api*"]}'), rule("b", '{paths: ["*.json"]}'))
    result = plan_yaml(source)
    both = route_with(result, {"path": {"type": "RegularExpression",
                                        "value": "/api.*\\.json"}})
    assert callers(result, both) == {"a", "b"}
    assert_same(result, source, grid(["/api/x.json", "/api/x", "/x.json", "/api.json"]))


def test_rules_from_separate_policies_in_any_document_order():
    one = allow(rule("a", '{paths: ["/*"]}'), name="wide")
    two = allow(rule("b", '{paths: ["/api*"]}'), name="narrow")
    first, second = plan_yaml(APP + one + two), plan_yaml(APP + two + one)
    assert final_target(first) == final_target(second)
    assert callers(first, route_with(first, {"path": {
        "type": "RegularExpression", "value": "/api.*"}})) == {"a", "b"}
    assert_same(first, APP + one + two, grid(["/api/x", "/x"]))


def test_path_star_is_every_request_so_it_authorizes_the_whole_server():
    source = APP + allow(rule("a", '{paths: ["*"]}'), rule("b", '{paths: ["/api*"]}'))
    result = plan_yaml(source)
    target, _ = final_target(result)
    on_server = [p for p in target if p["kind"] == "AuthorizationPolicy"
                 and p["spec"]["targetRef"]["kind"] == "Server"]
    assert len(on_server) == 1
    assert_same(result, source, grid(["/api/x", "/x"]))


def test_too_many_intersections_are_reported_not_silently_refused(monkeypatch):
    monkeypatch.setattr(inbound_overlap, "MAX_ATOMS", 2)
    source = APP + allow(rule("a", '{methods: [GET], paths: ["/*"]}'),
                         rule("b", '{paths: ["/api*"]}'))
    result = plan_yaml(source)
    [loss] = [x for x in result.losses if x.code == "AUTHZ_ROUTE_OVERLAP"]
    assert loss.severity.value == "manual" and "api-8080" in loss.message
    # The refusal it causes is then an explained divergence, not an unexplained one.
    eq = result.plan.equivalence
    assert eq is not None and eq.divergences and not eq.unexplained


def test_route_names_out_of_order_are_reported(monkeypatch):
    # A name taken by another object gets a hash suffix (NameRegistry.claim); should that
    # put the narrow route after the wide one, ties could go the wrong way: say so.
    claim = NameRegistry.claim

    def taken(self: NameRegistry, kind: str, namespace: str, wanted: str, owner: str) -> str:
        name = claim(self, kind, namespace, wanted, owner)
        return f"z-{name}" if kind == "HTTPRoute" and name.endswith("-r1") else name

    monkeypatch.setattr(NameRegistry, "claim", taken)
    result = plan_yaml(APP + allow(rule("a", '{paths: ["/*"]}'), rule("b", '{paths: ["/api*"]}')))
    [loss] = [x for x in result.losses if x.code == "AUTHZ_ROUTE_OVERLAP"]
    assert "z-api-8080-r1, api-8080-r2" in loss.message


# -- Consul L7 intentions -------------------------------------------------------------------
CONSUL = """
apiVersion: v1
kind: Service
metadata: {name: api, namespace: pay}
spec:
  selector: {app: api}
  ports: [{name: http, port: 80, targetPort: 8080}]
""" + "".join(f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {n}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: {n}}}}}
  template:
    metadata:
      labels: {{app: {n}}}
      annotations: {{consul.hashicorp.com/connect-inject: "true"}}
    spec:
      serviceAccountName: {n}
      containers: [{{name: app, image: x, ports: [{{containerPort: 8080}}]}}]
""" + ("" if n == "api" else f"""---
apiVersion: v1
kind: Service
metadata: {{name: {n}, namespace: {ns}}}
spec:
  selector: {{app: {n}}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
""") for n, ns in (("api", "pay"), ("a", "pay"), ("b", "pay"))) + """---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata: {name: api, namespace: pay}
spec: {protocol: http}
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata: {name: api, namespace: pay}
spec:
  destination: {name: api}
  sources:
  - name: a
    permissions: [{action: allow, http: {pathPrefix: /}}]
  - name: b
    permissions: [{action: allow, http: {pathPrefix: /api}}]
  - {name: '*', action: deny}
"""


def test_consul_intentions_with_nested_path_prefixes():
    result = plan_migration(PlanOptions(source="consul", target="linkerd", paths=["-"],
                                        stdin=io.BytesIO(CONSUL.encode())))
    api = route_with(result, {"path": {"type": "RegularExpression", "value": "/api.*"}})
    assert callers(result, api) == {"a", "b"}
    objects = docs(CONSUL)
    world = World(objects)
    target, _ = final_target(result)
    consul, linkerd = ConsulEvaluator(objects, world), LinkerdEvaluator(target, world)
    for path in ("/api/x", "/apix", "/other"):
        for caller in (Client("pay", "a"), Client("pay", "b")):
            p = Probe("pay", "api", 80, path, "GET", (), caller)
            assert consul.allowed(p, WORKLOAD, 80)[0] == linkerd.allowed(p, WORKLOAD, 80)[0], \
                (path, caller)
    eq = result.plan.equivalence
    assert eq is not None and eq.unexplained == [], [
        f"{d.probe} {d.aspect}: {d.source} / {d.target}" for d in eq.unexplained]


@pytest.mark.parametrize("count", [9, 12])
def test_route_names_sort_in_route_order_past_nine_routes(count: int):
    # Nested prefixes /p, /p/1, /p/1/2, ...: every route is inside the previous one, so
    # the order matters for every tie; "r10" must not sort before "r2".
    prefixes = ["/p" + "".join(f"/{k}" for k in range(1, n)) for n in range(1, count + 1)]
    source = APP + allow(*(rule(f"s{n}", f'{{paths: ["{p}*"]}}')
                           for n, p in enumerate(prefixes)))
    result = plan_yaml(source)
    names = [route_with(result, {"path": {"type": "RegularExpression",
                                          "value": inbound_overlap.re.escape(p) + ".*"}})
             for p in reversed(prefixes)]
    assert names == sorted(names)
    assert "AUTHZ_ROUTE_OVERLAP" not in codes(result)
    deepest = names[0]
    assert callers(result, deepest) == {f"s{n}" for n in range(count)}


def test_many_matches_are_split_into_rules_and_routes_the_crd_accepts(shared: Path):
    schemas = SchemaSet.from_paths([str(shared / "crds" / "linkerd" / "edge-26.8.3" /
                                        "rendered" / "install_crds.golden.yaml")])
    # 5 paths x 2 methods: 10 matches, over the 8 one rule may hold.
    few = APP + allow(rule("a", '{methods: [GET, POST], paths: [/a, /b, /c, /d, /e]}'))
    # 3 x 50 = 150 matches, over the 16 x 8 one route may hold.
    paths = ", ".join(f"/p{k}" for k in range(50))
    many = APP + allow(rule("a", f"{{methods: [GET, POST, PUT], paths: [{paths}]}}"))
    for source, routes in ((few, 1), (many, 2)):
        result = plan_yaml(source)
        found = inbound(result)
        assert len(found) == routes + 1  # and the probe route
        for step in result.plan.steps:
            for m in step.manifests:
                assert validate_manifest(annotated(m), file_name(m.body), schemas,
                                         require_schema=True) == []
        assert_same(result, source, grid(["/a", "/e", "/p0", "/p49", "/q"],
                                         methods=("GET", "PUT", "DELETE"), clients=(A, B)))


_PATHS = ["/*", "/api*", "/api/*", "/api/v1", "*.json", "/api/x.json", "*", "/a*", "*i"]
_REQUESTS = grid(["/", "/api", "/api/", "/api/v1", "/api/x.json", "/x.json", "/apix", "/a",
                  "/i"], methods=("GET", "POST", "PUT"))


@pytest.mark.parametrize("seed", range(12))
def test_random_overlapping_rules_decide_as_istio(seed: int):
    rng = random.Random(seed)
    rules = []
    for _ in range(rng.randint(2, 4)):
        paths = ", ".join(f'"{p}"' for p in rng.sample(_PATHS, rng.randint(1, 2)))
        method = rng.choice(["", "methods: [GET], ", "methods: [POST], "])
        rules.append(rule(rng.choice("abc"), f"{{{method}paths: [{paths}]}}"))
    source = APP + allow(*rules)
    result = plan_yaml(source)
    assert "AUTHZ_ROUTE_OVERLAP" not in codes(result)
    assert_same(result, source, _REQUESTS)


def _istio_matches(path: str, pattern: str) -> bool:
    """Istio authorization path semantics (exact, ``p*``, ``*s``, ``*``)."""
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return path.endswith(pattern[1:])
    return path == pattern


def _proxy_rank(m: dict[str, Any], method: str, path: str) -> tuple[int, bool] | None:
    """linkerd2-proxy's RequestMatch summary: an Exact or RegularExpression path counts
    the whole path, no path counts as the prefix "/"; then whether a method matched. Exact
    and RegularExpression are not told apart (http/route/src/http/match/path.rs)."""
    if m.get("method") and m["method"] != method:
        return None
    pm = m.get("path")
    if pm is None:
        return (1, bool(m.get("method")))
    hit = path == pm["value"] if pm["type"] == "Exact" else \
        re.fullmatch(pm["value"], path) is not None
    return (len(path), bool(m.get("method"))) if hit else None


@pytest.mark.parametrize("seed", range(40))
def test_the_route_linkerd_picks_authorizes_exactly_the_matching_rules(seed: int):
    # Proxy semantics straight from linkerd2-proxy (not the evaluator): the best-ranked
    # match over all routes wins and ties keep the earlier route (lib.rs ``best``).
    rng = random.Random(seed)
    ops = [(rng.sample(_PATHS, rng.randint(1, 2)), rng.choice([[], ["GET"], ["POST"]]))
           for _ in range(rng.randint(2, 5))]
    plan = plan_routes([atoms_of(paths, methods) for paths, methods in ops])
    routes = [([m for a in atoms for m in a.matches()], set(grants))
              for atoms, grants in plan.routes]
    for method in ("GET", "POST", "PUT"):
        for path in ("/", "/api", "/api/", "/api/v1", "/api/x.json", "/x.json", "/apix", "/i"):
            allowed = {g for g, (paths, methods) in enumerate(ops)
                       if (not methods or method in methods)
                       and any(_istio_matches(path, p) for p in paths)}
            best: tuple[tuple[int, bool], set[int]] | None = None
            for matches, grants in routes:
                ranks = [r for m in matches if (r := _proxy_rank(m, method, path))]
                if ranks and (best is None or max(ranks) > best[0]):
                    best = (max(ranks), grants)
            assert (best[1] if best else set()) == allowed, (ops, method, path)
