"""The synthetic mesh generators used by the benchmark plan like real meshes, from every
source mesh to every other one."""

from __future__ import annotations

import io

import pytest

from migrate.emit.planjson import dump_plan
from migrate.pipeline import PlanOptions, PlanResult, plan_migration
from tests.benchmarks.served import as_served, as_served_json
from tests.benchmarks.synth import as_yaml, generate
from tests.helpers import without_read_place

MESHES = ("istio", "linkerd", "consul")
PAIRS = [(s, t) for s in MESHES for t in MESHES if s != t]
# What each target must show for the services' routing and the callers' authorization.
TARGET_KINDS = {
    "linkerd": {"HTTPRoute", "Server", "AuthorizationPolicy", "MeshTLSAuthentication"},
    "istio": {"VirtualService", "AuthorizationPolicy", "PeerAuthentication"},
    "consul": {"ServiceRouter", "ServiceSplitter", "ServiceIntentions", "ServiceDefaults"},
}


def plan(source: str, target: str, objects: list[dict]) -> PlanResult:
    return plan_migration(PlanOptions(source, target, ["-"],
                                      stdin=io.BytesIO(as_yaml(objects).encode())))


def test_synthetic_mesh_plans_with_layers_and_cycles():
    objects = generate(namespaces=12, services=2)
    result = plan("istio", "linkerd", objects)
    assert result.problems == []
    groups = result.plan.groups
    assert sum(len(g) for g in groups) == 12
    assert ["team-0008", "team-0009"] in groups  # team-0009 calls back into team-0008
    assert groups[0] == ["team-0011"]  # the deepest callee moves first
    kinds = {m.kind for s in result.plan.steps for m in s.manifests}
    assert {"HTTPRoute", "Server", "AuthorizationPolicy", "MeshTLSAuthentication",
            "Service"} <= kinds


@pytest.mark.parametrize("mesh", MESHES)
def test_each_generator_gives_the_same_realistic_shape(mesh: str):
    objects = generate(namespaces=3, services=2, mesh=mesh)
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "ServiceAccount", "Service", "Deployment"} <= kinds
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    assert len(deployments) == 3 * 2 * 2  # v1 and v2 of every service
    versions = {o["spec"]["template"]["metadata"]["labels"]["version"] for o in deployments}
    assert versions == {"v1", "v2"}
    # Callers are named by identity: team-0001's services are called from team-0000.
    text = as_yaml([o for o in objects if o["metadata"].get("namespace") == "team-0001"])
    if mesh == "istio":
        assert "cluster.local/ns/team-0000/sa/svc-000" in text
    elif mesh == "linkerd":
        assert "svc-000.team-0000.serviceaccount.identity.linkerd.cluster.local" in text
    else:
        assert "name: svc-000-0000" in text and "action: allow" in text
    # Consul CE has one service namespace: its generator keeps names unique.
    services = [o["metadata"]["name"] for o in objects if o["kind"] == "Service"]
    assert (len(set(services)) == len(services)) == (mesh == "consul")


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_synthetic_mesh_plans_to_every_other_mesh(source: str, target: str):
    # Unique service names: same-named Services of two namespaces are one Consul CE service.
    result = plan(source, target, generate(namespaces=12, services=2, mesh=source, unique=True))
    assert result.problems == []
    groups = result.plan.groups
    assert sorted(ns for g in groups for ns in g) == [f"team-{i:04d}" for i in range(12)]
    assert ["team-0008", "team-0009"] in groups and groups[0] == ["team-0011"]
    kinds = {m.kind for s in result.plan.steps for m in s.manifests}
    assert TARGET_KINDS[target] <= kinds, kinds
    equivalence = result.plan.equivalence
    assert equivalence is not None and equivalence.not_evaluated == ""
    assert equivalence.probes > 0 and equivalence.unexplained == []
    # The canary split survives: some routing manifest carries the 90/10 weights.
    text = as_yaml([m.body for s in result.plan.steps for m in s.manifests])
    assert "weight: 90" in text and "weight: 10" in text


@pytest.mark.parametrize(("source", "target"), [("istio", "linkerd"), ("linkerd", "istio"),
                                                ("consul", "istio")])
def test_a_dump_taken_from_a_cluster_plans_as_the_objects_it_applied(source: str, target: str):
    # What the API server and controllers add (uid, defaults, status, the last-applied
    # annotation) is bookkeeping: the benchmark's served dumps must plan exactly like the
    # applied objects, or it would time a different plan.
    objects = generate(namespaces=4, services=2, mesh=source, unique=True)
    served = as_served(objects)
    assert all(o["metadata"]["uid"] and "kubectl.kubernetes.io/last-applied-configuration"
               in o["metadata"]["annotations"] for o in served)
    assert {o["kind"] for o in served if "status" in o} >= {"Namespace", "Service",
                                                            "Deployment"}
    text = as_served_json(served)
    from_cluster = plan_migration(PlanOptions(source, target, ["-"],
                                              stdin=io.BytesIO(text.encode())))
    assert from_cluster.problems == []
    # Read from another text (JSON, not YAML): the same objects at other lines.
    assert without_read_place(dump_plan(from_cluster.plan)) == \
        without_read_place(dump_plan(plan(source, target, objects).plan))
