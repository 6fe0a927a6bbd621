"""Losses reported exactly where something is lost: Consul name collisions explain the
divergences they cause, opaque ports cost nothing where Consul keeps the service tcp, and a
per-match port on a Service's only port costs nothing in any target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from migrate.losses import Loss
from migrate.pipeline import PlanOptions, PlanResult, plan_migration
from migrate.verify.compare import compare, final_state
from tests.helpers import texts

COLLISION = """
apiVersion: v1
kind: Namespace
metadata: {name: ns1, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ns2, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ns1}
spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: ns2}
spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-v1, namespace: ns1}
spec:
  template:
    metadata: {labels: {app: web, version: v1}}
    spec: {serviceAccountName: web, containers: [{name: app, image: x}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-v1, namespace: ns2}
spec:
  template:
    metadata: {labels: {app: web, version: v1}}
    spec: {serviceAccountName: web, containers: [{name: app, image: x}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-v2, namespace: ns2}
spec:
  template:
    metadata: {labels: {app: web, version: v2}}
    spec: {serviceAccountName: web, containers: [{name: app, image: x}]}
---
apiVersion: v1
kind: Service
metadata: {name: client, namespace: ns1}
spec: {selector: {app: client}, ports: [{name: http, port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: ns1}
spec:
  template:
    metadata: {labels: {app: client}}
    spec:
      serviceAccountName: client
      containers: [{name: app, image: x, env: [{name: A, value: "http://web.ns2"}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: ns2}
spec:
  host: web
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: ns2}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /beta}}]
    route: [{destination: {host: web, subset: v2}}]
    timeout: 3s
  - route:
    - {destination: {host: web, subset: v1}, weight: 80}
    - {destination: {host: web, subset: v2}, weight: 20}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: ns1}
spec:
  hosts: [web]
  http:
  - route: [{destination: {host: web}}]
    timeout: 5s
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: ns2}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/ns1/sa/client]}}]
    to: [{operation: {methods: [GET]}}]
"""


def plan(tmp_path: Path, text: str, source: str, target: str) -> PlanResult:
    """Plan one input written to a file."""
    path = tmp_path / "input.yaml"
    path.write_text(text, encoding="utf-8")
    return plan_migration(PlanOptions(source, target, [str(path)]))


def codes(result: PlanResult, code: str) -> list[Loss]:
    """The losses of one code."""
    return [x for x in result.losses if x.code == code]


# -- Consul name collisions -----------------------------------------------------------------

def test_collision_is_reported_once_and_explains_every_divergence(tmp_path: Path):
    result = plan(tmp_path, COLLISION, "istio", "consul")
    [loss] = codes(result, "CONSUL_NAME_COLLISION")
    assert str(loss.object) == "Service/ns2/web"
    # The fix is named: a rename, or Enterprise namespace mirroring with its Helm values.
    assert "Rename" in loss.action and "mirroringK8S=true" in loss.action
    assert "global.enableConsulNamespaces=true" in loss.action
    eq = result.plan.equivalence
    assert eq is not None and eq.divergences, "the merged service behaves differently"
    assert eq.unexplained == []
    wanted = "CONSUL_NAME_COLLISION Service/ns2/web metadata.name"
    # (The client Service is probed too, for its namespace's defaults: its plaintext callers
    # diverge because of Consul's strict mTLS, CONSUL_MTLS_MODE's business, not this one's.)
    shared = [d for d in eq.divergences if d.probe.service == "web"]
    assert shared and all(wanted in d.explained_by for d in shared)
    assert all(d.explained_by == ["CONSUL_MTLS_MODE Namespace/ns1 metadata"]
               for d in eq.divergences if d.probe.service != "web")
    # Both sides of the collision diverge (the winner's instances merge too), in every aspect.
    assert {d.probe.namespace for d in shared} == {"ns1", "ns2"}
    assert {d.aspect for d in shared} >= {"backends", "authorization"}


def test_without_the_collision_loss_the_same_divergences_are_unexplained(tmp_path: Path):
    """The collision loss, not some other loss, is what explains them."""
    result = plan(tmp_path, COLLISION, "istio", "consul")
    target, annotations = final_state(([m.body for m in s.manifests], texts(s.commands))
                                      for s in result.plan.steps)
    source = [o.body for o in result.read.objects]
    others = [x for x in result.losses if x.code != "CONSUL_NAME_COLLISION"]
    eq = compare(source, target, annotations, others, source_mesh="istio",
                 target_mesh="consul")
    shared = [d for d in eq.divergences if d.probe.service == "web"]
    assert shared and all(not d.explained_by for d in shared)


def test_collision_explains_divergences_on_the_shared_name_only(tmp_path: Path):
    """A divergence on another Service is not explained by the collision: client's router
    sending its traffic to the wrong service stays a conversion bug."""
    text = COLLISION + """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: client, namespace: ns1}
spec:
  hosts: [client]
  http:
  - route: [{destination: {host: client}}]
    timeout: 7s
"""
    result = plan(tmp_path, text, "istio", "consul")
    target, annotations = final_state(([m.body for m in s.manifests], texts(s.commands))
                                      for s in result.plan.steps)
    for body in target:
        if body.get("kind") == "ServiceRouter" and body["metadata"]["name"] == "client":
            body["spec"]["routes"] = [{"destination": {"service": "nowhere"}}]
    source = [o.body for o in result.read.objects]
    eq = compare(source, target, annotations, list(result.losses), source_mesh="istio",
                 target_mesh="consul")
    assert {d.probe.service for d in eq.unexplained} == {"client"}
    assert all(d.probe.service == "web" for d in eq.divergences if d.explained_by)


# -- opaque ports with Consul as the target -------------------------------------------------

LINKERD = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, annotations: {linkerd.io/inject: enabled}}
---
apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: shop
  annotations: {config.linkerd.io/opaque-ports: "9000"}
spec: {selector: {app: db}, ports: [{name: db, port: 9000, targetPort: 9000}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: shop}
spec:
  template:
    metadata: {labels: {app: db}}
    spec:
      serviceAccountName: db
      containers: [{name: db, image: x, ports: [{containerPort: 9000}]}]
---
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: shop
  annotations: {config.linkerd.io/opaque-ports: "%(api_opaque)s"}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080, targetPort: 8080}, {name: raw, port: 7000, targetPort: 7000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  template:
    metadata: {labels: {app: api}}
    spec:
      serviceAccountName: api
      containers: [{name: api, image: x, ports: [{containerPort: 8080}, {containerPort: 7000}]}]
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: db, namespace: shop}
spec: {podSelector: {matchLabels: {app: db}}, port: 9000, proxyProtocol: opaque}
"""


def _defaults(result: PlanResult, name: str) -> list[dict[str, Any]]:
    return [m.body["spec"] for s in result.plan.steps for m in s.manifests
            if m.body.get("kind") == "ServiceDefaults" and m.body["metadata"]["name"] == name]


def test_opaque_port_of_a_tcp_consul_service_is_not_a_loss(tmp_path: Path):
    result = plan(tmp_path, LINKERD % {"api_opaque": "7000"}, "linkerd", "consul")
    # db is tcp in Consul (no L7 protocol declared): exactly Linkerd's opaque behaviour, both
    # for the Service annotation and for the Server.
    assert _defaults(result, "db") and all(
        spec.get("protocol", "tcp") == "tcp" for spec in _defaults(result, "db"))
    lost = codes(result, "PROTOCOL_OPAQUE")
    assert [str(x.object) for x in lost] == ["Service/shop/api"]


def test_opaque_port_on_a_service_consul_declares_http_is_a_loss(tmp_path: Path):
    """api mixes an HTTP port and an opaque one; Consul has one protocol per service."""
    result = plan(tmp_path, LINKERD % {"api_opaque": "7000"}, "linkerd", "consul")
    assert {spec.get("protocol") for spec in _defaults(result, "api")} == {"http"}
    [loss] = codes(result, "PROTOCOL_OPAQUE")
    assert loss.severity.value == "degraded"
    assert loss.path == "metadata.annotations.config.linkerd.io/opaque-ports"
    assert "shop/api as http" in loss.message and "own Kubernetes Service" in loss.action


def test_opaque_server_port_is_matched_to_the_services_targeting_it(tmp_path: Path):
    """A Server names a pod port: the Services whose targetPort it is decide."""
    text = LINKERD % {"api_opaque": "7000"} + """---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: api-raw, namespace: shop}
spec: {podSelector: {matchLabels: {app: api}}, port: 7000, proxyProtocol: opaque}
"""
    result = plan(tmp_path, text, "linkerd", "consul")
    assert sorted(str(x.object) for x in codes(result, "PROTOCOL_OPAQUE")) == [
        "Server/shop/api-raw", "Service/shop/api"]


def test_opaque_declaration_is_still_a_loss_for_istio(tmp_path: Path):
    """The Consul exemption is Consul's: Istio takes the protocol from port names."""
    result = plan(tmp_path, LINKERD % {"api_opaque": "7000"}, "linkerd", "istio")
    assert {str(x.object) for x in codes(result, "PROTOCOL_OPAQUE")} >= {
        "Service/shop/db", "Server/shop/db"}


# -- per-match ports ------------------------------------------------------------------------

PORTS = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {selector: {app: reviews}, ports: %(ports)s}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews, namespace: shop}
spec:
  template:
    metadata: {labels: {app: reviews}}
    spec: {serviceAccountName: reviews, containers: [{name: app, image: x}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{port: 9080, uri: {prefix: /v2}}]
    route: [{destination: {host: reviews}}]
    timeout: 2s
  - route: [{destination: {host: reviews}}]
"""
ONE_PORT = "[{name: http, port: 9080}]"
TWO_PORTS = "[{name: http, port: 9080}, {name: http-admin, port: 9090}]"
OTHER_PORT = "[{name: http, port: 8080}]"


@pytest.mark.parametrize("target", ["linkerd", "consul"])
@pytest.mark.parametrize(("ports", "lost"), [(ONE_PORT, False), (TWO_PORTS, True),
                                             (OTHER_PORT, True)],
                         ids=["only-port", "one-of-two", "not-a-port"])
def test_match_port_is_a_loss_unless_it_is_the_only_port(tmp_path: Path, target: str,
                                                         ports: str, lost: bool):
    result = plan(tmp_path, PORTS % {"ports": ports}, "istio", target)
    found = [x.path for x in codes(result, "ROUTE_MATCH_PORT")]
    assert found == (["spec.http[0].match[0].port"] if lost else [])
    eq = result.plan.equivalence
    assert eq is not None and eq.unexplained == []
