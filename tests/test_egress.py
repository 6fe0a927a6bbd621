"""Egress through the IR: external services and egress modes read from each source
(ServiceEntry and Sidecar, ServiceDefaults destination and Mesh, EgressNetwork and its routes)
and written for Istio (ServiceEntry, Sidecar), Linkerd (EgressNetwork and routes) and Consul
(ServiceDefaults destinations, TerminatingGateway, Mesh meshDestinationsOnly)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from migrate.dialects.consul.reader import ConsulReader
from migrate.dialects.istio.reader import IstioReader
from migrate.dialects.linkerd.reader import LinkerdReader
from migrate.emit.manifests import file_name
from migrate.ir.graph import MeshGraph
from migrate.ir.model import EgressPolicy, ExternalPort, ExternalService, Opaque
from migrate.losses import LossLog
from migrate.pipeline import PlanOptions, PlanResult, plan_migration
from migrate.sources.files import read_files
from migrate.validate import SchemaSet, validate_manifest
from tests.helpers import plan_yaml, texts

READERS = {"istio": IstioReader, "linkerd": LinkerdReader, "consul": ConsulReader}

ISTIO_EGRESS = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: googleapis, namespace: shop}
spec:
  hosts: [www.googleapis.com, "*.googleapis.com"]
  ports: [{number: 443, name: https, protocol: HTTPS}, {number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ledger, namespace: pay}
spec:
  hosts: [ledger.bank.example]
  addresses: [192.0.2.0/24]
  exportTo: ["."]
  ports: [{number: 5432, name: tcp-pg, protocol: TCP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm-db, namespace: pay}
spec:
  hosts: [db.vm.internal]
  location: MESH_INTERNAL
  ports: [{number: 3306, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.9.0.4}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web-only, namespace: shop}
spec:
  workloadSelector: {labels: {app: web}}
  egress: [{hosts: ["./*"]}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: pay, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: pay}
spec: {selector: {app: api}, ports: [{name: http, port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: pay}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: api}]}
"""

LINKERD_EGRESS = """
apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: all-egress, namespace: linkerd-egress}
spec: {trafficPolicy: Deny}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: EgressNetwork
metadata: {name: partners, namespace: shop}
spec:
  trafficPolicy: Deny
  networks: [{cidr: 203.0.113.0/24}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: allow-stripe, namespace: linkerd-egress}
spec:
  hostnames: [api.stripe.com]
  parentRefs:
  - {name: all-egress, kind: EgressNetwork, group: policy.linkerd.io, port: 443}
  rules: [{backendRefs: [{kind: EgressNetwork, group: policy.linkerd.io, name: all-egress}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: partner-db, namespace: shop}
spec:
  parentRefs:
  - {name: partners, kind: EgressNetwork, group: policy.linkerd.io, port: 5432}
  rules: [{backendRefs: [{kind: EgressNetwork, group: policy.linkerd.io, name: partners}]}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, annotations: {linkerd.io/inject: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web}]}
"""

CONSUL_EGRESS = """
apiVersion: consul.hashicorp.com/v1alpha1
kind: Mesh
metadata: {name: mesh, namespace: consul}
spec:
  transparentProxy: {meshDestinationsOnly: true}
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceDefaults
metadata: {name: stripe, namespace: shop}
spec:
  protocol: http
  destination: {addresses: [api.stripe.com, 198.51.100.7], port: 443}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {consul.hashicorp.com/connect-inject: "true"}
    spec: {containers: [{name: web, image: web}]}
"""


def read(mesh: str, text: str) -> tuple[MeshGraph, LossLog]:
    """The IR of inline YAML read by one mesh's reader."""
    losses = LossLog()
    graph = READERS[mesh](losses, []).read(read_files(["-"], io.BytesIO(text.encode()))).graph
    return graph, losses


def plan(source: str, target: str, text: str) -> PlanResult:
    """A plan from inline YAML."""
    return plan_yaml(text, source, target)


def step_manifests(result: PlanResult, kind: str) -> dict[str, list[dict[str, Any]]]:
    """Manifests of one kind by the id of the step that applies them."""
    out: dict[str, list[dict[str, Any]]] = {}
    for step in result.plan.steps:
        found = [m.body for m in step.manifests if m.kind == kind]
        if found:
            out[step.id] = found
    return out


@pytest.fixture(scope="module")
def schemas(shared: Path) -> SchemaSet:
    """Istio, Linkerd and Gateway API (experimental channel: TLSRoute, TCPRoute) schemas."""
    crds = shared / "crds"
    return SchemaSet.from_paths([
        str(crds / "linkerd" / "edge-26.8.3" / "rendered" / "install_crds.golden.yaml"),
        str(crds / "gateway-api" / "v1.6.1" / "experimental"),
        str(crds / "istio" / "1.30.3" / "crd-all.gen.yaml"),
        str(crds / "consul"),
    ])


# -- readers ----------------------------------------------------------------------------------
def test_istio_service_entry_and_sidecar_are_modelled():
    graph, losses = read("istio", ISTIO_EGRESS)
    services = {s.name: s for s in graph.of(ExternalService)}
    assert set(services) == {"googleapis", "ledger"}  # the MESH_INTERNAL one is a workload
    google = services["googleapis"]
    assert google.hosts == ("www.googleapis.com", "*.googleapis.com")
    assert google.ports == (ExternalPort(80, "HTTP", "http"), ExternalPort(443, "HTTPS", "https"))
    assert (google.resolution, google.exported) == ("DNS", True)
    ledger = services["ledger"]
    assert (ledger.addresses, ledger.resolution, ledger.exported) == \
        (("192.0.2.0/24",), "NONE", False)
    assert [(p.namespace, p.mode, p.mesh_wide) for p in graph.of(EgressPolicy)] == \
        [("istio-system", "REGISTRY_ONLY", True)]
    opaque = {(o.kind, o.name) for o in graph.of(Opaque)}
    assert opaque == {("ServiceEntry", "vm-db"), ("Sidecar", "web-only")}
    features = {(u.feature, u.origin.ref.name) for u in graph.features}
    assert {("egress.external", "googleapis"), ("egress.mesh_only", "default"),
            ("egress.service_entry", "vm-db"), ("egress.sidecar", "web-only")} <= features
    assert not [x for x in losses if x.code == "FIELD_UNMODELLED"]


def test_istio_mesh_config_registry_only_is_a_mesh_wide_egress_policy():
    text = ISTIO_EGRESS.replace("mode: REGISTRY_ONLY", "mode: ALLOW_ANY")
    for setting, root_sidecar, want in (
            ("REGISTRY_ONLY", False, {("mesh-config", "REGISTRY_ONLY")}),
            # A root Sidecar overrides the mesh config for every namespace without its own.
            ("REGISTRY_ONLY", True, {("default", "ALLOW_ANY")}),
            ("ALLOW_ANY", False, set())):
        source = text if root_sidecar else text.replace("kind: Sidecar\nmetadata: {name: "
                                                        "default, namespace: istio-system}",
                                                        "kind: Sidecar\nmetadata: {name: "
                                                        "default, namespace: shop}")
        losses = LossLog()
        graph = IstioReader(losses, [], outbound_policy=setting).read(
            read_files(["-"], io.BytesIO(source.encode()))).graph
        assert {(p.name, p.mode) for p in graph.of(EgressPolicy) if p.mesh_wide} == want
    result = plan_migration(PlanOptions(source="istio", target="linkerd", paths=["-"],
                                        stdin=io.BytesIO(text.replace(
                                            "namespace: istio-system}", "namespace: shop}"
                                        ).encode()), istio_outbound_policy="REGISTRY_ONLY"))
    networks = step_manifests(result, "EgressNetwork")["00-prerequisites"]
    assert [(n["metadata"]["namespace"], n["spec"]) for n in networks] == [
        ("linkerd-egress", {"trafficPolicy": "Deny"})]


def test_linkerd_egress_network_and_routes_are_modelled():
    graph, losses = read("linkerd", LINKERD_EGRESS)
    policies = {(p.namespace, p.name): (p.mode, p.mesh_wide) for p in graph.of(EgressPolicy)}
    assert policies == {("linkerd-egress", "all-egress"): ("REGISTRY_ONLY", True),
                        ("shop", "partners"): ("REGISTRY_ONLY", False)}
    services = {s.name: s for s in graph.of(ExternalService)}
    stripe = services["allow-stripe"]
    assert (stripe.hosts, stripe.ports, stripe.exported) == \
        (("api.stripe.com",), (ExternalPort(443, "TLS"),), True)
    # A TCPRoute admits the whole port: the network's CIDRs are what it reaches.
    db = services["partner-db"]
    assert (db.hosts, db.addresses, db.ports, db.exported) == \
        ((), ("203.0.113.0/24",), (ExternalPort(5432, "TCP"),), False)
    features = {(u.feature, u.origin.ref.name) for u in graph.features}
    # Deny limited to explicit networks is narrower than a registry mode: reported.
    assert ("egress.network", "partners") in features
    assert not [x for x in losses if x.code == "FIELD_UNMODELLED"]


def test_consul_destination_and_mesh_only_are_modelled():
    graph, _ = read("consul", CONSUL_EGRESS)
    [stripe] = graph.of(ExternalService)
    assert (stripe.name, stripe.hosts, stripe.addresses, stripe.ports) == \
        ("stripe", ("api.stripe.com",), ("198.51.100.7",), (ExternalPort(443, "HTTP"),))
    assert [(p.mode, p.mesh_wide) for p in graph.of(EgressPolicy)] == [("REGISTRY_ONLY", True)]


# -- Istio as the target ----------------------------------------------------------------------
def test_consul_terminating_gateway_links_travel_with_their_destinations():
    gateway = """
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: TerminatingGateway
metadata: {name: terminating-gateway, namespace: consul}
spec:
  services:
  - {name: stripe}
  - {name: legacy-billing}
  - {name: bank, caFile: /etc/ssl/bank-ca.pem, sni: bank.example}
"""
    graph, losses = read("consul", CONSUL_EGRESS + gateway)
    uses = {(u.feature, u.origin.path) for u in graph.features
            if u.origin.ref.kind == "TerminatingGateway"}
    assert uses == {("egress.external", "spec.services[0]"),  # a destination: converted
                    ("egress.service_entry", "spec.services[1]"),  # registered elsewhere
                    ("egress.service_entry", "spec.services[2]")}  # TLS origination
    result = plan("consul", "istio", CONSUL_EGRESS + gateway)
    reported = {(x.code, x.path) for x in result.losses if x.object.kind == "TerminatingGateway"}
    assert reported == {("EGRESS_SERVICE_ENTRY", "spec.services[1]"),
                        ("EGRESS_SERVICE_ENTRY", "spec.services[2]")}


def test_consul_intentions_on_a_destination_are_reported_as_egress_authorization():
    intention = """
---
apiVersion: consul.hashicorp.com/v1alpha1
kind: ServiceIntentions
metadata: {name: stripe, namespace: shop}
spec:
  destination: {name: stripe}
  sources: [{name: web, action: allow}]
"""
    result = plan("consul", "istio", CONSUL_EGRESS + intention)
    found = [(x.code, x.severity.value, x.path) for x in result.losses
             if x.object.kind == "ServiceIntentions"]
    assert found == [("EGRESS_EXTERNAL", "manual", "spec.sources")]


def test_linkerd_egress_becomes_service_entries_and_sidecars(schemas: SchemaSet):
    result = plan("linkerd", "istio", LINKERD_EGRESS)
    entries = step_manifests(result, "ServiceEntry")
    sidecars = step_manifests(result, "Sidecar")
    # Every entry is a prerequisite (inert for Linkerd); exported hosts and the mesh-wide
    # mode go to Istio's root namespace, since linkerd-egress leaves with Linkerd.
    by_name = {e["metadata"]["name"]: e for e in entries.pop("00-prerequisites")}
    assert not entries
    stripe = by_name["allow-stripe"]
    assert stripe["metadata"]["namespace"] == "istio-system"
    assert stripe["spec"] == {"hosts": ["api.stripe.com"], "location": "MESH_EXTERNAL",
                              "ports": [{"name": "tls-443", "number": 443, "protocol": "TLS"}],
                              "resolution": "DNS"}
    [mesh] = sidecars.pop("00-prerequisites")
    assert (mesh["metadata"]["namespace"], mesh["spec"]) == \
        ("istio-system", {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}})
    # The namespace's own network: a Sidecar applied when its pods move, a private entry.
    [[local]] = sidecars.values()
    assert local["metadata"]["namespace"] == "shop"
    assert next(iter(sidecars)).endswith("move-shop")
    db = by_name["partner-db"]
    assert db["metadata"]["namespace"] == "shop"
    assert db["spec"]["exportTo"] == ["."]
    assert db["spec"]["addresses"] == ["203.0.113.0/24"]
    assert db["spec"]["hosts"] == ["partner-db.shop.external"]  # a name only: Istio needs one
    assert db["spec"]["resolution"] == "NONE"  # the CRD admits CIDRs only with NONE/STATIC
    for step in result.plan.steps:
        for m in step.manifests:
            assert not validate_manifest(m.body, m.name, schemas,
                                         require_schema=m.body["apiVersion"] != "v1")


def test_consul_egress_becomes_service_entry_and_root_sidecar(schemas: SchemaSet):
    result = plan("consul", "istio", CONSUL_EGRESS)
    [entry] = step_manifests(result, "ServiceEntry")["00-prerequisites"]
    assert entry["spec"]["hosts"] == ["api.stripe.com"]
    assert entry["spec"]["addresses"] == ["198.51.100.7"]
    assert entry["spec"]["ports"] == [{"name": "http-443", "number": 443, "protocol": "HTTP"}]
    [sidecar] = step_manifests(result, "Sidecar")["00-prerequisites"]
    assert sidecar["metadata"]["namespace"] == "istio-system"
    assert "EGRESS_MESH_ONLY" not in {x.code for x in result.losses}
    for m in result.plan.steps[0].manifests:
        assert not validate_manifest(m.body, m.name, schemas,
                                         require_schema=m.body["apiVersion"] != "v1")


# -- Linkerd as the target --------------------------------------------------------------------
def test_istio_registry_only_becomes_deny_egress_network_with_host_routes(schemas: SchemaSet):
    result = plan("istio", "linkerd", ISTIO_EGRESS)
    pre = {(m.kind, m.namespace, m.name): m.body for m in result.plan.steps[0].manifests}
    assert ("Namespace", "", "linkerd-egress") in pre
    network = pre[("EgressNetwork", "linkerd-egress", "registry-only")]
    assert network["spec"] == {"trafficPolicy": "Deny"}
    # Exported hosts are admitted by the global network, one route per port and protocol.
    tls = pre[("TLSRoute", "linkerd-egress", "googleapis-443")]
    assert tls["spec"]["hostnames"] == ["www.googleapis.com", "*.googleapis.com"]
    assert tls["spec"]["parentRefs"][0]["port"] == 443
    http = pre[("HTTPRoute", "linkerd-egress", "googleapis-80")]
    assert http["spec"]["rules"][0]["backendRefs"][0]["kind"] == "EgressNetwork"
    # pay declares a private host: its own Deny network admits it and the exported ones,
    # and takes priority over the global network for pay's clients.
    pay = {(m.kind, m.name): m.body for s in result.plan.steps for m in s.manifests
           if m.namespace == "pay" and m.kind in ("EgressNetwork", "TCPRoute", "TLSRoute",
                                                  "HTTPRoute")}
    assert pay[("EgressNetwork", "registry-only")]["spec"] == {"trafficPolicy": "Deny"}
    assert ("TLSRoute", "googleapis-443") in pay
    assert ("TCPRoute", "ledger-5432") in pay
    losses = {(x.code, x.object.name, x.severity.value) for x in result.losses}
    assert ("EGRESS_EXTERNAL", "ledger", "degraded") in losses  # TCP admits the whole port
    for step in result.plan.steps:
        for m in step.manifests:
            assert not validate_manifest(m.body, m.name, schemas,
                                         require_schema=m.body["apiVersion"] != "v1")


def test_addresses_next_to_host_names_are_reported_under_a_linkerd_restriction():
    result = plan("consul", "linkerd", CONSUL_EGRESS)
    [route] = step_manifests(result, "HTTPRoute")["00-prerequisites"]
    assert route["spec"]["hostnames"] == ["api.stripe.com"]
    [loss] = [x for x in result.losses
              if x.code == "EGRESS_EXTERNAL" and x.severity.value == "degraded"]
    assert loss.object.name == "stripe" and "198.51.100.7" in loss.message


def test_no_restriction_writes_no_egress_network():
    text = ISTIO_EGRESS.replace("mode: REGISTRY_ONLY", "mode: ALLOW_ANY")
    result = plan("istio", "linkerd", text)
    kinds = {m.kind for s in result.plan.steps for m in s.manifests}
    assert not kinds & {"EgressNetwork", "TLSRoute", "TCPRoute"}
    # The hosts are still named in the report, with what Linkerd does instead.
    assert ("EGRESS_EXTERNAL", "googleapis") in {(x.code, x.object.name) for x in result.losses}


# -- Consul as the target ---------------------------------------------------------------------
def test_istio_egress_becomes_consul_destinations_behind_the_terminating_gateway(
        schemas: SchemaSet):
    result = plan("istio", "consul", ISTIO_EGRESS)
    pre = {(m.kind, m.name): m.body for m in result.plan.steps[0].manifests}
    # googleapis: one destination per port (Consul has one port per destination); the
    # wildcard host has no Consul form and is reported.
    https = pre[("ServiceDefaults", "googleapis-443")]
    assert https["metadata"]["namespace"] == "consul"
    assert https["spec"] == {"protocol": "tcp", "destination": {
        "addresses": ["www.googleapis.com"], "port": 443}}
    assert pre[("ServiceDefaults", "googleapis-80")]["spec"] == {
        "protocol": "http", "destination": {"addresses": ["www.googleapis.com"], "port": 80}}
    assert pre[("ServiceIntentions", "googleapis-443")]["spec"] == {
        "destination": {"name": "googleapis-443"}, "sources": [{"name": "*", "action": "allow"}]}
    # ledger: plain TCP on a host name cannot be matched, and its address is a /24 block.
    assert not [k for k in pre if k[1].startswith("ledger")]
    assert pre[("TerminatingGateway", "terminating-gateway")]["spec"] == {
        "services": [{"name": "googleapis-443"}, {"name": "googleapis-80"}]}
    assert any("terminatingGateways.enabled=true" in c
               for c in texts(result.plan.steps[0].commands))
    found = {(x.code, x.object.name, x.severity.value, x.message.split(" ")[0])
             for x in result.losses if x.code.startswith("EGRESS")}
    assert ("EGRESS_EXTERNAL", "googleapis", "manual", "wildcard") in found
    assert ("EGRESS_EXTERNAL", "ledger", "manual", "address") in found
    assert ("EGRESS_EXTERNAL", "ledger", "degraded", "port") in found
    # The mesh-wide restriction is applied at cleanup, when no callee is outside the catalog.
    [cleanup] = [s for s in result.plan.steps if s.kind == "cleanup"]
    [mesh] = [m.body for m in cleanup.manifests if m.kind == "Mesh"]
    assert mesh["spec"]["transparentProxy"] == {"meshDestinationsOnly": True}
    [staged] = [m.body for m in result.plan.steps[0].manifests if m.kind == "Mesh"]
    assert staged["spec"]["transparentProxy"] == {"meshDestinationsOnly": False}
    # Rolling the cleanup back restores step 00's Mesh (deleting it would also drop
    # allowEnablingPermissiveMutualTLS).
    assert [c for c in texts(cleanup.rollback) if "mesh" in c] == [
        "kubectl apply --server-side --field-manager=meshmigrate -f "
        f"steps/00-prerequisites/{file_name(staged)}"]
    assert ("EGRESS_MESH_ONLY", "default", "info", "Consul") in found
    for step in result.plan.steps:
        for m in step.manifests:
            assert not validate_manifest(m.body, m.name, schemas,
                                         require_schema=m.body["apiVersion"] != "v1")


def test_linkerd_egress_to_consul_namespace_restriction_is_reported():
    result = plan("linkerd", "consul", LINKERD_EGRESS)
    pre = {(m.kind, m.name): m.body for m in result.plan.steps[0].manifests}
    # The TLS route's host becomes a tcp destination matched by SNI.
    assert pre[("ServiceDefaults", "allow-stripe")]["spec"] == {
        "protocol": "tcp", "destination": {"addresses": ["api.stripe.com"], "port": 443}}
    found = {(x.code, x.object.name, x.severity.value) for x in result.losses}
    # shop's own Deny network: Consul can only restrict the whole mesh.
    assert ("EGRESS_MESH_ONLY", "partners", "manual") in found
    # partner-db admits a CIDR on a TCP port: no single address Consul could list.
    assert ("EGRESS_EXTERNAL", "partner-db", "manual") in found
    cleanup = [m for s in result.plan.steps if s.kind == "cleanup" for m in s.manifests
               if m.kind == "Mesh"]
    assert [m.body["spec"]["transparentProxy"] for m in cleanup] == [
        {"meshDestinationsOnly": True}]


def test_destination_names_do_not_take_a_services_consul_name():
    text = ISTIO_EGRESS.replace("name: googleapis, namespace: shop", "name: web, namespace: shop")
    result = plan("istio", "consul", text)
    names = {m.name for m in result.plan.steps[0].manifests if m.kind == "ServiceDefaults"}
    assert names == {"web-443", "web-80"}
    single = ISTIO_EGRESS.replace(
        "ports: [{number: 443, name: https, protocol: HTTPS}, {number: 80, name: http, "
        "protocol: HTTP}]", "ports: [{number: 443, name: https, protocol: HTTPS}]").replace(
        "name: googleapis, namespace: shop", "name: web, namespace: shop")
    result = plan("istio", "consul", single)
    names = {m.name for m in result.plan.steps[0].manifests if m.kind == "ServiceDefaults"}
    assert names == {"web-external"}


def test_egress_round_trip_linkerd_istio_linkerd():
    there = plan("linkerd", "istio", LINKERD_EGRESS)
    dump = "\n---\n".join(_yaml(m.body) for s in there.plan.steps for m in s.manifests
                          if m.kind in ("ServiceEntry", "Sidecar"))
    graph, _ = read("istio", dump)
    assert {(p.mode, p.mesh_wide) for p in graph.of(EgressPolicy)} == \
        {("REGISTRY_ONLY", True), ("REGISTRY_ONLY", False)}
    assert {s.hosts for s in graph.of(ExternalService)} == {("api.stripe.com",),
                                                           ("partner-db.shop.external",)}


def _yaml(body: dict[str, Any]) -> str:
    import yaml
    return yaml.safe_dump(body, sort_keys=True)
