"""Each mesh's semantics on both sides of the check (issue 14 item 3): who is in the mesh at
all, and what a Gateway API rule without backendRefs does."""

from __future__ import annotations

from typing import Any

import pytest

from migrate.verify.compare import final_state, target_world
from migrate.verify.consul_eval import ConsulEvaluator
from migrate.verify.istio_eval import IstioEvaluator
from migrate.verify.linkerd_eval import LinkerdEvaluator
from migrate.verify.model import Client, Probe
from migrate.verify.world import World

POD = "Deployment/shop/web"
CALL = Probe("shop", "web", 80, "/", "GET", (), Client("front", "frontend"))


def cluster(ns_meta: dict[str, Any] | None, pod_meta: dict[str, Any] | None = None
            ) -> list[dict[str, Any]]:
    """Namespace shop (with the given labels/annotations, or no Namespace object at all)
    and Service web over Deployment web (with the given pod-template labels/annotations)."""
    template_meta = {"labels": {"app": "web", **(pod_meta or {}).get("labels", {})},
                     "annotations": (pod_meta or {}).get("annotations", {})}
    objects = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"template": {"metadata": template_meta, "spec": {
             "serviceAccountName": "web",
             "containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]}}}}]
    if ns_meta is not None:
        objects.append({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": "shop", **ns_meta}})
    return objects


DENY_ALL_ISTIO = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                  "metadata": {"name": "deny-all", "namespace": "shop"}, "spec": {}}


@pytest.mark.parametrize("ns_meta,pod_meta,meshed", [
    (None, None, True),  # no Namespace object: taken as injected, as the planner does
    ({"labels": {"istio-injection": "enabled"}}, None, True),
    ({"labels": {"istio.io/rev": "canary"}}, None, True),
    ({"labels": {}}, {"labels": {"istio.io/rev": "canary"}}, True),
    ({"labels": {}}, {"labels": {"sidecar.istio.io/inject": "true"}}, True),
    ({"labels": {"istio.io/dataplane-mode": "ambient"}}, None, True),
    ({"labels": {}}, None, False),
    ({"labels": {"istio-injection": "disabled"}},
     {"labels": {"sidecar.istio.io/inject": "true"}}, False),
    ({"labels": {"istio-injection": "enabled"}},
     {"labels": {"sidecar.istio.io/inject": "false"}}, False),
], ids=["no-namespace", "label", "revision", "pod-revision", "pod-label", "ambient",
        "unlabelled", "namespace-disabled", "pod-opt-out"])
def test_istio_enforces_only_on_injected_pods(ns_meta, pod_meta, meshed: bool):
    objects = cluster(ns_meta, pod_meta) + [DENY_ALL_ISTIO]
    allowed, _ = IstioEvaluator(objects, World(objects)).allowed(CALL, POD, 80)
    assert allowed is not meshed  # a pod without a sidecar admits everyone


LINKERD_DENY = {"annotations": {"config.linkerd.io/default-inbound-policy": "deny"}}


@pytest.mark.parametrize("ns_meta,pod_meta,meshed", [
    (None, LINKERD_DENY, True),
    ({"annotations": {"linkerd.io/inject": "enabled"}}, LINKERD_DENY, True),
    ({"annotations": {}}, {"annotations": {"linkerd.io/inject": "enabled",
                                           **LINKERD_DENY["annotations"]}}, True),
    ({"annotations": {"linkerd.io/inject": "ingress"}}, LINKERD_DENY, True),
    ({"annotations": {}}, LINKERD_DENY, False),
    ({"annotations": {"linkerd.io/inject": "enabled"}},
     {"annotations": {"linkerd.io/inject": "disabled", **LINKERD_DENY["annotations"]}}, False),
], ids=["no-namespace", "namespace", "pod", "ingress", "none", "pod-disabled"])
def test_linkerd_enforces_only_on_injected_pods(ns_meta, pod_meta, meshed: bool):
    objects = cluster(ns_meta, pod_meta)
    allowed, _ = LinkerdEvaluator([], World(objects)).allowed(CALL, POD, 80)
    assert allowed is not meshed


@pytest.mark.parametrize("annotation,default,meshed", [
    ("true", False, True), (None, False, False), (None, True, True), ("false", True, False)])
def test_consul_enforces_only_on_injected_pods(annotation, default: bool, meshed: bool):
    pod = {"annotations": {"consul.hashicorp.com/connect-inject": annotation}} \
        if annotation else None
    objects = cluster(None, pod)
    # No intention and the default deny: a meshed pod refuses, an unmeshed one cannot.
    ev = ConsulEvaluator([], World(objects), inject_default=default)
    assert ev.allowed(CALL, POD, 80)[0] is not meshed


def test_the_final_state_carries_the_injection_commands_of_the_plan():
    source = cluster({"labels": {"istio-injection": "enabled"}})
    steps = [([], ["kubectl label namespace shop istio-injection- istio.io/rev-",
                   "kubectl annotate namespace shop linkerd.io/inject=enabled --overwrite",
                   "kubectl patch deployment web -n shop --type=merge -p "
                   "'{\"spec\":{\"template\":{\"metadata\":{\"annotations\":"
                   "{\"consul.hashicorp.com/connect-inject\":\"true\"}}}}}'"])]
    target, annotations = final_state(steps)
    world = target_world(source, target, annotations)
    assert world.namespaces["shop"]["linkerd.io/inject"] == "enabled"
    info = world.workload(POD)
    assert info is not None
    assert dict(info.annotations)["consul.hashicorp.com/connect-inject"] == "true"
    # A Consul target now counts the pod as injected (it refuses without an intention).
    assert not ConsulEvaluator([], world).allowed(CALL, POD, 80)[0]


def route_without_backends(api: str = "gateway.networking.k8s.io/v1") -> dict[str, Any]:
    return {"apiVersion": api, "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80}],
                     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                "timeouts": {"request": "3s"}}]}}


def test_a_rule_without_backend_refs_goes_to_the_parent_in_linkerd_and_is_500_in_istio():
    objects = cluster(None)
    route = route_without_backends()
    linkerd = LinkerdEvaluator([route], World(objects)).route(CALL)
    assert (linkerd.status, linkerd.backends, linkerd.timeout) == (
        "routed", ((POD, 1.0),), "3s")
    istio = IstioEvaluator(objects + [route], World(objects)).route(CALL)
    assert (istio.status, istio.detail) == ("error", "500")
    # A rule whose backends all have weight 0 forwards nothing in either mesh.
    zero = route_without_backends()
    zero["spec"]["rules"][0]["backendRefs"] = [{"name": "web", "port": 80, "weight": 0}]
    assert LinkerdEvaluator([zero], World(objects)).route(CALL).status == "error"
