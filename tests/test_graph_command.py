"""`meshmigrate graph`: a plan's call graph and move steps as DOT, and SVG through Graphviz."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from migrate.cli import main
from tests.conftest import SAMPLES


def run(*args: str, **kwargs):
    return CliRunner().invoke(main, list(args), **kwargs)


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("graph") / "out"
    assert run("plan", "--from", "istio", "--to", "linkerd", "-f",
               str(SAMPLES / "istio" / "shop"), "-o", str(out), "--no-verify").exit_code == 0
    return out


def test_dot_has_each_namespace_in_its_move_step_and_each_call(plan_dir: Path):
    result = run("graph", "--plan", str(plan_dir))
    assert result.exit_code == 0 and result.stdout.startswith("digraph meshmigrate {")
    plan = json.loads((plan_dir / "plan.json").read_text())
    clusters = dict(re.findall(
        r'subgraph "cluster_([^"]+)" \{\n    label="[^"]*";\n((?:    "[^"]+";\n)*)',
        result.stdout))
    moves = {s["id"]: s["namespaces"] for s in plan["steps"] if s["kind"] == "move"}
    assert {k: re.findall(r'"([^"]+)"', v) for k, v in clusters.items()} == moves
    edges = re.findall(r'^  "([^"]+)" -> "([^"]+)" \[tooltip', result.stdout, re.M)
    assert edges == [(d["caller"], d["callee"]) for d in plan["order"]["dependencies"]]
    assert '"ingress gateway (last)" -> "frontend" [style=dashed];' in result.stdout
    assert 'label="01-move-shared-db (enforced at 04-enforce-shared-db)";' in result.stdout
    assert run("graph", "--plan", str(plan_dir)).stdout == result.stdout  # deterministic


def test_svg_without_graphviz_says_what_to_do(plan_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = run("graph", "--plan", str(plan_dir), "-o", str(tmp_path / "plan.svg"))
    assert result.exit_code == 1
    assert "needs Graphviz's `dot`, which is not on PATH: install graphviz" in result.stderr
    assert not (tmp_path / "plan.svg").exists()


def test_svg_is_rendered_by_dot(plan_dir: Path, tmp_path: Path, monkeypatch):
    # A stand-in for Graphviz's dot: records its arguments and input, answers with an SVG.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "dot"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\ncat > {tmp_path}/input\n'
                    'echo "<svg>drawn</svg>"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(bindir), os.environ["PATH"]]))
    result = run("graph", "--plan", str(plan_dir), "-o", str(tmp_path / "plan.svg"))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "plan.svg").read_text() == "<svg>drawn</svg>\n"
    assert (tmp_path / "args").read_text().split() == ["-Tsvg"]
    assert (tmp_path / "input").read_text() == run("graph", "--plan", str(plan_dir)).stdout


def test_a_folder_without_a_plan_is_an_error(tmp_path: Path):
    result = run("graph", "--plan", str(tmp_path))
    assert result.exit_code == 1 and "not a meshmigrate plan" in result.stderr
