"""Consul as the source, and as the target (issue 22, points 6, 7 and 13): what is carried
instead of being reported lost, what is now reported, and the per-workload identity action."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.helpers import codes, manifests, plan_yaml

HERE = Path(__file__).resolve().parent

APP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{port: 80, name: http}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata:
      labels: {app: api}
      annotations: {consul.hashicorp.com/connect-inject: "true"}
    spec: {serviceAccountName: api, containers: [{name: api, image: api}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80, name: http}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {consul.hashicorp.com/connect-inject: "true"}
    spec:
      serviceAccountName: web
      containers: [{name: web, image: web, env: [{name: API, value: "http://api.shop:80"}]}]
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata: {name: api, namespace: shop}
spec: {protocol: http}
"""

JWT = APP + """
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: JWTProvider
metadata: {name: okta, namespace: consul}
spec:
  issuer: https://issuer.example.com
  audiences: [api]
  jsonWebKeySet: {remote: {uri: "https://issuer.example.com/keys"}}
  locations: [{header: {name: Authorization, valuePrefix: "Bearer ", forward: true}}]
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata: {name: api, namespace: shop}
spec:
  destination: {name: api}
  sources:
  - name: web
    permissions:
    - action: allow
      http: {pathPrefix: /orders, methods: [GET]}
      jwt:
        providers:
        - name: okta
          verifyClaims: [{path: [role], value: admin}]
"""


def test_a_jwt_intention_becomes_request_principals_and_a_request_authentication():
    result = plan_yaml(JWT, source="consul", target="istio")
    assert "AUTHZ_REQUEST_PRINCIPALS" not in codes(result)
    policy = next(m for m in manifests(result, "AuthorizationPolicy")
                  if m["metadata"]["name"] == "api")
    [rule] = policy["spec"]["rules"]
    assert rule["from"] == [{"source": {"principals": ["cluster.local/ns/shop/sa/web"],
                                        "requestPrincipals": ["https://issuer.example.com/*"]}}]
    assert rule["when"] == [{"key": "request.auth.claims[role]", "values": ["admin"]}]
    # The plaintext twin of the staging window keeps the JWT requirement.
    twin = next(m for m in manifests(result, "AuthorizationPolicy")
                if m["metadata"]["name"] == "api-plaintext")
    assert twin["spec"]["rules"][0]["from"][0]["source"]["requestPrincipals"] == \
        ["https://issuer.example.com/*"]
    assert twin["spec"]["rules"][0]["when"] == rule["when"]
    [authn] = manifests(result, "RequestAuthentication")
    assert authn["spec"] == {"selector": {"matchLabels": {"app": "api"}}, "jwtRules": [{
        "issuer": "https://issuer.example.com", "audiences": ["api"],
        "jwksUri": "https://issuer.example.com/keys",
        "fromHeaders": [{"name": "Authorization", "prefix": "Bearer "}],
        "forwardOriginalToken": True}]}
    assert not result.plan.equivalence.unexplained


def test_a_jwt_of_an_undefined_provider_is_left_out_and_reported():
    text = JWT.replace("name: okta\n          verifyClaims", "name: other\n          verifyClaims")
    result = plan_yaml(text, source="consul", target="istio")
    assert "AUTHZ_REQUEST_PRINCIPALS" in codes(result)
    policy = next(m for m in manifests(result, "AuthorizationPolicy")
                  if m["metadata"]["name"] == "api")
    assert "rules" not in policy["spec"]  # fails closed
    assert manifests(result, "RequestAuthentication") == []


RESOLVER = APP + """
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceResolver
metadata: {name: api, namespace: shop}
spec:
  connectTimeout: 3s
  loadBalancer:
    policy: ring_hash
    ringHashConfig: {minimumRingSize: 1024}
    hashPolicies:
    - {field: header, fieldValue: x-user}
    - {sourceIP: true}
"""


def test_ring_hash_and_connect_timeout_are_carried_to_a_destination_rule():
    result = plan_yaml(RESOLVER, source="consul", target="istio")
    assert "DESTINATION_CONNECTION_POOL" not in codes(result)
    [rule] = manifests(result, "DestinationRule")
    assert rule["spec"]["trafficPolicy"] == {
        "loadBalancer": {"consistentHash": {"httpHeaderName": "x-user",
                                            "ringHash": {"minimumRingSize": 1024}}},
        "connectionPool": {"tcp": {"connectTimeout": "3s"}}}
    # Istio hashes on one attribute: the second policy is reported, not silently dropped.
    [loss] = [x for x in result.losses if x.code == "DESTINATION_LB_CONSISTENT_HASH"]
    assert "1 more hash policies" in loss.message


def test_linkerd_still_reports_what_it_cannot_carry():
    result = plan_yaml(RESOLVER, source="consul", target="linkerd")
    assert {"DESTINATION_LB_CONSISTENT_HASH", "DESTINATION_CONNECT_TIMEOUT"} <= set(codes(result))


PERMISSIVE = APP + """
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: Mesh
metadata: {name: mesh, namespace: consul}
spec: {allowEnablingPermissiveMutualTLS: true}
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata: {name: web, namespace: shop}
spec: {protocol: http, mutualTLSMode: permissive}
"""


def test_a_permissive_source_service_is_reported_and_explains_the_plaintext_divergence():
    for target in ("istio", "linkerd"):
        result = plan_yaml(PERMISSIVE, source="consul", target=target)
        [loss] = [x for x in result.losses if x.code == "CONSUL_PERMISSIVE_PLAINTEXT"]
        assert loss.object.name == "web" and loss.path == "spec.mutualTLSMode"
        assert result.plan.equivalence.divergences and not result.plan.equivalence.unexplained


def test_a_workload_running_as_default_gets_its_own_action_on_a_consul_target():
    source = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80, name: http}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{port: 80, name: http}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {serviceAccountName: api, containers: [{name: api, image: api}]}
"""
    result = plan_yaml(source, source="istio", target="consul")
    move = next(s for s in result.plan.steps if s.kind == "move")
    actions = [m for m in move.manual if "runs as ServiceAccount" in m]
    assert actions == [m for m in actions if m.startswith("Deployment shop/web runs as "
                                                         "ServiceAccount default")]
    assert len(actions) == 1 and "create ServiceAccount web in shop" in actions[0]


def test_the_ingress_note_does_not_name_istio_on_a_consul_source():
    table = yaml.safe_load((HERE.parent / "mappings" / "linkerd.yaml").read_text())
    note = table["features"]["ingress.gateway"]["note"]
    assert "The Istio ingress gateway keeps serving" not in note
    assert "Consul API gateway" in note
