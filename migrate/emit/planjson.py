"""plan.json: the plan for machines (format in docs/runbook-format.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from migrate.emit.manifests import step_file_names
from migrate.losses import Severity
from migrate.plan.model import Plan


def plan_document(plan: Plan) -> dict[str, Any]:
    """The plan as plain JSON data."""
    index = {id(loss): i for i, loss in enumerate(plan.losses)}
    counts = {s.value: 0 for s in Severity}
    for loss in plan.losses:
        counts[loss.severity.value] += 1
    steps = []
    for step in plan.steps:
        files, rollback = step_file_names(step)
        steps.append({
            "id": step.id,
            "title": step.title,
            "kind": step.kind,
            "namespaces": step.namespaces,
            "summary": step.summary,
            "manifests": [f"steps/{step.id}/{f}" for f in files],
            "rollback_manifests": [f"steps/{step.id}/{f}" for f in rollback],
            "commands": step.commands,
            "verify": step.verify,
            "rollback": step.rollback,
            "manual": step.manual,
            "losses": [index[id(loss)] for loss in step.losses if id(loss) in index],
        })
    return {
        "source": {"mesh": plan.source},
        "target": {"mesh": plan.target, "version": plan.target_version},
        "order": {
            "groups": plan.groups,
            "dependencies": [{"caller": a, "callee": b, "reasons": r}
                             for a, b, r in plan.dependencies],
            "ingress_namespaces": plan.ingress_namespaces,
            "overridden": plan.order_overridden,
            "override_cost": plan.override_cost,
        },
        "steps": steps,
        "losses": [loss.to_json() for loss in plan.losses],
        "equivalence": plan.equivalence.to_json() if plan.equivalence is not None else None,
        "coexistence": plan.coexistence,
        "summary": {
            "namespaces": sorted(ns for g in plan.groups for ns in g),
            "outside": plan.outside,
            "steps": len(plan.steps),
            "manifests": sum(len(s["manifests"]) for s in steps),
            "losses": counts,
            "input_problems": plan.input_problems,
            "skipped_kinds": plan.skipped,
        },
    }


def dump_plan(plan: Plan) -> str:
    """plan.json text: sorted keys where order carries no meaning, two-space indent."""
    return json.dumps(plan_document(plan), indent=2, ensure_ascii=False) + "\n"


def write_plan(plan: Plan, path: Path) -> None:
    """Write plan.json: the same bytes as :func:`dump_plan`, written piece by piece.

    With an indent, the json module encodes in Python: ``json.dumps`` collects every piece
    (a million at 2,000 services) before joining them, which raised a plan's peak memory by
    about three times the file's size. ``json.dump`` hands each piece to the file instead.
    """
    with path.open("w", encoding="utf-8") as fh:
        json.dump(plan_document(plan), fh, indent=2, ensure_ascii=False)
        fh.write("\n")
