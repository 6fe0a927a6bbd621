"""IR destination policies -> Istio DestinationRules (networking.istio.io/v1).

What the IR carries is written: subsets (name and labels), client TLS mode, outlier
detection (consecutive 5xx errors, base ejection time), session affinity (consistent hashing)
and the TCP connect timeout. Choices:
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
    if dp.consistent_hash is not None and ctx.supports("destination.lb.consistent_hash"):
        out["loadBalancer"] = {"consistentHash": _consistent_hash(ctx, dp)}
    if dp.connect_timeout and ctx.supports("destination.connect_timeout"):
        timeout = istio_duration(dp.connect_timeout)
        if timeout is None:
            ctx.losses.report(
                "ROUTE_DURATION", Severity.DEGRADED, "destination.connect_timeout",
                dp.origin.ref, "spec.connectTimeout",
                f"duration {dp.connect_timeout!r} does not parse or is under 1ms; Istio's "
                "default applies", "Write the duration as e.g. 5s and re-run.")
        else:
            # fact: istio.destination-rule-lb
            out["connectionPool"] = {"tcp": {"connectTimeout": timeout}}
    return out


def _consistent_hash(ctx: WriteContext, dp: DestinationPolicy) -> dict[str, Any]:
    """``trafficPolicy.loadBalancer.consistentHash``: one hash key (Istio hashes on one
    attribute) and the ring or Maglev table (fact istio.destination-rule-lb)."""
    ch = dp.consistent_hash
    assert ch is not None
    out: dict[str, Any] = {}
    if ch.key == "header":
        out["httpHeaderName"] = ch.name
    elif ch.key == "query":
        out["httpQueryParameterName"] = ch.name
    elif ch.key == "source_ip":
        out["useSourceIp"] = True
    elif ch.key == "cookie":
        cookie = {"name": ch.name}
        if ch.cookie_path:
            cookie["path"] = ch.cookie_path
        if ch.cookie_ttl:
            cookie["ttl"] = istio_duration(ch.cookie_ttl) or ch.cookie_ttl
        out["httpCookie"] = cookie
    if ch.algorithm == "maglev":
        out["maglev"] = {}
    else:
        out["ringHash"] = {"minimumRingSize": ch.minimum_ring_size} \
            if ch.minimum_ring_size else {}
    if ch.left_out:
        ctx.losses.report(
            "DESTINATION_LB_CONSISTENT_HASH", Severity.DEGRADED, "destination.lb.consistent_hash",
            dp.origin.ref, ch.origin_path,
            f"Istio hashes on one attribute: only the first hash policy is carried ({ch.left_out} "
            "not carried)", "Check that the first hash policy gives the affinity you need.")
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
