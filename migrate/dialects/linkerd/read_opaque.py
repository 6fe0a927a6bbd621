"""Linkerd kinds with no mesh-neutral model: rate limits and mesh-expansion workloads. Each
becomes an :class:`~migrate.ir.model.Opaque` record plus one feature use for its whole spec,
so the capability check reports it against the target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from migrate.dialects.fields import Fields
from migrate.ir.graph import MeshGraph
from migrate.ir.model import Opaque

if TYPE_CHECKING:
    from migrate.dialects.linkerd.reader import LinkerdReader

FEATURE_OF_KIND = {
    "HTTPLocalRateLimitPolicy": "ratelimit.inbound",
    "ExternalWorkload": "workload.vm",
}


def _detail(f: Fields) -> str:
    kind = f.ref.kind
    if kind == "HTTPLocalRateLimitPolicy":
        parts = [f"{key}={f.peek(f'spec.{key}.requestsPerSecond')}rps"
                 for key in ("total", "identity") if f.peek(f"spec.{key}") is not None]
        overrides = f.peek("spec.overrides")
        if isinstance(overrides, list) and overrides:
            parts.append(f"{len(overrides)} per-client overrides")
        return f"on Server {f.peek('spec.targetRef.name')}: " + ", ".join(parts)
    ips = f.peek("spec.workloadIPs")
    return ", ".join(str(ip.get("ip")) for ip in ips if isinstance(ip, dict)) \
        if isinstance(ips, list) else ""


def read_opaque(reader: LinkerdReader, f: Fields, graph: MeshGraph) -> None:
    """A Linkerd object reported whole (the feature table says what to do instead)."""
    f.use(FEATURE_OF_KIND[f.ref.kind], "spec", _detail(f))
    graph.add(Opaque(f.ref.kind, f.ref.namespace, f.ref.name, f.origin("spec")))
