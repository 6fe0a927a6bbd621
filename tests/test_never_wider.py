"""Issue 15, "never more permissive, at any step", as a property.

Random small Istio meshes (three namespaces calling each other, a Service with a v1 and a v2
Deployment in each, and random AuthorizationPolicies: ALLOW or DENY, on a workload or the
whole namespace, with principals, namespaces, ports, paths and methods; sometimes STRICT
mTLS) are planned to Linkerd and to Consul. At every step of every plan, each request the
source refused (the coexistence check's ``admits_more``, evaluated with each mesh's own
semantics in the mixed state) must be admitted only where a reported loss's declared effect
covers it: authorization, ``allow-more``, for that kind of caller, within its window.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate.pipeline import PlanOptions, plan_migration
from migrate.verify.admits import unexplained

NAMESPACES = ("alpha", "beta", "gamma")
CALLS = {"alpha": ("beta",), "beta": ("gamma",), "gamma": ()}
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def cluster(edges: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Namespaces, accounts, a Service ``app`` with v1 and v2 Deployments in each."""
    out: list[dict[str, Any]] = []
    for ns in NAMESPACES:
        out.append({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}})
        out.append({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": f"{ns}-sa", "namespace": ns}})
        out.append({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "app", "namespace": ns},
                    "spec": {"selector": {"app": "app"},
                             "ports": [{"name": "http", "port": 8080},
                                       {"name": "http-admin", "port": 9090}]}})
        env = [{"name": f"CALL_{i}", "value": f"http://app.{callee}:8080"}
               for i, (caller, callee) in enumerate(edges) if caller == ns]
        for version in ("v1", "v2"):
            labels = {"app": "app", "version": version}
            out.append({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": f"app-{version}", "namespace": ns},
                "spec": {"selector": {"matchLabels": labels}, "template": {
                    "metadata": {"labels": labels},
                    "spec": {"serviceAccountName": f"{ns}-sa", "containers": [{
                        "name": "app", "image": "app",
                        "ports": [{"containerPort": 8080}, {"containerPort": 9090}],
                        "env": env}]}}}})
    return out


sources = st.one_of(
    st.builds(lambda ns: {"principals": [f"cluster.local/ns/{ns}/sa/{ns}-sa"]},
              st.sampled_from(NAMESPACES)),
    st.builds(lambda ns: {"namespaces": [ns]}, st.sampled_from(NAMESPACES)))
operations = st.fixed_dictionaries({}, optional={
    "ports": st.just(["8080"]) | st.just(["9090"]),
    "paths": st.lists(st.sampled_from(["/api/*", "/admin", "/"]), min_size=1, max_size=2,
                      unique=True),
    "methods": st.lists(st.sampled_from(["GET", "POST", "DELETE"]), min_size=1, max_size=2,
                        unique=True)})
rules = st.builds(
    lambda src, op: {**({"from": [{"source": src}]} if src else {}),
                     **({"to": [{"operation": op}]} if op else {})},
    st.none() | sources, st.none() | operations)


@st.composite
def policies(draw: st.DrawFn, index: int) -> dict[str, Any]:
    ns = draw(st.sampled_from(NAMESPACES))
    spec: dict[str, Any] = {"action": draw(st.sampled_from(["ALLOW", "ALLOW", "DENY"]))}
    selector = draw(st.sampled_from([None, {"app": "app"}, {"app": "app", "version": "v1"}]))
    if selector:
        spec["selector"] = {"matchLabels": selector}
    spec["rules"] = draw(st.lists(rules, min_size=0 if spec["action"] == "ALLOW" else 1,
                                  max_size=2))
    if not spec["rules"]:
        del spec["rules"]  # an ALLOW without rules: allow nothing
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": f"p{index}", "namespace": ns}, "spec": spec}


@st.composite
def meshes(draw: st.DrawFn) -> list[dict[str, Any]]:
    edges = [(a, b) for a in NAMESPACES for b in CALLS[a]]
    objects = cluster(edges)
    count = draw(st.integers(min_value=1, max_value=3))
    objects += [draw(policies(i)) for i in range(count)]
    if draw(st.booleans()):
        objects.append({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                        "metadata": {"name": "default",
                                     "namespace": draw(st.sampled_from(NAMESPACES))},
                        "spec": {"mtls": {"mode": "STRICT"}}})
    return objects


@pytest.mark.parametrize("target", ["linkerd", "consul"])
@SETTINGS
@given(objects=meshes())
def test_no_step_admits_what_the_source_refused_without_a_loss_saying_so(
        target: str, objects: list[dict[str, Any]]):
    text = yaml.safe_dump_all(objects, sort_keys=True).encode()
    result = plan_migration(PlanOptions(source="istio", target=target, paths=["-"],
                                        stdin=io.BytesIO(text)))
    co = result.plan.coexistence
    assert co is not None
    wider = unexplained(co)
    assert wider == [], [(step, r["request"], r["client"], r["why"]) for step, r in wider]


def test_the_property_has_teeth():
    """The property is not vacuous: on a mesh with a grant from another namespace, the check
    finds requests a step admits that the source refused (the twin's window), and they pass
    only because PLAN_STAGING_OPEN explains them (test_staging_window.py shows the same plan
    failing with exit 3 once that loss is gone)."""
    objects = cluster([("alpha", "beta")]) + [{
        "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "allow-alpha", "namespace": "beta"},
        "spec": {"action": "ALLOW", "selector": {"matchLabels": {"app": "app"}},
                 "rules": [{"from": [{"source": {"principals": [
                     "cluster.local/ns/alpha/sa/alpha-sa"]}}],
                     "to": [{"operation": {"paths": ["/api/*"]}}]}]}}]
    text = yaml.safe_dump_all(objects, sort_keys=True).encode()
    options = PlanOptions(source="istio", target="linkerd", paths=["-"],
                          stdin=io.BytesIO(text))
    result = plan_migration(options)
    assert unexplained(result.plan.coexistence or []) == []
    explained = [r for s in result.plan.coexistence or [] for r in s["admits_more"]]
    assert any(any(e.startswith("PLAN_STAGING_OPEN") for e in r["explained_by"])
               for r in explained)


def test_strict_with_a_rule_naming_no_identity_still_requires_one():
    """Found by the property: STRICT plus an ALLOW rule with no source gave a Linkerd grant
    with no authentication at all, which admits plaintext Istio had refused."""
    objects = cluster([]) + [
        {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "open", "namespace": "alpha"},
         "spec": {"action": "ALLOW", "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]}},
        {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
         "metadata": {"name": "default", "namespace": "alpha"},
         "spec": {"mtls": {"mode": "STRICT"}}}]
    text = yaml.safe_dump_all(objects, sort_keys=True).encode()
    result = plan_migration(PlanOptions(source="istio", target="linkerd", paths=["-"],
                                        stdin=io.BytesIO(text)))
    grants = [m.body for s in result.plan.steps if s.kind == "move" for m in s.manifests
              if m.kind == "AuthorizationPolicy" and not m.name.endswith("-plaintext")
              and m.namespace == "alpha" and "probes" not in m.name]
    assert grants
    for g in grants:
        kinds = [r["kind"] for r in g["spec"]["requiredAuthenticationRefs"]]
        assert "MeshTLSAuthentication" in kinds, g
    mtls = [m.body for s in result.plan.steps for m in s.manifests
            if m.kind == "MeshTLSAuthentication" and m.namespace == "alpha"]
    assert {"identities": ["*"]} in [m["spec"] for m in mtls]
    assert result.plan.equivalence is not None and result.plan.equivalence.unexplained == []
    assert unexplained(result.plan.coexistence or []) == []
