"""Linkerd's configuration annotations on routes, Services, namespaces and pod templates.

Semantics (linkerd2 edge-26.8.3 pkg/k8s/labels.go and the Linkerd docs, summarised in
../shared/reference/mapping-istio-linkerd.md section 1.2):
- ``retry.linkerd.io/http`` (``5xx``, ``gateway-error``, a code, a range ``a-b``),
  ``retry.linkerd.io/grpc`` (gRPC status names), ``retry.linkerd.io/limit`` (default 1),
  ``retry.linkerd.io/timeout``; ``timeout.linkerd.io/request|response|idle``. They sit on an
  HTTPRoute/GRPCRoute or on the Service; the route's own annotations win. Any one of the retry
  annotations makes a retry policy: ``limit`` or ``timeout`` alone retry requests that failed
  or were refused (and per-try timeouts), with no status condition (fact
  ``linkerd.retry-without-conditions``: policy-controller ``parse_http_retry``).
- ``balancer.linkerd.io/failure-accrual: consecutive`` with ``...-consecutive-max-failures``
  (7), ``...-min-penalty`` (1s), ``...-max-penalty`` (1m), ``...-jitter-ratio`` (0.5).
- ``config.linkerd.io/*`` on pods and namespaces: proxy settings, capture exclusions,
  opaque ports, the default inbound policy.
"""

from __future__ import annotations

from dataclasses import replace

from migrate.dialects.fields import Fields
from migrate.dialects.linkerd.read_state import RoutePolicy
from migrate.durations import to_millis
from migrate.ir.model import OutlierDetection, Retry
from migrate.losses import Severity

RETRY_HTTP = "retry.linkerd.io/http"
RETRY_GRPC = "retry.linkerd.io/grpc"
RETRY_LIMIT = "retry.linkerd.io/limit"
RETRY_TIMEOUT = "retry.linkerd.io/timeout"
TIMEOUT_REQUEST = "timeout.linkerd.io/request"
TIMEOUT_OTHER = ("timeout.linkerd.io/response", "timeout.linkerd.io/idle")
ROUTE_KEYS = (RETRY_HTTP, RETRY_GRPC, RETRY_LIMIT, RETRY_TIMEOUT, TIMEOUT_REQUEST,
              *TIMEOUT_OTHER)

ERROR_CONDITIONS = ("connect-failure", "refused-stream", "reset")
"""What Linkerd retries without a status condition, in the IR's (Envoy's) words: requests that
failed to connect, were refused or reset (linkerd.retry-without-conditions)."""
_GRPC_CODES = frozenset({"cancelled", "deadline-exceeded", "internal", "resource-exhausted",
                         "unavailable"})
_FA = "balancer.linkerd.io/failure-accrual"
# fact: linkerd.failure-accrual-penalties
_FA_DEFAULTS = {"max-failures": "7", "min-penalty": "1s"}
"""Defaults of the two settings the IR models (linkerd2 docs, circuit-breaking.md)."""

DEFAULT_POLICY = "config.linkerd.io/default-inbound-policy"
REQUIRE_IDENTITY = "config.linkerd.io/proxy-require-identity-inbound-ports"
INJECT = "linkerd.io/inject"
POLICIES = ("all-unauthenticated", "all-authenticated", "cluster-unauthenticated",
            "cluster-authenticated", "audit", "deny")

# config.linkerd.io keys with a feature of their own; every other one is a proxy setting.
_CONFIG_FEATURES = (
    ("config.linkerd.io/opaque-ports", "protocol.opaque"),
    ("config.linkerd.io/skip-inbound-ports", "workload.capture_annotations"),
    ("config.linkerd.io/skip-outbound-ports", "workload.capture_annotations"),
    ("config.linkerd.io/skip-subnets", "workload.capture_annotations"),
    ("config.linkerd.io/access-log", "telemetry"),
)
# Client-side settings Linkerd reads on Services and routes, never on pods or namespaces.
_CLIENT_PREFIXES = ("retry.linkerd.io/", "timeout.linkerd.io/", "balancer.linkerd.io/",
                    "balancer.alpha.linkerd.io/")
# Read elsewhere (injection, default policy) or written by the injector itself.
_HANDLED_ELSEWHERE = (DEFAULT_POLICY, REQUIRE_IDENTITY)


def ann_path(meta: str, key: str) -> str:
    """The ledger path of an annotation under a metadata path."""
    return f"{meta}.annotations.{key}" if meta else f"annotations.{key}"


def route_policy(f: Fields, meta: str) -> RoutePolicy:
    """Retry and timeout annotations under ``meta`` (a route's or a Service's metadata).

    ``retry.linkerd.io/http`` belongs on HTTPRoutes and ``retry.linkerd.io/grpc`` on
    GRPCRoutes (a Service may carry both); the other one on a route does nothing.
    """
    ann = f.peek(f"{meta}.annotations") or {}
    if not isinstance(ann, dict):
        return RoutePolicy()
    wrong = {"HTTPRoute": RETRY_GRPC, "GRPCRoute": RETRY_HTTP}.get(f.ref.kind)
    if wrong in ann:
        f.get(ann_path(meta, wrong))
        f.losses.report(
            "SOURCE_IGNORED", Severity.INFO, "input", f.ref, ann_path(meta, wrong),
            f"{wrong} has no effect on a {f.ref.kind}; not carried over",
            f"Use {RETRY_HTTP if wrong == RETRY_GRPC else RETRY_GRPC} on a {f.ref.kind}.")
        ann = {k: v for k, v in ann.items() if k != wrong}
    paths = tuple(ann_path(meta, k) for k in ROUTE_KEYS if k in ann)
    timeout = _duration(f, ann_path(meta, TIMEOUT_REQUEST)) if TIMEOUT_REQUEST in ann else ""
    for key in TIMEOUT_OTHER:
        if key in ann:
            f.use("route.timeout.stream", ann_path(meta, key), f"{key}={ann[key]}")
    conditions: list[str] = []
    if RETRY_HTTP in ann:
        conditions += _http_conditions(f, ann_path(meta, RETRY_HTTP))
    if RETRY_GRPC in ann:
        path = ann_path(meta, RETRY_GRPC)
        for c in _split(f.string(path)):
            if c in _GRPC_CODES:
                conditions.append(c)
            else:
                f.invalid(path, f"{c!r} is not a gRPC retry condition Linkerd knows")
    # fact: linkerd.retry-without-conditions
    # parse_http_retry: "0" for the limit or the timeout counts as unset, the limit defaults
    # to 1, and a policy exists as soon as one of limit, timeout or conditions is set.
    limit = 0
    if RETRY_LIMIT in ann:
        limit = f.integer(ann_path(meta, RETRY_LIMIT)) or 0
    per_try = _duration(f, ann_path(meta, RETRY_TIMEOUT)) if RETRY_TIMEOUT in ann else ""
    if per_try and to_millis(per_try) == 0:
        per_try = ""
    retry = None
    if conditions or limit > 0 or per_try:
        if conditions:
            conditions_path = ann_path(meta, RETRY_HTTP if RETRY_HTTP in ann else RETRY_GRPC)
        else:
            # No status condition: the proxy retries only requests that failed or were
            # refused (and, with a timeout, attempts that timed out).
            conditions_path = ann_path(meta, RETRY_LIMIT if limit > 0 else RETRY_TIMEOUT)
        # Each setting has its own annotation: losses about one must name that annotation.
        fields = (("retryOn", conditions_path),) + tuple(
            (key, ann_path(meta, name)) for key, name in (("attempts", RETRY_LIMIT),
                                                          ("perTryTimeout", RETRY_TIMEOUT))
            if name in ann)
        retry = Retry(attempts=limit or 1, per_try_timeout=per_try,
                      retry_on=tuple(dict.fromkeys(conditions)) or ERROR_CONDITIONS,
                      origin_path=conditions_path, field_paths=fields)
    return RoutePolicy(timeout, retry, paths)


def for_route(policy: RoutePolicy, grpc: bool) -> RoutePolicy:
    """A Service's policy as it applies to an HTTP or a gRPC route (its retry conditions)."""
    retry = policy.retry
    if retry is not None:
        # Error conditions (limit/timeout alone) hold for both route kinds.
        kept = tuple(c for c in retry.retry_on
                     if c in ERROR_CONDITIONS or (c in _GRPC_CODES) == grpc)
        retry = replace(retry, retry_on=kept) if kept else None
    return RoutePolicy(policy.timeout, retry, policy.paths)


def _split(text: str) -> list[str]:
    return [c.strip().lower() for c in text.split(",") if c.strip()]


def _http_conditions(f: Fields, path: str) -> list[str]:
    out: list[str] = []
    for c in _split(f.string(path)):
        if c in ("5xx", "gateway-error"):
            out.append(c)
        elif c.isdigit() and 100 <= int(c) <= 599:
            out.append(c)
        elif "-" in c and all(p.strip().isdigit() for p in c.split("-", 1)):
            low, high = (int(p) for p in c.split("-", 1))
            if 100 <= low <= high <= 599:
                out += [str(code) for code in range(low, high + 1)]
            else:
                f.invalid(path, f"status range {c!r} is not within 100-599")
        else:
            f.invalid(path, f"{c!r} is not an HTTP retry condition Linkerd knows")
    return out


def _duration(f: Fields, path: str) -> str:
    value = f.string(path)
    if value and to_millis(value) is None:
        f.invalid(path, f"duration {value!r} does not parse")
        return ""
    return value


def failure_accrual(f: Fields, meta: str) -> OutlierDetection | None:
    """Consecutive failure accrual on a Service as outlier detection (None when absent)."""
    ann = f.peek(f"{meta}.annotations") or {}
    if not isinstance(ann, dict):
        return None
    extra = sorted(k for k in ann if k.startswith("balancer.alpha.linkerd.io/"))
    for key in extra:
        f.use("destination.success_rate", ann_path(meta, key), f"{key}={ann[key]}")
    mode = f.string(ann_path(meta, _FA)) if _FA in ann else ""
    settings = {k[len(_FA) + len("-consecutive-"):]: k for k in ann
                if k.startswith(f"{_FA}-consecutive-")}
    if mode != "consecutive":
        for key in sorted(settings.values()):
            f.get(ann_path(meta, key))  # only read in consecutive mode
        if mode == "unified":
            f.use("destination.success_rate", ann_path(meta, _FA), mode)
        elif mode:
            f.invalid(ann_path(meta, _FA), f"failure accrual mode {mode!r} is unknown")
        return None
    values = {name: f.string(ann_path(meta, key)) for name, key in sorted(settings.items())}
    errors = values.get("max-failures", _FA_DEFAULTS["max-failures"])
    lost = sorted(k for k in values if k not in _FA_DEFAULTS)
    f.use("destination.outlier_detection", ann_path(meta, _FA),
          ", ".join(f"{k}={values[k]}" for k in lost))
    return OutlierDetection(
        consecutive_errors=int(errors) if errors.isdigit() else None,
        base_ejection_time=values.get("min-penalty", _FA_DEFAULTS["min-penalty"]),
        origin_path=ann_path(meta, _FA))


def config_uses(f: Fields, meta: str) -> None:
    """``config.linkerd.io`` settings on a pod template or namespace as feature uses."""
    ann = f.peek(f"{meta}.annotations") or {}
    if not isinstance(ann, dict):
        return
    for key in sorted(ann):
        if key.startswith(_CLIENT_PREFIXES):
            # Linkerd reads these on Services and routes only (reference 1.2).
            f.get(ann_path(meta, key))
            f.losses.report(
                "SOURCE_IGNORED", Severity.INFO, "input", f.ref, ann_path(meta, key),
                f"{key} on a {f.ref.kind} has no effect (Linkerd reads it on Services and "
                "routes); not carried over", "Move it to the Service if it was meant to apply.")
            continue
        if not (key.startswith("config.linkerd.io/") or key.startswith("config.alpha.linkerd.io/")):
            continue
        if key in _HANDLED_ELSEWHERE:
            continue
        feature = next((feat for k, feat in _CONFIG_FEATURES if k == key),
                       "workload.proxy_annotations")
        f.use(feature, ann_path(meta, key), f"{key}={ann[key]}")


# fact: linkerd.inject-annotation
def injection(f: Fields, meta: str, inherit: str) -> str:
    """IR injection state from ``linkerd.io/inject`` (``inherit`` when absent)."""
    ann = f.peek(f"{meta}.annotations") or {}
    value = str(ann.get(INJECT, "")).strip().lower() if isinstance(ann, dict) else ""
    if not value:
        return inherit
    path = ann_path(meta, INJECT)
    f.get(path)
    if value == "enabled":
        return "sidecar"
    if value == "ingress":
        # Ingress mode routes on Host / l5d-dst-override; no other mesh has it.
        f.use("injection.ingress", path, value)
        return "sidecar"
    if value == "disabled":
        return "none"
    f.invalid(path, f"linkerd.io/inject value {value!r} is not enabled, ingress or disabled")
    return inherit


def default_policy(f: Fields, meta: str) -> str:
    """The ``default-inbound-policy`` annotation under ``meta`` ('' when absent or bad)."""
    ann = f.peek(f"{meta}.annotations") or {}
    if not isinstance(ann, dict) or DEFAULT_POLICY not in ann:
        return ""
    path = ann_path(meta, DEFAULT_POLICY)
    value = f.string(path).strip()
    if value not in POLICIES:
        f.invalid(path, f"default inbound policy {value!r} is not one of {', '.join(POLICIES)}")
        return ""
    return value
