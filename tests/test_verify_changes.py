"""Rewrites, header changes and fault injection are compared aspects (issue 14): each
evaluator reads them from its own mesh's manifests, a loss explains a difference only when
it declares that aspect, and a changed or dropped one with no such loss is a conversion bug."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

from migrate.pipeline import PlanOptions, PlanResult, plan_migration
from migrate.verify import changes
from migrate.verify.compare import Equivalence, compare, final_state
from tests.helpers import texts
from tests.test_verify_coverage import SHOP

CASE = SHOP + """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart]
  http:
  - match: [{uri: {prefix: /api}}]
    rewrite: {uri: /v2}
    headers:
      request: {set: {x-team: cart}, remove: [x-debug]}
      response: {add: {x-served-by: cart}}
    route: [{destination: {host: cart}}]
  - match: [{uri: {prefix: /slow}}]
    fault: {delay: {fixedDelay: 5s, percentage: {value: 100}}}
    route: [{destination: {host: cart}}]
  - route: [{destination: {host: cart}}]
"""


def _plan(tmp_path: Path, target: str) -> PlanResult:
    path = tmp_path / "in.yaml"
    path.write_text(CASE)
    return plan_migration(PlanOptions("istio", target, [str(path)]))


def _again(result: PlanResult, target: str, change: Callable[[dict[str, Any]], bool] | None,
           drop: str = "") -> Equivalence:
    """The comparison once more, with the emitted manifests changed and a loss code left out."""
    state, notes = final_state(([m.body for m in s.manifests], texts(s.commands))
                               for s in result.plan.steps)
    state = copy.deepcopy(state)
    if change is not None:
        assert sum(1 for body in state if change(body)) > 0
    losses = [x for x in result.plan.losses if x.code != drop]
    return compare([o.body for o in result.read.objects], state, notes, losses,
                   source_mesh="istio", target_mesh=target)


def _by_aspect(eq: Equivalence) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for d in eq.divergences:
        out.setdefault(d.aspect, set()).update(e.split()[0] for e in d.explained_by)
    return out


def test_a_conversion_keeping_header_changes_and_dropping_a_rewrite_verifies(tmp_path: Path):
    eq = _plan(tmp_path, "linkerd").plan.equivalence
    assert eq is not None and not eq.unexplained
    found = _by_aspect(eq)
    # Linkerd has no URLRewrite in a route it honours, nor fault injection: both differ,
    # each explained by its own loss.
    # (ROUTE_PREFIX_SEGMENT too, for /apix: a raw prefix match Gateway API does not make.)
    assert found["rewrite"] == {"ROUTE_REWRITE", "ROUTE_PREFIX_SEGMENT"}
    assert found["fault"] == {"ROUTE_FAULT_DELAY", "ROUTE_PREFIX_SEGMENT"}
    rewrites = [d for d in eq.divergences if d.aspect == "rewrite"]
    assert any(d.explained_by == [e for e in d.explained_by if e.startswith("ROUTE_REWRITE")]
               for d in rewrites)
    # The header changes were kept: they differ only for /apix, which Istio's raw prefix
    # sends to the rule and Gateway API's segment prefix does not.
    headers = [d for d in eq.divergences if d.aspect.endswith("_headers")]
    assert {d.probe.path for d in headers} == {"/apix"}


def test_a_dropped_header_change_is_a_conversion_bug(tmp_path: Path):
    result = _plan(tmp_path, "linkerd")

    def strip(body: dict[str, Any]) -> bool:
        rules = body.get("spec", {}).get("rules") or [] if body.get("kind") == "HTTPRoute" \
            else []
        found = False
        for rule in rules:
            kept = [f for f in rule.get("filters") or []
                    if f.get("type") != "RequestHeaderModifier"]
            found |= len(kept) != len(rule.get("filters") or [])
            rule["filters"] = kept
        return found

    eq = _again(result, "linkerd", strip)
    assert {d.aspect for d in eq.unexplained} == {"request_headers"}


def test_a_changed_prefix_rewrite_is_a_conversion_bug(tmp_path: Path):
    result = _plan(tmp_path, "consul")
    assert result.plan.equivalence is not None
    assert "rewrite" not in _by_aspect(result.plan.equivalence)  # Consul keeps the rewrite

    def move(body: dict[str, Any]) -> bool:
        found = False
        for route in body.get("spec", {}).get("routes") or [] \
                if body.get("kind") == "ServiceRouter" else []:
            dest = route.get("destination") or {}
            if "prefixRewrite" in dest:
                dest["prefixRewrite"] = "/v3"
                found = True
        return found

    eq = _again(result, "consul", move)
    assert {d.aspect for d in eq.unexplained} == {"rewrite"}


def test_fault_injection_is_explained_only_by_the_fault_loss(tmp_path: Path):
    result = _plan(tmp_path, "consul")
    eq = _again(result, "consul", None, drop="ROUTE_FAULT_DELAY")
    assert {d.aspect for d in eq.unexplained} == {"fault"}
    assert all("fault delay 5s 100%" in d.source for d in eq.unexplained)


def test_the_meshes_spellings_of_one_prefix_rewrite_agree():
    path = "/api/x?q=1"
    istio = changes.istio_rule({"rewrite": {"uri": "/v2"}}, {"uri": {"prefix": "/api"}},
                               path)[0]
    gateway = changes.gateway_rule(
        {"filters": [{"type": "URLRewrite", "urlRewrite": {"path": {
            "type": "ReplacePrefixMatch", "replacePrefixMatch": "/v2"}}}]},
        {"path": {"type": "PathPrefix", "value": "/api"}}, path)[0]
    consul = changes.consul_route({"prefixRewrite": "/v2"}, {"http": {"pathPrefix": "/api"}},
                                  path)[0]
    assert istio == gateway == consul == "path /v2/x?q=1"
