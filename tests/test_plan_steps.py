"""Plan structure: prerequisites, staging, every step verifiable and reversible, validation."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.cli import main
from migrate.names import NameRegistry, k8s_name, valid_name
from migrate.pipeline import PlanOptions, plan_migration
from tests.conftest import SAMPLES
from tests.helpers import texts

BOOKINFO = SAMPLES / "istio" / "bookinfo"
SHOP = SAMPLES / "istio" / "shop"


def test_every_step_has_verification_and_rollback():
    plan = plan_migration(PlanOptions("istio", "linkerd", [str(SHOP)])).plan
    kinds = [s.kind for s in plan.steps]
    assert kinds[0] == "prerequisites" and kinds[-1] == "cleanup"
    assert kinds.index("ingress") > max(i for i, k in enumerate(kinds) if k == "move")
    for step in plan.steps:
        assert step.verify, step.id
        assert step.rollback, step.id


def test_istio_mutual_is_neutralized_before_anything_moves():
    plan = plan_migration(PlanOptions("istio", "linkerd", [str(BOOKINFO)])).plan
    first = plan.steps[0]
    [dr] = [m.body for m in first.manifests]
    assert dr["kind"] == "DestinationRule" and dr["metadata"]["name"] == "reviews"
    assert "tls" not in dr["spec"].get("trafficPolicy", {})
    assert [s["name"] for s in dr["spec"]["subsets"]] == ["v1", "v2", "v3"]
    # The original is kept for the rollback, as it was.
    [original] = first.rollback_manifests
    assert original["spec"]["trafficPolicy"]["tls"]["mode"] == "ISTIO_MUTUAL"
    assert any(c.startswith("kubectl replace -k steps/00-") for c in texts(first.commands))


def test_routing_objects_stay_until_the_last_istio_caller_moved():
    plan = plan_migration(PlanOptions("istio", "linkerd", [str(SHOP)])).plan
    delete_vs = {s.id: [c for c in texts(s.commands) if "virtualservice" in c]
                 for s in plan.steps}
    moved_orders = next(s.number for s in plan.steps if "orders" in s.namespaces
                        and s.kind == "move")
    moved_frontend = next(s.number for s in plan.steps if s.namespaces == ["frontend"]
                          and s.kind == "move")
    [(step_id, cmds)] = [(k, v) for k, v in delete_vs.items()
                         if any("virtualservice.networking.istio.io/orders" in c for c in v)]
    number = int(step_id[:2])
    # orders is called by frontend: its VirtualService goes only after frontend moved.
    assert number > moved_frontend > moved_orders


def test_validate_with_reports_file_and_field(tmp_path: Path, shared: Path):
    crds = shared / "crds" / "linkerd" / "edge-26.8.3" / "rendered" / "install_crds.golden.yaml"
    gateway = shared / "crds" / "gateway-api" / "v1.6.1" / "experimental"
    istio = shared / "crds" / "istio" / "1.30.3" / "crd-all.gen.yaml"
    ok = CliRunner().invoke(main, ["plan", "--from", "istio", "--to", "linkerd", "-f",
                                   str(SHOP), "-o", str(tmp_path / "a"), "--validate-with",
                                   str(crds), "--validate-with", str(gateway),
                                   "--validate-with", str(istio)])
    assert ok.exit_code == 0, ok.stderr
    # A stricter Server schema (accessPolicy may only be audit) must be caught.
    docs = [d for d in yaml.safe_load_all(crds.read_text()) if d]
    for d in docs:
        if d["spec"]["names"]["kind"] == "Server":
            for v in d["spec"]["versions"]:
                props = v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
                if "accessPolicy" in props:
                    props["accessPolicy"]["enum"] = ["audit"]
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump_all(docs))
    bad = CliRunner().invoke(main, ["plan", "--from", "istio", "--to", "linkerd", "-f",
                                    str(SHOP), "-o", str(tmp_path / "b"), "--validate-with",
                                    str(strict)])
    assert bad.exit_code == 4
    lines = [x for x in bad.stderr.splitlines() if x.startswith("invalid: ")]
    assert any("payments/server.policy.linkerd.io_payments-grpc.yaml: spec.accessPolicy:" in x
               for x in lines)


def test_generated_names_stay_valid_and_unique():
    long = "x" * 70
    assert len(k8s_name(long, "canary")) == 63 and valid_name(k8s_name(long, "canary"))
    assert k8s_name(long + "a") != k8s_name(long + "b")
    assert valid_name(k8s_name("9lives", "V1_beta"), service=True)
    registry = NameRegistry()
    first = registry.claim("Service", "ns", "reviews-v1", "subset/reviews/v1")
    second = registry.claim("Service", "ns", "reviews-v1", "subset/reviews-v1/")
    assert first == "reviews-v1" and second != first and valid_name(second, service=True)
    assert registry.claim("Service", "ns", "reviews-v1", "subset/reviews/v1") == first


@given(st.text(alphabet="ab9-_.A", max_size=70))
@settings(max_examples=400, deadline=None)
def test_a_name_is_kept_as_it_is_exactly_when_it_is_already_a_valid_label(raw: str):
    # k8s_name returns most names untouched through a quick test; that test must agree
    # with the label rules (a letter first, no dash at either end or twice in a row).
    plain = bool(re.fullmatch(r"[a-z](?:-?[a-z0-9])*", raw)) and len(raw) <= 63
    assert (k8s_name(raw) == raw) == plain
    assert valid_name(k8s_name(raw), service=True)


def test_rollback_never_deletes_a_service_the_step_only_annotated():
    plan = plan_migration(PlanOptions("istio", "linkerd", [str(SHOP)])).plan
    move = next(s for s in plan.steps if s.namespaces == ["catalog"] and s.kind == "move")
    assert any(m.patch and m.name == "catalog" for m in move.manifests)
    assert not any("delete -k" in c for s in plan.steps for c in texts(s.rollback))
    rollback = texts(move.rollback)
    assert "kubectl delete service/catalog -n catalog --ignore-not-found" not in rollback
    assert any(c.startswith("kubectl annotate service catalog -n catalog "
                            "balancer.linkerd.io/failure-accrual-") for c in rollback)
    assert "kubectl delete service/catalog-v1 -n catalog --ignore-not-found" in rollback


def test_routing_is_in_place_before_the_first_caller_moves_even_with_an_override():
    plan = plan_migration(PlanOptions("istio", "linkerd", [str(SHOP)], order=["frontend"])).plan
    first_move = next(s for s in plan.steps if s.kind == "move")
    assert first_move.namespaces == ["frontend"]
    routed = {(m.namespace, m.name) for m in first_move.manifests if m.kind == "HTTPRoute"}
    assert {("catalog", "catalog"), ("orders", "orders")} <= routed


def test_non_http_ports_become_opaque_before_the_switch():
    text = """
apiVersion: v1
kind: Namespace
metadata: {name: data, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: cache, namespace: data}
spec:
  selector: {app: cache}
  ports: [{name: tcp-memcache, port: 11211}, {name: tcp-custom, port: 7000, targetPort: 7001}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cache, namespace: data}
spec:
  template:
    metadata: {labels: {app: cache}}
    spec: {containers: [{name: c, image: x, ports: [{containerPort: 7001}]}]}
"""
    import io

    result = plan_migration(PlanOptions("istio", "linkerd", ["-"],
                                        stdin=io.BytesIO(text.encode())))
    move = next(s for s in result.plan.steps if s.kind == "move")
    [annotate] = [c for c in texts(move.commands) if "linkerd.io/inject=enabled" in c]
    assert "config.linkerd.io/opaque-ports=25,587,3306,4444,5432,6379,7001,9300,11211" in annotate
