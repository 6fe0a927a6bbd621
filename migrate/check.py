"""The capability check: every feature the source configuration uses, against the target's
table (mappings/<target>.yaml). Runs before the writer, so a feature no writer handles is
reported without anyone writing code for it.
"""

from __future__ import annotations

from migrate.ir.graph import MeshGraph
from migrate.losses import LossLog, Severity
from migrate.mappings import CapabilityTable, features


def check_capabilities(graph: MeshGraph, target: CapabilityTable, version: str,
                       losses: LossLog) -> None:
    """Append a loss for each feature use the target lacks, degrades, or gets too late."""
    catalogue = features()
    for use in sorted(graph.features, key=lambda u: (u.origin, u.feature, u.detail)):
        feature = catalogue[use.feature]
        cap = target.get(use.feature)
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
