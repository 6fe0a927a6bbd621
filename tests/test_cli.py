"""The command line: exit codes, stdout/stderr split, bad input, determinism."""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml
from click.testing import CliRunner

from migrate.cli import main
from tests.conftest import SAMPLES
from tests.helpers import without_read_places

SHOP = str(SAMPLES / "istio" / "shop")
BOOKINFO = str(SAMPLES / "istio" / "bookinfo")


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_plan_writes_runbook_plan_json_and_kustomize_steps(tmp_path: Path):
    result = run("plan", "--from", "istio", "--to", "linkerd", "-f", SHOP, "-o", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # manifests never mix with the report
    assert "namespace orders:" in result.stderr and "AUTHZ_DENY" in result.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["source"]["mesh"] == "istio" and plan["target"]["mesh"] == "linkerd"
    assert {s["name"]: s["from"] for s in plan["source"]["settings"]} == {
        "trust_domain": "default", "root_namespace": "default",
        "istio_outbound_policy": "default"}
    assert plan["source"]["input_digest"].startswith("sha256:")
    for step in plan["steps"]:
        assert set(step) >= {"id", "title", "namespaces", "manifests", "commands", "verify",
                             "rollback"}
        folder = tmp_path / "steps" / step["id"]
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        assert sorted(f"steps/{step['id']}/{r}" for r in kustomization["resources"]) == \
            sorted(step["manifests"])
        for rel in step["manifests"]:
            body = yaml.safe_load((tmp_path / rel).read_text())
            assert body["metadata"]["annotations"]["meshmigrate.io/source"]
    for loss in plan["losses"]:
        assert set(loss) == {"code", "severity", "feature", "object", "path", "message", "action"}
        assert set(loss["object"]) == {"apiVersion", "kind", "namespace", "name"}
    runbook = (tmp_path / "RUNBOOK.md").read_text()
    assert "```mermaid" in runbook and "- [ ] `kubectl" in runbook and "**Rollback**" in runbook


def test_fail_on_sets_exit_code_3(tmp_path: Path):
    result = run("plan", "--from", "istio", "--to", "linkerd", "-f", SHOP, "-o", str(tmp_path),
                 "--fail-on", "manual")
    assert result.exit_code == 3
    clean = tmp_path / "clean.yaml"
    clean.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: x, labels: "
                     "{istio-injection: enabled}}\n---\n"
                     "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\n"
                     "spec: {ports: [{port: 80}]}\n")
    result = run("plan", "--from", "istio", "--to", "linkerd", "-f", str(clean), "-o",
                 str(tmp_path / "o2"), "--fail-on", "degraded")
    assert result.exit_code == 0, result.stderr


def test_usage_errors_exit_2_without_traceback(tmp_path: Path):
    typo = run("plan", "--from", "istoi", "--to", "linkerd", "-f", SHOP, "-o", str(tmp_path))
    assert typo.exit_code == 2 and "Did you mean istio?" in typo.stderr
    bad_version = run("plan", "--from", "istio", "--to", "linkerd", "-f", SHOP, "-o",
                      str(tmp_path), "--target-version", "3.1")
    assert bad_version.exit_code == 2 and "2.20" in bad_version.stderr
    missing = run("plan", "--from", "istio", "--to", "linkerd", "-f", "nope.yaml", "-o",
                  str(tmp_path))
    assert missing.exit_code == 1 and "no such file" in missing.stderr
    both = run("plan", "--from", "istio", "--to", "linkerd", "-o", str(tmp_path), "-n", "a",
               "-A")
    assert both.exit_code == 2 and "exclude each other" in both.stderr
    for r in (typo, bad_version, missing, both):
        assert "Traceback" not in r.stderr


def test_bad_input_is_reported_and_the_rest_is_planned(tmp_path: Path):
    good = (SAMPLES / "istio" / "bookinfo" / "networking.yaml").read_text()
    bad = tmp_path / "in.yaml"
    bad.write_text(good + "---\nkind: [broken\n---\napiVersion: networking.istio.io/v9\n"
                   "kind: VirtualService\nmetadata: {name: x, namespace: bookinfo}\n"
                   "spec: {hosts: [x]}\n")
    out = tmp_path / "out"
    result = run("plan", "--from", "istio", "--to", "linkerd", "-f", str(bad), "-f", BOOKINFO,
                 "-o", str(out))
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert any("malformed YAML" in e and f"{bad.name}:" in e for e in errors)
    assert any("unknown apiVersion networking.istio.io/v9" in e for e in errors)
    plan = json.loads((out / "plan.json").read_text())
    assert any("reviews" in m for s in plan["steps"] for m in s["manifests"])
    assert "Traceback" not in result.stderr


def test_order_override_reports_its_cost(tmp_path: Path):
    result = run("plan", "--from", "istio", "--to", "linkerd", "-f", SHOP, "-o", str(tmp_path),
                 "--order", "frontend")
    assert result.exit_code == 0, result.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["order"]["overridden"] is True
    assert plan["order"]["groups"][0] == ["frontend"]
    exposed = {(h["caller"], h["callee"]) for h in plan["order"]["override_cost"]}
    assert exposed == {("frontend", "orders"), ("frontend", "catalog")}
    assert {x["code"] for x in plan["losses"]} >= {"PLAN_ORDER_OVERRIDE"}


def test_output_folder_with_foreign_content_is_refused(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("mine")
    result = run("plan", "--from", "istio", "--to", "linkerd", "-f", SHOP, "-o", str(tmp_path))
    assert result.exit_code == 1 and "not empty" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_same_input_in_any_document_order_gives_identical_files(tmp_path: Path):
    documents = []
    for path in sorted(Path(BOOKINFO).glob("*.yaml")) + [Path(SHOP) / "dump.yaml"]:
        for doc in yaml.safe_load_all(path.read_text()):
            documents.extend(doc["items"] if doc.get("kind") == "List" else [doc])
    outputs = []
    for seed in (1, 2, 3):
        random.Random(seed).shuffle(documents)
        src = tmp_path / "input.yaml"
        src.write_text(yaml.safe_dump_all(documents, sort_keys=bool(seed % 2)))
        out = tmp_path / f"out{seed}"
        result = run("plan", "--from", "istio", "--to", "linkerd", "-f", str(src), "-o", str(out))
        assert result.exit_code == 0, result.stderr
        outputs.append(without_read_places(tree(out)))
    assert outputs[0] == outputs[1] == outputs[2]
    assert len(outputs[0]) > 30



def test_stdin_and_kind_list(tmp_path: Path):
    data = (Path(SHOP) / "dump.yaml").read_bytes()
    result = run("plan", "--from", "istio", "--to", "linkerd", "-f", "-", "-o", str(tmp_path),
                 input=data)
    assert result.exit_code == 0, result.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["order"]["groups"] == [["shared-db"], ["catalog"], ["orders", "payments"],
                                       ["frontend"]]


def test_meshes_lists_pairs():
    result = run("meshes")
    assert result.exit_code == 0
    assert "istio" in result.stdout and "linkerd" in result.stdout and "2.20" in result.stdout


def test_duplicates_resolved_like_kubectl_apply_and_reported(tmp_path: Path):
    vs = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
          "metadata: {name: r, namespace: ns}\nspec:\n  hosts: [r]\n  http:\n"
          "  - route: [{destination: {host: r, port: {number: %d}}}]\n")
    (tmp_path / "a.yaml").write_text(vs % 80)
    (tmp_path / "b.yaml").write_text(vs % 81)
    (tmp_path / "c.yaml").write_text(vs % 81)  # identical to b: not a conflict by itself
    out = tmp_path / "out"
    result = run("plan", "--from", "istio", "--to", "linkerd", "-f", str(tmp_path / "a.yaml"),
                 "-f", str(tmp_path / "b.yaml"), "-o", str(out))
    assert result.exit_code == 0
    plan = json.loads((out / "plan.json").read_text())
    [dup] = [x for x in plan["losses"] if x["code"] == "INPUT_DUPLICATE"]
    assert "a.yaml" in dup["message"] and "planned from" in dup["message"]
    assert dup["message"].endswith("b.yaml")
    route = yaml.safe_load((out / plan["steps"][1]["manifests"][0]).read_text())
    assert route["spec"]["rules"][0]["backendRefs"][0]["port"] == 81
    same = run("plan", "--from", "istio", "--to", "linkerd", "-f", str(tmp_path / "b.yaml"),
               "-f", str(tmp_path / "c.yaml"), "-o", str(tmp_path / "out2"))
    plan = json.loads((tmp_path / "out2" / "plan.json").read_text())
    assert same.exit_code == 0 and all(x["code"] != "INPUT_DUPLICATE" for x in plan["losses"])


def test_reading_files_never_imports_the_kubernetes_client():
    import subprocess
    import sys

    code = ("import sys; from migrate.pipeline import PlanOptions, plan_migration; "
            f"plan_migration(PlanOptions('istio', 'linkerd', [{SHOP!r}])); "
            "print('kubernetes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def test_no_verify_skips_the_checks_and_says_so(tmp_path: Path):
    checked = run("plan", "--from", "istio", "--to", "linkerd", "-f", SHOP, "-o",
                  str(tmp_path / "checked"))
    skipped = run("plan", "--from", "istio", "--to", "linkerd", "-f", SHOP, "-o",
                  str(tmp_path / "skipped"), "--no-verify")
    assert checked.exit_code == skipped.exit_code == 0
    full = json.loads((tmp_path / "checked" / "plan.json").read_text())
    bare = json.loads((tmp_path / "skipped" / "plan.json").read_text())
    assert full["equivalence"]["probes"] > 0 and full["coexistence"]
    assert bare["equivalence"] is None and bare["coexistence"] is None
    assert bare["steps"] == full["steps"]  # the plan itself is the same
    runbook = (tmp_path / "skipped" / "RUNBOOK.md").read_text()
    assert "checks were skipped" in runbook and "meshmigrate verify" in runbook
    assert "equivalence:" not in skipped.stderr


def test_console_script_exits_with_the_commands_status_and_output(tmp_path: Path):
    """`python -m migrate` (the console script's `run`) leaves by os._exit once the command is
    done: the output is complete and flushed, and the status is the command's."""
    import subprocess
    import sys

    def console(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "migrate", *args], capture_output=True,
                              text=True, timeout=300)

    done = console("plan", "--from", "istio", "--to", "linkerd", "-f", str(SHOP), "-o",
                   str(tmp_path / "out"), "--no-verify")
    assert done.returncode == 0, done.stderr
    steps = len(list((tmp_path / "out" / "steps").iterdir()))
    assert done.stderr.rstrip().endswith(f"wrote {steps} steps to {tmp_path / 'out'}")
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())  # complete, not cut short
    assert plan["steps"] and (tmp_path / "out" / "RUNBOOK.md").read_text().endswith("\n")
    missing = console("plan", "--from", "istio", "--to", "linkerd", "-f",
                      str(tmp_path / "absent.yaml"), "-o", str(tmp_path / "x"))
    same = run("plan", "--from", "istio", "--to", "linkerd", "-f", str(tmp_path / "absent.yaml"),
               "-o", str(tmp_path / "x"))
    assert missing.returncode == same.exit_code != 0
    assert "absent.yaml" in missing.stderr and "Traceback" not in missing.stderr
    helped = console("--help")
    assert helped.returncode == 0 and "Usage:" in helped.stdout


def test_counts_take_the_singular_for_one(tmp_path: Path):
    # One Service with a DENY policy: one loss; the summary says "1 loss", never "1 losses".
    src = tmp_path / "one.yaml"
    src.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\n"
                   "spec: {ports: [{port: 80}]}\n---\n"
                   "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
                   "metadata: {name: d, namespace: x}\nspec: {action: DENY, rules: [{}]}\n")
    result = run("plan", "--from", "istio", "--to", "linkerd", "-f", str(src), "-o",
                 str(tmp_path / "out"))
    assert "meshmigrate: 1 loss (" in result.stderr, result.stderr
    from migrate.wording import counted

    assert [counted(n, "divergence") for n in (0, 1, 2)] == \
        ["0 divergences", "1 divergence", "2 divergences"]
    assert counted(1, "loss", "losses") == "1 loss" and counted(3, "loss", "losses") == "3 losses"


def test_unreachable_cluster_suggests_f_only_where_the_command_takes_it(tmp_path: Path):
    missing = str(tmp_path / "no-kubeconfig")
    exported = run("export", "--from", "istio", "--kubeconfig", missing)
    assert exported.exit_code == 5
    assert "no kubeconfig at" in exported.stderr and "-f" not in exported.stderr
    planned = run("plan", "--from", "istio", "--to", "linkerd", "--kubeconfig", missing,
                  "-o", str(tmp_path / "out"))
    assert planned.exit_code == 5 and "-f PATH" in planned.stderr
