"""Probes (requests to evaluate) and outcomes (what a mesh does with them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BUDGET_RETRIES = -1
"""``Outcome.retries`` for retries bounded by a budget rather than a count (a Linkerd
ServiceProfile route marked ``isRetryable``)."""


@dataclass(frozen=True, order=True)
class Client:
    """Who sends a probe: a workload identity (namespace, service account), or nobody."""

    namespace: str = ""
    service_account: str = ""
    """Empty for an unauthenticated (plaintext, no identity) client."""

    @property
    def authenticated(self) -> bool:
        """Whether the client presents a mesh identity."""
        return bool(self.service_account)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.service_account}" if self.authenticated else \
            "unauthenticated"


@dataclass(frozen=True, order=True)
class Probe:
    """One request to a Service port."""

    namespace: str
    service: str
    port: int
    path: str = "/"
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    client: Client = Client("default", "default")
    why: str = ""
    """What in the configuration this probe exercises (for the report)."""

    def __str__(self) -> str:
        hdr = "".join(f" {k}={v}" for k, v in self.headers)
        return (f"{self.client} -> {self.namespace}/{self.service}:{self.port} "
                f"{self.method} {self.path}{hdr}")


def probe_order(probe: Probe) -> tuple[Any, ...]:
    """The dataclass order of probes as one tuple: sorting tens of thousands of probes by it
    costs a fraction of the generated ``__lt__`` comparisons."""
    return (probe.namespace, probe.service, probe.port, probe.path, probe.method,
            probe.headers, probe.client.namespace, probe.client.service_account, probe.why)


@dataclass(frozen=True)
class Outcome:
    """What a mesh does with a probe."""

    status: str
    """``routed``, ``redirect``, ``no-route`` (404), ``error`` (the proxy answers itself:
    ``detail`` is the status) or ``denied``."""
    backends: tuple[tuple[str, float], ...] = ()
    """Receiving workloads (``Kind/ns/name`` joined by ``+`` per backend) and traffic share."""
    timeout: str = ""
    retries: int = 0
    detail: str = ""
    mirror: tuple[str, ...] = ()
    """Services a copy of the request is sent to (``Service/ns/name``), sorted."""
    rewrite: str = ""
    """What the backend receives instead of the path and host sent (``path /v2/x, host
    b``; migrate/verify/changes.py); empty: as sent."""
    request_headers: tuple[tuple[str, str, str], ...] = ()
    """Request header changes: (set|add|remove, lower-case name, value), sorted."""
    response_headers: tuple[tuple[str, str, str], ...] = ()
    """Response header changes, as ``request_headers``."""
    fault: str = ""
    """Fault injected (``delay 5s 100%; abort 503 10%``); empty: none."""
    sources: tuple[str, ...] = field(default=(), compare=False)
    """Source objects that decided the outcome (``Kind/ns/name``)."""
    rule_path: str = field(default="", compare=False)
    """The rule of the evaluated object that matched (``spec.http[1]``), when one did."""
    origin_path: str = field(default="", compare=False)
    """For an emitted object, the source rule the matching rule came from, as the writer
    recorded it in the ``meshmigrate.io/rules`` annotation."""

    def summary(self) -> str:
        """Short text for reports."""
        if self.status != "routed":
            return self.status + (f" ({self.detail})" if self.detail else "")
        shares = ", ".join(f"{b} {w:.0%}" for b, w in self.backends)
        retries = "retries within a budget" if self.retries == BUDGET_RETRIES else \
            f"{self.retries} retries"
        extra = "".join([f", timeout {self.timeout}" if self.timeout else "",
                         f", {retries}" if self.retries else "",
                         f", mirrored to {', '.join(self.mirror)}" if self.mirror else "",
                         f", rewritten to {self.rewrite}" if self.rewrite else "",
                         f", request headers {_ops(self.request_headers)}"
                         if self.request_headers else "",
                         f", response headers {_ops(self.response_headers)}"
                         if self.response_headers else "",
                         f", fault {self.fault}" if self.fault else ""])
        return f"routed to {shares}{extra}"


def _ops(ops: tuple[tuple[str, str, str], ...]) -> str:
    return " ".join(f"{op} {name}" + (f"={value}" if op != "remove" else "")
                    for op, name, value in ops)
