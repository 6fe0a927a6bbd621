"""RUNBOOK.md prose has no escaped control characters of the planner's own: visible() escapes
what comes from the input, so a line break the planner meant must be a line of its own."""

from __future__ import annotations

import re

import pytest

from migrate.emit.runbook import render_runbook
from migrate.pipeline import PlanOptions, plan_migration
from tests.conftest import SAMPLES

MESHES = ("istio", "linkerd", "consul")
_CODE = re.compile(r"`[^`]*`")


@pytest.mark.parametrize("source,target", [(s, t) for s in MESHES for t in MESHES if s != t])
def test_no_prose_line_carries_an_escaped_line_break(source: str, target: str):
    plan = plan_migration(PlanOptions(source, target, [str(SAMPLES / source / "shop")])).plan
    prose = [_CODE.sub("", line) for line in render_runbook(plan).splitlines()]
    assert not [line for line in prose if "\\n" in line]
