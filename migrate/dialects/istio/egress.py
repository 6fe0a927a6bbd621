"""Istio ServiceEntry and Sidecar -> external services and egress policies.

A ServiceEntry for hosts outside the mesh (``location: MESH_EXTERNAL``, Istio's default) with
neither ``endpoints`` nor a ``workloadSelector`` names external hosts the proxies may reach:
an :class:`~migrate.ir.model.ExternalService`. Entries that add endpoints of their own (VMs,
static IPs, ``MESH_INTERNAL``) describe workloads, not egress, and stay reported whole.

A Sidecar without a ``workloadSelector`` that sets ``outboundTrafficPolicy.mode`` decides
whether the proxies of its namespace (of every namespace, in the root namespace) may reach
hosts the registry does not know: an :class:`~migrate.ir.model.EgressPolicy`. Its ``egress``
host scoping, ``ingress`` listeners and connection pool have no model and are reported.
Semantics: istio.io/latest/docs/reference/config/networking/service-entry/ and
istio.io/latest/docs/reference/config/networking/sidecar/ (a Sidecar in the root namespace
without a selector is the default for namespaces that have none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from migrate.dialects.fields import Fields, join
from migrate.dialects.istio.multicluster import global_hosts
from migrate.dialects.istio.opaque import read_opaque
from migrate.ir.graph import MeshGraph
from migrate.ir.model import (
    EgressPolicy,
    ExternalPort,
    ExternalService,
    FeatureUse,
    Opaque,
    Origin,
)
from migrate.losses import ObjectRef

if TYPE_CHECKING:
    from migrate.dialects.istio.reader import IstioReader

RESOLUTIONS = ("NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS")
EGRESS_MODES = ("REGISTRY_ONLY", "ALLOW_ANY")


def read_service_entry(reader: IstioReader, f: Fields, graph: MeshGraph) -> None:
    """A ServiceEntry: an external service when it only names hosts, else reported whole."""
    peeked = f.peek("spec.hosts")
    remote = global_hosts([str(h) for h in peeked] if isinstance(peeked, list) else [])
    if remote:
        # Cross-cluster routing (multicluster.py), not egress.
        f.use("multicluster", "spec", "hosts of other clusters: " + ", ".join(remote))
        graph.add(Opaque(f.ref.kind, f.ref.namespace, f.ref.name, f.origin("spec"),
                         tuple(remote), ""))
        return
    location = f.peek("spec.location") or "MESH_EXTERNAL"
    if location != "MESH_EXTERNAL" or f.peek("spec.endpoints") or \
            f.peek("spec.workloadSelector") is not None:
        read_opaque(reader, f, graph)
        return
    f.get("spec.location")
    hosts = f.strings("spec.hosts")
    addresses = f.strings("spec.addresses")
    resolution = f.string("spec.resolution", "NONE")
    if resolution not in RESOLUTIONS:
        f.invalid("spec.resolution", f"unknown resolution {resolution!r}")
        resolution = "NONE"
    ports = []
    for i, port in enumerate(f.list("spec.ports")):
        path = join("spec.ports", i)
        if not isinstance(port, dict):
            f.invalid(path, "expected a port mapping")
            continue
        number = f.integer(join(path, "number"))
        if number is None:
            continue
        protocol = f.string(join(path, "protocol"), "TCP").upper()
        ports.append(ExternalPort(number, protocol, f.string(join(path, "name"))))
        if f.peek(join(path, "targetPort")) is not None:
            f.use("egress.service_entry", join(path, "targetPort"), "targetPort")
    export = f.strings("spec.exportTo")
    private = bool(export) and all(ns in (".", f.ref.namespace) for ns in export)
    if export and not private and "*" not in export:
        f.use("egress.service_entry", "spec.exportTo", "exportTo " + ", ".join(export))
    if f.peek("spec.subjectAltNames") is not None:
        f.use("egress.service_entry", "spec.subjectAltNames", "subjectAltNames")
    if not hosts:
        return  # the CRD requires hosts; f.strings reported a wrong type, nothing to model
    f.note("egress.external", "spec.hosts", ", ".join(hosts))
    graph.add(ExternalService(f.ref.namespace, f.ref.name, hosts, addresses,
                              tuple(sorted(ports, key=lambda p: p.number)), resolution,
                              not private, f.origin("spec")))


def read_sidecar(reader: IstioReader, f: Fields, graph: MeshGraph) -> None:
    """A Sidecar: its namespace's egress mode when it sets one for the whole namespace."""
    mode = f.peek("spec.outboundTrafficPolicy.mode")
    if f.peek("spec.workloadSelector") is not None or mode not in EGRESS_MODES:
        read_opaque(reader, f, graph)
        return
    f.get("spec.outboundTrafficPolicy.mode")
    mesh_wide = f.ref.namespace == reader.root_namespace
    if mode == "REGISTRY_ONLY":
        f.note("egress.mesh_only", "spec.outboundTrafficPolicy.mode",
               "every namespace" if mesh_wide else f"namespace {f.ref.namespace}")
    for key in ("egress", "ingress", "inboundConnectionPool", "outboundTrafficPolicy.egressProxy"):
        path = f"spec.{key}"
        if f.peek(path) is not None:
            f.use("egress.sidecar", path, key)
    graph.add(EgressPolicy(f.ref.namespace, f.ref.name, str(mode), mesh_wide,
                           f.origin("spec.outboundTrafficPolicy")))


MESH_CONFIG_NAME = "istio"
"""The ConfigMap in the root namespace where istiod keeps the mesh config (``data.mesh``); the
reader takes the egress mode from ``--istio-outbound-policy`` rather than from this object,
which dumps rarely include."""


def mesh_config_egress(reader: IstioReader, graph: MeshGraph) -> None:
    """The mesh config's ``outboundTrafficPolicy.mode: REGISTRY_ONLY`` as a mesh-wide egress
    policy. A selector-less Sidecar in the root namespace overrides it for every namespace
    without a Sidecar of its own, so it is only added when there is none
    (istio.io/latest/docs/reference/config/istio.mesh.v1alpha1/#MeshConfig-OutboundTrafficPolicy;
    istio.io/latest/docs/reference/config/networking/sidecar/)."""
    if reader.outbound_policy != "REGISTRY_ONLY":
        return  # ALLOW_ANY is Istio's default: nothing to carry
    if any(p.mesh_wide for p in graph.of(EgressPolicy)):
        return
    ref = ObjectRef("ConfigMap", reader.root_namespace, MESH_CONFIG_NAME, "v1")
    origin = Origin(ref, "data.mesh.outboundTrafficPolicy.mode")
    graph.use(FeatureUse("egress.mesh_only", origin, "every namespace (mesh config)"))
    graph.add(EgressPolicy(reader.root_namespace, "mesh-config", "REGISTRY_ONLY", True, origin))
