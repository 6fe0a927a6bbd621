"""Per-route policy for Linkerd: timeout and retry annotations, failure accrual, and the
GRPCRoute form of a gRPC Service's routes.

Sources: mapping-istio-linkerd.md sections 1.2, 2.1 and 2.2; linkerd2 policy-controller
outbound/index/http.rs (annotations are read on both HTTPRoute flavours; a bad value makes the
whole route fail, and condition lists are split on "," without trimming).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from migrate import facts
from migrate.durations import gateway_duration, to_millis
from migrate.ir.model import DestinationPolicy, Rule, ServiceKey
from migrate.losses import ObjectRef, Severity

if TYPE_CHECKING:
    from migrate.dialects.linkerd.routes import RouteContext

# Istio retryOn conditions Linkerd expresses in retry.linkerd.io/http.
_HTTP_RETRY = {"5xx": "5xx", "gateway-error": "gateway-error", "retriable-4xx": "409"}


def grpc_service(ctx: RouteContext, key: ServiceKey) -> bool:
    """Whether every port of a Service speaks gRPC (its routes become GRPCRoutes at cleanup)."""
    svc = ctx.graph.service(key)
    return bool(svc and svc.ports and all(p.l7 == "grpc" for p in svc.ports))


def grpc_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """HTTPRoute rules as GRPCRoute rules, or None when a match or filter has no gRPC form.

    gRPC calls are ``POST /<package.Service>/<Method>``: an exact path names a method, a
    prefix ending at the service names the whole service, and ``/`` matches every call.
    """
    out = []
    for rule in rules:
        if any(f["type"] != "RequestHeaderModifier" for f in rule.get("filters", [])):
            return None
        matches = []
        for m in rule.get("matches", []):
            if set(m) - {"path", "headers"}:
                return None
            grpc: dict[str, Any] = {}
            path = m.get("path")
            if path and path["value"] != "/":
                parts = path["value"].strip("/").split("/")
                if path["type"] == "Exact" and len(parts) == 2 and all(parts):
                    grpc["method"] = {"type": "Exact", "service": parts[0], "method": parts[1]}
                elif path["type"] == "PathPrefix" and len(parts) == 1 and parts[0]:
                    grpc["method"] = {"type": "Exact", "service": parts[0]}
                else:
                    return None
            if "headers" in m:
                grpc["headers"] = m["headers"]
            matches.append(grpc)
        converted = {k: v for k, v in rule.items() if k != "matches"}
        if matches:
            converted = {"matches": matches, **converted}
        out.append(converted)
    return out


# gRPC status conditions retry.linkerd.io/grpc accepts (mapping-istio-linkerd.md section 1.2).
_GRPC_RETRY = ("cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable")


def failure_accrual_annotations(dp: DestinationPolicy) -> dict[str, str]:
    """Outlier detection as Linkerd failure accrual (balancer.linkerd.io, Linkerd 2.13+).

    Envoy's consecutive5xxErrors maps to max-failures and baseEjectionTime to min-penalty;
    Linkerd then backs off exponentially (mapping-istio-linkerd.md section 2.2). The policy
    controller rejects the Service's whole accrual config when min-penalty exceeds max-penalty,
    which defaults to 1m (policy-controller outbound/index.rs ``parse_accrual_config``), so a
    longer min-penalty is written with an equal max-penalty: the breaker stays open exactly
    that long, which is also what Envoy's linear ejection does on a first ejection.
    """
    if dp.outlier is None:
        return {}
    out = {"balancer.linkerd.io/failure-accrual": "consecutive"}
    if dp.outlier.consecutive_errors:
        out["balancer.linkerd.io/failure-accrual-consecutive-max-failures"] = str(
            dp.outlier.consecutive_errors)
    penalty = gateway_duration(dp.outlier.base_ejection_time or "")
    if penalty:
        out["balancer.linkerd.io/failure-accrual-consecutive-min-penalty"] = penalty
        # fact: linkerd.failure-accrual-penalties
        default_max = str(facts.value("linkerd.failure-accrual-penalties", "default_max_penalty"))
        if (to_millis(penalty) or 0) > (to_millis(default_max) or 0):
            out["balancer.linkerd.io/failure-accrual-consecutive-max-penalty"] = penalty
    return out


def policy_annotations(ctx: RouteContext, ref: ObjectRef, rule: Rule,
                        grpc: bool = False) -> tuple[str, ...]:
    """Linkerd route annotations for a rule's timeout and retry, as sorted key=value pairs.

    For a gRPC Service the GRPCRoute written at cleanup gets its own set, prefixed ``grpc:``
    here: gRPC status conditions go in retry.linkerd.io/grpc, which HTTPRoutes cannot carry.
    """
    out: dict[str, str] = {}
    if rule.timeout and ctx.supports("route.timeout"):
        value = gateway_duration(rule.timeout)
        if value is None:
            ctx.losses.report("ROUTE_DURATION", Severity.DROPPED, "route.timeout", ref,
                              f"{rule.origin_path}.timeout",
                              f"timeout {rule.timeout!r} does not parse", "Fix the duration.")
        else:
            out["timeout.linkerd.io/request"] = value
            if grpc:
                out["grpc:timeout.linkerd.io/request"] = value
    r = rule.retry
    if r and r.attempts > 0 and ctx.supports("route.retry"):
        conditions, grpc_conditions, lost = [], [], []
        # fact: istio.default-retry
        for c in r.retry_on or ("connect-failure", "refused-stream", "unavailable", "cancelled"):
            if c in _HTTP_RETRY:
                conditions.append(_HTTP_RETRY[c])
            elif c.isdigit():
                conditions.append(c)
            elif c in _GRPC_RETRY and grpc:
                grpc_conditions.append(c)
            elif c != "retriable-status-codes":
                lost.append(c)
        if lost:
            ctx.losses.report(
                "ROUTE_RETRY_CONDITION", Severity.DEGRADED, "route.retry", ref,
                r.path_of("retryOn"),
                f"retry conditions {','.join(lost)} have no Linkerd form"
                f"{'' if conditions or grpc_conditions else '; this rule is no longer retried'}",
                "Linkerd retries on HTTP status conditions (5xx, gateway-error, codes) and, on "
                "GRPCRoutes, on gRPC status conditions.")
        if grpc_conditions:
            ctx.losses.report(
                "ROUTE_RETRY_CONDITION", Severity.DEGRADED, "route.retry", ref,
                r.path_of("retryOn"),
                f"gRPC retry conditions {','.join(grpc_conditions)} apply from the cleanup step, "
                "when the route becomes a GRPCRoute; the coexistence HTTPRoute cannot carry them",
                "Keep the window short, or accept no gRPC retries for these calls until cleanup.")
        per_try = gateway_duration(r.per_try_timeout) if r.per_try_timeout else None
        for prefix, key, found in (("", "retry.linkerd.io/http", conditions),
                                   ("grpc:", "retry.linkerd.io/grpc", grpc_conditions)):
            if found:
                # fact: linkerd.retry-condition-syntax
                out[f"{prefix}{key}"] = ",".join(dict.fromkeys(found))
                out[f"{prefix}retry.linkerd.io/limit"] = str(r.attempts)
                if per_try:
                    out[f"{prefix}retry.linkerd.io/timeout"] = per_try
    return tuple(f"{k}={v}" for k, v in sorted(out.items()))
