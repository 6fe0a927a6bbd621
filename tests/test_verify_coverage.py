"""Probe coverage (issue 14): every route rule, authorization rule and policy target a request
can reach gets at least one probe, on the samples and on every corpus set; what no request
can reach is named with why, and counted apart ("cannot be probed")."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.pipeline import PlanOptions, plan_migration
from migrate.verify.coverage import Coverage
from tests.conftest import SAMPLES, corpus_cases, shared_sets

MESHES = ("istio", "linkerd", "consul")
SAMPLE_CASES = [(mesh, p.name) for mesh in MESHES for p in sorted((SAMPLES / mesh).iterdir())
                if p.is_dir()]


def _coverage(mesh: str, path: Path, target: str | None = None) -> Coverage:
    target = target or ("linkerd" if mesh != "linkerd" else "istio")
    eq = plan_migration(PlanOptions(mesh, target, [str(path)])).plan.equivalence
    assert eq is not None and eq.coverage is not None
    return eq.coverage


def _gaps(cov: Coverage) -> dict[str, list[tuple[str, str]]]:
    return {name: t.probeable_missed for name, t in cov.tallies() if t.probeable_missed}


@pytest.mark.parametrize("mesh,name", SAMPLE_CASES, ids=[f"{m}-{n}" for m, n in SAMPLE_CASES])
def test_every_reachable_item_of_a_sample_is_probed(mesh: str, name: str):
    cov = _coverage(mesh, SAMPLES / mesh / name)
    assert _gaps(cov) == {}
    assert cov.complete()
    # Nothing is hidden in "cannot be probed": each such item names why.
    for _, tally in cov.tallies():
        assert tally.covered + len(tally.missed) == tally.total
        assert all(why for _, why in tally.missed)


CORPUS = [(m, s) for m in MESHES for s in shared_sets(m)]


@pytest.mark.parametrize("mesh,name", corpus_cases(CORPUS, 2),
                         ids=[f"{m}-{s}" for m, s in CORPUS] or None)
def test_every_reachable_item_of_a_corpus_set_is_probed(shared: Path, mesh: str, name: str):
    cov = _coverage(mesh, shared / "corpus" / mesh / name)
    assert _gaps(cov) == {}


def _case(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "in.yaml"
    path.write_text(SHOP + text)
    return path


SHOP = """
# A namespace of two Services, each in front of one Deployment (tests/test_verify_changes.py
# adds its routes to it too).
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {selector: {app: cart}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  template:
    metadata: {labels: {app: cart}}
    spec:
      serviceAccountName: cart
      containers: [{name: app, image: cart, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: audit, namespace: shop}
spec: {selector: {app: audit}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: audit, namespace: shop}
spec:
  selector: {matchLabels: {app: audit}}
  template:
    metadata: {labels: {app: audit}}
    spec:
      serviceAccountName: audit
      containers: [{name: app, image: audit, ports: [{containerPort: 8080}]}]
"""


def test_a_mesh_gateway_api_route_of_istio_is_probed(tmp_path: Path):
    """Istio reads Service-parented HTTPRoutes (GAMMA): their rules get probes, and a
    Service of the namespace nothing names gets a plain request and the default callers."""
    cov = _coverage("istio", _case(tmp_path, """
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cart, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: cart, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: cart, port: 80}]
"""))
    assert (cov.route_rules.covered, cov.route_rules.total) == (1, 1)
    assert (cov.services.covered, cov.services.total) == (2, 2)


def test_rules_past_the_per_service_cap_are_probed_alone(tmp_path: Path):
    """The generator keeps the first 400 probes of a Service; rules whose requests sort
    after them are probed alone, and those probes are compared too."""
    rules = "\n".join(f"""  - match: [{{uri: {{exact: /z{i:03d}}}, headers: {{x-a: {{exact: a}}, x-b: {{exact: b}}, x-c: {{exact: c}}}}}}]
    route: [{{destination: {{host: cart}}}}]""" for i in range(60))
    case = _case(tmp_path, f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: cart, namespace: shop}}
spec:
  hosts: [cart]
  http:
{rules}
""")
    eq = plan_migration(PlanOptions("istio", "linkerd", [str(case)])).plan.equivalence
    assert eq is not None and eq.coverage is not None
    assert (eq.coverage.route_rules.covered, eq.coverage.route_rules.total) == (60, 60)
    assert eq.per_service["shop/cart"][0] > 400  # the probes made alone were compared


def test_authorization_rules_and_targets_are_counted_and_unreachable_ones_named(
        tmp_path: Path):
    cov = _coverage("istio", _case(tmp_path, """
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: cart, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/audit]}}]
    to: [{operation: {methods: [GET]}}]
  - from: [{source: {requestPrincipals: ["*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: nobody, namespace: shop}
spec:
  selector: {matchLabels: {app: nothing-has-this}}
  rules:
  - to: [{operation: {methods: [GET]}}]
"""))
    assert (cov.authorization_rules.covered, cov.authorization_rules.total) == (1, 3)
    missed = dict(cov.authorization_rules.missed)
    assert "JWT" in missed["AuthorizationPolicy/shop/cart spec.rules[1]"]
    assert "no pod" in missed["AuthorizationPolicy/shop/nobody spec.rules[0]"]
    assert (cov.policy_targets.covered, cov.policy_targets.total) == (1, 2)
    assert cov.complete()  # both misses cannot be probed


def test_a_linkerd_identity_naming_every_account_of_a_namespace_is_probed(tmp_path: Path):
    path = tmp_path / "in.yaml"
    path.write_text(SHOP.replace("istio-injection: enabled", "{}").replace(
        "metadata: {name: shop, labels: {}}",
        "metadata: {name: shop, annotations: {linkerd.io/inject: enabled}}") + """
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: cart, namespace: shop}
spec: {podSelector: {matchLabels: {app: cart}}, port: 8080}
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: cart, namespace: shop}
spec:
  server: {name: cart}
  client:
    meshTLS:
      identities: ["*.billing.serviceaccount.identity.linkerd.cluster.local"]
""")
    cov = _coverage("linkerd", path)
    assert (cov.authorization_rules.covered, cov.authorization_rules.total) == (1, 1)
    assert cov.complete()
