"""The bundled samples (samples/<mesh>/<set>): every set plans to every other wired target,
every emitted manifest is valid against the official CRD schemas, the Linkerd and Consul
samples are themselves valid input with every field accounted for, and each of those reports
the headline findings its README promises (samples/linkerd/README.md,
samples/consul/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from migrate.emit.manifests import annotated, file_name
from migrate.pipeline import TARGETS, PlanOptions, PlanResult, plan_migration
from migrate.validate import SchemaSet, validate_manifest
from tests.conftest import SAMPLES
from tests.test_corpus import covered, leaves


def _sets() -> list[tuple[str, str]]:
    return sorted((mesh.name, case.name) for mesh in SAMPLES.iterdir() if mesh.is_dir()
                  for case in mesh.iterdir() if case.is_dir())


CASES = [(mesh, name, target) for mesh, name in _sets() for target in sorted(TARGETS)
         if target != mesh]
_PLANS: dict[tuple[str, str, str], PlanResult] = {}


def plan(mesh: str, name: str, target: str) -> PlanResult:
    """Plan one sample for one target (once per session)."""
    key = (mesh, name, target)
    if key not in _PLANS:
        _PLANS[key] = plan_migration(PlanOptions(mesh, target, [str(SAMPLES / mesh / name)]))
    return _PLANS[key]


@pytest.fixture(scope="module")
def schemas(shared: Path) -> SchemaSet:
    """Every mesh's CRD schemas (a plan may also patch the source mesh's own objects)."""
    crds = shared / "crds"
    return SchemaSet.from_paths([
        str(crds / "linkerd" / "edge-26.8.3" / "rendered" / "install_crds.golden.yaml"),
        str(crds / "linkerd" / "linkerd-smi-v0.2.7"),
        str(crds / "gateway-api" / "v1.6.1" / "experimental"),
        str(crds / "istio" / "1.30.3" / "crd-all.gen.yaml"),
        str(crds / "consul"),
    ])


def test_there_are_samples_for_every_source_with_a_reader():
    assert {mesh for mesh, _ in _sets()} >= {"istio", "linkerd", "consul"}
    assert ("linkerd", "shop") in _sets() and ("consul", "shop") in _sets()


@pytest.mark.parametrize(("mesh", "name", "target"), CASES)
def test_sample_plans_and_emits_valid_manifests(schemas: SchemaSet, mesh: str, name: str,
                                                target: str):
    result = plan(mesh, name, target)
    assert result.problems == []
    assert [str(x.object) for x in result.losses if x.code == "OBJECT_UNREADABLE"] == []
    violations: list[str] = []
    count = 0
    for step in result.plan.steps:
        for m in step.manifests:
            count += 1
            where = f"{step.id}/{file_name(m.body)}"
            violations += [str(v) for v in validate_manifest(annotated(m), where, schemas,
                                                             require_schema=True)]
    assert violations == []
    assert count > 5, "the plan emits target manifests"
    eq = result.plan.equivalence
    assert eq is not None and eq.probes > 0 and not eq.not_evaluated
    assert [f"{d.probe} {d.aspect}" for d in eq.unexplained] == []


def _raw_objects(mesh: str, name: str) -> list[dict]:
    with open(SAMPLES / mesh / name / "dump.yaml", encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    assert doc["kind"] == "List"
    return doc["items"]


@pytest.mark.parametrize("mesh", ["linkerd", "consul"])
def test_sample_input_is_valid_against_the_source_crds(schemas: SchemaSet, mesh: str):
    checked = 0
    for body in _raw_objects(mesh, "shop"):
        api = body["apiVersion"]
        if "/" not in api or api.startswith("apps/"):
            continue
        checked += 1
        where = f"{body['kind']}/{body['metadata']['name']}"
        found = validate_manifest(body, where, schemas, require_schema=True)
        # A ServiceProfile is named after the FQDN it configures: a DNS subdomain with dots,
        # which the label check of validate_manifest (meant for generated names) refuses.
        if body["kind"] == "ServiceProfile":
            found = [v for v in found if v.field != "metadata.name"]
        assert [str(v) for v in found] == []
    assert checked > 10


@pytest.mark.parametrize(("mesh", "target"), [("linkerd", "istio"), ("linkerd", "consul"),
                                              ("consul", "istio"), ("consul", "linkerd")])
def test_sample_mesh_objects_have_every_field_accounted_for(mesh: str, target: str):
    result = plan(mesh, "shop", target)
    groups = {"linkerd": ("linkerd.io", "gateway.networking.k8s.io"),
              "consul": ("consul.hashicorp.com",)}[mesh]
    mesh_objects = {ref: raw for ref, raw in result.read.raw.items()
                    if raw.group.endswith(groups)}
    assert len(mesh_objects) > 10
    for ref, raw in sorted(mesh_objects.items(), key=lambda item: str(item[0])):
        accounted = result.read.accounted[ref]
        missing = [leaf for leaf in leaves(raw.body) if not covered(leaf, accounted)]
        assert missing == [], f"{ref}: fields neither used nor reported: {missing}"


# The headline findings each README lists: (code, source object, field path prefix).
HEADLINES: dict[tuple[str, str, str], list[tuple[str, str, str]]] = {
    ("istio", "shop", "linkerd"): [
        ("AUTHZ_DENY_SUBSUMED", "AuthorizationPolicy/orders/deny-debug", "spec.action"),
        ("ROUTE_RULE_UNREACHABLE", "VirtualService/orders/orders", "spec.http[1].match[0]"),
        ("EXTENSION_ENVOY_FILTER", "EnvoyFilter/orders/add-header", "spec"),
        ("DESTINATION_OUTLIER_DETECTION", "DestinationRule/catalog/catalog",
         "spec.trafficPolicy.outlierDetection"),
    ],
    ("istio", "bookinfo", "linkerd"): [
        ("ROUTE_FAULT_DELAY", "VirtualService/bookinfo/ratings", "spec.http[0].fault.delay"),
        ("ROUTE_RETRY_CONDITION", "VirtualService/bookinfo/reviews",
         "spec.http[1].retries.retryOn"),
        ("INGRESS_GATEWAY", "Gateway/bookinfo/bookinfo-gateway", "spec"),
    ],
    ("linkerd", "shop", "istio"): [
        ("SOURCE_IGNORED", "HTTPRoute/orders/orders-health", "spec.rules[0].filters[0]"),
        ("DESTINATION_RETRY_BUDGET", "ServiceProfile/payments/payments.payments.svc.cluster.local",
         "spec.retryBudget"),
        ("DESTINATION_OUTLIER_DETECTION", "Service/catalog/catalog",
         "metadata.annotations.balancer.linkerd.io/failure-accrual"),
        ("PROTOCOL_OPAQUE", "Server/shared-db/postgres", "spec.proxyProtocol"),
        ("WORKLOAD_PROXY_ANNOTATIONS", "Deployment/frontend/web",
         "spec.template.metadata.annotations.config.linkerd.io/proxy-cpu-request"),
    ],
    ("linkerd", "shop", "consul"): [
        ("SOURCE_IGNORED", "HTTPRoute/orders/orders-health", "spec.rules[0].filters[0]"),
        ("DESTINATION_RETRY_BUDGET", "ServiceProfile/payments/payments.payments.svc.cluster.local",
         "spec.retryBudget"),
        ("DESTINATION_OUTLIER_DETECTION", "Service/catalog/catalog",
         "metadata.annotations.balancer.linkerd.io/failure-accrual"),
        ("WORKLOAD_PROXY_ANNOTATIONS", "Deployment/frontend/web",
         "spec.template.metadata.annotations.config.linkerd.io/proxy-cpu-request"),
        ("CONSUL_POD_SERVICES", "Deployment/catalog/catalog-v1", "spec.template.metadata"),
        ("CONSUL_POD_SERVICES", "Deployment/catalog/catalog-v2", "spec.template.metadata"),
    ],
    ("consul", "shop", "istio"): [
        ("MULTICLUSTER", "ServiceResolver/payments/payments", "spec.failover"),
        ("WORKLOAD_EXPLICIT_UPSTREAMS", "Deployment/orders/orders",
         "spec.template.metadata.annotations.consul.hashicorp.com/connect-service-upstreams"),
        ("PLAN_VIRTUAL_IP", "Namespace/orders", "metadata.name"),
        ("PLAN_EGRESS_OPEN", "Mesh/consul/mesh", "spec.transparentProxy.meshDestinationsOnly"),
    ],
    ("consul", "shop", "linkerd"): [
        ("MULTICLUSTER", "ServiceResolver/payments/payments", "spec.failover"),
        ("WORKLOAD_EXPLICIT_UPSTREAMS", "Deployment/orders/orders",
         "spec.template.metadata.annotations.consul.hashicorp.com/connect-service-upstreams"),
        ("ROUTE_REWRITE", "ServiceRouter/orders/orders", "spec.routes[0].destination"),
        ("EGRESS_MESH_ONLY", "Mesh/consul/mesh", "spec.transparentProxy"),
        ("ROUTE_PREFIX_SEGMENT", "ServiceRouter/orders/orders", "spec.routes[1].match"),
    ],
}


@pytest.mark.parametrize("case", sorted(HEADLINES), ids="-".join)
def test_sample_reports_its_headline_findings(case: tuple[str, str, str]):
    result = plan(*case)
    found = {(x.code, str(x.object), x.path) for x in result.losses}
    for code, obj, path in HEADLINES[case]:
        assert any(c == code and o == obj and p.startswith(path) for c, o, p in found), \
            f"{code} on {obj} {path} not reported; got {sorted(found)}"


# Codes a README says are *not* reported, because nothing is lost (samples/linkerd/README.md:
# the parentRef port is each Service's only port; postgres stays protocol tcp in Consul).
ABSENT: dict[tuple[str, str, str], list[str]] = {
    ("linkerd", "shop", "consul"): ["ROUTE_MATCH_PORT", "PROTOCOL_OPAQUE"],
    # meshDestinationsOnly has an Istio form (samples/consul/README.md).
    ("consul", "shop", "istio"): ["EGRESS_MESH_ONLY"],
}


@pytest.mark.parametrize("case", sorted(ABSENT), ids="-".join)
def test_sample_reports_nothing_where_nothing_is_lost(case: tuple[str, str, str]):
    result = plan(*case)
    assert [f"{x.code} {x.object}" for x in result.losses if x.code in ABSENT[case]] == []


def test_consul_sample_mesh_destinations_only_becomes_istio_registry_only_egress():
    """Mesh.transparentProxy.meshDestinationsOnly is mesh-wide: one Sidecar ``default`` in
    Istio's root namespace, written at step 00 where only Istio proxies read it."""
    result = plan("consul", "shop", "istio")
    sidecars = [(s.kind, m.body) for s in result.plan.steps for m in s.manifests
                if m.body.get("kind") == "Sidecar"]
    assert sidecars == [("prerequisites", {
        "apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
        "metadata": sidecars[0][1]["metadata"],
        "spec": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}})]
    meta = sidecars[0][1]["metadata"]
    assert (meta["namespace"], meta["name"]) == ("istio-system", "default")


@pytest.mark.parametrize("target", ["istio", "linkerd"])
def test_consul_sample_deny_before_a_disjoint_allow_converts_exactly(target: str):
    """orders' intention for web denies /debug, then allows GET/POST /api/: the two
    permissions share no request, so the allow is carried as written (no approximation)."""
    result = plan("consul", "shop", target)
    assert [x.path for x in result.losses if x.code == "CONSUL_INTENTION_APPROX"] == []
    eq = result.plan.equivalence
    assert eq is not None and not [d for d in eq.divergences if d.aspect == "authz"]


def test_linkerd_sample_route_linkerd_ignores_is_not_converted():
    """orders-health carries a URLRewrite, so Linkerd ignores the whole route: /api/health
    went to orders-api (retries, 10s timeout), and the Istio output must not route it apart."""
    result = plan("linkerd", "shop", "istio")
    bodies = [m.body for s in result.plan.steps for m in s.manifests
              if m.body.get("kind") == "VirtualService"]
    text = yaml.safe_dump(bodies)
    assert "/api/health" not in text and "rewrite" not in text
    orders = [b for b in bodies if b["metadata"]["name"] == "orders"]
    assert orders and all(r.get("timeout") == "10s" for r in orders[0]["spec"]["http"]
                          if any("/api" in str(m.get("uri")) for m in r.get("match", [])))


def test_permission_disjointness_is_decided_on_methods_and_paths_only():
    from migrate.dialects.consul.read_intentions import PermissionFacts, disjoint
    from migrate.ir.model import AuthzOperation

    def perm(*paths: str, methods: tuple[str, ...] = ()) -> PermissionFacts:
        return PermissionFacts("allow", AuthzOperation(methods=methods, paths=paths), (), "p")

    assert disjoint(perm("/debug*"), perm("/api/*"))
    assert not disjoint(perm("/api*"), perm("/apix/*"))  # Consul prefixes are raw strings
    assert not disjoint(perm("/api/*"), perm("/api/health"))
    assert disjoint(perm("/api/health"), perm("/callback"))
    assert not disjoint(perm("/callback"), perm("/callback"))
    assert disjoint(perm("/x*", methods=("GET",)), perm("/x*", methods=("POST",)))
    assert not disjoint(perm(), perm("/api/*"))  # no path: every path
    assert not disjoint(PermissionFacts("deny", None, (), "p"), perm("/api/*"))
