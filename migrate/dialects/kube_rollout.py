"""What decides whether restarting a workload takes it down: its replica count and update
strategy, and the PodDisruptionBudgets that cover its pods. Read with the core kinds, used by
the planner's restart notes (:mod:`migrate.plan.disruption`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from migrate.dialects.fields import Fields
from migrate.ir.graph import MeshGraph
from migrate.ir.model import DisruptionBudget, Rollout

if TYPE_CHECKING:
    from migrate.dialects.base import Reader

# The update strategy each kind uses when its spec names none (Kubernetes API reference:
# DeploymentStrategy, StatefulSetUpdateStrategy, DaemonSetUpdateStrategy).
_STRATEGY_FIELD = {"Deployment": "spec.strategy", "StatefulSet": "spec.updateStrategy",
                   "DaemonSet": "spec.updateStrategy"}


def _int_or_percent(value: Any) -> int | str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.endswith("%")):
        return value
    return None


def rollout_of(f: Fields) -> Rollout | None:
    """How a Deployment, StatefulSet or DaemonSet replaces its pods; None for other kinds."""
    where = _STRATEGY_FIELD.get(f.ref.kind)
    if where is None:
        return None
    strategy = f.peek(where)
    strategy = strategy if isinstance(strategy, dict) else {}
    rolling = strategy.get("rollingUpdate")
    rolling = rolling if isinstance(rolling, dict) else {}
    replicas = f.peek("spec.replicas")
    partition = rolling.get("partition")
    return Rollout(
        replicas=replicas if isinstance(replicas, int) and not isinstance(replicas, bool)
        else None,
        strategy=str(strategy.get("type") or "RollingUpdate"),
        max_surge=_int_or_percent(rolling.get("maxSurge")),
        max_unavailable=_int_or_percent(rolling.get("maxUnavailable")),
        partition=partition if isinstance(partition, int) and partition > 0 else 0)


def read_disruption_budget(reader: Reader, f: Fields, graph: MeshGraph) -> None:
    """A PodDisruptionBudget: its selector and budget (policy/v1 and v1beta1 alike)."""
    selector = f.peek("spec.selector")
    if not isinstance(selector, dict):
        # policy/v1: an empty or missing selector selects no pods; v1beta1's empty selector
        # also selects none (Kubernetes API reference, PodDisruptionBudgetSpec.selector).
        return
    graph.add(DisruptionBudget(
        namespace=f.ref.namespace, name=f.ref.name,
        selector=json.dumps(selector, sort_keys=True, default=str),
        min_available=_int_or_percent(f.peek("spec.minAvailable")),
        max_unavailable=_int_or_percent(f.peek("spec.maxUnavailable")),
        origin=f.origin("spec")))
