"""The capability check: every feature the source configuration uses, against the target's
table (mappings/<target>.yaml). Runs before the writer, so a feature no writer handles is
reported without anyone writing code for it.
"""

from __future__ import annotations

from migrate.ir.graph import MeshGraph
from migrate.ir.model import FeatureUse, Route
from migrate.losses import LossLog, ObjectRef, Severity
from migrate.mappings import CapabilityTable, features


def check_capabilities(graph: MeshGraph, target: CapabilityTable, version: str,
                       losses: LossLog) -> None:
    """Append a loss for each feature use the target lacks, degrades, or gets too late."""
    catalogue = features()
    by_ref: dict[ObjectRef, list[Route]] | None = None  # built on the first port match
    for use in sorted(graph.features, key=_use_order):
        feature = catalogue[use.feature]
        cap = target.get(use.feature)
        if use.feature == "route.match.port":
            if by_ref is None:
                by_ref = {}
                for route in graph.of(Route):
                    by_ref.setdefault(route.origin.ref, []).append(route)
            if _only_port(graph, by_ref.get(use.origin.ref, []), use):
                continue  # the condition always holds: nothing to lose in any target
        text = " ".join(use.detail.split())
        detail = f" ({text[:160]}{'...' if len(text) > 160 else ''})" if text else ""
        if cap.status == "supported":
            if not target.supports(use.feature, version):
                losses.report(
                    "VERSION_TOO_OLD", Severity.DROPPED, use.feature, use.origin.ref,
                    use.origin.path,
                    f"{feature.title} needs {target.mesh} {cap.since}; the target is {version}",
                    f"Target {target.mesh} {cap.since} or newer (--target-version).")
            elif cap.severity is Severity.INFO and cap.action:
                losses.report(feature.code, Severity.INFO, use.feature, use.origin.ref,
                              use.origin.path, f"{feature.title}: {cap.note}{detail}", cap.action)
            continue
        if cap.since and not target.supports(use.feature, version) and cap.status == "degraded":
            losses.report(
                "VERSION_TOO_OLD", Severity.DROPPED, use.feature, use.origin.ref, use.origin.path,
                f"{feature.title} needs {target.mesh} {cap.since}; the target is {version}",
                f"Target {target.mesh} {cap.since} or newer (--target-version).")
            continue
        losses.report(feature.code, cap.severity, use.feature, use.origin.ref, use.origin.path,
                      f"{feature.title}: {cap.note}{detail}", cap.action)


def _use_order(use: FeatureUse) -> tuple[str, ...]:
    """``(use.origin, use.feature, use.detail)`` flattened into strings, the same order:
    compared as records, every comparison of tens of thousands of uses ran Python code."""
    ref = use.origin.ref
    return (ref.kind, ref.namespace, ref.name, ref.api_version, use.origin.path, use.feature,
            use.detail)


def _only_port(graph: MeshGraph, routes: list[Route], use: FeatureUse) -> bool:
    """Whether a per-match port (``route.match.port``) names the only port of every Service
    the routes read from the use's object serve.

    A mesh route's port condition is on the destination Service port (Istio HTTPMatchRequest
    ``port``: "the ports on the host that is being addressed",
    istio.io/latest/docs/reference/config/networking/virtual-service/; Gateway API
    ``parentRefs[].port``: "the targeted port number, when attaching to Services",
    linkerd.io/2.15/reference/httproute/). When that port is the
    Service's only one, every request to the Service carries it, so a target that matches per
    Service (Gateway API without a port, Consul ServiceRouter) applies the rule to exactly the
    same requests. Any doubt (no numeric port, a host not in the input, an ingress route, a
    second port) keeps the loss.
    """
    if not use.detail.strip().isdigit():
        return False  # e.g. "parents name different ports"
    port = int(use.detail)
    if not routes or any(r.ingress or not r.mesh or not r.hosts for r in routes):
        return False
    for route in routes:
        for host in route.hosts:
            svc = graph.service(host)
            if svc is None or [p.port for p in svc.ports] != [port]:
                return False
    return True
