"""Build the staged plan for a source -> target move from the IR, the target config and the
namespace order. The step templates follow mapping-istio-linkerd.md sections 4 and 5:

00 prerequisites  install the target, neutralize source config that breaks coexistence
move <group>      apply routing (inert for the source) and staged policy (identity relaxed
                  for plaintext callers, nothing else), switch
                  injection, restart, verify, then delete the source's inbound objects
enforce <group>   once the group's last source-mesh caller has moved: policy enforces and
                  the source's routing for the group's Services is retired
ingress           replace the source's ingress gateway (callers of ingress-facing groups)
cleanup           long-term route forms, remaining source objects, uninstall the source
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import networkx as nx

from migrate.dialects.base import Manifest, ReadResult, TargetConfig
from migrate.dialects.coexist import ROLLOUT_KINDS, Coexistence, RouteHandover
from migrate.emit.manifests import (
    SOURCE_ANNOTATION,
    file_name,
    manifest_file_name,
    source_file_name,
)
from migrate.ir.graph import MeshGraph
from migrate.ir.model import AuthzPolicy, DestinationPolicy, Opaque, Route, Service, Workload
from migrate.losses import LossLog, ObjectRef, Severity
from migrate.names import k8s_name
from migrate.plan import staging
from migrate.plan.commands import Command, json_arg, noted, pipe, render, run
from migrate.plan.disruption import restart_notes, waits_for_rollout
from migrate.plan.model import Step
from migrate.plan.operations import add_operations, cni_reason
from migrate.plan.restart_order import callee_first
from migrate.sources.model import RawObject

INGRESS = "(ingress)"


@dataclass
class PlanInput:
    """Everything the step builder reads."""

    graph: MeshGraph
    read: ReadResult
    target: TargetConfig
    losses: LossLog
    groups: list[list[str]]
    deps: nx.DiGraph
    ingress_namespaces: set[str]
    root_namespace: str
    source: Coexistence
    """The source mesh's side of the coexistence window."""
    target_side: Coexistence
    """The target mesh's side."""
    target_version: str = ""
    deleted: set[ObjectRef] = field(default_factory=set)
    """Source objects an earlier step already deletes."""
    handed_over: dict[ObjectRef, Manifest] = field(default_factory=dict)
    """Source routes the prerequisites step replaced with a copy only the source mesh reads
    (``Coexistence.hand_over_mesh_routes``): later steps delete and restore the copy."""
    spans: dict[staging.Key, staging.Window | None] = field(default_factory=dict)
    """Each staging-only grant's window (plan/staging.py)."""
    made_permissive: dict[tuple[str, str], tuple[Command | None, Manifest | None, str]] = \
        field(default_factory=dict)
    """(namespace, Service) -> the patch or new source entry an earlier step (the ingress
    step, for a source whose ingress reaches only its own mesh) made it permissive with, and
    that step's id: the Service's move deletes the new entry with the others, and its
    rollback makes it permissive again."""
    _raw_by_ns: dict[str, list[ObjectRef]] = field(default_factory=dict)
    _routing_by_ns: dict[str, set[ObjectRef]] = field(default_factory=dict)

    def source_object(self, ref: ObjectRef) -> RawObject | Manifest:
        """The source object as it stands after step 00 (a handed-over route's copy)."""
        copy = self.handed_over.get(ref)
        return copy if copy is not None else self.read.raw[ref]

    def delete_source(self, ref: ObjectRef) -> Command:
        """The command deleting a source object as it stands after step 00."""
        copy = self.handed_over.get(ref)
        return _delete(copy) if copy is not None else self.source.delete_command(ref)

    def raw_in(self, namespace: str) -> list[ObjectRef]:
        """Source mesh objects of one namespace (indexed once)."""
        if not self._raw_by_ns:
            for ref in sorted(self.read.raw):
                self._raw_by_ns.setdefault(ref.namespace, []).append(ref)
        return self._raw_by_ns.get(namespace, [])

    def routing_for(self, namespace: str) -> set[ObjectRef]:
        """VirtualServices and DestinationRules configuring Services of one namespace."""
        if not self._routing_by_ns:
            for r in self.graph.of(Route):
                if r.mesh and r.hosts and len({h.namespace for h in r.hosts}) == 1:
                    self._routing_by_ns.setdefault(r.hosts[0].namespace, set()).add(r.origin.ref)
            for d in self.graph.of(DestinationPolicy):
                if d.service:
                    self._routing_by_ns.setdefault(d.service.namespace, set()).add(d.origin.ref)
        return self._routing_by_ns.get(namespace, set())


def build_steps(p: PlanInput) -> list[Step]:
    """The ordered steps of the plan."""
    steps: list[Step] = [_prerequisites(p)]
    position = {ns: i for i, g in enumerate(p.groups) for ns in g}
    last_caller: dict[int, int] = {}
    for i, group in enumerate(p.groups):
        callers = {position[a] for b in group for a in p.deps.predecessors(b)
                   if a in position and position[a] != i}
        last = max(callers | {i})  # never before the group's own move
        if any(ns in p.ingress_namespaces for ns in group):
            last = max(last, len(p.groups))  # the ingress moves after every group
        last_caller[i] = last
    p.spans = staging.windows(p.target, p.groups, last_caller)
    has_ingress = bool(p.ingress_namespaces) or any(
        o.role == "ingress" for o in p.graph.of(Opaque))
    moved: dict[str, str] = {}

    def enforce_after(index: int) -> None:
        for g in sorted(g for g, last in last_caller.items() if last == index):
            step = _enforce(p, p.groups[g], len(steps), moved)
            if step is not None:
                steps.append(step)

    # Linkerd routing for a namespace's Services must be in place before its first caller
    # moves (routing is applied by the caller); callee-first makes that the namespace's own
    # step, a hand-made --order may make it an earlier one.
    home = {ns: min([position[ns]] + [position[a] for a in p.deps.predecessors(ns)
                                      if a in position]) for ns in position}
    # A source whose ingress reaches only its own mesh (Consul's API gateway) hands ingress
    # over before the first of its backends leaves that mesh.
    early = has_ingress and p.source.INGRESS_MESH_ONLY and bool(p.ingress_namespaces)
    ingress_done = False
    for i, group in enumerate(p.groups):
        if early and not ingress_done and any(ns in p.ingress_namespaces for ns in group):
            steps.append(_ingress(p, len(steps), position[group[0]]))
            ingress_done = True
        step = _move(p, group, len(steps), position,
                     sorted(ns for ns, h in home.items() if h == i))
        moved.update({ns: step.id for ns in group})
        _end_staging(p, step, i, moved)
        steps.append(step)
        enforce_after(i)
    if has_ingress and not ingress_done:
        steps.append(_ingress(p, len(steps)))
    enforce_after(len(p.groups))
    steps.append(_cleanup(p, len(steps), steps))
    add_operations(p, steps)
    moves = {i: next(s.number for s in steps if s.kind == "move" and g[0] in s.namespaces)
             for i, g in enumerate(p.groups)}
    enforces = {i: s.number for i, g in enumerate(p.groups) for s in steps
                if s.kind == "enforce" and g[0] in s.namespaces}
    staging.report(p.losses, p.target, p.spans, moves, enforces, p.source.TITLE)
    staging.report_plaintext(p.losses, p.target, p.groups, moves, enforces, p.source.TITLE,
                             p.target_side.TITLE)
    _report_opened(p, steps)
    return steps


def _end_staging(p: PlanInput, step: Step, group: int, moved: dict[str, str]) -> None:
    """Delete the staging-only grants whose last caller this step moved (once its pods run
    on the target); the rollback restores them before the pods go back."""
    ending = staging.removed_by_move(p.target, p.spans, group)
    if not ending:
        return
    step.commands += [noted(_delete(m), "its last caller on the source mesh moved")
                      for m in ending]
    step.rollback = [_server_side("-f", f"steps/{moved[m.namespace]}/{manifest_file_name(m)}")
                     for m in ending] + step.rollback


def _report_opened(p: PlanInput, steps: list[Step]) -> None:
    """A restriction step 00 lifts on the source mesh holds for no source pod until it moves."""
    moves = [s for s in steps if s.kind == "move"]
    for n in p.source.neutralize(p.read.raw):
        if n.opened and moves:
            p.losses.report(
                "PLAN_EGRESS_OPEN", Severity.DEGRADED, "plan", n.original.ref, n.opened,
                f"from step 00, pods still on {p.source.TITLE} reach destinations outside its "
                "catalog (hosts outside the cluster included), which the source refused; each "
                f"namespace until its move step, the last at step {moves[-1].number}",
                "If that is not acceptable, restrict egress for the window with a NetworkPolicy "
                "or an egress firewall on the namespaces still on the source, or move those with "
                "external callers of concern first.")


def _report_vacate(p: PlanInput, number: int, vacate: _Vacate, group: list[str],
                   position: dict[str, int]) -> None:
    """The windows a move step's handling of the source entries opens (``_vacate``)."""
    before = {r.namespace for r in vacate.before}
    for ns in sorted(before):
        callers = sorted({a for a in p.deps.predecessors(ns) if a != ns and (
            a in group or position.get(a, -1) > position[group[0]])})
        refs = ", ".join(str(r) for r in vacate.before if r.namespace == ns)
        conflict = ns in vacate.conflict
        p.losses.report(
            "PLAN_VIRTUAL_IP", Severity.MANUAL if conflict else Severity.DEGRADED, "plan",
            ObjectRef("Namespace", "", ns, "v1"), "metadata.name",
            f"{refs} are deleted before the pods of {ns} restart at step {number}: "
            f"{p.source.TITLE} keeps routing its callers into a Service while an entry names "
            "it, also once its last pod left. Callers still on "
            f"{p.source.TITLE} ({', '.join(callers) or 'none'}) reach {ns} in plaintext once "
            "its pods restarted"
            + (", without its routing entries," if any(
                r.kind in ("ServiceRouter", "ServiceSplitter", "ServiceResolver")
                for r in vacate.before if r.namespace == ns) else "")
            + " until they move, and while the pods restart the remaining ones apply the "
            "default intention to them"
            + (f"; callers in step {number} that restart first reach its pods only once they "
               "restarted (with no entry left, they cannot be made permissive)"
               if conflict else ""),
            "Restart when traffic is low; with the default intention deny, expect refusals "
            "from the remaining callers during the restart.")
    waiting = sorted({c.pipeline[0][5] + "/" + c.pipeline[0][3] for c in vacate.permissive} |
                     {f"{b['metadata']['namespace']}/{b['metadata']['name']}"
                      for b in vacate.created})
    for item in waiting:
        ns, name = item.split("/", 1)
        p.losses.report(
            "PLAN_WAITING_PERMISSIVE", Severity.INFO, "plan",
            ObjectRef("Namespace", "", ns, "v1"), "metadata.name",
            f"service {name} is permissive from the start of step {number} until its pods "
            f"restarted: its neighbours in the step that restart first reach it in plaintext, "
            "which its intentions do not check",
            "Keep the step short; the entry is deleted once the pods restarted.")


def _apply(step_id: str, verb: str = "apply", note: str = "") -> Command:
    if verb == "replace":
        return run("kubectl", "replace", "-k", f"steps/{step_id}", note=note)
    return _server_side("-k", f"steps/{step_id}", note=note)


def _server_side(flag: str, path: str, note: str = "") -> Command:
    """``kubectl apply --server-side`` of a folder (``-k``) or a file (``-f``) of the plan."""
    return run("kubectl", "apply", "--server-side", "--field-manager=meshmigrate", flag, path,
               note=note)


def _slug(kind: str, group: list[str]) -> str:
    return k8s_name(kind, *group, max_len=48)


def _prerequisites(p: PlanInput) -> Step:
    src, dst = p.source.TITLE, p.target_side.TITLE
    step = Step(0, "prerequisites", f"Prerequisites: install {dst} next to {src}",
                "prerequisites", [])
    experimental = any(m.kind in ("TCPRoute", "TLSRoute") for m in _all_manifests(p.target))
    neutralized = p.source.neutralize(p.read.raw)
    handover = _hand_over(p)
    copies = [p.handed_over[original.ref] for original, _ in handover.replaced]
    retired = [original for original, _ in handover.replaced] + handover.deleted
    created = p.target.prerequisites + copies
    step.manifests = [Manifest(n.body, (n.original.ref,)) for n in neutralized]
    step.manifests += created
    step.rollback_sources = [n.original for n in neutralized] + list(retired)
    step.apply_verb = "replace" if neutralized else "apply"
    step.summary = (
        f"Installs the Gateway API CRDs (a bundle {src} and {dst} both accept; the first "
        "command stops the step if a newer or experimental bundle is installed) and the "
        f"{dst} control plane beside {src}. Nothing is meshed by {dst} yet."
        + (p.source.neutralize_summary(len(neutralized)) if neutralized else "")
        + (f" Applies {len(p.target.prerequisites)} cluster-wide {dst} object(s) the staged "
           "policy needs." if p.target.prerequisites else "")
        + _handover_summary(src, dst, len(copies), len(handover.deleted)))
    cni = cni_reason(p)
    step.summary += cni
    step.commands = p.target_side.install_commands(experimental, p.target_version,
                                                   cni=bool(cni)) + p.target.install_extra
    if neutralized and created:
        # A rewrite must replace the object (server-side apply cannot drop fields another
        # manager owns), while new objects must be created: one command per file.
        step.commands += [run("kubectl", "replace", "-f", f"steps/{step.id}/{file_name(n.body)}")
                          for n in neutralized]
        step.commands += [_server_side("-f", f"steps/{step.id}/{manifest_file_name(m)}")
                          for m in created]
    elif step.manifests:
        step.commands.append(_apply(step.id, step.apply_verb))
    # The copies are in place before the originals go: the source mesh reads either.
    step.commands += [p.source.delete_command(o.ref) for o in retired]
    step.verify = p.target_side.install_verify()
    rollback: list[Command | str] = [
        run("kubectl", "replace", "-f", f"steps/{step.id}/rollback/"
            f"{source_file_name(n.original)}") for n in neutralized] \
        if neutralized and retired else \
        [run("kubectl", "replace", "-k", f"steps/{step.id}/rollback")] if neutralized else []
    if retired:
        rollback += [run("kubectl", "apply", "-f",
                         f"steps/{step.id}/rollback/{source_file_name(o)}")
                     for o in retired] if neutralized else [_restore(step.id)]
    step.rollback = rollback + undo_manifests(created) + p.target_side.install_rollback()
    return step


def _hand_over(p: PlanInput) -> RouteHandover:
    """Source routes the target would also apply, moved out of its sight (reported where they
    cannot be)."""
    if not p.target_side.READS_MESH_GATEWAY_ROUTES:
        return RouteHandover([], [], [])
    handover = p.source.hand_over_mesh_routes(p.read.raw)
    for original, body in handover.replaced:
        p.handed_over[original.ref] = Manifest(body, (original.ref,))
    p.deleted.update(o.ref for o in handover.deleted)
    for ref, reason in handover.kept:
        p.losses.report(
            "PLAN_SHARED_ROUTE", Severity.DEGRADED, "route.http", ref, "spec.parentRefs",
            f"{ref.kind} {ref.namespace}/{ref.name} has a Service parent, so "
            f"{p.target_side.TITLE} applies it too while both meshes run ({reason}); where "
            "it and the routing written for the same host disagree, either may win until its "
            "namespace's retire step deletes it",
            f"Keep the route and the {p.target_side.TITLE} routing for the host equivalent "
            "during the move, or move its callers in one step.")
    return handover


def _handover_summary(src: str, dst: str, copied: int, deleted: int) -> str:
    if not copied and not deleted:
        return ""
    said = f" {dst} also applies Gateway API routes with a Service parent."
    if copied:
        said += (f" {copied} such {src} route(s) are re-created in {src}'s own flavour, which "
                 f"{dst} does not read, and their originals deleted.")
    if deleted:
        said += (f" {deleted} such route(s) that {src} ignores (they use filters {src} does not "
                 f"support, so they did nothing) are deleted before {dst} could apply them.")
    return said


def _all_manifests(target: TargetConfig) -> list[Manifest]:
    """Every manifest a writer produced, whatever its phase."""
    out = list(target.prerequisites)
    for bucket in (target.routing, target.policy_staged, target.policy_enforced,
                   target.routing_final):
        out += [m for ms in bucket.values() for m in ms]
    return out


def _workloads(p: PlanInput, ns: str) -> list[Workload]:
    return p.graph.in_namespace(Workload, ns)


def _source_objects(p: PlanInput, namespaces: set[str], kinds: frozenset[str]) -> list[ObjectRef]:
    return sorted(r for ns in namespaces for r in p.raw_in(ns)
                  if r.kind in kinds and p.source.owns(r))


def _move(p: PlanInput, group: list[str], number: int, position: dict[str, int],
          routing_for: list[str]) -> Step:
    src, dst = p.source, p.target_side
    step = Step(number, _slug("move", group), f"Move {', '.join(group)} to {dst.TITLE}", "move",
                list(group))
    for ns in routing_for:
        step.manifests += p.target.routing.get(ns, [])
    for ns in group:
        step.manifests += staging.applied(p.target.policy_staged.get(ns, []), p.spans)
    inbound = _source_objects(p, set(group), src.INBOUND_KINDS)
    policy = any(p.target.policy_staged.get(ns) for ns in group)
    callers = sorted({a for b in group for a in p.deps.predecessors(b)
                      if a not in group and position.get(a, -1) > position[group[0]]})
    step.summary = (
        f"Applies the {dst.TITLE} routing for these namespaces' Services (inert for "
        f"{src.TITLE}) and their authorization in staged form ({dst.STAGED_POLICY}), moves the "
        f"pods from {src.TITLE}'s proxy to {dst.TITLE}'s, and removes the {src.TITLE} "
        "objects that configured these pods' own proxies."
        + (f" Callers still on {src.TITLE} ({', '.join(callers)}) reach them in plaintext until "
           "they move." if callers else "")
        + (" Staged with --staging audit: until the enforce step these namespaces admit every "
           "request from every client and only log what the final policy will refuse."
           if policy and p.target.staging_mode == "audit" else ""))
    vacate = _vacate(p, group, position)
    _report_vacate(p, number, vacate, group, position)
    if vacate.before:
        step.summary += (f" The {src.TITLE} entries naming the Services of "
                         f"{', '.join(sorted({r.namespace for r in vacate.before}))} go before "
                         f"their pods restart: {vacate.why}, so callers still on {src.TITLE} "
                         f"lose its routing for them until they move.")
    if (vacate.permissive or vacate.created) and not any(
            r.kind == "Mesh" and src.owns(r) for r in p.read.raw):
        # fact: consul.permissive-mtls
        step.manual.append(f"The input has no {src.TITLE} Mesh entry: check that the live one "
                           "sets allowEnablingPermissiveMutualTLS: true before this step, or the "
                           "pods waiting for their restart refuse the neighbours that moved.")
    step.manifests += [_entry_for_service(p, body) for body in vacate.created]
    if step.manifests:
        step.commands.append(_apply(step.id))
    # Rollback: the source's objects back first, then the pods back, then the target's out.
    rollback: list[Command | str] = [_restore(step.id)] if inbound or vacate.before or \
        vacate.after else []
    switch: list[Command] = []
    # Per workload (kind, name, namespace): its pod-template patches, then its restart (when
    # no patch starts the rollout) and the wait for it.
    units: dict[tuple[str, str, str], list[Command]] = {}
    back: list[Command] = []
    # Namespaces whose Services are called from later steps restart first (their source
    # entries are gone by then); the others wait in permissive mode (see _vacate).
    for ns in vacate.order:
        record = p.graph.namespace(ns)
        workloads = _workloads(p, ns)
        staged = p.target.namespace_staged.get(ns, {})
        # Workloads the source mesh did not inject stay out of the target too: joining them
        # would give them a proxy, and the namespace's policies, for the first time.
        meshed = [w for w in workloads if p.graph.in_mesh(w)]
        outside = [w for w in workloads if not p.graph.in_mesh(w)]
        # The namespace's own labels first: a pod-template patch starts the rollout at once,
        # and its pods must already see the target's injection marker.
        for command in src.leave_commands(ns, record, meshed) + \
                dst.join_commands(ns, staged, meshed) + \
                staging.workload_annotations(p.target, meshed) + \
                dst.keep_out_commands(outside):
            key = _template_patch(command)
            if key:
                units.setdefault(key, []).append(command)
            else:
                switch.append(command)
        step.manual += dst.join_manual(ns, meshed)
        for w in meshed:
            step.manual += dst.identity_manual(w, sorted(s.key.name
                                                         for s in p.graph.services_of(w)))
        undo = dst.unjoin_commands(ns, staged, meshed) + \
            staging.workload_annotations_undone(p.target, meshed) + \
            dst.keep_out_rollback(outside) + src.rejoin_commands(ns, record, meshed)
        back += [c for c in undo if not _template_patch(c)]
        rollback += [c for c in undo if _template_patch(c)]
        if outside:
            step.summary += (f" Not in {src.TITLE} and kept out of {dst.TITLE} in {ns}: "
                             + ", ".join(f"{w.kind} {w.name}" for w in outside) + ".")
        step.manual += restart_notes(p.graph, workloads, "the restart of this step")
        undone = {_template_patch(c) for c in undo}
        for w in workloads:
            if w.kind in ROLLOUT_KINDS:
                ref = f"{w.kind.lower()}/{w.name}"
                unit = units.setdefault((w.kind.lower(), w.name, ns), [])
                # A pod-template patch starts the rollout itself: a restart would roll twice.
                if not unit:
                    unit.append(run("kubectl", "rollout", "restart", ref, "-n", ns))
                if waits_for_rollout(w):
                    unit.append(run("kubectl", "rollout", "status", ref, "-n", ns,
                                    "--timeout=10m"))
                if (w.kind.lower(), w.name, ns) not in undone:
                    rollback.append(run("kubectl", "rollout", "restart", ref, "-n", ns))
                # The target's objects go only once no pod runs its proxy: a Linkerd pod
                # whose Server is gone falls to its default policy (Server-less ports).
                if waits_for_rollout(w):
                    rollback.append(run("kubectl", "rollout", "status", ref, "-n", ns,
                                        "--timeout=10m"))
            elif w.kind == "Pod":
                step.manual.append(f"Recreate bare Pod {ns}/{w.name} so {dst.TITLE} injects it.")
            else:
                step.manual.append(f"{w.kind} {ns}/{w.name} picks up {dst.TITLE} at its next "
                                   "run.")
    for ns in group:
        step.verify += src.verify_left(ns)
        step.verify += dst.verify_joined(
            ns, [f"{w.kind.lower()}/{w.name}" for w in _workloads(p, ns)
                 if w.kind in ROLLOUT_KINDS], policy)
        if p.graph.namespace(ns) is None:
            step.manual.append(f"The input has no Namespace object for {ns}: its injection state "
                               f"is assumed to be {src.TITLE} proxies; check before switching.")
    step.commands += switch
    step.commands += [noted(p.delete_source(r), "before the pods restart: " + vacate.why)
                      for r in vacate.before]
    step.commands += [noted(_delete(m), "before the pods restart: " + vacate.why)
                      for m in vacate.gone_before]
    # Source entries handled per namespace (Consul's) fix the namespaces' order: callees
    # first within each; otherwise across the whole step.
    blocks = [[ns] for ns in vacate.order] if vacate.before or vacate.after or \
        vacate.permissive or vacate.created else [vacate.order]
    step.commands += vacate.permissive + [c for block in blocks
                                          for c in _restarts(p, number, block, units)]
    keys = {(w.kind.lower(), w.name, w.namespace) for ns in vacate.order
            for w in _workloads(p, ns)}
    step.commands += [c for k, unit in units.items() if k not in keys for c in unit]
    # The permissive patches are undone too: a rollback before the entries were deleted finds
    # them patched, and re-applying the originals would not remove the added field.
    rollback[1 if rollback and rollback[0] == _restore(step.id) else 0:0] = \
        vacate.again + _unpatch(p, vacate.permissive) + back
    root = src.mesh_wide_refs(p.raw_in(p.root_namespace))
    if root:
        step.manual.append(
            f"Check that these mesh-wide objects in the {src.TITLE} root namespace do not target "
            f"the hosts that move now ({src.TITLE} clients keep applying them): "
            + ", ".join(str(r) for r in root) + ".")
    after = sorted(set(inbound) - set(vacate.before) | set(vacate.after))
    step.commands += [noted(p.delete_source(r), "after verification") for r in after]
    step.commands += [noted(_delete(_entry_for_service(p, body)), "after verification")
                      for body in vacate.created]
    step.commands += [noted(_delete(m), "after verification") for m in vacate.gone_after]
    step.rollback_sources = [p.source_object(r) for r in _restorable(
        p, set(inbound) | set(vacate.before) | set(vacate.after))]
    p.deleted.update(inbound, vacate.before, vacate.after)
    rollback += undo_manifests(step.manifests)
    step.rollback = rollback
    return step


@dataclass
class _Vacate:
    """What a move step does to the source mesh's entries for the Services that leave it."""

    first: set[str] = field(default_factory=set)
    """Namespaces with callers on the source mesh in later steps: they restart first."""
    before: list[ObjectRef] = field(default_factory=list)
    """Entries deleted before the pods restart."""
    after: list[ObjectRef] = field(default_factory=list)
    """Entries deleted once the pods restarted (no source-mesh caller is left)."""
    permissive: list[Command] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    why: str = ""
    order: list[str] = field(default_factory=list)
    """The namespaces in restart order."""
    gone_before: list[Manifest] = field(default_factory=list)
    gone_after: list[Manifest] = field(default_factory=list)
    """Source entries an earlier step created (``PlanInput.made_permissive``), deleted before
    or after the pods restart like the entries of the input."""
    again: list[Command] = field(default_factory=list)
    """Rollback: what made the Services permissive in that earlier step, re-done."""
    conflict: list[str] = field(default_factory=list)
    """Namespaces called both by pods that already moved and by pods still on the source."""


def _vacate(p: PlanInput, group: list[str], position: dict[str, int]) -> _Vacate:
    """The source entries that keep routing callers into the source mesh after a Service's
    pods left it (``Coexistence.pinning_refs``; Consul's virtual IPs) go before the pods
    restart where callers on the source mesh remain after this step. Services called from
    inside the step wait for their restart admitting the plaintext of the neighbours that
    moved first (``waiting_permissive``); entries of Services without later source callers go
    once the pods restarted."""
    src = p.source
    out = _Vacate()
    out.first = {ns for ns in group for a in p.deps.predecessors(ns)
                 if a not in group and position.get(a, -1) > position[group[0]]}
    order = sorted(group, key=lambda n: (n not in out.first, group.index(n)))
    rank = {ns: i for i, ns in enumerate(order)}
    inside = [(a, b) for a in group for b in p.deps.successors(a) if b in group and b != a]
    # A callee whose callers are still on the source once its pods restarted (callers of a
    # later step, or of this one restarting after it) loses its entries before the restart;
    # one whose callers restart before it waits in permissive mode.
    early = out.first | {b for a, b in inside if rank[a] > rank[b]}
    waiting = {b for a, b in inside if rank[a] < rank[b]}
    services = {ns: {(ns, s.key.name) for s in p.graph.in_namespace(Service, ns)} for ns in group}

    def of(namespaces: Iterable[str]) -> set[tuple[str, str]]:
        return set().union(set(), *(services[ns] for ns in namespaces))

    out.before = [r for r in src.pinning_refs(p.read.raw, of(early)) if r not in p.deleted]
    earlier = {k: v for k, v in p.made_permissive.items() if k[0] in group}
    out.gone_before = [m for k, (_, m, _) in sorted(earlier.items()) if m and k in of(early)]
    out.gone_after = [m for k, (_, m, _) in sorted(earlier.items())
                      if m and k not in of(early)]
    out.again = [c for _, (c, _, _) in sorted(earlier.items()) if c] + [
        _server_side("-f", f"steps/{sid}/{manifest_file_name(m)}")
        for _, (_, m, sid) in sorted(earlier.items()) if m]
    out.permissive, out.created = src.waiting_permissive(p.read.raw, of(waiting - early))
    out.after = [r for r in src.pinning_refs(p.read.raw, of(set(group) - early))
                 if r not in p.deleted]
    out.conflict = sorted(early & waiting)
    out.order = order
    if out.before:
        # fact: consul.virtual-ip-kept
        out.why = (f"{src.TITLE} keeps routing callers into a Service while these entries name "
                   "it, also once its last pod left")
    return out


def _restarts(p: PlanInput, number: int, order: list[str],
              units: dict[tuple[str, str, str], list[Command]]) -> list[Command]:
    """Each workload's patches and restart, callees before their callers (restart_order.py);
    a group of workloads that call each other is reported (``PLAN_RESTART_CYCLE``)."""
    workloads = [w for ns in order for w in _workloads(p, ns)]
    ordered, cycles = callee_first(p.graph, workloads)
    keys = [(w.kind.lower(), w.name, w.namespace) for w in ordered]
    for cycle in cycles:
        names = ", ".join(f"{w.kind} {w.namespace}/{w.name}" for w in cycle)
        first = cycle[0]
        p.losses.report(
            "PLAN_RESTART_CYCLE", Severity.DEGRADED, "plan", first.ref, "metadata.name",
            f"{names} may call each other (their environment or the policies admitting them "
            f"say so) and restart one after the other at step {number}: a workload that "
            "restarted calls the others in plaintext with no identity, which those still on "
            f"{p.source.TITLE} refuse under STRICT mTLS or an identity-based policy until "
            "they restarted too",
            "Run this step when traffic is low, or let the waiting workloads accept plaintext "
            f"on {p.source.TITLE} (a permissive mTLS mode and a plaintext allowance) for the "
            "length of the rollouts.")
    return [c for k in keys for c in units.get(k, [])]


def _entry_for_service(p: PlanInput, body: dict[str, Any]) -> Manifest:
    """A source-mesh entry the plan creates for one Service (a permissive ServiceDefaults):
    it carries that Service's meaning for the window, so it names the Service as its source."""
    meta = body.get("metadata") or {}
    refs = tuple(s.origin.ref for s in p.graph.in_namespace(Service, str(meta.get("namespace")))
                 if s.key.name == meta.get("name") and s.origin is not None)
    return Manifest(body, refs[:1])


def _unpatch(p: PlanInput, patches: list[Command]) -> list[Command]:
    """Rollback of ``waiting_permissive`` patches: each ServiceDefaults' ``mutualTLSMode`` as
    read (null removes a field the input did not set)."""
    out = []
    for c in patches:
        ns, name = c.pipeline[0][5], c.pipeline[0][3]
        ref = next((r for r in p.read.raw if r.kind == "ServiceDefaults" and
                    r.namespace == ns and r.name == name), None)
        spec = p.read.raw[ref].body.get("spec") if ref is not None else None
        mode = spec.get("mutualTLSMode") if isinstance(spec, dict) else None
        out.append(run(*c.pipeline[0][:-1], json_arg({"spec": {"mutualTLSMode": mode}})))
    return out


def _restorable(p: PlanInput, refs: set[ObjectRef]) -> list[ObjectRef]:
    """The deleted source objects a rollback re-applies: not those the source mesh itself
    rejected (``Coexistence.rejected``; a second ServiceIntentions for one destination, which
    the consul-k8s webhook refuses to create again)."""
    return sorted(refs - p.source.rejected(p.read.raw))


def _template_patch(command: Command) -> tuple[str, str, str] | None:
    """(kind, name, namespace) of a ``kubectl patch`` of a workload, else None."""
    argv = command.pipeline[0]
    if len(argv) > 4 and argv[:2] == ("kubectl", "patch") and "-n" in argv and \
            argv[2] in {k.lower() for k in ROLLOUT_KINDS + ("CronJob", "Job", "ReplicaSet")}:
        return argv[2], argv[3], argv[argv.index("-n") + 1]
    return None


def _enforce(p: PlanInput, group: list[str], number: int, moved: dict[str, str]) -> Step | None:
    step = Step(number, _slug("enforce", group), f"Enforce policy in {', '.join(group)}",
                "enforce", list(group))
    routing_refs = sorted(set().union(*(p.routing_for(ns) for ns in group)))
    routing_refs = [r for r in routing_refs if r in p.read.raw and r not in p.deleted]
    for ns in group:
        step.manifests += p.target.policy_enforced.get(ns, [])
    step.rollback_sources = [p.source_object(r) for r in routing_refs]
    if step.manifests:
        step.commands.append(_apply(step.id))
    for ns in group:
        for m in staging.removed_by_enforce(p.target.remove_at_enforce.get(ns, []), p.spans):
            step.commands.append(_delete(m))
        final = p.target.namespace_final.get(ns, {})
        if final:
            step.commands += p.target_side.enforce_commands(ns, final)
            step.manual += restart_notes(p.graph, _workloads(p, ns),
                                         "this step's restart (its second)")
            for w in _workloads(p, ns):
                if w.kind in ROLLOUT_KINDS:
                    ref = f"{w.kind.lower()}/{w.name}"
                    step.commands.append(run("kubectl", "rollout", "restart", ref, "-n", ns,
                                             note="applies the default inbound policy"))
                    if waits_for_rollout(w):
                        step.commands.append(run("kubectl", "rollout", "status", ref, "-n",
                                                 ns, "--timeout=10m"))
        step.verify += p.target_side.verify_enforced(
            ns, [f"{w.kind.lower()}/{w.name}" for w in _workloads(p, ns)
                 if w.kind in ROLLOUT_KINDS], p.target.policy_enforced.get(ns, []))
    src, dst = p.source.TITLE, p.target_side.TITLE
    step.commands += [p.delete_source(r) for r in routing_refs]
    p.deleted.update(routing_refs)
    if not step.commands:
        return None  # nothing to enforce and no source routing to retire
    enforcing = bool(step.manifests) or any(p.target.namespace_final.get(ns) for ns in group)
    said = [f"Every caller of these namespaces now runs on {dst}."]
    if enforcing:
        said.append("Their policy starts refusing requests: "
                    f"{p.target_side.enforced_policy(step.manifests)}.")
    if routing_refs:
        said.append(f"The {src} routing for their Services is retired: {src} applies it in the "
                    f"caller's proxy, and no {src} caller is left.")
    step.summary = " ".join(said)
    if not enforcing:
        step.slug = _slug("retire", group)
        step.title = f"Retire {src} routing for {', '.join(group)}"
    step.rollback = [_restore(step.id)] if routing_refs else []
    step.rollback += _sorted_unique(_apply(moved[ns], note="staged policy back") for ns in group
                                    if p.target.policy_enforced.get(ns))
    # The move folder also holds grants an earlier step deleted: they stay deleted.
    step.rollback += [_delete(m) for ns in group if p.target.policy_enforced.get(ns)
                      for m in staging.gone_before_enforce(
                          staging.applied(p.target.remove_at_enforce.get(ns, []), p.spans),
                          p.spans)]
    for ns in group:
        staged = p.target.namespace_staged.get(ns, {})
        final = p.target.namespace_final.get(ns, {})
        for key in sorted(final):
            value = staged.get(key)
            step.rollback.append(
                run("kubectl", "annotate", "namespace", ns, f"{key}={value}", "--overwrite")
                if value else run("kubectl", "annotate", "namespace", ns, f"{key}-"))
        if final:
            # Namespace annotations reach a pod only when it is created (the forward step
            # restarts for the same reason): without a restart the rollback changes nothing.
            for w in _workloads(p, ns):
                if w.kind in ROLLOUT_KINDS:
                    ref = f"{w.kind.lower()}/{w.name}"
                    step.rollback.append(run("kubectl", "rollout", "restart", ref, "-n", ns,
                                             note="applies the staged default again"))
    return step


def _restore(step_id: str) -> Command:
    """Re-apply the step's ``rollback/`` folder (the source objects it deleted)."""
    return run("kubectl", "apply", "-k", f"steps/{step_id}/rollback")


def _sorted_unique(commands: Iterable[Command]) -> list[Command]:
    """Commands without repeats, in the order of their rendered text."""
    return sorted(set(commands), key=render)


def undo_manifests(manifests: list[Manifest]) -> list[Command]:
    """Commands that take back what applying ``manifests`` did.

    Objects the step created are deleted by name; metadata added to existing objects
    (patches) is removed, and the objects stay (``kubectl delete -k`` would delete them).
    """
    out = []
    for m in sorted(manifests, key=_undo_order):
        if not m.patch:
            out.append(_delete(m))
            continue
        keys = sorted({*(m.body["metadata"].get("annotations") or {}), SOURCE_ANNOTATION})
        ns = ("-n", m.namespace) if m.namespace else ()
        out.append(run("kubectl", "annotate", m.kind.lower(), m.name, *ns,
                       *(f"{k}-" for k in keys)))
    return out


def _undo_order(m: Manifest) -> tuple[bool, str, str, str]:
    return m.patch, m.kind, m.namespace, m.name


def _delete(m: Manifest) -> Command:
    # Every manifest of a plan is undone somewhere (rollbacks, cleanup): the resource name of
    # its few dozen (apiVersion, kind) pairs is made once.
    resource = _RESOURCES.get((m.api_version, m.kind))
    if resource is None:
        api = m.api_version
        group = api.split("/")[0] if "/" in api else ""
        kind = m.kind.lower()
        resource = _RESOURCES[(api, m.kind)] = f"{kind}.{group}" if group else kind
    ns = ("-n", m.namespace) if m.namespace else ()
    return run("kubectl", "delete", f"{resource}/{m.name}", *ns, "--ignore-not-found")


_RESOURCES: dict[tuple[str, str], str] = {}
"""(apiVersion, kind) -> the ``kind.group`` kubectl names the resource by."""


def _ingress(p: PlanInput, number: int, before: int | None = None) -> Step:
    """The ingress step: after every move, or (``before``: the position of the first group
    with ingress backends) before the first of them leaves a source whose ingress reaches
    only its own mesh."""
    src, dst = p.source, p.target_side
    step = Step(number, "ingress", f"Replace {src.INGRESS}", "ingress",
                sorted(p.ingress_namespaces))
    step.summary = (
        f"Replace {src.INGRESS} with a {dst.TITLE}-meshed ingress: recreate the listeners and "
        f"routes listed below, move DNS to it, and only then retire the old one. Until this "
        f"step {src.INGRESS} reaches the migrated backends in plaintext.")
    if before is not None:
        step.summary = (
            f"Replace {src.INGRESS} with a {dst.TITLE}-meshed ingress before its first backend "
            f"leaves {src.TITLE}: {src.INGRESS} reaches only services in {src.TITLE}'s "
            "catalog. Recreate the listeners and routes listed below, move DNS to the new "
            "ingress, and only then retire the old one. The new ingress reaches the backends "
            f"still on {src.TITLE} in plaintext: their services are made permissive here until "
            "they move.")
    step.manual = dst.ingress_manual(src)
    ingress_routes = {rt.origin.ref for rt in p.graph.of(Route) if rt.ingress and not rt.mesh}
    gateways = {o.origin.ref for o in p.graph.of(Opaque) if o.role == "ingress"}
    refs = sorted(r for r in p.read.raw if src.owns(r) and r not in p.deleted and (
        r in gateways or r in ingress_routes))
    refs = sorted(set(refs) | {r for r in src.ingress_refs(p.read.raw) if r not in p.deleted})
    if before is not None:
        waiting = {(ns, s.key.name) for ns in sorted(p.ingress_namespaces)
                   for s in p.graph.in_namespace(Service, ns)}
        patches, created = src.waiting_permissive(p.read.raw, waiting)
        step.manifests = [_entry_for_service(p, body) for body in created]
        if step.manifests:
            step.commands.append(_apply(step.id))
        step.commands += patches
        step.rollback += _unpatch(p, patches)
        for c in patches:
            p.made_permissive[(c.pipeline[0][5], c.pipeline[0][3])] = (c, None, step.id)
        for m in step.manifests:
            p.made_permissive[(m.namespace, m.name)] = (None, m, step.id)
        step.rollback += undo_manifests(step.manifests)
        if (patches or created) and not any(r.kind == "Mesh" and src.owns(r) for r in p.read.raw):
            # fact: consul.permissive-mtls
            step.manual.append(f"The input has no {src.TITLE} Mesh entry: check that the live "
                               "one sets allowEnablingPermissiveMutualTLS: true before this "
                               "step, or the backends still on it refuse the new ingress.")
        names = src.ingress_identities(p.read.raw)
        for ref in sorted(p.read.raw):
            spec = p.read.raw[ref].body.get("spec")
            sources = spec.get("sources") if isinstance(spec, dict) else None
            named = sorted({str(x.get("name")) for x in sources if isinstance(x, dict)
                            and str(x.get("name")) in names}) if isinstance(sources, list) else []
            if ref.kind == "ServiceIntentions" and src.owns(ref) and named:
                step.manual.append(
                    f"ServiceIntentions {ref.namespace}/{ref.name} admits {', '.join(named)} "
                    f"({src.INGRESS}): its {dst.TITLE} form names that identity, which the new "
                    "ingress does not have; add the new ingress's namespace or service account "
                    "to the authorization generated from it before its enforce step.")
    p.deleted.update(refs)
    for authz in p.graph.of(AuthzPolicy):
        named = {ns for ns in p.graph.caller_namespaces(authz) if ns == p.root_namespace}
        if named:
            verb = "refuses" if authz.action == "DENY" else "admits"
            step.manual.append(
                f"{authz.origin.ref.kind} {authz.namespace}/{authz.name} {verb} callers from "
                f"{p.root_namespace} ({src.INGRESS}), which the new ingress will not run in: "
                f"check what the {dst.TITLE} authorization generated from it admits (its "
                "losses say what was left out) and add the new ingress's namespace or "
                "service account to it before its enforce step.")
    if p.source.MESH == "istio" and any(r.kind == "Gateway" and not src.owns(r)
                                        for r in p.read.raw):
        step.manual.append("Gateway API Gateways served by Istio's controller (gatewayClassName "
                           "istio) stop working when Istio is removed: move them to the new "
                           "controller's class.")
    step.rollback_sources = [p.source_object(r) for r in refs]
    step.commands += [noted(p.delete_source(r), "once DNS points at the new ingress")
                      for r in refs]
    step.verify = dst.ingress_verify()
    step.rollback = ([_restore(step.id)] if refs else []) + step.rollback
    step.rollback.append(f"Point DNS back at {src.INGRESS}.")
    return step


def _cleanup(p: PlanInput, number: int, earlier: list[Step]) -> Step:
    src, dst = p.source, p.target_side
    step = Step(number, "cleanup", f"Clean up: long-term routes, remove {src.TITLE}", "cleanup",
                [])
    for ns in sorted(p.target.routing_final):
        step.manifests += p.target.routing_final[ns]
    step.summary = dst.cleanup_summary(src)
    if step.manifests:
        step.commands.append(_apply(step.id))
    for ns in sorted(p.target.remove_at_cleanup):
        step.commands += [_delete(m) for m in p.target.remove_at_cleanup[ns]]
    remaining = sorted(r for r in p.read.raw if (src.owns(r) or r in p.handed_over) and
                       r not in p.deleted)
    step.commands += [p.delete_source(r) for r in remaining]
    # The uninstall removes the mesh from every namespace, also those the input did not show.
    step.commands += src.verify_left_everywhere()
    step.commands += src.extension_uninstall(p.graph.features)
    step.commands += src.uninstall_commands()
    step.rollback_sources = [p.source_object(r) for r in _restorable(p, set(remaining))]
    group = src.GROUP_SUFFIXES[0].replace(".", "\\.")
    step.verify = dst.cleanup_verify() + [pipe(("kubectl", "get", "crd"), ("grep", "-E", group),
                                               note="expect nothing")]
    # The target's coexistence routes come back and the long-term ones go before the source
    # mesh is reinstalled: Istio reads gateway.networking.k8s.io routes with a Service parent
    # too, and must find the routing it had before this step, not the target's.
    removed = [m for ns in sorted(p.target.remove_at_cleanup)
               for m in p.target.remove_at_cleanup[ns]]
    step.rollback = _reapply_removed(removed, earlier)
    step.rollback += _restore_or_undo(step.manifests, earlier)
    step.rollback += [*src.reinstall_commands(), *src.extension_reinstall(p.graph.features)]
    if remaining:
        step.rollback.append(_restore(step.id))
    return step


def _reapply_removed(removed: list[Manifest], earlier: list[Step]) -> list[Command | str]:
    """Rollback of the cleanup's deletions of target objects: each is applied again from the
    file of the step that first applied it."""
    wanted = {_identity(m) for m in removed}
    found: dict[tuple[str, str, str, str], str] = {}
    for step in earlier:
        for m in step.manifests:
            key = _identity(m)
            if key in wanted and key not in found:
                found[key] = f"steps/{step.id}/" + manifest_file_name(m)
    out: list[Command | str] = [_server_side("-f", found[k]) for k in sorted(found)]
    missing = sorted(wanted - set(found))
    if missing:
        out.append("Re-apply these objects from the step that applied them: "
                   + ", ".join(f"{kind} {ns}/{name}" for _, kind, ns, name in missing) + ".")
    return out


def _identity(m: Manifest) -> tuple[str, str, str, str]:
    """What tells two objects apart on the API server: API group, kind, namespace and name
    (policy.linkerd.io and gateway.networking.k8s.io HTTPRoutes of one name are two objects)."""
    return m.api_version.rpartition("/")[0], m.kind, m.namespace, m.name


def _restore_or_undo(manifests: list[Manifest], earlier: list[Step]) -> list[Command]:
    """Rollback of the cleanup's long-term objects: one that replaced an object an earlier step
    applied (e.g. Consul's Mesh entry, restricted only at cleanup) gets that version back,
    as deleting it would also drop what the earlier version set; the rest are undone."""
    # Only objects the cleanup writes again matter: their keys first, so the file name of
    # each of the plan's earlier manifests (hundreds of thousands) is not made for nothing.
    wanted = {_identity(m) for m in manifests if not m.patch}
    last: dict[tuple[str, str, str, str], str] = {}
    for step in earlier:
        folder = f"steps/{step.id}/"
        for m in step.manifests:
            key = _identity(m)
            if key in wanted and not m.patch:
                last[key] = folder + manifest_file_name(m)
    out, fresh = [], []
    for m in manifests:
        path = last.get(_identity(m))
        if path and not m.patch:
            out.append(_server_side("-f", path))
        else:
            fresh.append(m)
    return sorted(out, key=render) + undo_manifests(fresh)


def assign_losses(p: PlanInput, steps: list[Step]) -> None:
    """Attach each loss to the step a reviewer meets it in."""
    by_ns = {ns: s for s in steps if s.kind == "move" for ns in s.namespaces}
    ingress = next((s for s in steps if s.kind == "ingress"), None)
    first, last = steps[0], steps[-1]
    for loss in p.losses:
        if loss.feature.startswith("ingress.") and ingress is not None:
            ingress.losses.append(loss)
        elif loss.code == "DESTINATION_TLS_MESH":
            first.losses.append(loss)
        elif loss.namespace in by_ns:
            by_ns[loss.namespace].losses.append(loss)
        else:
            last.losses.append(loss)


def plaintext_hops(p: PlanInput, steps: list[Step]) -> None:
    """Report each call that crosses the two meshes, and between which steps."""
    move = {ns: s for s in steps if s.kind == "move" for ns in s.namespaces}
    ingress = next((s for s in steps if s.kind == "ingress"), None)
    for ns in sorted(p.ingress_namespaces):
        if ingress is not None and ns in move and ingress.number < move[ns].number:
            p.losses.report(
                "PLAN_PLAINTEXT_HOP", Severity.INFO, "plan", ObjectRef("Namespace", "", ns, "v1"),
                "metadata.name",
                f"the new {p.target_side.TITLE} ingress reaches {ns} (still on "
                f"{p.source.TITLE}) in plaintext from step {ingress.number} to step "
                f"{move[ns].number}",
                f"Keep that window short; {ns}'s services admit it permissively until they "
                "move, and terminate client TLS at the new gateway.")
        elif ingress is not None and ns in move:
            p.losses.report(
                "PLAN_PLAINTEXT_HOP", Severity.INFO, "plan", ObjectRef("Namespace", "", ns, "v1"),
                "metadata.name",
                f"{p.source.INGRESS} reaches {ns} in plaintext from step "
                f"{move[ns].number} to step {ingress.number}",
                "Keep that window short; terminate client TLS at the gateway as before.")
    for caller, callee in sorted(p.deps.edges):
        a, b = move.get(caller), move.get(callee)
        if a is None or b is None or a is b:
            continue
        if b.number < a.number:
            p.losses.report(
                "PLAN_PLAINTEXT_HOP", Severity.INFO, "plan", ObjectRef("Namespace", "", callee,
                                                                       "v1"), "metadata.name",
                f"calls from {caller} (still on {p.source.TITLE}) to {callee} are plaintext with "
                f"no peer identity from step {b.number} to step {a.number}",
                f"Keep that window short; the staged {p.target_side.TITLE} policy admits these "
                f"calls ({p.target_side.STAGED_POLICY}).")


