"""Linkerd as a source verifies clean: every Linkerd set in ../shared/corpus plans to Istio and
to Consul without a crash or an input problem, every Linkerd object is converted or reported,
every emitted manifest is valid against the official CRD schemas with valid names, and the
equivalence check finds no divergence that no loss explains. Then the rules behind that, one
test each: retry budgets, networks that restrict nothing, namespace-less objects, and the
evaluator facts (namespace defaulting, container ports, split backends, policy objects)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from migrate.emit.manifests import annotated, file_name
from migrate.ir.model import Workload
from migrate.losses import ObjectRef
from migrate.names import valid_name
from migrate.pipeline import PlanOptions, PlanResult, plan_migration
from migrate.sources.files import read_files
from migrate.sources.model import CLUSTER_SCOPED
from migrate.validate import SchemaSet, validate_manifest
from migrate.verify.istio_eval import IstioEvaluator
from migrate.verify.linkerd_eval import LinkerdEvaluator
from migrate.verify.model import Client, Probe
from migrate.verify.world import World
from tests.conftest import corpus_cases, shared_sets
from tests.helpers import plan_yaml
from tests.test_corpus import covered, leaves
from tests.test_linkerd_reader import authz, read

LINKERD_SETS = shared_sets("linkerd")
TARGETS = ("istio", "consul")
CASES = corpus_cases([(name, target) for name in LINKERD_SETS for target in TARGETS], 2)

_PLANS: dict[tuple[str, str], PlanResult] = {}


def plan_set(shared: Path, name: str, target: str) -> PlanResult:
    """Plan one corpus set (once per session: the tests below share the result)."""
    key = (name, target)
    if key not in _PLANS:
        _PLANS[key] = plan_migration(PlanOptions(
            source="linkerd", target=target, paths=[str(shared / "corpus" / "linkerd" / name)]))
    return _PLANS[key]


def plan_text(text: str, target: str) -> PlanResult:
    """Plan Linkerd YAML given on stdin."""
    return plan_yaml(text, "linkerd", target)


@pytest.fixture(scope="module")
def schemas(shared: Path) -> SchemaSet:
    """The targets' CRD schemas (Istio, Gateway API, Consul) and Linkerd's (rollback and
    coexistence objects of the source mesh)."""
    crds = shared / "crds"
    return SchemaSet.from_paths([
        str(crds / "linkerd" / "edge-26.8.3" / "rendered" / "install_crds.golden.yaml"),
        str(crds / "gateway-api" / "v1.6.1" / "experimental"),
        str(crds / "istio" / "1.30.3" / "crd-all.gen.yaml"),
        str(crds / "consul"),
    ])


def _references(body: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of the Linkerd objects a policy object names."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    ns = str(meta.get("namespace") or "default")
    out: set[tuple[str, str, str]] = set()
    if body.get("kind") == "AuthorizationPolicy":
        target = spec.get("targetRef") or {}
        out.add((str(target.get("kind")), ns, str(target.get("name"))))
        out |= {(str(r.get("kind")), str(r.get("namespace") or ns), str(r.get("name")))
                for r in spec.get("requiredAuthenticationRefs") or []}
    elif body.get("kind") == "ServerAuthorization":
        name = (spec.get("server") or {}).get("name")
        if name:
            out.add(("Server", ns, str(name)))
    return out


def _unaccounted(result: PlanResult) -> list[str]:
    """Linkerd objects neither converted nor reported.

    Converted: a source of an emitted manifest. Reported: the object of a loss. An object
    another one consumes is accounted for with it: a Server or authentication named by an
    accounted policy, an inbound route whose Server is accounted or that an accounted policy
    targets, a Server whose authorizations (by selector) are accounted.
    """
    done = {ref for step in result.plan.steps for m in step.manifests for ref in m.sources}
    done |= {loss.object for loss in result.losses}
    raw = result.read.raw
    keys = {(ref.kind, ref.namespace, ref.name): ref for ref in raw}
    changed = True
    while changed:
        changed = False
        for ref in sorted(raw, key=str):
            if ref in done:
                continue
            body = raw[ref].body
            parents = [p for p in (body.get("spec") or {}).get("parentRefs") or []
                       if p.get("kind") == "Server"]
            named_by = any((ref.kind, ref.namespace, ref.name) in _references(raw[o].body)
                           for o in done if o in raw)
            attached = any(keys.get(("Server", ref.namespace, str(p.get("name")))) in done
                           for p in parents)
            selected = ref.kind == "Server" and any(
                raw[o].body.get("kind") == "ServerAuthorization" and o.namespace == ref.namespace
                and "selector" in ((raw[o].body.get("spec") or {}).get("server") or {})
                for o in done if o in raw)
            if named_by or attached or selected:
                done.add(ref)
                changed = True
    return sorted(str(ref) for ref in raw if ref not in done)


# -- the corpus, to every target ----------------------------------------------------------
@pytest.mark.parametrize(("name", "target"), CASES)
def test_linkerd_set_plans_and_accounts_for_every_object(shared: Path, name: str, target: str):
    result = plan_set(shared, name, target)
    assert result.problems == []
    assert [loss for loss in result.losses if loss.code == "OBJECT_UNREADABLE"] == []
    assert result.plan.steps[0].kind == "prerequisites" and result.plan.steps[-1].kind == "cleanup"
    assert result.read.raw, "the set has Linkerd objects"
    for ref, raw in sorted(result.read.raw.items(), key=lambda item: str(item[0])):
        accounted = result.read.accounted[ref]
        missing = [leaf for leaf in leaves(raw.body) if not covered(leaf, accounted)]
        assert missing == [], f"{ref}: fields neither used nor reported: {missing}"
    assert _unaccounted(result) == []


@pytest.mark.parametrize(("name", "target"), CASES)
def test_linkerd_set_has_no_unexplained_divergence(shared: Path, name: str, target: str):
    result = plan_set(shared, name, target)
    equivalence = result.plan.equivalence
    assert equivalence is not None and equivalence.not_evaluated == ""
    assert equivalence.probes > 0, "the check evaluated the set"
    assert equivalence.unevaluated == 0
    assert [(str(d.probe), d.aspect, d.source, d.target) for d in equivalence.unexplained] == []


@pytest.mark.parametrize(("name", "target"), CASES)
def test_linkerd_set_emits_valid_manifests(shared: Path, schemas: SchemaSet, name: str,
                                           target: str):
    result = plan_set(shared, name, target)
    violations: list[str] = []
    bad_names: list[str] = []
    count = 0
    for step in result.plan.steps:
        for m in step.manifests:
            count += 1
            where = f"{step.id}/{file_name(m.body)}"
            violations += [str(v) for v in validate_manifest(annotated(m), where, schemas,
                                                             require_schema=True)]
            meta = m.body.get("metadata") or {}
            is_service = m.body.get("kind") == "Service" and m.body.get("apiVersion") == "v1"
            for value in (meta.get("name"), meta.get("namespace")):
                if value is not None and not valid_name(str(value), service=is_service):
                    bad_names.append(f"{where}: {value!r}")
    assert violations == []
    assert bad_names == []
    assert count > 0, "the plan emits target manifests"


def test_emojivoto_retries_within_a_budget_are_explained_by_the_budget(shared: Path):
    for target in TARGETS:
        equivalence = plan_set(shared, "emojivoto", target).plan.equivalence
        assert equivalence is not None
        retries = [d for d in equivalence.divergences if d.aspect == "retries"]
        assert retries, "isRetryable routes retry within a budget, the target by a count"
        assert all(any(e.startswith("DESTINATION_RETRY_BUDGET ServiceProfile/")
                       for e in d.explained_by) for d in retries)


# -- booksapp: objects without a namespace ----------------------------------------------------
def _with_namespace(shared: Path, namespace: str) -> str:
    """The booksapp set as ``kubectl apply -n <namespace>`` would create it (in memory)."""
    source = read_files([str(shared / "corpus" / "linkerd" / "booksapp")])
    docs = []
    for raw in source.objects:
        body = dict(raw.body)
        meta = dict(body.get("metadata") or {})
        if raw.kind not in CLUSTER_SCOPED and not meta.get("namespace"):
            meta["namespace"] = namespace
        body["metadata"] = meta
        docs.append(body)
    return yaml.safe_dump_all(docs)


def test_booksapp_namespace_less_objects_are_reported_not_guessed(shared: Path):
    result = plan_set(shared, "booksapp", "istio")
    (loss,) = [loss for loss in result.losses if loss.code == "INPUT_NAMESPACE_MISSING"]
    assert loss.object.namespace == "default" and loss.path == "metadata.namespace"
    assert "booksapp" in loss.message and "kubectl apply -n" in loss.message
    # The workloads stay in default (as kubectl apply without -n puts them): nothing moved.
    assert {w.namespace for w in result.read.graph.of(Workload)} == {"default"}


@pytest.mark.parametrize("target", TARGETS)
def test_booksapp_applied_with_its_namespace_verifies_clean(shared: Path, target: str):
    result = plan_text(_with_namespace(shared, "booksapp"), target)
    assert result.problems == []
    assert "INPUT_NAMESPACE_MISSING" not in {loss.code for loss in result.losses}
    equivalence = result.plan.equivalence
    assert equivalence is not None
    # Its Servers now select its pods: route-based policy is exercised, not 2 probes.
    assert equivalence.probes > 100
    assert [(str(d.probe), d.aspect, d.source, d.target) for d in equivalence.unexplained] == []


NS_LESS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {template: {metadata: {labels: {app: web}}, spec: {containers: []}}}
"""


def test_namespace_notice_only_when_namespaces_are_mixed():
    _, losses = read(NS_LESS)
    assert [loss for loss in losses if loss.code == "INPUT_NAMESPACE_MISSING"] == []
    _, losses = read(NS_LESS.replace("{name: web}", "{name: web, namespace: shop}") + """---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: s, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}, port: 80}
""")
    assert [loss for loss in losses if loss.code == "INPUT_NAMESPACE_MISSING"] == []
    _, losses = read(NS_LESS + """---
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: s, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}, port: 80}
""")
    (loss,) = [loss for loss in losses if loss.code == "INPUT_NAMESPACE_MISSING"]
    assert loss.object == ObjectRef("Deployment", "default", "web", "apps/v1")
    assert "1 object has no namespace" in loss.message and "shop" in loss.message


# -- reader rules ------------------------------------------------------------------------------
PROFILE = """
apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: web.shop.svc.cluster.local, namespace: shop}
spec:
  routes:
  - name: list
    condition: {method: GET, pathRegex: /api/list}
    isRetryable: true
  - name: write
    condition: {method: POST, pathRegex: /api/write}
"""


def test_retryable_route_without_budget_reports_the_default_budget_on_the_route():
    result, _ = read(PROFILE)
    budget = [u for u in result.graph.features if u.feature == "destination.retry_budget"]
    assert [(u.origin.ref.kind, u.origin.path) for u in budget] == [
        ("ServiceProfile", "spec.routes[0].isRetryable")]
    assert "default retry budget" in budget[0].detail
    with_budget, _ = read(PROFILE.replace("spec:\n", "spec:\n  retryBudget: {retryRatio: 0.1}\n"))
    paths = [u.origin.path for u in with_budget.graph.features
             if u.feature == "destination.retry_budget"]
    assert paths == ["spec.retryBudget"]  # the profile's own budget: reported once, there


def test_networks_covering_every_address_restrict_nothing():
    base = """
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: http, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}, port: 8080}
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: public, namespace: shop}
spec:
  server: {name: http}
  client:
    unauthenticated: true
    networks: NETS
"""
    web = NS_LESS.replace("{name: web}", "{name: web, namespace: shop}") + "---\n"
    both, _ = read(web + base.replace("NETS", "[{cidr: 0.0.0.0/0}, {cidr: '::/0'}]"))
    assert authz(both)["public"].rules[0].sources == ()  # any client
    v4, _ = read(web + base.replace("NETS", "[{cidr: 0.0.0.0/0}]"))
    assert authz(v4)["public"].rules[0].sources[0].ip_blocks == ("0.0.0.0/0",)


def test_authorization_of_an_unusable_or_admin_server_is_reported_on_itself():
    _, losses = read("""
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: admin, namespace: shop}
spec: {podSelector: {matchLabels: {}}, port: linkerd-admin}
---
apiVersion: policy.linkerd.io/v1beta1
kind: ServerAuthorization
metadata: {name: admin-everyone, namespace: shop}
spec: {server: {name: admin}, client: {unauthenticated: true}}
---
apiVersion: policy.linkerd.io/v1beta1
kind: HTTPRoute
metadata: {name: orphan, namespace: shop}
spec:
  parentRefs: [{name: missing, kind: Server, group: policy.linkerd.io}]
  rules: [{matches: [{path: {value: /x}}]}]
""")
    found = {(loss.code, str(loss.object), loss.path) for loss in losses}
    assert ("AUTHZ_PROXY_ADMIN", "ServerAuthorization/shop/admin-everyone", "spec.server") in found
    assert ("LINKERD_REF_UNRESOLVED", "HTTPRoute/shop/orphan", "spec.parentRefs") in found


# -- evaluator facts -----------------------------------------------------------------------------
def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


APP = _docs("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers: [{name: web, ports: [{name: http, containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web-svc}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: apex}
spec: {selector: {app: apex}, ports: [{name: http, port: 80}]}
""")
ANON = Client("", "")


def test_linkerd_evaluator_reads_namespace_less_server_into_default():
    server = _docs("""
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: http}
spec: {podSelector: {matchLabels: {app: web}}, port: http}
""")
    objects = APP + server
    ev = LinkerdEvaluator(objects, World(objects))
    probe = Probe("default", "web-svc", 80, client=ANON, why="authorization")
    # The Server (default accessPolicy deny, nobody authorized) governs the pod.
    assert ev.allowed(probe, "Deployment/default/web", 80) == (False, ("Server/default/http",))
    refs = ev.policy_refs("Deployment/default/web")
    assert refs == {"Deployment/default/web", "Namespace/default", "Server/default/http"}


def test_istio_evaluator_compares_policy_ports_with_the_container_port():
    policy = _docs("""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  rules: [{to: [{operation: {ports: ["8080"]}}]}]
""")
    objects = APP + policy
    ev = IstioEvaluator(objects, World(objects), "istio-system", "cluster.local")
    probe = Probe("default", "web-svc", 80, client=ANON, why="authorization")
    assert ev.allowed(probe, "Deployment/default/web", 80)[0] is True
    # A split from another Service keeps the port; the workload's own Service maps it.
    split = Probe("default", "apex", 80, client=ANON, why="authorization")
    assert ev.allowed(split, "Deployment/default/web", 80)[0] is True


def test_world_maps_a_split_backend_port_through_its_own_service():
    world = World(APP)
    info = world.workload("Deployment/default/web")
    assert info is not None
    assert world.target_port("default", "web-svc", 80, info) == (8080, "http")
    assert world.target_port("default", "apex", 80, info) == (8080, "http")
