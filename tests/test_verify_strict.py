"""The equivalence check cannot be talked out of a bug (issue 14): a divergence is explained
only by a loss on the object that decided it whose declared aspect and direction match.

Each test plans tests/verify_cases/loss_scope.yaml, sabotages the emitted manifests the way a
wrong conversion would, and requires ``meshmigrate verify`` to exit 3 although a loss sits on
the same object (a mirror loss on the weighted route, a dropped DENY or a fail-closed
condition in the same namespace)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from click.testing import CliRunner

from migrate.cli import main
from tests.helpers import texts

CASE = Path(__file__).parent / "verify_cases" / "loss_scope.yaml"


def _plan(tmp_path: Path) -> Path:
    out = tmp_path / "plan"
    run = CliRunner().invoke(main, ["plan", "--from", "istio", "--to", "linkerd", "-f",
                                    str(CASE), "-o", str(out)])
    assert run.exit_code == 0, run.stderr
    return out


def _verify(out: Path) -> Any:
    return CliRunner().invoke(main, ["verify", "--from", "istio", "-f", str(CASE), "--plan",
                                     str(out)])


def _edit(out: Path, pattern: str, change: Callable[[dict[str, Any]], None]) -> int:
    """Apply ``change`` to every emitted manifest whose file matches; returns how many."""
    count = 0
    for path in sorted(out.glob(f"steps/*/{pattern}")):
        body = yaml.safe_load(path.read_text())
        change(body)
        path.write_text(yaml.safe_dump(body))
        count += 1
    assert count, f"no manifest {pattern}"
    return count


def _fifty_fifty(body: dict[str, Any]) -> None:
    for rule in body["spec"]["rules"]:
        for ref in rule.get("backendRefs", []):
            ref["weight"] = 50


def _no_identities(body: dict[str, Any]) -> None:
    body["spec"] = {"identities": []}


def _open(body: dict[str, Any]) -> None:
    body["spec"]["accessPolicy"] = "all-unauthenticated"


def test_the_unsabotaged_plan_verifies(tmp_path: Path):
    run = _verify(_plan(tmp_path))
    assert run.exit_code == 0, run.stdout
    # The losses do explain what they cause: the dropped DENY admits /admin callers.
    assert "AUTHZ_DENY AuthorizationPolicy/shop/cart-deny" in run.stdout


def test_a_weight_change_is_not_explained_by_the_mirror_loss(tmp_path: Path):
    out = _plan(tmp_path)
    _edit(out, "shop/httproute.*_cart.yaml", _fifty_fifty)
    run = _verify(out)
    assert run.exit_code == 3, run.stdout
    unexplained = [d for d in _divergences(run.stdout) if d[2] == "NOTHING: a conversion bug"]
    assert unexplained and all(d[0] == "backends" for d in unexplained)


@pytest.mark.parametrize("pattern,change", [
    ("shop/meshtlsauthentication.*_cart-allow-r0s0.yaml", _no_identities),
    ("shop/server.*_cart-v*.yaml", _open)], ids=["emptied-meshtls", "opened-servers"])
def test_authorization_sabotage_is_not_explained_by_the_dropped_deny(tmp_path: Path, pattern,
                                                                    change):
    out = _plan(tmp_path)
    _edit(out, pattern, change)
    run = _verify(out)
    assert run.exit_code == 3, run.stdout
    bugs = [d for d in _divergences(run.stdout) if d[2] == "NOTHING: a conversion bug"]
    assert bugs and all(d[0].startswith("authorization") for d in bugs)


def test_a_deny_all_not_carried_is_not_explained_by_a_fail_closed_condition(tmp_path: Path):
    out = _plan(tmp_path)
    plan = json.loads((out / "plan.json").read_text())
    for step in plan["steps"]:
        dropped = [m for m in step["manifests"] if "/locked/" in m]
        step["manifests"] = [m for m in step["manifests"] if m not in dropped]
        for rel in dropped:
            (out / rel).unlink()
        # The deny-all is also carried as the namespace's default inbound policy: drop it too.
        step["commands"] = [c for c in step["commands"] if not (
            "namespace locked" in c["run"] and "default-inbound-policy" in c["run"])]
    (out / "plan.json").write_text(json.dumps(plan))
    run = _verify(out)
    assert run.exit_code == 3, run.stdout
    bugs = [d for d in _divergences(run.stdout) if d[2] == "NOTHING: a conversion bug"]
    assert bugs and all(d[0] == "authorization, allow-more" for d in bugs)
    assert not any("AUTHZ_CONDITION" in d[2] for d in _divergences(run.stdout)
                   if d[0] == "authorization, allow-more")


def _divergences(text: str) -> list[tuple[str, str, str]]:
    """(aspect, probe, explained by) of each divergence ``verify`` printed."""
    found = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("- ") and line.endswith("]"):
            probe, _, aspect = line[2:-1].rpartition("  [")
            why = lines[i + 3].split("explained by: ", 1)[1]
            found.append((aspect, probe, why))
    return found


def test_a_timeout_from_another_rule_is_explained_by_the_match_loss_not_a_retry_loss(
        tmp_path: Path):
    from migrate.pipeline import PlanOptions, plan_migration

    from tests.test_precision import OTHER_PORT, PORTS

    case = tmp_path / "in.yaml"
    case.write_text(PORTS % {"ports": OTHER_PORT})
    eq = plan_migration(PlanOptions("istio", "consul", [str(case)])).plan.equivalence
    assert eq is not None
    timeouts = [d for d in eq.divergences if d.aspect == "timeout"]
    assert timeouts and eq.unexplained == []
    for d in timeouts:
        # Consul ignores the port match, so /v2 hits rule 0 (timeout 2s) instead of rule 1:
        # the port-match loss says why; Istio's default retries have nothing to do with it.
        assert [e.split()[0] for e in d.explained_by] == ["ROUTE_MATCH_PORT"]


# -- verify refuses a plan made from something else (issue 14 item 6) ------------------------
def test_verify_refuses_another_source_mesh(tmp_path: Path):
    out = _plan(tmp_path)
    run = CliRunner().invoke(main, ["verify", "--from", "linkerd", "-f", str(CASE), "--plan",
                                    str(out)])
    assert run.exit_code == 2
    assert "made from istio, not linkerd" in run.stderr and "--from istio" in run.stderr


def test_verify_refuses_another_input_and_accepts_the_same_one_reordered(tmp_path: Path):
    out = _plan(tmp_path)
    docs = [d for d in yaml.safe_load_all(CASE.read_text()) if d]
    # The same objects in another order, in JSON, with server bookkeeping: still the input.
    same = tmp_path / "same.json"
    for d in docs:
        d.setdefault("metadata", {})["resourceVersion"] = "42"
    same.write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                "items": list(reversed(docs))}))
    ok = CliRunner().invoke(main, ["verify", "--from", "istio", "-f", str(same), "--plan",
                                   str(out)])
    assert ok.exit_code == 0, ok.stderr
    # One weight changed in the input: not what the plan was made from.
    changed = tmp_path / "changed.yaml"
    changed.write_text(CASE.read_text().replace("weight: 80", "weight: 70"))
    bad = CliRunner().invoke(main, ["verify", "--from", "istio", "-f", str(changed), "--plan",
                                    str(out)])
    assert bad.exit_code == 2
    assert "the input is not the one the plan was made from" in bad.stderr
    assert json.loads((out / "plan.json").read_text())["source"]["input_digest"] in bad.stderr


def test_runbook_groups_divergences_and_plan_json_keeps_them_all(tmp_path: Path):
    out = _plan(tmp_path)
    plan = json.loads((out / "plan.json").read_text())
    divergences = plan["equivalence"]["divergences"]
    assert len(divergences) > 3
    section = (out / "RUNBOOK.md").read_text().split("## Equivalence check", 1)[1]
    section = section.split("\n## ", 1)[0]
    table = section.split("| aspect | explained by | count |", 1)[1]
    rows = [line for line in table.splitlines()[2:] if line.startswith("| ")]
    # One row per (aspect, explaining codes), whose counts add up to every divergence.
    assert len(rows) < len(divergences)
    assert sum(int(r.split(" | ")[2]) for r in rows) == len(divergences)
    assert any(r.startswith("| authorization (allow-more) | AUTHZ_DENY |") for r in rows)
    assert {d.get("direction") for d in divergences if d["aspect"] == "authorization"} == {
        "allow-more"}


def test_a_lost_mirror_is_its_own_aspect_explained_only_by_the_mirror_loss():
    from migrate.pipeline import PlanOptions, plan_migration
    from migrate.verify.compare import compare, final_state

    result = plan_migration(PlanOptions("istio", "linkerd", [str(CASE)]))
    eq = result.plan.equivalence
    mirrors = [d for d in eq.divergences if d.aspect == "mirror"]
    assert mirrors and "mirrored to Service/shop/audit" in mirrors[0].source
    assert {e.split()[0] for d in mirrors for e in d.explained_by} == {"ROUTE_MIRROR"}
    # Without the mirror loss the same divergences are conversion bugs.
    target, annotations = final_state(([m.body for m in s.manifests], texts(s.commands))
                                      for s in result.plan.steps)
    kept = [x for x in result.plan.losses if x.code != "ROUTE_MIRROR"]
    again = compare([o.body for o in result.read.objects], target, annotations, kept,
                    source_mesh="istio", target_mesh="linkerd")
    assert {d.aspect for d in again.unexplained} == {"mirror"}


# -- coverage you can see (issue 14 item 4) --------------------------------------------------
def test_coverage_counts_services_rules_and_policies_and_names_what_was_missed(tmp_path: Path):
    from migrate.pipeline import PlanOptions, plan_migration

    case = tmp_path / "in.yaml"
    # loss_scope plus a VirtualService for a host the input has no Service for, and a
    # second rule no request can reach (the first one matches everything).
    case.write_text(CASE.read_text() + """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ghost, namespace: shop}
spec:
  hosts: [ghost]
  http:
  - route: [{destination: {host: ghost}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: audit, namespace: shop}
spec:
  hosts: [audit]
  http:
  - route: [{destination: {host: audit}}]
  - match: [{uri: {prefix: /never}}]
    route: [{destination: {host: cart}}]
""")
    eq = plan_migration(PlanOptions("istio", "linkerd", [str(case)])).plan.equivalence
    cov = eq.to_json()["coverage"]
    assert (cov["route_rules"]["covered"], cov["route_rules"]["total"]) == (2, 4)
    missed = {m["item"]: m["why"] for m in cov["route_rules"]["not_covered"]}
    assert set(missed) == {"VirtualService/shop/ghost spec.http[0]",
                           "VirtualService/shop/audit spec.http[1]"}
    assert "not in the input" in missed["VirtualService/shop/ghost spec.http[0]"]
    # Probed alone, /never is still decided by the catch-all before it: it cannot be reached.
    assert "decided by spec.http[0]" in missed["VirtualService/shop/audit spec.http[1]"]
    assert cov["route_rules"]["cannot_be_probed"] == 2
    assert eq.coverage is not None and eq.coverage.complete()
    assert (cov["policies"]["covered"], cov["policies"]["total"]) == (4, 4)
    assert cov["services"]["covered"] == cov["services"]["total"] == 5
