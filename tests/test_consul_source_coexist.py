"""A Consul source during coexistence (issue 22, points 1 to 5): what Consul's own proxies do
with the entries left at each step, and the plan that keeps calls working.

The coexistence check is run on the plan's steps and on the same steps in the old style (the
source entries kept until enforce, no permissive mode for pods waiting inside a step), which
it must refuse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from migrate.pipeline import PlanOptions, PlanResult, plan_migration, verify_settings
from migrate.plan.commands import render
from migrate.verify.coexist import coexistence
from tests.helpers import plan_yaml, texts

SHOP = Path(__file__).resolve().parent.parent / "samples" / "consul" / "shop"


def shop(target: str = "istio") -> tuple[PlanResult, PlanOptions]:
    options = PlanOptions(source="consul", target=target, paths=[str(SHOP)])
    return plan_migration(options), options


def check(result: PlanResult, options: PlanOptions, keep=lambda step, command: True,
          objects: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The coexistence check on the plan's steps, keeping only the commands ``keep`` accepts."""
    moved: list[str] = []
    steps = []
    for step in result.plan.steps:
        if step.kind == "move":
            moved = moved + step.namespaces
        steps.append(([m.body for m in step.manifests],
                      [render(c) for c in step.commands if keep(step, c)], list(moved)))
    return coexistence(steps, objects or [o.body for o in result.read.objects],
                       [(a, b) for a, b, _ in result.plan.dependencies], source_mesh="consul",
                       target_mesh=options.target, settings=verify_settings(options))


def refused(record: list[dict[str, Any]]) -> list[tuple[int, str, str, str]]:
    return sorted((i, r["caller"], r["callee"], r["why"]) for i, step in enumerate(record)
                  for r in step["refused"])


def old_style(step, command) -> bool:
    """The planner before issue 22: no entry deleted before the pods restart (they went at
    enforce), no permissive mode for the pods waiting inside a step."""
    text = render(command)
    return not ("before the pods restart" in text or
                text.startswith("kubectl patch servicedefaults"))


def test_the_plan_keeps_every_call_of_the_shop_working():
    for target in ("istio", "linkerd"):
        result, options = shop(target)
        assert refused(check(result, options)) == [], target


def test_the_check_refuses_the_old_style_plan_virtual_ips_and_waiting_pods():
    result, options = shop()
    found = refused(check(result, options, old_style))
    # Point 1: the callee's entries keep its virtual IP, Consul callers reach no endpoints.
    assert any(caller == "catalog" and callee == "shared-db" and "virtual IP" in why
               for _, caller, callee, why in found)
    assert any(caller == "frontend" and callee == "orders" and "virtual IP" in why
               for _, caller, callee, why in found)
    # Point 2: payments waits for its restart in strict mTLS while orders already moved.
    assert any(caller == "orders" and callee == "payments" and "waits for its restart" in why
               for _, caller, callee, why in found)


def test_entries_naming_a_moved_service_go_before_its_pods_restart():
    result, _ = shop()
    step = next(s for s in result.plan.steps if s.namespaces == ["shared-db"] and
                s.kind == "move")
    commands = texts(step.commands)
    first_roll = next(i for i, c in enumerate(commands) if c.startswith("kubectl patch statefulset"))
    deletes = [i for i, c in enumerate(commands)
               if c.startswith(("kubectl delete servicedefaults", "kubectl delete serviceintentions"))]
    assert deletes and max(deletes) < first_roll
    assert "PLAN_VIRTUAL_IP" in {loss.code for loss in step.losses}


def test_a_step_labels_the_namespace_first_and_rolls_each_workload_once():
    result, _ = shop()
    step = next(s for s in result.plan.steps if s.namespaces == ["catalog"] and s.kind == "move")
    commands = texts(step.commands)
    label = commands.index("kubectl label namespace catalog istio-injection=enabled --overwrite")
    patch = next(i for i, c in enumerate(commands) if c.startswith("kubectl patch deployment"))
    assert label < patch
    assert not any(c.startswith("kubectl rollout restart") for c in commands)
    assert sum(c.startswith("kubectl rollout status") for c in commands) == 2
    rollback = texts(step.rollback)
    assert not any(c.startswith("kubectl rollout restart") for c in rollback)
    assert rollback.index("kubectl label namespace catalog istio-injection-") < next(
        i for i, c in enumerate(rollback) if c.startswith("kubectl patch deployment"))


def test_pods_waiting_in_a_step_are_permissive_and_the_mesh_allows_it():
    result, _ = shop()
    step = next(s for s in result.plan.steps if s.namespaces == ["orders", "payments"])
    commands = texts(step.commands)
    permissive = commands.index(
        "kubectl patch servicedefaults.consul.hashicorp.com payments -n payments --type=merge "
        "-p '{\"spec\":{\"mutualTLSMode\":\"permissive\"}}'")
    assert permissive < commands.index(next(c for c in commands
                                            if c.startswith("kubectl patch deployment payments")))
    # orders (called by frontend, a later step) restarts first; payments waits, permissive.
    assert commands.index(next(c for c in commands if c.startswith("kubectl patch deployment "
                                                                   "orders"))) < \
        commands.index(next(c for c in commands if c.startswith("kubectl patch deployment "
                                                                "payments")))
    mesh = next(m.body for m in result.plan.steps[0].manifests if m.kind == "Mesh")
    assert mesh["spec"]["allowEnablingPermissiveMutualTLS"] is True
    assert "PLAN_WAITING_PERMISSIVE" in {loss.code for loss in step.losses}


def test_mesh_destinations_only_lifted_at_step_00_is_reported():
    result, _ = shop()
    [loss] = [x for x in result.losses if x.code == "PLAN_EGRESS_OPEN"]
    assert loss.object.kind == "Mesh" and loss.path == "spec.transparentProxy.meshDestinationsOnly"
    assert "step 5" in loss.message


GATEWAY = """
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80}]}
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
    spec: {serviceAccountName: web, containers: [{name: web, image: web}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: api-gateway, namespace: edge}
spec:
  gatewayClassName: consul
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: edge}
spec:
  parentRefs: [{name: api-gateway}]
  rules: [{backendRefs: [{name: web, namespace: shop, port: 80}]}]
"""


def test_the_api_gateway_is_replaced_before_its_backend_leaves_consul():
    result = plan_yaml(GATEWAY, source="consul", target="istio")
    options = PlanOptions(source="consul", target="istio", paths=["-"])
    objects = [d for d in yaml.safe_load_all(GATEWAY) if d]
    kinds = [s.kind for s in result.plan.steps]
    assert result.plan.ingress_namespaces == ["shop"]
    # The ingress step comes before the backend's move, and enforce after both.
    shop_move = next(i for i, s in enumerate(result.plan.steps)
                     if s.kind == "move" and s.namespaces == ["shop"])
    assert kinds.index("ingress") < shop_move < kinds.index("enforce")
    ingress = result.plan.steps[kinds.index("ingress")]
    commands = texts(ingress.commands)
    assert any(c.startswith("kubectl delete httproute.gateway.networking.k8s.io/web -n edge")
               for c in commands)
    assert any(c.startswith("kubectl delete gateway.gateway.networking.k8s.io/api-gateway")
               for c in commands)
    # web has no ServiceDefaults: a permissive one admits the new gateway's plaintext until web
    # moves, and web's move deletes it with the other entries naming web.
    assert [m.kind for m in ingress.manifests] == ["ServiceDefaults"]
    move = result.plan.steps[shop_move]
    assert any(c.startswith("kubectl delete servicedefaults.consul.hashicorp.com/web -n shop")
               for c in texts(move.commands))
    found = check(result, options, objects=objects)
    assert [r for step in found for r in step["refused"]] == []


def test_the_check_refuses_a_moved_backend_the_api_gateway_still_routes_to():
    result = plan_yaml(GATEWAY, source="consul", target="istio")
    options = PlanOptions(source="consul", target="istio", paths=["-"])
    objects = [d for d in yaml.safe_load_all(GATEWAY) if d]
    # The old style: the Consul gateway's routes stay while web moves.
    old = check(result, options, lambda s, c: "gateway.networking.k8s.io" not in render(c),
                objects)
    assert any(r["caller"] == "(ingress)" and "BackendNotFound" in r["why"]
               for step in old for r in step["refused"])


INTENTION = GATEWAY + """
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata: {name: web, namespace: shop}
spec:
  destination: {name: web}
  sources: [{name: api-gateway, action: allow}]
"""


def test_an_intention_admitting_only_the_gateway_gets_a_manual_action():
    result = plan_yaml(INTENTION, source="consul", target="istio")
    ingress = next(s for s in result.plan.steps if s.kind == "ingress")
    assert any(line.startswith("ServiceIntentions shop/web admits api-gateway")
               for line in ingress.manual)


TWO_INTENTIONS = GATEWAY + """
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata: {name: web, namespace: shop}
spec:
  destination: {name: web}
  sources: [{name: api-gateway, action: allow}]
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata: {name: web-extra, namespace: shop}
spec:
  destination: {name: web}
  sources: [{name: other, action: allow}]
"""


def test_a_rollback_restores_one_service_intentions_per_destination():
    result = plan_yaml(TWO_INTENTIONS, source="consul", target="istio")
    move = next(s for s in result.plan.steps if s.kind == "move" and s.namespaces == ["shop"])
    # Both go forward; the second, which Consul never applied, is not created again on
    # rollback (the consul-k8s webhook refuses a second one for the destination).
    assert {"serviceintentions.consul.hashicorp.com/web-extra",
            "serviceintentions.consul.hashicorp.com/web"} <= {
        c.split()[2] for c in texts(move.commands) if c.startswith("kubectl delete")}
    restored = [m["metadata"]["name"] for m in move.rollback_manifests
                if m["kind"] == "ServiceIntentions"]
    assert restored == ["web"]
