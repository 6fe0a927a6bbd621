"""Helpers to run the pipeline on inline YAML."""

from __future__ import annotations

import io
import re
from typing import Any, Iterable

import yaml

from migrate.pipeline import PlanOptions, PlanResult, plan_migration
from migrate.plan.commands import Command, render


def plan_yaml(text: str, source: str = "istio", target: str = "linkerd",
              **options: Any) -> PlanResult:
    """Plan from a YAML string given on stdin."""
    opts = PlanOptions(source=source, target=target, paths=["-"],
                       stdin=io.BytesIO(text.encode()), **options)
    return plan_migration(opts)


def manifests(result: PlanResult, kind: str | None = None) -> list[dict[str, Any]]:
    """Every manifest of every step (optionally of one kind), in plan order."""
    return [m.body for s in result.plan.steps for m in s.manifests
            if kind is None or m.kind == kind]


def codes(result: PlanResult) -> list[str]:
    """Loss codes, sorted as the plan lists them."""
    return [loss.code for loss in result.losses]


def docs(text: str) -> list[dict[str, Any]]:
    """Parse multi-document YAML."""
    return [d for d in yaml.safe_load_all(text) if d]


def texts(commands: Iterable[Command | str]) -> list[str]:
    """Step commands as the runbook shows them (a rollback sentence as it is)."""
    return [c if isinstance(c, str) else render(c) for c in commands]


def without_read_places(files: dict[str, bytes]) -> dict[str, bytes]:
    """A written plan's files with where each object was read blanked (plan.json's ledger
    ``read`` and the runbook appendix's "read from" cell): the same objects read from a file
    in another order, or from a cluster, are the same plan."""
    out = dict(files)
    out["plan.json"] = without_read_place(files["plan.json"].decode()).encode()
    out["RUNBOOK.md"] = re.sub(rb"^(\| \[ \] \| [^|]*\| )`[^`]*`", rb"\1``",
                               files["RUNBOOK.md"], flags=re.M)
    return out


def without_read_place(plan_json: str) -> str:
    """plan.json text with each ledger entry's ``read`` (file, line, or cluster) blanked."""
    return re.sub(r'"read": \{[^}]*\}', '"read": {}', plan_json)
