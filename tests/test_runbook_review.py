"""Runbook points of issue 16 found in review: the cleanup rollback, the Gateway API bundle
check, the kubelet-probe networks, restart notes (single replicas, update strategies,
PodDisruptionBudgets), wildcard methods, and losses reported for what survives."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from migrate.dialects.gatewayapi.bundle import bundle_guard
from migrate.pipeline import PlanOptions, plan_migration
from tests.conftest import SAMPLES
from tests.helpers import plan_yaml, texts


def _plan(source: str, target: str, sample: str = "shop"):
    return plan_migration(PlanOptions(source, target, [str(SAMPLES / source / sample)],
                                      verify=False)).plan


def test_cleanup_rollback_removes_the_long_term_routes_before_istio_returns():
    """Istio reads gateway.networking.k8s.io HTTPRoutes with a Service parent: the cleanup's
    rollback deletes the long-term routes and re-applies Linkerd's coexistence routes, all
    before Istio is reinstalled."""
    plan = _plan("istio", "linkerd")
    cleanup = plan.steps[-1]
    long_term = [m for m in cleanup.manifests if m.api_version.startswith("gateway.")]
    assert long_term
    rollback = texts(cleanup.rollback)
    [reinstall] = [i for i, c in enumerate(rollback) if c.startswith("istioctl install")]
    for m in long_term:
        delete = (f"kubectl delete httproute.gateway.networking.k8s.io/{m.name} "
                  f"-n {m.namespace} --ignore-not-found")
        assert rollback.index(delete) < reinstall
        again = [i for i, c in enumerate(rollback) if c.startswith("kubectl apply") and
                 c.endswith(f"{m.namespace}/httproute.policy.linkerd.io_{m.name}.yaml")]
        assert again and again[0] < reinstall
    assert not any(c.endswith(f"httproute.gateway.networking.k8s.io_{m.name}.yaml")
                   for c in rollback for m in long_term)


# -- the Gateway API bundle check ------------------------------------------------------------


def _printed(bundle: str, experimental: bool, installed: str) -> str:
    """What the guard's grep prints for one installed "version channel" line."""
    [_, grep] = bundle_guard(bundle, experimental).argv
    return subprocess.run(grep, input=installed + "\n", capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("grep") is None, reason="needs grep")
@pytest.mark.parametrize("installed,experimental,stops", [
    ("v1.5.1 standard", False, False),
    ("v1.4.0 standard", False, False),
    ("v1.5.0-rc.1 standard", False, False),
    ("v0.8.1 standard", False, False),
    ("v1.3.0 standard", True, False),       # standard -> experimental is no downgrade
    ("v1.5.1 experimental", True, False),
    ("v1.6.1 standard", False, True),       # newer
    ("v1.5.2 standard", True, True),
    ("v2.0.0 experimental", True, True),
    ("v1.5.1 experimental", False, True),   # experimental -> standard
    ("v1.2.0 experimental", False, True),
    (" ", False, True),                     # CRD without the annotations: look first
])
def test_the_bundle_check_stops_on_a_downgrade_only(installed, experimental, stops):
    assert bool(_printed("v1.5.1", experimental, installed)) is stops


@pytest.mark.parametrize("source,target", [("istio", "linkerd"), ("linkerd", "istio"),
                                           ("istio", "consul")])
def test_step_00_checks_the_installed_bundle_before_applying_one(source, target):
    commands = texts(_plan(source, target).steps[0].commands)
    [check] = [i for i, c in enumerate(commands)
               if c.startswith("kubectl get crd gateways.gateway.networking.k8s.io")]
    [bundle] = [i for i, c in enumerate(commands) if "gateway-api/releases/download" in c]
    assert check == bundle - 1
    assert "bundle-version" in commands[check] and "/channel}" in commands[check]
    assert "stop" in commands[check].split("  # ")[1]


def test_kubelet_probe_authentication_uses_linkerds_probe_networks(monkeypatch):
    """The probe route admits the networks Linkerd's own default probe authorization admits
    (policyController.probeNetworks), read from the fact register, not a constant."""
    from migrate import facts

    # fact: linkerd.probe-networks
    real = facts.value

    def node_cidrs(fact_id: str, key: str):
        if fact_id == "linkerd.probe-networks":
            return ["10.128.0.0/16"]
        return real(fact_id, key)

    monkeypatch.setattr(facts, "value", node_cidrs)
    result = plan_migration(PlanOptions("istio", "linkerd", [str(SAMPLES / "istio" / "shop")],
                                        verify=False))
    nets = [m.body for s in result.plan.steps for m in s.manifests
            if m.kind == "NetworkAuthentication" and m.name.startswith("kubelet-probes")]
    assert nets and all(n["spec"]["networks"] == [{"cidr": "10.128.0.0/16"}] for n in nets)
    [loss] = [x for x in result.losses if x.code == "AUTHZ_PROBE_ROUTE"]
    assert "10.128.0.0/16" in loss.message and "any network" not in loss.message
    assert "probeNetworks" in loss.action


# -- restart notes: single replicas, update strategies, disruption budgets --------------------


_NS = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
"""


def _deployment(name: str, spec: str) -> str:
    return f"""---
apiVersion: apps/v1
kind: {name.split(':')[0]}
metadata: {{name: {name.split(':')[1]}, namespace: shop}}
spec:
{spec}
  selector: {{matchLabels: {{app: {name.split(':')[1]}}}}}
  template:
    metadata: {{labels: {{app: {name.split(':')[1]}}}}}
    spec: {{containers: [{{name: app, image: app}}]}}
"""


def _move(text: str):
    plan = plan_yaml(_NS + text, verify=False).plan
    return next(s for s in plan.steps if s.kind == "move")


def test_a_single_replica_deployment_that_cannot_surge_is_named_with_what_to_do():
    step = _move(_deployment("Deployment:web", """  replicas: 1
  strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 1}}"""))
    [note] = [m for m in step.manual if "Deployment shop/web" in m]
    assert "1 replica" in note and "Scale it to 2 replicas" in note


def test_a_single_replica_deployment_with_the_default_surge_has_no_downtime_note():
    step = _move(_deployment("Deployment:web", "  replicas: 1"))
    assert not [m for m in step.manual if "Deployment shop/web" in m]


def test_recreate_is_named_even_with_many_replicas():
    step = _move(_deployment("Deployment:web", """  replicas: 5
  strategy: {type: Recreate}"""))
    [note] = [m for m in step.manual if "Deployment shop/web" in m]
    assert "Recreate" in note and "RollingUpdate" in note


def test_a_single_replica_statefulset_is_down_during_its_restart():
    step = _move(_deployment("StatefulSet:db", "  serviceName: db"))
    [note] = [m for m in step.manual if "StatefulSet shop/db" in m]
    assert "spec.replicas not set" in note and "accept the downtime" in note


def test_on_delete_gets_no_rollout_status_and_a_note_to_delete_pods():
    step = _move(_deployment("StatefulSet:db", """  serviceName: db
  replicas: 3
  updateStrategy: {type: OnDelete}"""))
    commands = texts(step.commands) + texts(step.rollback)
    assert "kubectl rollout restart statefulset/db -n shop" in commands
    assert not [c for c in commands if c.startswith("kubectl rollout status statefulset/db")]
    assert any("OnDelete" in m and "Delete its pods" in m for m in step.manual)


def test_a_disruption_budget_covering_the_pods_is_named_per_workload():
    pdb = """---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web-pdb, namespace: shop}
spec: {minAvailable: 2, selector: {matchLabels: {app: web}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: other, namespace: shop}
spec: {maxUnavailable: 1, selector: {matchLabels: {app: other}}}
"""
    step = _move(_deployment("Deployment:web", "  replicas: 2") + pdb)
    [note] = [m for m in step.manual if "PodDisruptionBudget" in m]
    assert note.startswith("PodDisruptionBudget shop/web-pdb (minAvailable 2) covers "
                           "Deployment shop/web")
    assert "allows no eviction" in note and "scale to 3 replicas" in note


# -- wildcard methods ---------------------------------------------------------------------------

_AUTHZ = _NS + """---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers: [{name: app, image: app, ports: [{containerPort: 8080}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/client"]}}]
    to: [{operation: {methods: [METHODS], paths: ["/api/*"]}}]
"""


def _route_methods(result) -> set[str]:
    return {m.get("method") for s in result.plan.steps for x in s.manifests
            if x.kind == "HTTPRoute" for r in x.body["spec"].get("rules", [])
            for m in r.get("matches", [])}


def test_an_istio_star_method_is_any_method_not_a_literal():
    """Istio's "*" is a presence match; written as method '*' the API server refuses the
    HTTPRoute, and the route would admit fewer requests than Istio did."""
    result = plan_yaml(_AUTHZ.replace("METHODS", '"*"'))
    assert "*" not in _route_methods(result)
    assert None in _route_methods(result)  # a match with no method: any method
    assert not result.plan.equivalence.unexplained


def test_an_istio_method_prefix_stands_for_the_standard_methods_it_matches():
    result = plan_yaml(_AUTHZ.replace("METHODS", '"P*"'))
    assert _route_methods(result) >= {"PATCH", "POST", "PUT"}
    assert "P*" not in _route_methods(result)
    assert not result.plan.equivalence.unexplained


# -- losses on what the source never applied ---------------------------------------------------

def test_no_feature_loss_on_a_rule_the_source_never_reached():
    """shop's orders VirtualService: rule http[1] (exact /api/health, with a rewrite) is
    shadowed by http[0] (prefix /api), so Istio never rewrote anything: no ROUTE_REWRITE."""
    result = plan_migration(PlanOptions("istio", "linkerd", [str(SAMPLES / "istio" / "shop")],
                                        verify=False))
    on_rule = [x for x in result.losses if x.object.name == "orders"
               and x.object.kind == "VirtualService" and x.path.startswith("spec.http[1]")]
    assert {x.code for x in on_rule} == {"ROUTE_RULE_UNREACHABLE"}
    [unreachable] = on_rule
    assert "never reached in Istio" in unreachable.message


def test_withdraw_keeps_other_rules_and_named_codes():
    from migrate.losses import LossLog, ObjectRef, Severity

    log = LossLog()
    ref = ObjectRef("VirtualService", "ns", "vs", "networking.istio.io/v1")
    for code, path in [("ROUTE_REWRITE", "spec.http[1].rewrite.uri"),
                       ("ROUTE_RULE_UNREACHABLE", "spec.http[1].match[0]"),
                       ("ROUTE_REWRITE", "spec.http[10].rewrite.uri"),
                       ("ROUTE_TIMEOUT", "spec.http[1]")]:
        log.report(code, Severity.INFO, "route.http", ref, path, "m", "a")
    log.withdraw(ref, "spec.http[1]", frozenset({"ROUTE_RULE_UNREACHABLE"}))
    assert [(x.code, x.path) for x in log] == [
        ("ROUTE_RULE_UNREACHABLE", "spec.http[1].match[0]"),
        ("ROUTE_REWRITE", "spec.http[10].rewrite.uri")]


def test_a_deny_the_allow_list_enforces_is_not_reported_as_lost():
    result = plan_migration(PlanOptions("istio", "linkerd", [str(SAMPLES / "istio" / "shop")]))
    codes = {x.code for x in result.losses if x.object.name == "deny-debug"}
    assert codes == {"AUTHZ_DENY_SUBSUMED"}
    assert not result.plan.equivalence.unexplained  # the target really refuses /debug/*


_DENY = _AUTHZ.replace("METHODS", '"GET"') + """---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-debug, namespace: shop}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: [DENIED]}}]
"""


@pytest.mark.parametrize("denied,subsumed", [
    ('"/debug/*"', True),
    ('"/api/debug"', False),     # inside the allowed /api/* prefix
    ('"/api"', False),           # Linkerd's PathPrefix /api/ also matches /api
    ('"*.json"', False),         # a suffix may end an allowed /api/ path
])
def test_a_deny_overlapping_the_allow_list_stays_a_loss(denied, subsumed):
    result = plan_yaml(_DENY.replace("DENIED", denied), verify=False)
    codes = {x.code for x in result.losses if x.object.name == "deny-debug"}
    assert codes == ({"AUTHZ_DENY_SUBSUMED"} if subsumed else {"AUTHZ_DENY"})


def test_a_deny_on_a_workload_without_allow_policies_stays_a_loss():
    text = _DENY.replace("DENIED", '"/debug/*"').replace(
        "metadata: {name: web, namespace: shop}\nspec:\n  selector: {matchLabels: {app: web}}",
        "metadata: {name: web, namespace: shop}\nspec:\n  selector: {matchLabels: {app: nobody}}")
    result = plan_yaml(text, verify=False)
    assert {x.code for x in result.losses if x.object.name == "deny-debug"} == {"AUTHZ_DENY"}


@pytest.mark.parametrize("target", ["linkerd", "istio"])
def test_a_consul_star_method_is_read_as_any_method_and_reported(tmp_path, target):
    """Consul refuses non-standard methods (config_entry_discoverychain.go isValidHTTPMethod):
    "*" is reported as invalid input and read as the any-method it meant, never written as a
    literal method the target's API server would refuse."""
    import yaml

    dump = yaml.safe_load((SAMPLES / "consul" / "shop" / "dump.yaml").read_text())
    [router] = [o for o in dump["items"] if o["kind"] == "ServiceRouter"
                and o["metadata"]["name"] == "catalog"]
    router["spec"]["routes"][0]["match"]["http"]["methods"] = ["*"]
    (tmp_path / "dump.yaml").write_text(yaml.safe_dump(dump))
    result = plan_migration(PlanOptions("consul", target, [str(tmp_path / "dump.yaml")]))
    methods = set()
    for body in (m.body for s in result.plan.steps for m in s.manifests):
        spec = body.get("spec") or {}
        for rule in spec.get("rules", []) + spec.get("http", []):
            for match in rule.get("matches", []) + rule.get("match", []):
                method = match.get("method")
                methods.add(method.get("exact") if isinstance(method, dict) else method)
    assert methods and "*" not in methods
    assert [(x.code, x.path) for x in result.losses if x.code == "FIELD_INVALID"] == [
        ("FIELD_INVALID", "spec.routes[0].match.http.methods[0]")]
    assert not result.plan.equivalence.unexplained


def test_a_least_request_source_is_no_loss_on_istio_whose_default_it_is():
    """consul shop's catalog ServiceResolver asks for least_request: Istio balances so when a
    DestinationRule sets nothing (fact istio.default-lb)."""
    result = plan_migration(PlanOptions("consul", "istio", [str(SAMPLES / "consul" / "shop")],
                                        verify=False))
    assert not [x for x in result.losses if x.code == "DESTINATION_LB_SIMPLE"]
    to_linkerd = plan_migration(PlanOptions("consul", "linkerd",
                                            [str(SAMPLES / "consul" / "shop")], verify=False))
    assert [x for x in to_linkerd.losses if x.code == "DESTINATION_LB_SIMPLE"]
