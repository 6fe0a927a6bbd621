"""Golden cases for every ordered pair among Istio, Linkerd and Consul: the exact manifests of
every step, the exact losses and the migration order, as tests/test_golden.py renders the
Istio -> Linkerd cases. Layout: tests/golden_pairs/<source>-to-<target>/<case>/input.yaml and
expected/. ``pytest --update-golden`` rewrites them; the diff is reviewed like code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrate.emit.manifests import annotated, file_name, step_files
from migrate.emit.planjson import plan_document
from migrate.names import valid_name
from migrate.pipeline import PlanOptions, PlanResult, plan_migration
from migrate.validate import SchemaSet, failures, validate_manifest
from migrate.yamlio import dump_document

GOLDEN = Path(__file__).parent / "golden_pairs"
MESHES = ("consul", "istio", "linkerd")
PAIRS = [f"{s}-to-{t}" for s in MESHES for t in MESHES if s != t]
CASES = sorted(f"{pair.name}/{case.name}" for pair in GOLDEN.iterdir() if pair.is_dir()
               for case in pair.iterdir() if (case / "input.yaml").is_file())


def plan_case(case: Path) -> PlanResult:
    """Plan a case in the direction its folder names (``<source>-to-<target>``)."""
    source, _, target = case.parent.name.partition("-to-")
    return plan_migration(PlanOptions(source, target, [str(case / "input.yaml")]))


def render(result: PlanResult) -> dict[str, str]:
    """The reviewed views of a plan: steps with their manifests, the losses, the order.

    The same rendering as tests/test_golden.py (whose ``render`` is fixed to Istio ->
    Linkerd and takes a case folder, so it cannot be reused as is)."""
    doc = plan_document(result.plan)
    parts = []
    for step in result.plan.steps:
        parts.append(f"# ===== step {step.id}: {step.title}\n")
        for name, body in step_files(step).items():
            if not name.startswith("rollback/"):
                parts.append(f"# --- {name}\n{dump_document(body)}")
    losses = json.dumps([{k: v for k, v in loss.items() if k != "object"} |
                         {"object": "{kind}/{namespace}/{name}".format(**loss["object"])}
                         for loss in doc["losses"]], indent=2) + "\n"
    order = json.dumps(doc["order"], indent=2) + "\n"
    return {"steps.yaml": "".join(parts), "losses.json": losses, "order.json": order}


def test_every_pair_has_routing_and_security_cases():
    for pair in PAIRS:
        cases = [c.split("/")[1] for c in CASES if c.startswith(pair + "/")]
        assert len(cases) >= 2, f"{pair}: {cases}"
        assert any("routing" in c for c in cases) and any("security" in c for c in cases), pair


@pytest.mark.parametrize("name", CASES)
def test_golden_pair(name: str, update_golden: bool):
    case = GOLDEN / name
    result = plan_case(case)
    # A golden plan is a correct plan: readable input, no unexplained divergence.
    assert result.problems == []
    assert result.plan.equivalence is not None and result.plan.equivalence.not_evaluated == ""
    assert result.plan.equivalence.unexplained == []
    actual = render(result)
    expected_dir = case / "expected"
    if update_golden:
        expected_dir.mkdir(exist_ok=True)
        for file, text in actual.items():
            (expected_dir / file).write_text(text, encoding="utf-8")
    for file, text in actual.items():
        expected = (expected_dir / file).read_text(encoding="utf-8")
        assert text == expected, f"{name}/{file} differs (pytest --update-golden, then review)"


@pytest.fixture(scope="module")
def schemas(shared: Path) -> SchemaSet:
    """Every target's CRD schemas (Consul's too: Consul as a source gets its Mesh patched)."""
    crds = shared / "crds"
    return SchemaSet.from_paths([
        str(crds / "linkerd" / "edge-26.8.3" / "rendered" / "install_crds.golden.yaml"),
        str(crds / "gateway-api" / "v1.6.1" / "experimental"),
        str(crds / "istio" / "1.30.3" / "crd-all.gen.yaml"),
        str(crds / "consul"),
    ])


@pytest.mark.parametrize("name", CASES)
def test_golden_pair_manifests_are_schema_valid(schemas: SchemaSet, name: str):
    result = plan_case(GOLDEN / name)
    violations = []
    bad_names = []
    for step in result.plan.steps:
        for m in step.manifests:
            where = f"{step.id}/{file_name(m.body)}"
            violations += validate_manifest(annotated(m), where, schemas, require_schema=True)
            service = m.body.get("kind") == "Service" and m.body.get("apiVersion") == "v1"
            if not valid_name(str(m.body["metadata"]["name"]), service=service):
                bad_names.append(where)
    # A CEL rule of Kubernetes' own library (url(), isURL) is reported unchecked, not failed.
    assert failures(violations) == []
    assert bad_names == []
