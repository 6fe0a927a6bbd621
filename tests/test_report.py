"""`--report json|yaml|text`: the run's report on stdout for pipelines, valid against the
schema the package ships; plan.json valid against its schema; the docs' copies are current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from migrate import report
from migrate.cli import main
from tests.conftest import REPO, SAMPLES
from tests.fakeapi.kubeconfig import write_kubeconfig
from tests.fakeapi.server import FakeAPIServer, new_state

SHOP = str(SAMPLES / "istio" / "shop")


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("plan") / "out"
    result = run("plan", "--from", "istio", "--to", "linkerd", "-f", SHOP, "-o", str(out),
                 "--report", "json")
    return out, result


def test_plan_json_validates_against_the_shipped_schema(planned):
    out, _ = planned
    document = json.loads((out / "plan.json").read_text())
    assert report.validate(document, "plan") == []
    # The schema is not vacuous: a loss without a severity, or a step of an unknown kind, fails.
    broken = json.loads((out / "plan.json").read_text())
    del broken["losses"][0]["severity"]
    broken["steps"][0]["kind"] = "teleport"
    problems = report.validate(broken, "plan")
    assert any(p.startswith("losses/0:") and "severity" in p for p in problems), problems
    assert any(p.startswith("steps/0/kind:") for p in problems), problems


def test_plan_report_is_stdout_only_and_valid(planned):
    out, result = planned
    assert result.exit_code == 0
    document = json.loads(result.stdout)  # nothing else on stdout
    assert report.validate(document, "report") == []
    plan = json.loads((out / "plan.json").read_text())
    assert document["command"] == "plan" and document["exit_code"] == 0
    assert document["losses"] == plan["losses"]
    assert document["equivalence"] == plan["equivalence"]
    assert document["coexistence"] == plan["coexistence"]
    assert document["summary"]["steps"] == plan["summary"]["steps"] == 10
    assert document["summary"]["losses"] == plan["summary"]["losses"]
    # People's output is unchanged, on stderr.
    assert "meshmigrate: 28 losses" in result.stderr and "namespace orders:" in result.stderr


def test_report_carries_the_exit_code(tmp_path: Path):
    result = run("plan", "--from", "istio", "--to", "linkerd", "-f", SHOP, "-o",
                 str(tmp_path / "out"), "--fail-on", "manual", "--report", "yaml", "-q")
    assert result.exit_code == 3
    document = yaml.safe_load(result.stdout)
    assert report.validate(document, "report") == []
    assert (document["exit_code"], document["status"]) == (3, "LOSSES")


def test_text_report_lists_losses_and_checks(tmp_path: Path):
    result = run("plan", "--from", "istio", "--to", "linkerd", "-f", SHOP, "-o",
                 str(tmp_path / "out"), "--report", "text", "-q")
    lines = result.stdout.splitlines()
    assert lines[:4] == ["command: plan", "source: istio  target: linkerd 2.20", "exit: 0 OK",
                         "losses: 28 (5 manual, 0 dropped, 5 degraded, 18 info)"]
    assert "  info     AUTHZ_DENY_SUBSUMED AuthorizationPolicy/orders/deny-debug spec.action" \
        in lines
    assert "equivalence: 115 probes, 6 divergences, 0 unexplained" in lines
    assert lines[-1].startswith("coexistence: 10 steps checked, ")


def test_verify_report_moves_the_table_to_stderr(planned):
    out, _ = planned
    plain = run("verify", "--from", "istio", "-f", SHOP, "--plan", str(out))
    reported = run("verify", "--from", "istio", "-f", SHOP, "--plan", str(out), "--report",
                   "json")
    assert plain.exit_code == reported.exit_code == 0
    assert reported.stderr == plain.stdout  # the same table, for people
    document = json.loads(reported.stdout)
    assert report.validate(document, "report") == []
    assert document["command"] == "verify" and document["equivalence"]["probes"] == 115
    assert len(document["losses"]) == 28  # the plan's, which explain the divergences


_CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "virtualservices.networking.istio.io"},
        "spec": {"group": "networking.istio.io", "scope": "Namespaced",
                 "names": {"kind": "VirtualService", "plural": "virtualservices",
                           "singular": "virtualservice", "listKind": "VirtualServiceList"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object"}}}]}}


def test_export_report_needs_a_file_for_the_dump_and_reports_the_objects(tmp_path: Path):
    refused = run("export", "--from", "istio", "--report", "json")
    assert refused.exit_code == 2 and "give -o FILE" in refused.stderr
    state = new_state()
    state.load_crds([_CRD])
    state.add([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
               {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"hosts": ["web"], "http": [{"route": [{"destination":
                                                                {"host": "web"}}]}]}}])
    with FakeAPIServer(state) as server:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, state.token)
        result = run("export", "--from", "istio", "--kubeconfig", str(kubeconfig), "-o",
                     str(tmp_path / "dump.yaml"), "--report", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert report.validate(document, "report") == []
    assert document["summary"]["objects"] == 2
    assert document["output"] == str(tmp_path / "dump.yaml")


@pytest.mark.parametrize("name", report.SCHEMAS)
def test_docs_carry_the_shipped_schemas(name: str):
    shipped = REPO / "migrate" / "schemas" / f"{name}.schema.json"
    assert (REPO / "docs" / "schemas" / f"{name}.schema.json").read_bytes() == \
        shipped.read_bytes(), "copy migrate/schemas/*.json to docs/schemas/"
