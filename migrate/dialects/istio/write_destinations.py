"""IR destination policies -> Istio DestinationRules (networking.istio.io/v1).

What the IR carries is written: subsets (name and labels), client TLS mode, and outlier
detection (consecutive 5xx errors, base ejection time). Choices:
- ``tls.mode: ISTIO_MUTUAL`` (or a ``tls`` block without mode) is not written: Istio's auto
  mTLS already uses Istio mTLS towards endpoints with a sidecar and plaintext towards the
  others (istio/istio pilot/pkg/networking/core/cluster_tls.go, ``defaultTransportSocketMatch``).
  While callees still run the source mesh an explicit ISTIO_MUTUAL would send them Istio mTLS
  they cannot terminate (mapping-istio-linkerd.md section 4.1). mappings/istio.yaml says so.
- ``MUTUAL`` needs client certificates the IR does not carry; it is not written (the
  capability table reports it). ``SIMPLE`` and ``DISABLE`` are written as they are.
- A DestinationRule goes to the Service's namespace, where the planner applies routing before
  the Service's first caller moves; a rule for a non-Service host stays where it was.
"""

from __future__ import annotations

from typing import Any

from migrate import facts
from migrate.dialects.base import Manifest
from migrate.dialects.istio.write_common import NETWORKING_API, WriteContext, istio_duration
from migrate.ir.model import DestinationPolicy
from migrate.losses import Severity

_WRITTEN_TLS = ("SIMPLE", "DISABLE")


def write_destination_rules(ctx: WriteContext) -> None:
    """One DestinationRule per IR destination policy that still says something."""
    for dp in ctx.graph.of(DestinationPolicy):
        ns = dp.service.namespace if dp.service else dp.namespace
        host = ctx.host(dp.service, ns) if dp.service else dp.host
        if not host:
            continue
        spec: dict[str, Any] = {"host": host}
        subsets = [_subset(s.name, dict(s.labels)) for s in dp.subsets
                   if ctx.supports("destination.subsets")]
        if subsets:
            spec["subsets"] = subsets
        policy = _traffic_policy(ctx, dp)
        if policy:
            spec["trafficPolicy"] = policy
        if len(spec) == 1:
            continue  # only the host is left (e.g. ISTIO_MUTUAL alone): auto mTLS does it
        name = ctx.names.claim("DestinationRule", ns, dp.name, f"{dp.origin.ref}")
        body = {"apiVersion": NETWORKING_API, "kind": "DestinationRule",
                "metadata": {"name": name, "namespace": ns}, "spec": spec}
        ctx.out.add(ctx.out.routing, Manifest(body, (dp.origin.ref,)))


def _subset(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "labels": labels} if labels else {"name": name}


def _traffic_policy(ctx: WriteContext, dp: DestinationPolicy) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if dp.tls_mode in _WRITTEN_TLS:
        out["tls"] = {"mode": dp.tls_mode}
    od = dp.outlier
    if od is not None and ctx.supports("destination.outlier_detection"):
        detection: dict[str, Any] = {}
        if od.consecutive_errors is not None:
            detection["consecutive5xxErrors"] = od.consecutive_errors
        if od.base_ejection_time:
            ejection = istio_duration(od.base_ejection_time)
            if ejection is None:
                ctx.losses.report(
                    "ROUTE_DURATION", Severity.DEGRADED, "destination.outlier_detection",
                    dp.origin.ref, f"{od.origin_path}.baseEjectionTime",
                    f"duration {od.base_ejection_time!r} does not parse or is under 1ms; "
                    "Istio's default (30s) applies",
                    "Write the duration as e.g. 30s and re-run.")
            else:
                detection["baseEjectionTime"] = ejection
        # Present even when empty: an outlierDetection block turns ejection on with Istio's
        # defaults (5 consecutive 5xx, 10s interval, 30s ejection).
        out["outlierDetection"] = detection
    return out


def withdraw_default_lb(ctx: WriteContext) -> None:
    """No loss for a source algorithm that is Istio's default: the generated DestinationRules
    set none, and Istio then balances with LEAST_REQUEST, the algorithm the source named."""
    # fact: istio.default-lb
    default = facts.value("istio.default-lb", "simple").lower()
    for use in ctx.graph.features:
        if use.feature == "destination.lb.simple" and use.detail.lower() == default:
            ctx.losses.withdraw(use.origin.ref, use.origin.path,
                                only=frozenset({"DESTINATION_LB_SIMPLE"}))
