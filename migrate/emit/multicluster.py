"""The runbook's "Other clusters" section: a plan covers the one cluster it read.

Every ``MULTICLUSTER`` loss (Linkerd Links, mirrored and federated Services, failover
splits; Istio east-west gateways and multi-network settings; Consul peerings, exported
services, sameness groups and cross-peer failover) names an object that ties this cluster to
others. The section lists them with what to build on the target before the cleanup removes
the source mesh's multicluster machinery, and says what the plan does not touch: the other
clusters.
"""

from __future__ import annotations

from typing import Callable

from migrate.plan.commands import visible
from migrate.plan.model import Plan

CODE = "MULTICLUSTER"


def other_clusters(plan: Plan, code: Callable[[str], str]) -> list[str]:
    """The section's lines (none when the input shows no multicluster configuration);
    ``code`` renders a Markdown code span of input text (the runbook's own)."""
    losses = [loss for loss in plan.losses if loss.code == CODE]
    if not losses:
        return []
    src, dst = plan.source.capitalize(), plan.target.capitalize()
    out = ["## Other clusters", "",
           f"The input ties this cluster to others through {src}'s multicluster "
           f"configuration. This plan covers this cluster only: it moves none of the other "
           f"clusters, and {dst} gets no multicluster setup from it. Traffic between the "
           f"clusters goes through {src}'s own machinery (gateways that take only {src}'s "
           f"mTLS, mirrored or peered services), which a pod that moved to {dst} does not "
           "speak: set up "
           f"{dst}'s multicluster on this cluster and on each linked cluster (shared trust, "
           "gateways, exported services) before the first namespace that calls another "
           "cluster, or is called from one, moves; the cleanup step then removes "
           f"{src}'s multicluster machinery for good. Plan each linked cluster's own migration "
           "from its own input. Objects that need it:", ""]
    for loss in losses:
        o = loss.object
        where = f"{o.kind} {o.namespace}/{o.name}" if o.namespace else f"{o.kind} {o.name}"
        out.append(f"- {code(where)} ({code(loss.path)}): {visible(loss.message)} "
                   f"To do: {visible(loss.action)}")
    return out + [""]
