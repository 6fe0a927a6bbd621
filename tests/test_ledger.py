"""The ledger (plan.json ``sources``): every object read is listed once with a known
disposition, every manifest it names exists and carries it in its source annotation, and
every field of every source mesh object is accounted for (read, or reported)."""

from __future__ import annotations

import re

from pathlib import Path

import pytest
import yaml

from migrate.emit.manifests import SOURCE_ANNOTATION
from migrate.emit.output import write_output
from migrate.ledger import DISPOSITIONS, REASONS, leaves
from migrate.pipeline import PlanOptions, plan_migration
from migrate.sources.files import read_files
from tests.conftest import corpus_cases, shared_sets
from tests.helpers import plan_yaml
from tests.test_corpus import covered

MESHES = ("istio", "linkerd", "consul")
PAIRS = {f"{a}-to-{b}" for a in MESHES for b in MESHES if a != b}
CASES = [(mesh, name, target) for mesh in MESHES for name in shared_sets(mesh)
         for target in MESHES if target != mesh]


REPO = Path(__file__).resolve().parent.parent
LOCAL = [(mesh, str(p.relative_to(REPO)), target)
         for mesh in MESHES for p in sorted((REPO / "samples" / mesh).iterdir()) if p.is_dir()
         for target in MESHES if target != mesh] + [
    (case.parent.name.split("-to-")[0] if case.parent.name in PAIRS else "istio",
     str(case.relative_to(REPO)), target)
    for case in sorted((REPO / "tests" / "golden").glob("*")) +
    sorted((REPO / "tests" / "golden_pairs").glob("*/*"))
    if (case / "input.yaml").is_file()
    for target in MESHES
    if target != (case.parent.name.split("-to-")[0] if case.parent.name in PAIRS else "istio")]


@pytest.mark.parametrize("mesh,name,target", corpus_cases(CASES, argcount=3))
def test_corpus_ledger_is_complete(shared: Path, tmp_path: Path, mesh: str, name: str,
                                   target: str):
    check_ledger(shared / "corpus" / mesh / name, mesh, target, tmp_path)


@pytest.mark.parametrize("mesh,name,target", LOCAL)
def test_sample_and_golden_ledgers_are_complete(tmp_path: Path, mesh: str, name: str,
                                                target: str):
    path = REPO / name
    check_ledger(path / "input.yaml" if (path / "input.yaml").is_file() else path, mesh,
                 target, tmp_path)


def check_ledger(path: Path, mesh: str, target: str, tmp_path: Path) -> None:
    """The ledger of one plan: complete, known dispositions, consistent annotations, every
    field of every source mesh object accounted for."""
    result = plan_migration(PlanOptions(source=mesh, target=target, paths=[str(path)],
                                        verify=False))
    ledger = result.plan.ledger
    # Each object of the input exactly once (copies of one object are one entry).
    read = {o.ref for o in read_files([str(path)]).objects}
    listed = [e.ref for e in ledger if e.ref.kind]
    assert len(listed) == len(set(listed))
    assert set(listed) == read
    assert {e.disposition for e in ledger} <= set(DISPOSITIONS) - {"untraced"}, \
        [str(e.ref) for e in ledger if e.disposition == "untraced"]
    write_output(result.plan, tmp_path / "plan")
    for entry in ledger:
        assert set(entry.reasons) <= set(REASONS)
        for step, manifest in entry.targets + entry.rewritten:
            docs = [d for d in yaml.safe_load_all((tmp_path / "plan" / manifest).read_text())
                    if d]
            named = docs[0]["metadata"]["annotations"][SOURCE_ANNOTATION].split(",")
            assert entry.ref.source_id in named, (entry.ref, manifest)
        assert entry.disposition != "lost" or entry.losses
        assert entry.disposition != "not-needed" or entry.reasons
    # And the other way: every object an annotation names lists that file. Objects written
    # for a whole namespace (Consul's Mesh entry) may name a namespace the input has no
    # Namespace object for; nothing else may name an object that was not read.
    named_in = {(e.ref.source_id, path) for e in ledger for _, path in e.targets + e.rewritten}
    read_ids = {e.ref.source_id for e in ledger}
    for step in result.plan.steps:
        for file in (tmp_path / "plan" / "steps" / step.id).rglob("*.yaml"):
            rel = str(file.relative_to(tmp_path / "plan"))
            if "/rollback/" in rel or file.name == "kustomization.yaml":
                continue
            doc = yaml.safe_load(file.read_text())
            for source in doc["metadata"]["annotations"][SOURCE_ANNOTATION].split(","):
                if source not in read_ids and source.startswith("Namespace//"):
                    continue
                assert (source, rel) in named_in, (source, rel)
    # Every field of every source mesh object: read or reported (the reader's accounting),
    # and listed in the ledger with the losses covering it where nothing carries it.
    for ref, raw in result.read.raw.items():
        accounted = result.read.accounted[ref]
        missing = [leaf for leaf in leaves(raw.body) if not covered(leaf, accounted)]
        assert missing == [], f"{ref}: fields neither used nor reported: {missing}"
        entry = next(e for e in ledger if e.ref == ref)
        assert entry.fields is not None and set(entry.fields) == set(leaves(raw.body))
        if entry.disposition == "lost":
            assert all(entry.fields.values()), (ref, entry.fields)


ISTIO_SHOP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
"""
"""Namespace shop, injected by Istio."""


def test_annotate_commands_name_the_peer_authentication():
    """STRICT mTLS becomes Linkerd's default-inbound-policy annotation: the command that sets
    it names the PeerAuthentication, and so does its ledger entry."""
    result = plan_yaml(ISTIO_SHOP + """
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: shop}
spec: {mtls: {mode: STRICT}}
""")
    commands = [c for s in result.plan.steps for c in s.commands
                if "config.linkerd.io/default-inbound-policy" in " ".join(c.pipeline[0])]
    assert commands and all("PeerAuthentication/shop/strict" in c.sources for c in commands)
    entry = next(e for e in result.plan.ledger if e.ref.kind == "PeerAuthentication")
    assert entry.disposition == "converted"
    assert any("config.linkerd.io/default-inbound-policy" in run for _, run in entry.commands)


def test_folded_linkerd_objects_are_named_on_the_istio_policy():
    """A Linkerd AuthorizationPolicy's Server and MeshTLSAuthentication are named in the
    source annotation of the Istio policy written from it."""
    result = plan_yaml("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata: {labels: {app: web}, annotations: {linkerd.io/inject: enabled}}
    spec: {containers: [{name: web, ports: [{containerPort: 8080, name: http}]}]}
---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: web-http, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}, port: http}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {name: clients, namespace: shop}
spec: {identities: ["*"]}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: shop}
spec:
  targetRef: {group: policy.linkerd.io, kind: Server, name: web-http}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: MeshTLSAuthentication, name: clients}
""", source="linkerd", target="istio")
    entries = {str(e.ref): e for e in result.plan.ledger}
    for name in ("Server/shop/web-http", "MeshTLSAuthentication/shop/clients",
                 "AuthorizationPolicy/shop/allow"):
        assert entries[name].disposition == "converted", name
    policies = [m for s in result.plan.steps for m in s.manifests
                if m.kind == "AuthorizationPolicy"]
    named = {r.source_id for m in policies for r in m.sources}
    assert {"Server/shop/web-http", "MeshTLSAuthentication/shop/clients"} <= named


CONSUL_WEB = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata: {labels: {app: web}, annotations: {consul.hashicorp.com/connect-inject: "true"}}
    spec: {serviceAccountName: web, containers: [{name: web, ports: [{containerPort: 8080}]}]}
"""
"""A Consul-injected web Service and Deployment in namespace shop."""


def test_service_defaults_protocol_has_a_disposition():
    """A ServiceDefaults protocol the target infers from the Service's ports needs nothing;
    one for a service the input does not show is a loss."""
    result = plan_yaml(CONSUL_WEB + """
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata: {name: web, namespace: shop}
spec: {protocol: http}
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata: {name: ghost, namespace: shop}
spec: {protocol: http}
""", source="consul", target="istio")
    entries = {str(e.ref): e for e in result.plan.ledger}
    assert entries["ServiceDefaults/shop/web"].disposition == "not-needed"
    assert entries["ServiceDefaults/shop/web"].reasons == ["PROTOCOL_INFERRED"]
    ghost = entries["ServiceDefaults/shop/ghost"]
    assert ghost.disposition == "lost"
    assert [result.plan.losses[i].code for i in ghost.losses] == ["CONSUL_SERVICE_UNRESOLVED"]


def test_destination_rule_for_absent_service_is_a_loss():
    result = plan_yaml(ISTIO_SHOP + """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: shop}
spec:
  hosts: [r]
  http: [{route: [{destination: {host: r, subset: v1}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r, namespace: shop}
spec: {host: r, subsets: [{name: v1, labels: {version: v1}}]}
""")
    entry = next(e for e in result.plan.ledger if e.ref.kind == "DestinationRule")
    assert entry.disposition == "lost"
    assert "ROUTE_BACKEND_UNKNOWN" in {result.plan.losses[i].code for i in entry.losses}
    assert entry.fields["spec.subsets[0].labels.version"]


def test_every_object_has_one_entry_with_its_place():
    """Outside objects, input problems and duplicate copies are in the ledger too."""
    result = plan_yaml(ISTIO_SHOP + """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {a: b}
---
apiVersion: v1
kind: Service
metadata: {name: Bad_Name, namespace: shop}
spec: {ports: [{port: 80}]}
""")
    by_kind = {e.ref.kind: e for e in result.plan.ledger}
    assert by_kind["ConfigMap"].disposition == "outside"
    assert by_kind["ConfigMap"].reasons == ["OTHER_KIND"]
    assert by_kind["Service"].disposition == "input-problem" and by_kind["Service"].problems
    assert by_kind["Namespace"].disposition == "converted"  # the injection commands
    assert all(e.line > 0 for e in result.plan.ledger)


INTENTIONS = CONSUL_WEB + """
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata: {name: web, namespace: shop}
spec:
  destination: {name: web}
  sources:
  - {name: ghost, action: allow}
  - {name: api, namespace: other, action: allow}
"""


def test_explain_tells_each_field_of_an_object(tmp_path: Path):
    """A Consul intention source that has no Linkerd identity: its fields are covered by the
    loss (named in the target's vocabulary, principals), the others went into the policy."""
    from click.testing import CliRunner

    from migrate.cli import main

    src = tmp_path / "in.yaml"
    src.write_text(INTENTIONS)
    runner = CliRunner()
    planned = runner.invoke(main, ["plan", "--from", "consul", "--to", "linkerd", "-f",
                                   str(src), "-o", str(tmp_path / "out"), "-q"])
    assert planned.exit_code == 0, planned.output
    told = runner.invoke(main, ["explain", "ServiceIntentions/shop/web", "--plan",
                                str(tmp_path / "out")])
    assert told.exit_code == 0, told.output
    lines = told.output.splitlines()
    assert lines[1] == "disposition: converted"
    # The loss's index in plan.json's losses, then its code (only that loss covers it).
    assert any(re.fullmatch(r"  spec\.sources\[0\]\.name: \[\d+\] AUTHZ_PRINCIPAL", line)
               for line in lines), lines
    assert "  spec.sources[1].namespace: carried into the target objects above" in lines
    missing = runner.invoke(main, ["explain", "ServiceIntentions/shop/wbe", "--plan",
                                   str(tmp_path / "out")])
    assert missing.exit_code == 2
    assert "did you mean ServiceIntentions/shop/web" in missing.output


def test_a_neutralized_destination_rule_is_not_needed_not_converted():
    """Step 00 rewrites an ISTIO_MUTUAL DestinationRule for the window: that copy is the
    object itself, no target object; under Linkerd's automatic mTLS it is not needed."""
    result = plan_yaml(ISTIO_SHOP + """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mtls, namespace: shop}
spec: {host: absent, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}
""")
    entry = next(e for e in result.plan.ledger if e.ref.kind == "DestinationRule")
    assert entry.disposition == "not-needed" and entry.reasons == ["MTLS_AUTOMATIC"]
    assert entry.targets == [] and [s for s, _ in entry.rewritten] == ["00-prerequisites"]
