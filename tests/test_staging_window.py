"""Issue 15, staging: Linkerd plaintext twins exist only while their callers are on the source
mesh, their real reach is reported, the coexistence check follows the requests the source
refused through every step, and ``--staging audit`` is an explicit, reported choice."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from migrate.aspects import declarations
from migrate.cli import main
from migrate.errors import UsageError
from migrate.pipeline import PlanResult
from migrate.verify.admits import unexplained
from tests.helpers import plan_yaml, texts
from tests.test_authz_scope import SHOP

# shop/api (Deployment api-v1, app: api) called from web/front (tests/test_authz_scope.py)
NAMESPACES = SHOP


def policy(*principals: str, path: str = "/items") -> str:
    """An ALLOW policy on shop/api, one rule per principal."""
    rules = "".join(f"""
  - from: [{{source: {{principals: ["{p}"]}}}}]
    to: [{{operation: {{methods: ["GET"], paths: ["{path}"]}}}}]""" for p in principals)
    return f"""
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: allow-api, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: api}}}}
  action: ALLOW
  rules:{rules}
"""


WEB = "cluster.local/ns/web/sa/default"
SELF = "cluster.local/ns/shop/sa/default"


def step(result: PlanResult, slug: str):
    return next(s for s in result.plan.steps if s.id.endswith(slug))


def twins(result: PlanResult, slug: str) -> list[str]:
    return sorted(m.name for m in step(result, slug).manifests
                  if m.kind == "AuthorizationPolicy" and m.name.endswith("-plaintext"))


def test_a_grant_whose_callers_move_with_it_gets_no_twin():
    result = plan_yaml(NAMESPACES + policy(SELF, WEB))
    names = twins(result, "move-shop")
    # r1 (web) keeps a twin for web's callers still on Istio; r0 (shop itself) moves with the
    # Server in the same step, so nothing on Istio needs it.
    assert len(names) == 1 and names[0].startswith("allow-api-r1s0"), names
    assert all(not n.startswith("allow-api-r0s0") for n in names)


def test_a_twin_goes_with_the_move_of_its_last_caller_and_comes_back_on_rollback():
    result = plan_yaml(NAMESPACES + policy(WEB))
    [twin] = twins(result, "move-shop")
    move_web = step(result, "move-web")
    cmds = texts(move_web.commands)
    delete = next(i for i, c in enumerate(cmds) if f"authorizationpolicy.policy.linkerd.io/{twin}"
                  in c and c.startswith("kubectl delete"))
    # after web's pods run on Linkerd: the last rollout status comes before the delete
    last_rollout = max(i for i, c in enumerate(cmds) if "rollout status" in c)
    assert delete > last_rollout
    rollback = texts(move_web.rollback)
    assert rollback[0].startswith("kubectl apply --server-side")
    assert any(f"steps/01-move-shop/shop/authorizationpolicy.policy.linkerd.io_{twin}.yaml" in c
               for c in rollback)
    enforce = step(result, "enforce-shop")
    assert not any(twin in c for c in texts(enforce.commands))  # already gone
    back = texts(enforce.rollback)
    reapply = next(i for i, c in enumerate(back) if "-k steps/01-move-shop" in c)
    again = next(i for i, c in enumerate(back) if twin in c and c.startswith("kubectl delete"))
    assert again > reapply  # the move folder brings it back; it stays deleted


def test_a_grant_to_any_identity_keeps_its_twin_until_enforce():
    result = plan_yaml(NAMESPACES + policy("*"))
    # "*" is any identity: no namespace to wait for. A principal "*" also admits plaintext in
    # Linkerd terms only through the twin, which enforce deletes.
    for name in twins(result, "move-shop"):
        assert not any(name in c for c in texts(step(result, "move-web").commands))
        assert any(name in c for c in texts(step(result, "enforce-shop").commands))


def test_the_twin_window_is_reported_as_admitting_any_in_cluster_client():
    result = plan_yaml(NAMESPACES + policy(WEB))
    found = [loss for loss in result.losses if loss.code == "PLAN_STAGING_OPEN"]
    assert [str(loss.object) for loss in found] == ["AuthorizationPolicy/shop/allow-api"]
    message = found[0].message
    move_shop, move_web = step(result, "move-shop").number, step(result, "move-web").number
    assert f"from step {move_shop} to step {move_web}" in message
    assert "with or without a mesh identity" in message and "callers in web" in message
    declared = declarations()["PLAN_STAGING_OPEN"]
    assert declared.covers("authorization", "allow-more", identified=True)
    assert not declared.covers("authorization", "refuse-more")


def test_no_twin_no_staging_open_loss():
    result = plan_yaml(NAMESPACES + policy(SELF))
    assert twins(result, "move-shop") == []
    assert "PLAN_STAGING_OPEN" not in {loss.code for loss in result.losses}


def test_the_coexistence_check_lists_what_the_twin_admits_and_the_loss_explains_it():
    result = plan_yaml(NAMESPACES + policy(WEB))
    co = result.plan.coexistence
    assert co is not None
    number = step(result, "move-shop").number
    at_move = next(s for s in co if s["step"] == number)["admits_more"]
    # the source refused an unknown identity on GET /items; during the window the twin
    # admits its plaintext (it calls from a namespace still on Istio)
    unknown = [r for r in at_move if r["client"] == "meshmigrate-probe/unknown"
               and r["request"].endswith(":8080/items") and r["request"].startswith("GET")]
    assert unknown and unknown[0]["plaintext"]
    assert any(e.startswith("PLAN_STAGING_OPEN") for e in unknown[0]["explained_by"])
    assert unexplained(co) == []
    last = co[-1]
    assert last["admits_more"] == []  # enforced: the final state admits nothing more


def test_admitted_more_without_a_loss_fails_the_plan(tmp_path: Path, monkeypatch):
    src = tmp_path / "in.yaml"
    src.write_text(NAMESPACES + policy(WEB))
    out = tmp_path / "out"
    runner = CliRunner()
    ok = runner.invoke(main, ["plan", "--from", "istio", "--to", "linkerd", "-f", str(src),
                              "-o", str(out)])
    assert ok.exit_code == 0, ok.output
    # The same plan with the window not reported: the twin's reach is a silent widening.
    monkeypatch.setattr("migrate.plan.staging.report", lambda *a, **k: None)
    bad = runner.invoke(main, ["plan", "--from", "istio", "--to", "linkerd", "-f", str(src),
                               "-o", str(out)])
    assert bad.exit_code == 3
    assert "admits more: step" in bad.output


def test_staging_audit_is_explicit_reported_and_has_no_twins():
    result = plan_yaml(NAMESPACES + policy(WEB), staging="audit")
    staged = [m.body for m in step(result, "move-shop").manifests if m.kind == "Server"]
    assert [s["spec"]["accessPolicy"] for s in staged] == ["audit"]
    assert twins(result, "move-shop") == []
    audit = [loss for loss in result.losses if loss.code == "PLAN_STAGING_AUDIT"]
    assert [str(loss.object) for loss in audit] == ["Namespace/shop"]
    assert "every request from every client" in audit[0].message
    assert "--staging audit" in step(result, "move-shop").summary
    enforced = [m.body for m in step(result, "enforce-shop").manifests if m.kind == "Server"]
    assert [s["spec"]["accessPolicy"] for s in enforced] == ["deny"]
    assert unexplained(result.plan.coexistence or []) == []


def test_staging_audit_without_its_loss_is_caught_by_the_coexistence_check(monkeypatch):
    from migrate.plan import staging

    real = staging.report_plaintext

    def silent(losses, target, *args):  # the audit loss left out, the rest kept
        target.staging_mode = "strict"
        real(losses, target, *args)

    monkeypatch.setattr(staging, "report_plaintext", silent)
    result = plan_yaml(NAMESPACES + policy(WEB), staging="audit")
    wider = unexplained(result.plan.coexistence or [])
    # identified callers the source refused pass audit: no plaintext-only loss covers them
    assert wider and any(not r["plaintext"] for _, r in wider)


def test_staging_audit_is_refused_for_targets_without_an_audit_form():
    with pytest.raises(UsageError, match="--staging audit is for --to linkerd"):
        plan_yaml(NAMESPACES + policy(WEB), "istio", "consul", staging="audit")


# -- ports no Server covers on workloads under an ALLOW policy ----------------------------
ANNOTATION = "config.linkerd.io/default-inbound-policy"


def test_pods_under_an_allow_policy_default_to_deny_before_they_restart():
    result = plan_yaml(NAMESPACES + policy(WEB))
    move = step(result, "move-shop")
    cmds = texts(move.commands)
    patch = next(i for i, c in enumerate(cmds) if c.startswith("kubectl patch deployment api-v1")
                 and f'"{ANNOTATION}":"deny"' in c)
    # Linkerd reads the annotation when the pod is created: the patch itself rolls the pods
    # (after the namespace's injection annotation), so no second restart follows it.
    inject = next(i for i, c in enumerate(cmds) if c.startswith("kubectl annotate namespace shop"))
    status = next(i for i, c in enumerate(cmds) if "rollout status deployment/api-v1" in c)
    assert inject < patch < status
    assert not any("rollout restart deployment/api-v1" in c for c in cmds)
    assert any(c.startswith("kubectl patch deployment api-v1") and '"op":"remove"' in c
               and "config.linkerd.io~1default-inbound-policy" in c
               for c in texts(move.rollback))
    # the rule admits on any port (no ports field): undeclared ports now refuse it, reported
    found = [loss for loss in result.losses if loss.code == "AUTHZ_WORKLOAD_DEFAULT"]
    assert [str(loss.object) for loss in found] == ["Deployment/shop/api-v1"]
    # the front Deployment has no policy: nothing set on it
    assert not any("deployment front" in c and ANNOTATION in c
                   for c in texts(step(result, "move-web").commands))


def test_a_port_restricted_rule_is_not_reported_and_audit_sets_no_workload_default():
    text = NAMESPACES + policy(WEB).replace(
        'methods: ["GET"]', 'ports: ["8080"], methods: ["GET"]')
    result = plan_yaml(text)
    assert "AUTHZ_WORKLOAD_DEFAULT" not in {loss.code for loss in result.losses}
    assert any(ANNOTATION in c for c in texts(step(result, "move-shop").commands))
    audit = plan_yaml(text, staging="audit")
    assert not any(c.startswith("kubectl patch") and ANNOTATION in c
                   for c in texts(step(audit, "move-shop").commands))


def test_verify_exits_3_when_the_plan_no_longer_reports_what_a_step_admits(tmp_path: Path):
    import json

    src = tmp_path / "in.yaml"
    src.write_text(NAMESPACES + policy(WEB))
    out = tmp_path / "out"
    runner = CliRunner()
    assert runner.invoke(main, ["plan", "--from", "istio", "--to", "linkerd", "-f", str(src),
                                "-o", str(out)]).exit_code == 0
    verify = ["verify", "--from", "istio", "-f", str(src), "--plan", str(out), "-q"]
    assert runner.invoke(main, verify).exit_code == 0
    plan = json.loads((out / "plan.json").read_text())
    plan["losses"] = [x for x in plan["losses"] if x["code"] != "PLAN_STAGING_OPEN"]
    (out / "plan.json").write_text(json.dumps(plan))
    edited = runner.invoke(main, verify)
    assert edited.exit_code == 3
    assert "admits more: step 1:" in edited.output
