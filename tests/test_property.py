"""Property-based tests: random but schema-valid objects of each source mesh (Istio, Linkerd,
Consul), planned to each other mesh.

The strategies follow the CRD schemas' shapes (field names, types and enums of
/work/shared/crds), not the corpus: a small cluster (two namespaces, three Services with v1/v2
Deployments) and random routing and authorization objects over it. For every example:

- planning never raises;
- every object is accounted for: read into the plan, or named by a loss or an input problem;
- the output (every step's files, the losses, the order) is byte-identical whatever the
  order of the input documents;
- every emitted manifest is valid against the target's CRD schemas.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate.emit.manifests import annotated, file_name, step_files
from migrate.emit.planjson import plan_document
from migrate.pipeline import PlanOptions, PlanResult, plan_migration
from migrate.validate import SchemaSet, validate_manifest
from migrate.yamlio import dump_document, dump_documents

MESHES = ("istio", "linkerd", "consul")
PAIRS = [(s, t) for s in MESHES for t in MESHES if s != t]
SERVICES = (("alpha", "a"), ("alpha", "b"), ("beta", "c"))
SCHEMA_FILES = ("linkerd/edge-26.8.3/rendered/install_crds.golden.yaml",
                "gateway-api/v1.6.1/experimental", "istio/1.30.3/crd-all.gen.yaml", "consul")
SETTINGS = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

# -- shared pieces ----------------------------------------------------------------------------
paths = st.sampled_from(["/", "/api", "/api/v1", "/static/", "/health"])
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE"])
header_names = st.sampled_from(["x-canary", "x-user", "x-team"])
header_values = st.sampled_from(["true", "alice", "blue"])
durations = st.sampled_from(["1s", "2s", "500ms", "5s", "30s"])
services = st.sampled_from(SERVICES)
versions = st.sampled_from(["v1", "v2"])


def weights(n: int) -> st.SearchStrategy[list[int]]:
    """``n`` weights that add up to 100 (every mesh's schema or webhook wants that)."""
    if n == 1:
        return st.just([100])
    return st.integers(min_value=1, max_value=99).map(lambda w: [w, 100 - w])


def cluster(mesh: str) -> list[dict[str, Any]]:
    """Namespaces, ServiceAccounts, Services and v1/v2 Deployments, injected for ``mesh``."""
    out: list[dict[str, Any]] = []
    for ns in sorted({ns for ns, _ in SERVICES}):
        meta: dict[str, Any] = {"name": ns}
        if mesh == "istio":
            meta["labels"] = {"istio-injection": "enabled"}
        elif mesh == "linkerd":
            meta["annotations"] = {"linkerd.io/inject": "enabled"}
        out.append({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    for ns, svc in SERVICES:
        out.append({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": svc, "namespace": ns}})
        port = {"name": "http", "port": 8080, "targetPort": 8080}
        out.append({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": svc, "namespace": ns},
                    "spec": {"selector": {"app": svc}, "ports": [port]}})
        for v in ("v1", "v2"):
            labels = {"app": svc, "version": v}
            if mesh == "linkerd":  # Linkerd splits traffic between Services
                out.append({"apiVersion": "v1", "kind": "Service",
                            "metadata": {"name": f"{svc}-{v}", "namespace": ns},
                            "spec": {"selector": labels, "ports": [port]}})
            template: dict[str, Any] = {"labels": labels}
            if mesh == "consul":
                template["annotations"] = {"consul.hashicorp.com/connect-inject": "true",
                                           "consul.hashicorp.com/service-meta-version": v}
            out.append({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": f"{svc}-{v}", "namespace": ns},
                        "spec": {"selector": {"matchLabels": labels}, "template": {
                            "metadata": template,
                            "spec": {"serviceAccountName": svc, "containers": [{
                                "name": "app", "image": "app:1",
                                "ports": [{"name": "http", "containerPort": 8080}]}]}}}})
    return out


def obj(api: str, kind: str, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": ns},
            "spec": spec}


# -- Istio (networking.istio.io/v1, security.istio.io/v1) --------------------------------------
@st.composite
def istio_http_route(draw: st.DrawFn, svc: str) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if draw(st.booleans()):
        match: dict[str, Any] = {"uri": {draw(st.sampled_from(["prefix", "exact"])): draw(paths)}}
        if draw(st.booleans()):
            match["headers"] = {draw(header_names): {"exact": draw(header_values)}}
        if draw(st.booleans()):
            match["method"] = {"exact": draw(methods)}
        rule["match"] = [match]
    n = draw(st.integers(1, 2))
    subsets = draw(st.lists(versions, min_size=n, max_size=n, unique=True))
    ws = draw(weights(n))
    rule["route"] = [{"destination": {"host": svc, "subset": s}, **({"weight": w} if n > 1
                                                                     else {})}
                     for s, w in zip(subsets, ws)]
    if draw(st.booleans()):
        rule["timeout"] = draw(durations)
    if draw(st.booleans()):
        rule["retries"] = {"attempts": draw(st.integers(0, 3)), "perTryTimeout": draw(durations),
                           "retryOn": draw(st.sampled_from(["5xx", "connect-failure",
                                                            "gateway-error,reset"]))}
    return rule


@st.composite
def istio_objects(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for i, (ns, svc) in enumerate(draw(st.lists(services, max_size=3, unique=True))):
        out.append(obj("networking.istio.io/v1", "DestinationRule", ns, f"dr-{i}", {
            "host": svc, "subsets": [{"name": v, "labels": {"version": v}}
                                     for v in ("v1", "v2")]}))
    for i, (ns, svc) in enumerate(draw(st.lists(services, max_size=3))):
        out.append(obj("networking.istio.io/v1", "VirtualService", ns, f"vs-{i}", {
            "hosts": [svc], "http": draw(st.lists(istio_http_route(svc), min_size=1,
                                                  max_size=3))}))
    for i, (ns, svc) in enumerate(draw(st.lists(services, max_size=3))):
        rules = []
        for _ in range(draw(st.integers(0, 2))):
            rule: dict[str, Any] = {}
            cns, csvc = draw(services)
            rule["from"] = [{"source": draw(st.sampled_from([
                {"principals": [f"cluster.local/ns/{cns}/sa/{csvc}"]},
                {"namespaces": [cns]}]))}]
            if draw(st.booleans()):
                rule["to"] = [{"operation": {"methods": [draw(methods)], "paths": [draw(paths)]}}]
            rules.append(rule)
        spec: dict[str, Any] = {"action": draw(st.sampled_from(["ALLOW", "DENY"])),
                                "rules": rules}
        if draw(st.booleans()):
            spec["selector"] = {"matchLabels": {"app": svc}}
        out.append(obj("security.istio.io/v1", "AuthorizationPolicy", ns, f"ap-{i}", spec))
    for ns in draw(st.lists(st.sampled_from(["alpha", "beta"]), max_size=2, unique=True)):
        out.append(obj("security.istio.io/v1", "PeerAuthentication", ns, "default", {
            "mtls": {"mode": draw(st.sampled_from(["STRICT", "PERMISSIVE"]))}}))
    return out


# -- Linkerd (gateway.networking.k8s.io/v1, policy.linkerd.io) ---------------------------------
@st.composite
def linkerd_rule(draw: st.DrawFn, svc: str) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    if draw(st.booleans()):
        match: dict[str, Any] = {"path": {"type": draw(st.sampled_from(["PathPrefix", "Exact"])),
                                          "value": draw(paths)}}
        if draw(st.booleans()):
            match["headers"] = [{"type": "Exact", "name": draw(header_names),
                                 "value": draw(header_values)}]
        if draw(st.booleans()):
            match["method"] = draw(methods)
        rule["matches"] = [match]
    n = draw(st.integers(1, 2))
    vs = draw(st.lists(versions, min_size=n, max_size=n, unique=True))
    rule["backendRefs"] = [{"name": f"{svc}-{v}", "port": 8080, "weight": w}
                           for v, w in zip(vs, draw(weights(n)))]
    if draw(st.booleans()):
        rule["timeouts"] = {"request": draw(durations)}
    return rule


@st.composite
def linkerd_objects(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for i, (ns, svc) in enumerate(draw(st.lists(services, max_size=3, unique=True))):
        out.append(obj("gateway.networking.k8s.io/v1", "HTTPRoute", ns, f"route-{i}", {
            "parentRefs": [{"group": "core", "kind": "Service", "name": svc, "port": 8080}],
            "rules": draw(st.lists(linkerd_rule(svc), min_size=1, max_size=3))}))
    for i, (ns, svc) in enumerate(draw(st.lists(services, max_size=3, unique=True))):
        out.append(obj("policy.linkerd.io/v1beta3", "Server", ns, f"srv-{i}", {
            "podSelector": {"matchLabels": {"app": svc}},
            "port": draw(st.sampled_from(["http", 8080])),
            "proxyProtocol": draw(st.sampled_from(["HTTP/1", "unknown"]))}))
        if not draw(st.booleans()):
            continue
        callers = draw(st.lists(services, min_size=1, max_size=2, unique=True))
        if draw(st.booleans()):
            auth = {"identities": [f"{c}.{cns}.serviceaccount.identity.linkerd.cluster.local"
                                   for cns, c in callers]}
        else:
            auth = {"identityRefs": [{"kind": "ServiceAccount", "name": c, "namespace": cns}
                                     for cns, c in callers]}
        out.append(obj("policy.linkerd.io/v1alpha1", "MeshTLSAuthentication", ns,
                       f"mtls-{i}", auth))
        out.append(obj("policy.linkerd.io/v1alpha1", "AuthorizationPolicy", ns, f"authz-{i}", {
            "targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": f"srv-{i}"},
            "requiredAuthenticationRefs": [{"group": "policy.linkerd.io",
                                            "kind": "MeshTLSAuthentication",
                                            "name": f"mtls-{i}"}]}))
    return out


# -- Consul (consul.hashicorp.com/v1alpha1) ----------------------------------------------------
@st.composite
def consul_route(draw: st.DrawFn) -> dict[str, Any]:
    http: dict[str, Any] = {draw(st.sampled_from(["pathPrefix", "pathExact"])): draw(paths)}
    if draw(st.booleans()):
        http["header"] = [{"name": draw(header_names), "exact": draw(header_values)}]
    if draw(st.booleans()):
        http["methods"] = [draw(methods)]
    dest: dict[str, Any] = {}
    if draw(st.booleans()):
        dest["serviceSubset"] = draw(versions)
    if draw(st.booleans()):
        dest["requestTimeout"] = draw(durations)
    if draw(st.booleans()):
        dest["numRetries"] = draw(st.integers(1, 3))
        dest["retryOnStatusCodes"] = [503]
    return {"match": {"http": http}, "destination": dest}


@st.composite
def consul_objects(draw: st.DrawFn) -> list[dict[str, Any]]:
    api = "consul.hashicorp.com/v1alpha1"
    out = []
    for ns, svc in SERVICES:
        out.append(obj(api, "ServiceDefaults", ns, svc, {"protocol": "http"}))
        if draw(st.booleans()):
            spec: dict[str, Any] = {"subsets": {v: {"filter": f"Service.Meta.version == {v}"}
                                                for v in ("v1", "v2")}}
            if draw(st.booleans()):
                spec["defaultSubset"] = draw(versions)
            out.append(obj(api, "ServiceResolver", ns, svc, spec))
            if draw(st.booleans()):
                w = draw(weights(2))
                out.append(obj(api, "ServiceSplitter", ns, svc, {"splits": [
                    {"weight": w[0], "serviceSubset": "v1"},
                    {"weight": w[1], "serviceSubset": "v2"}]}))
        if draw(st.booleans()):
            routes = draw(st.lists(consul_route(), min_size=1, max_size=3))
            out.append(obj(api, "ServiceRouter", ns, svc, {"routes": routes}))
        if draw(st.booleans()):
            sources = []
            for _, caller in draw(st.lists(services, min_size=1, max_size=2, unique=True)):
                if draw(st.booleans()):
                    sources.append({"name": caller,
                                    "action": draw(st.sampled_from(["allow", "deny"]))})
                else:
                    sources.append({"name": caller, "permissions": [{
                        "action": draw(st.sampled_from(["allow", "deny"])),
                        "http": {"pathPrefix": draw(paths), "methods": [draw(methods)]}}]})
            out.append(obj(api, "ServiceIntentions", ns, svc,
                           {"destination": {"name": svc}, "sources": sources}))
    return out


STRATEGIES = {"istio": istio_objects(), "linkerd": linkerd_objects(),
              "consul": consul_objects()}


# -- the properties ----------------------------------------------------------------------------
def plan(source: str, target: str, docs: list[dict[str, Any]]) -> PlanResult:
    return plan_migration(PlanOptions(source, target, ["-"],
                                      stdin=io.BytesIO(dump_documents(docs).encode())))


def rendered(result: PlanResult) -> str:
    """Everything a user reads, except the input lines (which move with the documents)."""
    parts = []
    for step in result.plan.steps:
        for name, body in step_files(step).items():
            parts.append(f"# {step.id}/{name}\n{dump_document(body)}")
    doc = plan_document(result.plan)
    parts.append(json.dumps({"steps": doc["steps"], "order": doc["order"],
                             "losses": doc["losses"]}, indent=1, sort_keys=True))
    return "".join(parts)


def unaccounted(docs: list[dict[str, Any]], result: PlanResult) -> list[str]:
    """Input objects neither read into the plan nor named by a loss or an input problem."""
    read = {(r.kind, r.namespace, r.name) for r in result.read.raw}
    read |= {(o.ref.kind, o.ref.namespace, o.ref.name) for o in result.read.objects}
    lost = {(x.object.kind, x.object.namespace, x.object.name) for x in result.losses}
    problems = " ".join(str(p) for p in result.problems)
    out = []
    for d in docs:
        key = (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
        if key not in read and key not in lost and d["metadata"]["name"] not in problems:
            out.append("/".join(key))
    return out


@pytest.fixture(scope="module")
def schemas(shared: Path) -> SchemaSet:
    return SchemaSet.from_paths([str(shared / "crds" / f) for f in SCHEMA_FILES])


def check(source: str, target: str, docs: list[dict[str, Any]], seed: int,
          schemas: SchemaSet) -> None:
    result = plan(source, target, docs)
    assert result.problems == []  # schema-valid input is readable input
    assert unaccounted(docs, result) == []
    shuffled = list(docs)
    random.Random(seed).shuffle(shuffled)
    assert rendered(plan(source, target, shuffled)) == rendered(result)
    violations = []
    for step in result.plan.steps:
        for m in step.manifests:
            violations += validate_manifest(annotated(m), f"{step.id}/{file_name(m.body)}",
                                            schemas, require_schema=True)
    assert [str(v) for v in violations] == []


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_random_valid_objects_plan_completely_deterministically_and_validly(
        schemas: SchemaSet, source: str, target: str):
    @SETTINGS
    @given(mesh_objects=STRATEGIES[source], seed=st.integers(0, 2**16))
    def run(mesh_objects: list[dict[str, Any]], seed: int) -> None:
        check(source, target, cluster(source) + mesh_objects, seed, schemas)

    run()


def test_the_strategies_produce_schema_valid_source_objects(schemas: SchemaSet):
    """The generated source objects are themselves valid against their CRDs (so a failure
    above is the planner's, not the generator's)."""
    for mesh in MESHES:
        @settings(max_examples=40, deadline=None, derandomize=True, database=None)
        @given(STRATEGIES[mesh])
        def run(objects: list[dict[str, Any]]) -> None:
            for o in objects:
                assert validate_manifest(o, o["kind"], schemas, require_schema=True) == []

        run()
