"""The cleanup step checks, cluster-wide, that no pod still runs the source mesh's proxy
before it uninstalls the mesh (issue 16): the uninstall removes the mesh from every
namespace, those the input never showed too."""

from __future__ import annotations

import pytest

from migrate.pipeline import PlanOptions, plan_migration
from tests.conftest import SAMPLES
from tests.helpers import texts

PROXY = {"istio": "istio-proxy", "linkerd": "linkerd-proxy", "consul": "consul-dataplane"}
UNINSTALL = {"istio": "istioctl uninstall", "linkerd": "linkerd uninstall",
             "consul": "helm uninstall consul"}


@pytest.mark.parametrize("source,target", [(s, t) for s in PROXY for t in PROXY if s != t])
def test_cleanup_checks_every_namespace_before_the_uninstall(source: str, target: str):
    plan = plan_migration(PlanOptions(source, target, [str(SAMPLES / source / "shop")],
                                      verify=False)).plan
    commands = texts(plan.steps[-1].commands)
    [guard] = [i for i, c in enumerate(commands) if c.startswith("kubectl get pods -A ")]
    assert commands[guard].split("  #")[0].endswith(f"| grep {PROXY[source]}")
    [uninstall] = [i for i, c in enumerate(commands) if c.startswith(UNINSTALL[source])]
    assert guard < uninstall


def test_a_move_rollback_deletes_the_targets_objects_only_after_the_pods_left_it():
    """A Linkerd pod whose Server is deleted falls to its default policy on that port: the
    rollback waits for the restart back to the source before deleting the target's objects."""
    plan = plan_migration(PlanOptions("istio", "linkerd", [str(SAMPLES / "istio" / "shop")],
                                      verify=False)).plan
    move = next(s for s in plan.steps if s.kind == "move")
    rollback = texts(move.rollback)
    status = max(i for i, c in enumerate(rollback) if c.startswith("kubectl rollout status "))
    deletes = [i for i, c in enumerate(rollback)
               if c.startswith("kubectl delete ") and "policy.linkerd.io" in c]
    assert deletes and status < min(deletes)
