"""The equivalence check: each evaluator on its own, the probe generator on its own, and
deliberately broken conversions, each of which must show up as an unexplained divergence."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest
import yaml

from migrate.pipeline import PlanOptions, plan_migration
from migrate.sources.files import read_files
from migrate.verify.compare import compare, final_state
from migrate.verify.istio_eval import IstioEvaluator
from migrate.verify.linkerd_eval import LinkerdEvaluator
from migrate.verify.model import Client, Probe
from migrate.verify.probes import ANONYMOUS, UNKNOWN, authz_probes, routing_probes
from migrate.verify.world import World
from tests.conftest import SAMPLES
from tests.helpers import texts

SHOP = str(SAMPLES / "istio" / "shop")

BASE = [
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "web"},
     "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}},
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "api-v1", "namespace": "web"},
     "spec": {"template": {"metadata": {"labels": {"app": "api", "v": "1"}},
                           "spec": {"containers": [{"name": "c", "ports": [
                               {"containerPort": 80}]}]}}}},
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "api-v2", "namespace": "web"},
     "spec": {"template": {"metadata": {"labels": {"app": "api", "v": "2"}},
                           "spec": {"containers": [{"name": "c", "ports": [
                               {"containerPort": 80}]}]}}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api-v2", "namespace": "web"},
     "spec": {"selector": {"app": "api", "v": "2"}, "ports": [{"port": 80}]}},
]


def probe(path: str = "/", **kw: Any) -> Probe:
    return Probe("web", "api", 80, path, kw.pop("method", "GET"), **kw)


def test_istio_is_first_match_and_linkerd_most_specific():
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "api", "namespace": "web"},
          "spec": {"hosts": ["api"], "http": [
              {"match": [{"uri": {"prefix": "/v"}}], "route": [{"destination": {"host": "api"}}]},
              {"match": [{"uri": {"exact": "/v2"}}],
               "route": [{"destination": {"host": "api-v2"}}]}]}}
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "api", "namespace": "web"},
             "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "api"}], "rules": [
                 {"matches": [{"path": {"type": "PathPrefix", "value": "/v"}}],
                  "backendRefs": [{"name": "api", "port": 80}]},
                 {"matches": [{"path": {"type": "Exact", "value": "/v2"}}],
                  "backendRefs": [{"name": "api-v2", "port": 80}]}]}}
    world = World(BASE + [vs])
    istio = IstioEvaluator(BASE + [vs], world).route(probe("/v2"))
    linkerd = LinkerdEvaluator([route], world).route(probe("/v2"))
    assert istio.backends == (("Deployment/web/api-v1+Deployment/web/api-v2", 1.0),)
    assert linkerd.backends == (("Deployment/web/api-v2", 1.0),)
    assert IstioEvaluator(BASE + [vs], world).route(probe("/x")).status == "no-route"
    assert LinkerdEvaluator([route], world).route(probe("/x")).status == "no-route"


def test_linkerd_ignores_a_route_with_an_unsupported_filter():
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "api", "namespace": "web"},
             "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "api"}], "rules": [
                 {"filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "x"}}],
                  "backendRefs": [{"name": "api-v2", "port": 80}]}]}}
    outcome = LinkerdEvaluator([route], World(BASE)).route(probe())
    assert outcome.backends == (("Deployment/web/api-v1+Deployment/web/api-v2", 1.0),)


def test_linkerd_inbound_defaults_servers_and_authentications():
    ns = {"apiVersion": "v1", "kind": "Namespace",
          "metadata": {"name": "web", "annotations": {
              "linkerd.io/inject": "enabled",
              "config.linkerd.io/default-inbound-policy": "all-authenticated"}}}
    world = World(BASE + [ns])
    anon, known = probe(client=Client()), probe(client=Client("ops", "bot"))
    plain = LinkerdEvaluator([], world)
    assert not plain.allowed(anon, "Deployment/web/api-v1", 80)[0]
    assert plain.allowed(known, "Deployment/web/api-v1", 80)[0]
    server = {"apiVersion": "policy.linkerd.io/v1beta3", "kind": "Server",
              "metadata": {"name": "api", "namespace": "web"},
              "spec": {"podSelector": {"matchLabels": {"app": "api"}}, "port": 80,
                       "accessPolicy": "deny"}}
    mtls = {"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "MeshTLSAuthentication",
            "metadata": {"name": "ops", "namespace": "web"},
            "spec": {"identityRefs": [{"kind": "Namespace", "name": "ops"}]}}
    authz = {"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "AuthorizationPolicy",
             "metadata": {"name": "ops", "namespace": "web"},
             "spec": {"targetRef": {"group": "policy.linkerd.io", "kind": "Server",
                                    "name": "api"},
                      "requiredAuthenticationRefs": [{"group": "policy.linkerd.io",
                                                      "kind": "MeshTLSAuthentication",
                                                      "name": "ops"}]}}
    guarded = LinkerdEvaluator([server, mtls, authz], world)
    assert guarded.allowed(known, "Deployment/web/api-v1", 80)[0]
    assert not guarded.allowed(probe(client=Client("web", "other")),
                               "Deployment/web/api-v1", 80)[0]


def test_istio_authorization_order_and_strict_mtls():
    pa = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
          "metadata": {"name": "default", "namespace": "web"},
          "spec": {"mtls": {"mode": "STRICT"}}}
    deny = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "deny", "namespace": "web"},
            "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}}
    allow = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
             "metadata": {"name": "allow", "namespace": "web"},
             "spec": {"rules": [{"from": [{"source": {"namespaces": ["ops"]}}]}]}}
    objects = BASE + [pa, deny, allow]
    istio = IstioEvaluator(objects, World(objects))
    ops = Client("ops", "bot")
    assert not istio.allowed(probe(client=Client()), "Deployment/web/api-v1", 80)[0]
    assert istio.allowed(probe(client=ops), "Deployment/web/api-v1", 80)[0]
    assert not istio.allowed(probe("/admin/x", client=ops), "Deployment/web/api-v1", 80)[0]
    assert not istio.allowed(probe(client=Client("web", "x")), "Deployment/web/api-v1", 80)[0]


def test_probe_generator_covers_boundaries_headers_methods_and_identities():
    objects = [o.body for o in read_files([SHOP]).objects]
    world = World(objects)
    routing = routing_probes(objects, world)
    catalog = {(p.path, p.method) for p in routing if p.service == "catalog"}
    # prefix /v2/: at the prefix, one character past it, past the segment, the bare segment
    assert {("/v2/", "GET"), ("/v2/x", "GET"), ("/v2", "GET")} <= catalog
    assert ("/v2/", "DELETE") in catalog  # a method no rule names
    orders = {(p.path, p.method) for p in routing if p.service == "orders"}
    assert {("/api/health", "GET"), ("/api/healthx", "GET")} <= orders  # exact and one off
    authz = authz_probes(objects, world)
    clients = {p.client for p in authz if p.service == "orders"}
    assert {Client("frontend", "web"), Client("payments", "payments"), UNKNOWN,
            ANONYMOUS} <= clients
    assert {("/callback", "POST"), ("/callback", "PATCH"), ("/api/x", "GET")} <= \
        {(p.path, p.method) for p in authz if p.service == "orders"}


def test_probe_generator_headers_present_absent_other():
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "api", "namespace": "web"},
          "spec": {"hosts": ["api"], "http": [
              {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
               "route": [{"destination": {"host": "api-v2"}}]},
              {"route": [{"destination": {"host": "api"}}]}]}}
    probes = routing_probes([*BASE, vs], World([*BASE, vs]))
    values = {dict(p.headers).get("end-user") for p in probes}
    assert values == {"jason", "jason-other", None}


def test_grpc_services_get_grpc_shaped_probes_only():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "g", "namespace": "web"},
           "spec": {"selector": {"app": "g"}, "ports": [{"port": 9, "appProtocol": "grpc"}]}}
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "g", "namespace": "web"},
          "spec": {"hosts": ["g"], "http": [
              {"match": [{"uri": {"prefix": "/pkg.Svc/"}}], "route": [{"destination": {
                  "host": "g"}}]}]}}
    probes = routing_probes([svc, vs], World([svc, vs]))
    # "/" and "/pkg.Svc/x/..." cannot be gRPC calls; the prefix becomes a call of the service
    assert {(p.path, p.method) for p in probes} == {("/pkg.Svc/Probe", "POST"),
                                                    ("/pkg.Svc/x", "POST")}


def test_backends_without_workloads_are_named_by_their_pod_selector():
    world = World(BASE[:1])
    assert world.backend("web", {"app": "api", "v": "2"}) == "pods/web{app=api,v=2}"
    assert World(BASE).backend("web", {"app": "api", "v": "2"}) == "Deployment/web/api-v2"
    assert world.backend("web", {}) == ""


def shop_case() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any], list]:
    result = plan_migration(PlanOptions("istio", "linkerd", [SHOP]))
    target, annotations = final_state(([m.body for m in s.manifests], texts(s.commands))
                                      for s in result.plan.steps)
    return [o.body for o in result.read.objects], target, annotations, list(result.losses)


def test_the_correct_conversion_has_no_unexplained_divergence():
    source, target, annotations, losses = shop_case()
    result = compare(source, target, annotations, losses)
    assert result.probes > 100
    assert result.unexplained == []
    # The prefix-segment difference is real and explained by its loss.
    assert any("ROUTE_PREFIX_SEGMENT" in " ".join(d.explained_by) for d in result.divergences)


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def wrong_weight(target: list[dict[str, Any]]) -> None:
    route = next(o for o in target if o["kind"] == "HTTPRoute" and any(
        len(r.get("backendRefs", [])) == 2 for r in o["spec"]["rules"]))
    for b in route["spec"]["rules"][0]["backendRefs"]:
        b["weight"] = 50


def reversed_order(target: list[dict[str, Any]]) -> None:
    # A converter that kept Istio's shadowed rule: under specificity it starts winning.
    route = _find(target, "HTTPRoute", "orders")
    route["spec"]["rules"].append({
        "matches": [{"path": {"type": "Exact", "value": "/api/health"}}],
        "backendRefs": [{"name": "catalog", "namespace": "catalog", "port": 8080}]})


def dropped_principal(target: list[dict[str, Any]]) -> None:
    mtls = _find(target, "MeshTLSAuthentication", "payments-allow-r0s0")
    mtls["spec"]["identityRefs"] = [{"kind": "ServiceAccount", "name": "nobody",
                                     "namespace": "orders"}]


def extra_allow(target: list[dict[str, Any]]) -> None:
    target.append({"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "AuthorizationPolicy",
                   "metadata": {"name": "oops", "namespace": "payments"},
                   "spec": {"targetRef": {"group": "policy.linkerd.io", "kind": "Server",
                                          "name": "payments-grpc"},
                            "requiredAuthenticationRefs": []}})


def missing_subset_service(target: list[dict[str, Any]]) -> None:
    target.remove(_find(target, "Service", "catalog-v2"))


@pytest.mark.parametrize("breakage", [wrong_weight, reversed_order, dropped_principal,
                                      extra_allow, missing_subset_service])
def test_broken_conversions_are_caught(breakage: Callable[[list[dict[str, Any]]], None]):
    source, target, annotations, losses = shop_case()
    broken = copy.deepcopy(target)
    breakage(broken)
    result = compare(source, broken, annotations, losses)
    assert result.unexplained, f"{breakage.__name__} was not caught"


def test_plan_json_and_runbook_carry_the_check(tmp_path):
    from click.testing import CliRunner

    from migrate.cli import main

    out = tmp_path / "out"
    run = CliRunner().invoke(main, ["plan", "--from", "istio", "--to", "linkerd", "-f", SHOP,
                                    "-o", str(out)])
    assert run.exit_code == 0
    import json

    eq = json.loads((out / "plan.json").read_text())["equivalence"]
    assert eq["unexplained"] == 0 and eq["probes"] > 100
    assert {s["service"] for s in eq["services"]} >= {"orders/orders", "catalog/catalog"}
    assert "## Equivalence check" in (out / "RUNBOOK.md").read_text()
    assert "equivalence:" in run.stderr
    yaml.safe_load((out / "plan.json").read_text())  # still plain JSON


def test_verify_command_on_a_plan_folder_and_a_tampered_one(tmp_path):
    from click.testing import CliRunner

    from migrate.cli import main

    out = tmp_path / "plan"
    assert CliRunner().invoke(main, ["plan", "--from", "istio", "--to", "linkerd", "-f", SHOP,
                                     "-o", str(out)]).exit_code == 0
    ok = CliRunner().invoke(main, ["verify", "--from", "istio", "-f", SHOP, "--plan", str(out)])
    assert ok.exit_code == 0, ok.stderr
    assert "0 unexplained" in ok.stdout and "orders/orders" in ok.stdout
    # Tamper with the long-term route: send all catalog traffic to v2.
    route = next(out.glob("steps/*-cleanup/catalog/httproute.gateway.networking.k8s.io_catalog-2.yaml"))
    body = yaml.safe_load(route.read_text())
    for b in body["spec"]["rules"][0]["backendRefs"]:
        b["weight"] = 100 if b["name"] == "catalog-v2" else 0
    route.write_text(yaml.safe_dump(body))
    bad = CliRunner().invoke(main, ["verify", "--from", "istio", "-f", SHOP, "--plan", str(out)])
    assert bad.exit_code == 3
    assert "NOTHING: a conversion bug" in bad.stdout


GOLDEN = sorted(p for p in (SAMPLES.parent / "tests" / "golden").iterdir() if p.is_dir())


@pytest.mark.parametrize("case", [SAMPLES / "istio" / "bookinfo", SAMPLES / "istio" / "shop",
                                  *[g / "input.yaml" for g in GOLDEN]],
                         ids=lambda p: p.parent.name if p.name == "input.yaml" else p.name)
def test_samples_and_golden_cases_verify_without_unexplained_divergence(case):
    result = plan_migration(PlanOptions("istio", "linkerd", [str(case)]))
    assert result.plan.equivalence.unexplained == []


def test_istio_ranks_a_gamma_regex_below_every_prefix_and_linkerd_does_not():
    # istio conversion.go sortHTTPRoutes: Exact > PathPrefix > RegularExpression, so "/" wins
    # over the regex in Istio; Linkerd scores the regex by the whole path it matched.
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "api", "namespace": "web"},
             "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "api"}], "rules": [
                 {"matches": [{"path": {"type": "RegularExpression", "value": "/v[0-9]/x"}}],
                  "backendRefs": [{"name": "api-v2", "port": 80}]},
                 {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                  "backendRefs": [{"name": "api", "port": 80}]}]}}
    world = World(BASE + [route])
    istio = IstioEvaluator(BASE + [route], world).route(probe("/v1/x"))
    linkerd = LinkerdEvaluator([route], world).route(probe("/v1/x"))
    assert istio.rule_path == "spec.rules[1]"
    assert linkerd.backends == (("Deployment/web/api-v2", 1.0),)


def test_istio_takes_a_gamma_backend_request_timeout_as_the_timeout_without_retries():
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "api", "namespace": "web"},
             "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "api"}], "rules": [
                 {"timeouts": {"request": "10s", "backendRequest": "4s"},
                  "backendRefs": [{"name": "api", "port": 80}]}]}}
    world = World(BASE + [route])
    assert IstioEvaluator(BASE + [route], world).route(probe("/")).timeout == "4s"
    route["spec"]["rules"][0]["retry"] = {"attempts": 2}
    assert IstioEvaluator(BASE + [route], world).route(probe("/")).timeout == "10s"
