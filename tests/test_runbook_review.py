"""Runbook points of issue 16 found in review: the cleanup rollback, the Gateway API bundle
check, single-replica and PodDisruptionBudget notes."""

from __future__ import annotations

from migrate.pipeline import PlanOptions, plan_migration
from tests.conftest import SAMPLES
from tests.helpers import texts


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

import shutil  # noqa: E402
import subprocess  # noqa: E402

import pytest  # noqa: E402

from migrate.dialects.gatewayapi.bundle import bundle_guard  # noqa: E402


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
