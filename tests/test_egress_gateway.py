"""An Istio Gateway that selects the egress gateway carries traffic out of the mesh: it is
reported as an egress gateway, gets no ingress step and no "move DNS" (issue 16)."""

from __future__ import annotations

import pytest

from tests.helpers import plan_yaml, texts

APP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: api}]}
"""

GATEWAY = """---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: %s, namespace: istio-system}
spec:
  selector: {istio: %s}
  servers: [{port: {number: 443, name: tls, protocol: TLS}, hosts: [api.example.com]}]
"""


@pytest.mark.parametrize("target", ["linkerd", "consul"])
def test_an_egress_gateway_is_not_ingress(target: str):
    result = plan_yaml(APP + GATEWAY % ("egress", "egressgateway"), "istio", target)
    assert [s.kind for s in result.plan.steps if s.kind == "ingress"] == []
    codes = {x.code for x in result.losses if x.object.name == "egress"}
    assert codes == {"EGRESS_GATEWAY"}
    cleanup = result.plan.steps[-1]
    deletes = [c for c in texts(cleanup.commands) if "gateway.networking.istio.io/egress" in c]
    assert len(deletes) == 1 and "DNS" not in deletes[0]


def test_an_ingress_gateway_still_gets_its_ingress_step():
    result = plan_yaml(APP + GATEWAY % ("web", "ingressgateway"), "istio", "linkerd")
    [ingress] = [s for s in result.plan.steps if s.kind == "ingress"]
    assert any("gateway.networking.istio.io/web" in c for c in texts(ingress.commands))
    assert {x.code for x in result.losses if x.object.name == "web"} == {"INGRESS_GATEWAY"}
