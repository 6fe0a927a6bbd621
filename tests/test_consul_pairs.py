"""Real Consul inputs: every Consul set in ../shared/corpus plans to Istio and to Linkerd
without a crash or an unreadable object, every field of every Consul object is accounted for
(used or reported), every emitted manifest is valid against the official CRD schemas and
carries valid Kubernetes names, and the equivalence check finds no unexplained divergence."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.emit.manifests import annotated, file_name
from migrate.names import valid_name
from migrate.pipeline import PlanOptions, PlanResult, plan_migration
from migrate.validate import SchemaSet, failures, validate_manifest
from tests.conftest import corpus_cases, shared_sets
from tests.test_corpus import covered, leaves

CONSUL_SETS = shared_sets("consul")
TARGETS = ("istio", "linkerd")
CASES = corpus_cases([(name, target) for name in CONSUL_SETS for target in TARGETS], 2)

_PLANS: dict[tuple[str, str], PlanResult] = {}


def plan_set(shared: Path, name: str, target: str) -> PlanResult:
    """Plan one corpus set (once per session: the tests below share the result)."""
    key = (name, target)
    if key not in _PLANS:
        _PLANS[key] = plan_migration(PlanOptions(
            source="consul", target=target, paths=[str(shared / "corpus" / "consul" / name)]))
    return _PLANS[key]


@pytest.fixture(scope="module")
def schemas(shared: Path) -> SchemaSet:
    """The target meshes' CRD schemas (Linkerd, Gateway API, Istio), and Consul's: the
    prerequisites step patches Consul's own Mesh for the coexistence window."""
    crds = shared / "crds"
    return SchemaSet.from_paths([
        str(crds / "linkerd" / "edge-26.8.3" / "rendered" / "install_crds.golden.yaml"),
        str(crds / "gateway-api" / "v1.6.1" / "experimental"),
        str(crds / "istio" / "1.30.3" / "crd-all.gen.yaml"),
        str(crds / "consul"),
    ])


@pytest.mark.parametrize(("name", "target"), CASES)
def test_consul_set_plans_and_accounts_for_every_field(shared: Path, name: str, target: str):
    result = plan_set(shared, name, target)
    assert result.problems == []
    assert [loss for loss in result.losses if loss.code == "OBJECT_UNREADABLE"] == []
    assert result.plan.steps[0].kind == "prerequisites" and result.plan.steps[-1].kind == "cleanup"
    consul = {ref: raw for ref, raw in result.read.raw.items()
              if raw.group.endswith("consul.hashicorp.com")}
    assert consul, "the set has Consul objects"
    for ref, raw in sorted(consul.items(), key=lambda item: str(item[0])):
        accounted = result.read.accounted[ref]
        missing = [leaf for leaf in leaves(raw.body) if not covered(leaf, accounted)]
        assert missing == [], f"{ref}: fields neither used nor reported: {missing}"


@pytest.mark.parametrize(("name", "target"), CASES)
def test_consul_set_has_no_unexplained_divergence(shared: Path, name: str, target: str):
    result = plan_set(shared, name, target)
    equivalence = result.plan.equivalence
    assert equivalence is not None and equivalence.not_evaluated == ""
    assert equivalence.probes > 0, "the check evaluated the set"
    assert [(str(d.probe), d.aspect, d.source, d.target) for d in equivalence.unexplained] == []


@pytest.mark.parametrize(("name", "target"), CASES)
def test_consul_set_emits_valid_manifests(shared: Path, schemas: SchemaSet, name: str,
                                          target: str):
    result = plan_set(shared, name, target)
    violations: list[str] = []
    bad_names: list[str] = []
    count = 0
    for step in result.plan.steps:
        for m in step.manifests:
            count += 1
            where = f"{step.id}/{file_name(m.body)}"
            violations += validate_manifest(annotated(m), where, schemas, require_schema=True)
            meta = m.body.get("metadata") or {}
            is_service = m.body.get("kind") == "Service" and m.body.get("apiVersion") == "v1"
            for value in (meta.get("name"), meta.get("namespace")):
                if value is not None and not valid_name(str(value), service=is_service):
                    bad_names.append(f"{where}: {value!r}")
    # A CEL rule of Kubernetes' own library (url(), isURL) is reported unchecked, not failed.
    assert failures(violations) == []
    assert bad_names == []
    assert count > 0, "the plan emits target manifests"
