"""Conversion and verification bugs the property-based strategies (tests/test_property.py)
found, each kept as its shrunk example: the plan's equivalence check finds no divergence that
no loss explains."""

from __future__ import annotations

from typing import Any

import yaml

from migrate.pipeline import PlanResult
from tests.test_property import cluster, plan


def planned(source: str, target: str, text: str) -> PlanResult:
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(text) if d]
    return plan(source, target, cluster(source) + docs)


def explanations(result: PlanResult) -> set[str]:
    eq = result.plan.equivalence
    assert eq is not None and eq.not_evaluated == ""
    assert eq.unexplained == [], eq.unexplained[:2]
    return {e.split()[0] for d in eq.divergences for e in d.explained_by}


DR = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr-0, namespace: alpha}
spec:
  host: a
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"""


def test_a_raw_prefix_choosing_another_rule_explains_the_other_rules_timeout():
    # Istio's raw prefix /api matches /apix; Gateway API's segment prefix does not, so the
    # request takes the next rule and its timeout: ROUTE_PREFIX_SEGMENT is why.
    result = planned("istio", "linkerd", DR + """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs-0, namespace: alpha}
spec:
  hosts: [a]
  http:
  - match: [{uri: {prefix: /api}}]
    retries: {attempts: 0, perTryTimeout: 1s, retryOn: 5xx}
    route: [{destination: {host: a, subset: v1}}]
  - route: [{destination: {host: a, subset: v1}}]
    timeout: 1s
""")
    assert "ROUTE_PREFIX_SEGMENT" in explanations(result)


def test_a_consul_prefix_with_a_slash_choosing_a_rule_explains_its_retries():
    # Consul's raw prefix /static/ does not match /static; PathPrefix /static/ does.
    result = planned("consul", "linkerd", """
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata: {name: a, namespace: alpha}
spec: {protocol: http}
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceRouter
metadata: {name: a, namespace: alpha}
spec:
  routes:
  - match: {http: {pathPrefix: /static/}}
    destination: {numRetries: 1, retryOnStatusCodes: [503]}
""")
    assert "ROUTE_PREFIX_SEGMENT" in explanations(result)


def test_consul_first_match_against_specificity_explains_the_retries():
    # GET / (first, with retries) against /api (second): Consul takes the first,
    # Gateway API the longer prefix; ROUTE_ORDER is why the retries differ.
    result = planned("consul", "linkerd", """
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata: {name: a, namespace: alpha}
spec: {protocol: http}
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceRouter
metadata: {name: a, namespace: alpha}
spec:
  routes:
  - match: {http: {methods: [GET], pathPrefix: /}}
    destination: {numRetries: 1, retryOnStatusCodes: [503]}
  - match: {http: {pathPrefix: /api}}
    destination: {}
""")
    assert "ROUTE_ORDER" in explanations(result)


def test_two_virtual_services_for_one_host_are_reported():
    result = planned("istio", "linkerd", DR + """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs-0, namespace: alpha}
spec:
  hosts: [a]
  http: [{match: [{uri: {prefix: /api}}], route: [{destination: {host: a, subset: v1}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs-1, namespace: alpha}
spec:
  hosts: [a]
  http: [{route: [{destination: {host: a, subset: v1}}]}]
""")
    conflicts = sorted(x.object.name for x in result.losses if x.code == "ROUTE_HOST_CONFLICT")
    assert conflicts == ["vs-0", "vs-1"]
    assert "ROUTE_HOST_CONFLICT" in explanations(result)


def test_an_exact_match_ties_an_earlier_path_prefix_of_the_same_path():
    # Linkerd (fact linkerd.route-match-order): a path match counts the characters it matched,
    # so Exact /api and PathPrefix /api tie on /api and the earlier rule wins (the Gateway API
    # spec, which Linkerd 2.20 does not follow here, would let the Exact win). The PathPrefix
    # is read as Exact /api plus prefix /api/; its Exact part keeps its place.
    result = planned("linkerd", "istio", """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: route-2, namespace: beta}
spec:
  parentRefs: [{group: core, kind: Service, name: c, port: 8080}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: c-v2, port: 8080}]
  - matches: [{path: {type: Exact, value: /api}}]
    backendRefs: [{name: c-v1, port: 8080}]
""")
    explanations(result)
    [vs] = [m.body for s in result.plan.steps for m in s.manifests
            if m.kind == "VirtualService" and m.body["metadata"]["namespace"] == "beta"]
    first = vs["spec"]["http"][0]
    assert first["match"][0]["uri"] == {"exact": "/api"}
    assert first["route"][0]["destination"]["host"] == "c-v2"
