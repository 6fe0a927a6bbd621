"""Real inputs: every Istio set in ../shared/corpus plans without a crash, every field of
every Istio object is accounted for (used or reported), and every emitted manifest is valid
against the official CRD schemas in ../shared/crds."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from migrate.emit.manifests import annotated, file_name
from migrate.pipeline import PlanOptions, plan_migration
from migrate.validate import SchemaSet, failures, validate_manifest
from tests.conftest import SAMPLES, corpus_cases, shared_sets

ISTIO_SETS = shared_sets("istio")


@pytest.fixture(scope="module")
def schemas(shared: Path) -> SchemaSet:
    crds = shared / "crds"
    return SchemaSet.from_paths([
        str(crds / "linkerd" / "edge-26.8.3" / "rendered" / "install_crds.golden.yaml"),
        str(crds / "gateway-api" / "v1.6.1" / "experimental"),
        str(crds / "istio" / "1.30.3" / "crd-all.gen.yaml"),
    ])


def leaves(value: Any, path: str = "") -> Iterator[str]:
    """Every leaf field path of a manifest, written the way losses write them."""
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from leaves(child, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and value:
        for i, child in enumerate(value):
            yield from leaves(child, f"{path}[{i}]")
    elif value not in (None, {}, []):
        yield path


def covered(path: str, accounted: set[str]) -> bool:
    """A leaf is covered when it or one of its ancestors is in the ledger."""
    while True:
        if path in accounted:
            return True
        cut = max(path.rfind("."), path.rfind("["))
        if cut <= 0:
            return False
        path = path[:cut]


def plan_set(path: Path):
    return plan_migration(PlanOptions(source="istio", target="linkerd", paths=[str(path)]))


@pytest.mark.parametrize("name", corpus_cases(ISTIO_SETS))
def test_corpus_set_plans_and_accounts_for_every_field(shared: Path, name: str):
    result = plan_set(shared / "corpus" / "istio" / name)
    assert result.problems == []
    # The equivalence check finds no divergence that no loss explains.
    assert result.plan.equivalence is not None and result.plan.equivalence.unexplained == []
    assert result.plan.steps[0].kind == "prerequisites" and result.plan.steps[-1].kind == "cleanup"
    reported = {(loss.object, loss.path) for loss in result.losses}
    assert result.read.raw, "the set has Istio objects"
    for ref, raw in result.read.raw.items():
        accounted = result.read.accounted[ref]
        missing = [leaf for leaf in leaves(raw.body) if not covered(leaf, accounted)]
        assert missing == [], f"{ref}: fields neither used nor reported: {missing}"
        # Every field the reader did not model must have a loss on that exact path.
        for loss in result.losses:
            if loss.object == ref and loss.code == "FIELD_UNMODELLED":
                assert (ref, loss.path) in reported


GOLDEN = sorted(p.name for p in (Path(__file__).parent / "golden").iterdir() if p.is_dir())


@pytest.mark.parametrize("name", ISTIO_SETS + ["samples:bookinfo", "samples:shop"] +
                         [f"golden:{g}" for g in GOLDEN])
def test_every_emitted_manifest_is_schema_valid(shared: Path, schemas: SchemaSet, name: str):
    if name.startswith("samples:"):
        path = SAMPLES / "istio" / name.split(":")[1]
    elif name.startswith("golden:"):
        path = Path(__file__).parent / "golden" / name.split(":")[1] / "input.yaml"
    else:
        path = shared / "corpus" / "istio" / name
    result = plan_set(path)
    violations = []
    count = 0
    for step in result.plan.steps:
        for m in step.manifests:
            count += 1
            violations += validate_manifest(annotated(m), f"{step.id}/{file_name(m.body)}",
                                            schemas, require_schema=True)
    # A CEL rule of Kubernetes' own library (url(), isURL) is reported unchecked, not failed.
    assert failures(violations) == []
    if name.startswith("samples:"):
        assert count > 20  # the samples exercise routing and authorization


def test_unmodelled_field_is_reported_not_dropped():
    from tests.helpers import plan_yaml

    result = plan_yaml("""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: shop}
spec:
  hosts: [r]
  futureField: {x: 1}
  http:
  - route: [{destination: {host: r, port: {number: 80}}}]
    brandNewOption: true
""")
    paths = {(loss.code, loss.path) for loss in result.losses}
    assert ("FIELD_UNMODELLED", "spec.futureField") in paths
    assert ("FIELD_UNMODELLED", "spec.http[0].brandNewOption") in paths
