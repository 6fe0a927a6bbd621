"""Restart notes: which restarts of a step take a workload down, which leave pods on the old
proxy, and which PodDisruptionBudgets a restart runs into, each with what to do.

`kubectl rollout restart` replaces pods the way the workload's update strategy says; it is
not held by PodDisruptionBudgets, but the pods it takes down count against them while it
runs. The planner adds these notes to every step that restarts workloads.
"""

from __future__ import annotations

import json
import math

from migrate import facts
from migrate.dialects.linkerd.read_state import selector_matches
from migrate.ir.graph import MeshGraph
from migrate.ir.model import DisruptionBudget, Rollout, Workload


def waits_for_rollout(w: Workload) -> bool:
    """Whether ``kubectl rollout status`` can follow the workload's restart: it refuses an
    OnDelete strategy, under which a restart replaces no pod."""
    # fact: kubernetes.statefulset-update
    return w.rollout is None or w.rollout.strategy != "OnDelete"


def _scaled(value: int | str | None, replicas: int, up: bool) -> int | None:
    """An int-or-percent field as a pod count (Kubernetes rounds as ``up`` says)."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        share = float(value.rstrip("%")) * replicas / 100
    except ValueError:
        return None
    return math.ceil(share) if up else math.floor(share)


def _stops_all(surge: int | str, unavailable: int | str, replicas: int) -> bool:
    """Whether a rolling update of ``replicas`` pods may take all of them down at once."""
    down = _scaled(unavailable, replicas, up=False)
    if down is None:
        return False
    if down == 0 and _scaled(surge, replicas, up=True) == 0:
        down = 1  # the API server refuses both at zero; the controller then takes one down
    return down >= replicas


def _replicas(r: Rollout) -> tuple[int, str]:
    if r.replicas is None:
        return 1, "1 replica (spec.replicas not set: 1 unless an autoscaler sets it)"
    return r.replicas, f"{r.replicas} replica{'s' if r.replicas != 1 else ''}"


def _downtime(w: Workload, r: Rollout, where: str) -> str | None:
    """The note for a restart that leaves the workload with no ready pod, if it does."""
    count, said = _replicas(r)
    name = f"{w.kind} {w.namespace}/{w.name}"
    if w.kind == "Deployment":
        if r.strategy == "Recreate":
            return (f"{name} uses strategy Recreate: {where} stops all its pods before new ones "
                    "start, so it serves nothing until they are ready. Switch it to "
                    "RollingUpdate before this step, or accept the downtime.")
        # fact: kubernetes.rolling-update-defaults
        surge = r.max_surge if r.max_surge is not None else \
            facts.value("kubernetes.rolling-update-defaults", "max_surge")
        unavailable = r.max_unavailable if r.max_unavailable is not None else \
            facts.value("kubernetes.rolling-update-defaults", "max_unavailable")
        if not _stops_all(surge, unavailable, count):
            return None
        enough = next((n for n in range(count + 1, count + 4)
                       if not _stops_all(surge, unavailable, n)), None)
        fix = (f"Scale it to {enough} replicas before this step and back after" if enough
               else "Lower maxUnavailable (or raise maxSurge) before this step")
        return (f"{name} has {said}, maxSurge {surge} and maxUnavailable {unavailable}: "
                f"{where} may stop every pod before a new one is ready. {fix}, or accept the "
                "downtime.")
    if w.kind == "StatefulSet" and r.strategy == "RollingUpdate" and count == 1:
        # fact: kubernetes.statefulset-update
        return (f"{name} has {said}: {where} deletes its pod before the new one starts, so it "
                "serves nothing until that pod is ready. A second replica of a StatefulSet is "
                "a new member, not a copy: schedule this step for a quiet time and accept the "
                "downtime, or scale it first only if the application is built to scale.")
    return None


def _held_back(w: Workload, r: Rollout, where: str) -> str | None:
    """The note for a restart that replaces none or only some of the workload's pods."""
    name = f"{w.kind} {w.namespace}/{w.name}"
    # fact: kubernetes.statefulset-update
    if r.strategy == "OnDelete":
        return (f"{name} uses updateStrategy OnDelete: {where} changes its template but "
                "replaces no pod. Delete its pods one at a time (waiting for each to be ready) "
                "so they come back with the new proxy configuration.")
    if w.kind == "StatefulSet" and r.partition:
        return (f"{name} has rollingUpdate.partition {r.partition}: pods with an ordinal below "
                f"{r.partition} are not replaced by {where}. Set the partition to 0 for this "
                "step, or delete those pods one at a time.")
    return None


def _budget_notes(w: Workload, r: Rollout, budgets: list[DisruptionBudget],
                  where: str) -> list[str]:
    count, said = _replicas(r)
    pods = dict(w.pod_labels)
    out = []
    for b in budgets:
        if not selector_matches(json.loads(b.selector), pods):
            continue
        # fact: kubernetes.pdb-not-rollouts
        if b.max_unavailable is not None:
            allowed = _scaled(b.max_unavailable, count, up=True)
            limit = f"maxUnavailable {b.max_unavailable}"
        elif b.min_available is not None:
            floor = _scaled(b.min_available, count, up=True)
            allowed = None if floor is None else count - floor
            limit = f"minAvailable {b.min_available}"
        else:
            continue
        note = (f"PodDisruptionBudget {b.namespace}/{b.name} ({limit}) covers {w.kind} "
                f"{w.namespace}/{w.name}: it does not hold {where} back (Kubernetes does not "
                "apply budgets to rolling updates), but the pods being replaced count against "
                "it, so a node drain or autoscaler scale-down is refused until the rollout is "
                "done. Pause node maintenance during this step.")
        if allowed is not None and allowed <= 0:
            note += (f" With {said} it allows no eviction at all, during the migration or "
                     f"after: scale to {count + 1} replicas if drains must proceed, or accept.")
        out.append(note)
    return out


def restart_notes(graph: MeshGraph, workloads: list[Workload], where: str) -> list[str]:
    """Manual-action notes for the restarts of ``workloads`` (``where`` names the restart,
    e.g. "the restart of this step"), per workload: downtime, pods left on the old proxy,
    and the disruption budgets it meets."""
    out: list[str] = []
    for w in workloads:
        r = w.rollout
        if r is None or r.replicas == 0:
            continue
        for note in (_downtime(w, r, where), _held_back(w, r, where)):
            if note:
                out.append(note)
        out += _budget_notes(w, r, graph.in_namespace(DisruptionBudget, w.namespace), where)
    return out
