"""The window of each staging-only grant: applied while its callers are on the source mesh.

A writer marks the grants it makes only for callers still on the source mesh (a Linkerd
``-plaintext`` twin and its ``plaintext-staging`` NetworkAuthentication) with the namespaces
those callers run in (``TargetConfig.staging_grantees``). Such a grant relaxes the target's
policy, so it exists no longer than a caller needs it (issue 15):
- it is not applied at all when every one of its namespaces moves no later than the grant's
  own namespace (same step or before): no caller of it is left on the source mesh;
- it is deleted by the move step of the last of its namespaces, after that step's pods run
  on the target, unless the grant's enforce step comes first (enforce deletes every
  staging-only object, as before); rolling that move step back restores it;
- a grant for any namespace, or for one the plan does not move (such as the source's
  ingress namespace), keeps the old window: from its namespace's move to its enforce step.

Each applied grant's window is reported as ``PLAN_STAGING_OPEN`` with what the grant admits
besides its callers (``TargetConfig.staging_admits``), so the plan says how wide it is open.
"""

from __future__ import annotations

from dataclasses import dataclass

from migrate.dialects.base import Manifest, TargetConfig
from migrate.dialects.coexist import json_pointer, patch_json, set_template_annotation, \
    template_path
from migrate.ir.model import Workload
from migrate.losses import LossLog, ObjectRef, Severity
from migrate.plan.commands import Command

Key = tuple[str, str, str]
"""(kind, namespace, name) of a manifest."""


@dataclass(frozen=True)
class Window:
    """When one staging-only grant exists."""

    home: int
    """The group whose move step applies it (the group of its namespace)."""
    until: int | None
    """The group whose move step deletes it; None: its own enforce step does."""
    grantees: frozenset[str] | None


def key_of(m: Manifest) -> Key:
    """The identity of a manifest, as ``staging_grantees`` keys it."""
    return m.kind, m.namespace, m.name


def windows(target: TargetConfig, groups: list[list[str]],
            last_caller: dict[int, int]) -> dict[Key, Window | None]:
    """Each staging-only grant's window; None for one no step needs (not applied)."""
    position = {ns: i for i, g in enumerate(groups) for ns in g}
    out: dict[Key, Window | None] = {}
    for key, grantees in sorted(target.staging_grantees.items(),
                                key=lambda kv: kv[0]):
        home = position.get(key[1])
        if home is None:
            continue
        if grantees is None or any(ns not in position for ns in grantees):
            out[key] = Window(home, None, grantees)
            continue
        last = max((position[ns] for ns in grantees), default=home)
        if last <= home:
            out[key] = None  # every caller it is for moves with it or before it
        elif last <= last_caller.get(home, home):
            out[key] = Window(home, last, grantees)
        else:
            out[key] = Window(home, None, grantees)  # enforce comes first and deletes it
    return out


def applied(ms: list[Manifest], spans: dict[Key, Window | None]) -> list[Manifest]:
    """The manifests of a move step without the staging-only grants no caller needs."""
    return [m for m in ms if spans.get(key_of(m), True) is not None]


def removed_by_move(target: TargetConfig, spans: dict[Key, Window | None],
                    group: int) -> list[Manifest]:
    """Staging-only grants the move step of ``group`` deletes (their last caller moves)."""
    out = []
    for ns in sorted(target.remove_at_enforce):
        for m in target.remove_at_enforce[ns]:
            span = spans.get(key_of(m))
            if span is not None and span.until == group:
                out.append(m)
    return out


def removed_by_enforce(ms: list[Manifest], spans: dict[Key, Window | None]) -> list[Manifest]:
    """Of a namespace's staging-only objects, those its enforce step still deletes."""
    out = []
    for m in ms:
        key = key_of(m)
        if key not in spans:
            out.append(m)  # no window known: deleted at enforce, as before
        elif spans[key] is not None and spans[key].until is None:  # type: ignore[union-attr]
            out.append(m)
    return out


def gone_before_enforce(ms: list[Manifest], spans: dict[Key, Window | None]) -> list[Manifest]:
    """Of a namespace's staging-only objects, those already deleted (or never applied)
    when its enforce step runs: re-applying the move step's folder on rollback brings them
    back, so the rollback deletes them again."""
    return [m for m in ms if key_of(m) in spans and (
        spans[key_of(m)] is None or spans[key_of(m)].until is not None)]  # type: ignore[union-attr]


def report(losses: LossLog, target: TargetConfig, spans: dict[Key, Window | None],
           move_number: dict[int, int], enforce_number: dict[int, int],
           source_title: str) -> None:
    """One ``PLAN_STAGING_OPEN`` per source policy and window: what its staging-only grants
    admit besides the callers they are for, and between which steps."""
    if not target.staging_admits:
        return
    grouped: dict[tuple[ObjectRef, int, int], tuple[list[str], set[str] | None]] = {}
    for ns in sorted(target.remove_at_enforce):
        for m in target.remove_at_enforce[ns]:
            span = spans.get(key_of(m))
            if span is None or m.kind != "AuthorizationPolicy":
                continue
            start = move_number.get(span.home)
            end = enforce_number.get(span.home) if span.until is None else \
                move_number.get(span.until)
            if start is None or end is None:
                continue
            for ref in m.sources[:1]:
                names, callers = grouped.setdefault((ref, start, end), ([], set()))
                names.append(f"{m.namespace}/{m.name}")
                if callers is not None and span.grantees is not None:
                    callers |= span.grantees
                else:
                    grouped[(ref, start, end)] = (names, None)
    for (ref, start, end), (names, callers) in sorted(grouped.items()):
        who = (f"callers in {', '.join(sorted(callers))}" if callers else
               "callers of any namespace")
        losses.report(
            "PLAN_STAGING_OPEN", Severity.DEGRADED, "plan", ref, "spec.rules",
            f"from step {start} to step {end}, {', '.join(sorted(names))} (for {who} still on "
            f"{source_title}) admit(s) on the grant's ports, paths and methods "
            f"{target.staging_admits}",
            "Keep the window short (move the callers soon after), or run the step with "
            "network policy limiting which pods reach these ports.")


def report_plaintext(losses: LossLog, target: TargetConfig, groups: list[list[str]],
                     move_number: dict[int, int], enforce_number: dict[int, int],
                     source_title: str, target_title: str) -> None:
    """One ``PLAN_STAGING_PLAINTEXT`` per namespace whose policy is staged: from its move to
    its enforce step, requests without a mesh identity (the plaintext of callers still on the
    source mesh) pass what the staged form admits, which the final form refuses. This is
    the one relaxation docs/coexistence.md ("The rule") allows, stated with its window."""
    audit = target.staging_mode == "audit"
    for i, group in enumerate(groups):
        start, end = move_number.get(i), enforce_number.get(i)
        if start is None or end is None:
            continue
        for ns in group:
            if not (target.policy_staged.get(ns) or target.namespace_staged.get(ns)):
                continue
            if audit:
                # fact: linkerd.audit-policy
                losses.report(
                    "PLAN_STAGING_AUDIT", Severity.DEGRADED, "plan",
                    ObjectRef("Namespace", "", ns, "v1"), "metadata.name",
                    f"from step {start} to step {end}, {ns}'s {target_title} policy is staged "
                    "in audit mode (--staging audit): every request from every client, with "
                    "or without an identity, on every port and path, is admitted and only "
                    "logged, including what the source refused",
                    "Plan without --staging audit to keep ports, paths, methods and identities "
                    "enforced during the move, or keep the window short.")
                continue
            losses.report(
                "PLAN_STAGING_PLAINTEXT", Severity.INFO, "plan",
                ObjectRef("Namespace", "", ns, "v1"), "metadata.name",
                f"from step {start} to step {end}, {ns}'s staged {target_title} policy admits "
                f"requests without a mesh identity (the plaintext of callers still on "
                f"{source_title}) that the enforced policy refuses",
                "Keep the window short; the enforce step ends it.")


def workload_annotations(target: TargetConfig, workloads: list[Workload]) -> list[Command]:
    """Pod-template annotations the writer asked for (``workload_staged``), set before the
    move step restarts the workloads (a proxy reads them when its pod is created)."""
    out = []
    for w in workloads:
        wanted = target.workload_staged.get(w.namespace, {}).get(f"{w.kind}/{w.name}", {})
        out += [set_template_annotation(w, key, value) for key, value in sorted(wanted.items())]
    return out


def workload_annotations_undone(target: TargetConfig,
                                workloads: list[Workload]) -> list[Command]:
    """The rollback of :func:`workload_annotations`: the annotations removed again (an
    annotation the template already had is put back to its value)."""
    out = []
    for w in workloads:
        wanted = target.workload_staged.get(w.namespace, {}).get(f"{w.kind}/{w.name}", {})
        had = dict(w.pod_annotations)
        for key in sorted(wanted):
            out.append(set_template_annotation(w, key, had[key]) if key in had else
                       patch_json(w, [{"op": "remove", "path": f"{template_path(w.kind)}/"
                                       f"annotations/{json_pointer(key)}"}]))
    return out
