"""The run report for pipelines (``--report json|yaml|text`` on stdout) and the JSON Schemas
shipped in ``migrate/schemas/`` (plan.json's and the report's).

The report is one document per run: the command, its exit code, the losses, the summary, and
the equivalence and coexistence results, with plan.json's record shapes. People's output stays
on stderr, so ``meshmigrate plan ... --report json | jq`` sees only this.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from typing import Any, Iterable

import yaml

from migrate.errors import ExitStatus
from migrate.losses import Severity
from migrate.wording import counted

FORMATS = ("json", "yaml", "text")
SCHEMAS = ("plan", "report")


@lru_cache(maxsize=None)
def schema(name: str) -> dict[str, Any]:
    """The shipped JSON Schema ``migrate/schemas/<name>.schema.json`` (``plan`` or ``report``)."""
    text = files("migrate").joinpath("schemas", f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


def validate(document: Any, name: str) -> list[str]:
    """Where ``document`` breaks the shipped schema ``name``, one line each (empty: valid)."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    # The report's schema refers to plan.json's definitions by their $id.
    registry = Registry().with_resources(
        (schema(s)["$id"], Resource.from_contents(schema(s))) for s in SCHEMAS)
    validator = Draft202012Validator(schema(name), registry=registry)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))]


def loss_counts(losses: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Losses per severity, every severity present (as plan.json's summary has them)."""
    counts = {s.value: 0 for s in Severity}
    for loss in losses:
        counts[loss["severity"]] += 1
    return counts


def build(command: str, status: ExitStatus, source: str, target: dict[str, str] | None,
          losses: list[dict[str, Any]], problems: Iterable[object],
          summary: dict[str, Any] | None = None, equivalence: dict[str, Any] | None = None,
          coexistence: list[dict[str, Any]] | None = None,
          output: str | None = None) -> dict[str, Any]:
    """The report document (it validates against ``report.schema.json``)."""
    return {
        "command": command,
        "exit_code": int(status),
        "status": status.name,
        "source": source,
        "target": target,
        "output": output,
        "losses": losses,
        "input_problems": [str(p) for p in problems],
        "summary": {"losses": loss_counts(losses), **(summary or {})},
        "equivalence": equivalence,
        "coexistence": coexistence,
    }


def render(report: dict[str, Any], fmt: str) -> str:
    """The report as ``json``, ``yaml`` or ``text`` (a short listing for a CI log)."""
    if fmt == "json":
        return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(report, sort_keys=False, allow_unicode=True, width=1000)
    return _text(report)


def _text(report: dict[str, Any]) -> str:
    counts = report["summary"]["losses"]
    target = report["target"]
    lines = [f"command: {report['command']}",
             f"source: {report['source']}"
             + (f"  target: {target['mesh']} {target['version']}" if target else ""),
             f"exit: {report['exit_code']} {report['status']}",
             f"losses: {len(report['losses'])} ("
             + ", ".join(f"{counts[s.value]} {s.value}" for s in reversed(Severity)) + ")"]
    lines += [f"  {x['severity']:<8} {x['code']} {x['object']['kind']}/{x['object']['namespace']}/"
              f"{x['object']['name']} {x['path']}" for x in report["losses"]]
    lines += [f"input problem: {p}" for p in report["input_problems"]]
    eq = report["equivalence"]
    if eq is not None:
        lines.append(f"equivalence: {counted(eq['probes'], 'probe')}, "
                     f"{counted(len(eq['divergences']), 'divergence')}, "
                     f"{eq['unexplained']} unexplained")
    co = report["coexistence"]
    if co is not None:
        lines.append(f"coexistence: {counted(len(co), 'step')} checked, "
                     f"{counted(sum(len(s['refused']) for s in co), 'refused call')}, "
                     f"{counted(sum(len(s['routing_changed']) for s in co), 'rerouted call')}")
    return "\n".join(lines) + "\n"
