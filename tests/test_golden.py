"""Golden cases: for each feature group, the exact manifests of every step and the exact
losses (as plan.json lists them). ``pytest --update-golden`` rewrites them; the diff is
reviewed like code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrate.emit.manifests import step_files
from migrate.emit.planjson import plan_document
from migrate.pipeline import PlanOptions, plan_migration
from migrate.yamlio import dump_document

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input.yaml").is_file())


def render(case: Path) -> dict[str, str]:
    """The reviewed views of a plan: steps with their manifests, and the losses."""
    result = plan_migration(PlanOptions("istio", "linkerd", [str(case / "input.yaml")]))
    doc = plan_document(result.plan)
    parts = []
    for step in result.plan.steps:
        parts.append(f"# ===== step {step.id}: {step.title}\n")
        for name, body in step_files(step).items():
            if not name.startswith("rollback/"):
                parts.append(f"# --- {name}\n{dump_document(body)}")
    steps = "".join(parts)
    losses = json.dumps([{k: v for k, v in loss.items() if k != "object"} |
                         {"object": "{kind}/{namespace}/{name}".format(**loss["object"])}
                         for loss in doc["losses"]], indent=2) + "\n"
    order = json.dumps(doc["order"], indent=2) + "\n"
    return {"steps.yaml": steps, "losses.json": losses, "order.json": order}


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str, update_golden: bool):
    case = GOLDEN / name
    actual = render(case)
    expected_dir = case / "expected"
    if update_golden:
        expected_dir.mkdir(exist_ok=True)
        for file, text in actual.items():
            (expected_dir / file).write_text(text, encoding="utf-8")
    for file, text in actual.items():
        expected = (expected_dir / file).read_text(encoding="utf-8")
        assert text == expected, f"{name}/{file} differs (pytest --update-golden, then review)"
