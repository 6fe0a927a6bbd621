"""The synthetic mesh generator used by the benchmark plans like a real mesh."""

from __future__ import annotations

import io

from migrate.pipeline import PlanOptions, plan_migration
from tests.benchmarks.synth import as_yaml, generate


def test_synthetic_mesh_plans_with_layers_and_cycles():
    objects = generate(namespaces=12, services=2)
    result = plan_migration(PlanOptions("istio", "linkerd", ["-"],
                                        stdin=io.BytesIO(as_yaml(objects).encode())))
    assert result.problems == []
    groups = result.plan.groups
    assert sum(len(g) for g in groups) == 12
    assert ["team-0008", "team-0009"] in groups  # team-0009 calls back into team-0008
    assert groups[0] == ["team-0011"]  # the deepest callee moves first
    kinds = {m.kind for s in result.plan.steps for m in s.manifests}
    assert {"HTTPRoute", "Server", "AuthorizationPolicy", "MeshTLSAuthentication",
            "Service"} <= kinds
