"""A move step restarts callees before their callers (operator review of issue 16): a pod
that restarted calls in plaintext with no identity, which a callee still on the source refuses
under STRICT mTLS; a caller still on the source reaches a restarted callee through the
target's staged policy."""

from __future__ import annotations

from tests.helpers import codes, plan_yaml, texts

NAMESPACE = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}
"""


def _app(name: str, calls: str = "") -> str:
    env = f", env: [{{name: UPSTREAM, value: 'http://{calls}:8080'}}]" if calls else ""
    return f"""
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: {name}, image: {name}, ports: [{{containerPort: 8080}}]{env}}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: shop}}
spec: {{selector: {{app: {name}}}, ports: [{{port: 8080}}]}}
"""


def _restarted(result) -> list[str]:
    move = next(s for s in result.plan.steps if s.kind == "move")
    return [c.split()[3].split("/")[1] for c in texts(move.commands)
            if c.startswith("kubectl rollout restart ")]


def test_a_callee_restarts_before_its_caller_whatever_the_names():
    # "api" sorts before "zoo", and calls it: zoo must restart first.
    result = plan_yaml(NAMESPACE + _app("api", calls="zoo") + _app("zoo"), verify=False)
    assert _restarted(result) == ["zoo", "api"]
    assert "PLAN_RESTART_CYCLE" not in codes(result)


def test_workloads_that_call_each_other_are_reported():
    result = plan_yaml(NAMESPACE + _app("api", calls="zoo") + _app("zoo", calls="api"),
                       verify=False)
    assert sorted(_restarted(result)) == ["api", "zoo"]
    [cycle] = [loss for loss in result.losses if loss.code == "PLAN_RESTART_CYCLE"]
    assert "Deployment shop/api, Deployment shop/zoo may call each other" in cycle.message


def test_an_ingress_backend_restarts_after_the_workloads_it_may_call():
    ingress = """
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: front, namespace: shop}
spec:
  hosts: ["*"]
  gateways: [public]
  http: [{route: [{destination: {host: alpha.shop.svc.cluster.local}}]}]
"""
    result = plan_yaml(NAMESPACE + _app("alpha") + _app("beta") + ingress, verify=False)
    assert _restarted(result) == ["beta", "alpha"]
