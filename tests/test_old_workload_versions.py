"""Workloads written at API versions older clusters served (extensions/v1beta1,
apps/v1beta1-2, batch/v1beta1) are read as the workloads they are: they get their restart,
their policy and a place in the equivalence check, not "not mesh configuration" (issue 16)."""

from __future__ import annotations

import pytest

from migrate.ir.model import Workload
from tests.helpers import plan_yaml, texts

NAMESPACE = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{name: http, port: 8080}]}
"""

WORKLOAD = """---
apiVersion: %s
kind: %s
metadata: {name: api, namespace: shop}
spec:
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: api, ports: [{containerPort: 8080}]}]}
"""


@pytest.mark.parametrize("api,kind", [
    ("extensions/v1beta1", "Deployment"), ("extensions/v1beta1", "DaemonSet"),
    ("apps/v1beta1", "Deployment"), ("apps/v1beta2", "StatefulSet"),
])
def test_an_old_workload_version_is_restarted_like_apps_v1(api: str, kind: str):
    result = plan_yaml(NAMESPACE + WORKLOAD % (api, kind), "istio", "linkerd")
    [workload] = result.read.graph.of(Workload)
    assert (workload.kind, workload.pod_labels) == (kind, (("app", "api"),))
    assert f"{api}/{kind}" not in result.plan.skipped
    move = next(s for s in result.plan.steps if s.kind == "move")
    rendered = texts(move.commands)
    assert any("rollout restart" in c and f"{kind.lower()}/api" in c for c in rendered), rendered
