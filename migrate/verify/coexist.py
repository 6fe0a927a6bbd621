"""The coexistence check: does every call still work at every step of a plan?

After each step some namespaces run the target mesh and the rest still run the source mesh.
For each call edge (caller namespace -> callee namespace) the caller's proxy routes with its
own mesh's configuration, and the callee's proxy admits or refuses with its own. A call
between two different meshes is plaintext with no identity (mapping-istio-linkerd.md section
5: Istio sends plaintext to endpoints without its tlsMode label, Linkerd falls back to
cleartext without a mesh identity, and Consul's sidecars only speak mTLS to each other), so
STRICT mTLS and identity-based policy at the callee refuse it. A call is reported when, at
that step, it is refused although the source configuration admitted it, or routed
differently from the source configuration (its routing was lost or changed).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Sequence

from migrate.losses import Loss
from migrate.verify.admits import AdmitsCheck
from migrate.verify.admits import render_lines as render_admits
from migrate.verify import coexist_consul as consul_side
from migrate.verify.compare import ClusterState, object_key, target_world
from migrate.verify.memo import Memo
from migrate.verify.model import Client, Outcome, Probe, probe_order
from migrate.verify.probes import ANONYMOUS
from migrate.verify.registry import EVALUATORS, Evaluator, Settings, generate
from migrate.verify.world import Unique, World

Step = tuple[list[dict[str, Any]], list[str], Iterable[str]]
"""(manifests applied, commands run, namespaces moved to the target once the step ran)."""
_DAMAGED = (TypeError, AttributeError, ValueError, KeyError, IndexError)
MAX_PROBES_PER_EDGE = 40


def coexistence(steps: Sequence[Step], source_objects: list[dict[str, Any]],
                deps: Iterable[tuple[str, str]], *, source_mesh: str = "istio",
                target_mesh: str = "linkerd", settings: Settings | None = None,
                source_groups: tuple[str, ...] = (),
                losses: Iterable[Loss] | None = None) -> list[dict[str, Any]]:
    """For each step, the calls checked and those refused or rerouted, as plain data:
    ``[{"step": 1, "moved": [...], "calls_checked": n, "refused": [...],
    "routing_changed": [...]}]``; each refusal names caller, callee, Service, workload,
    client, whether the call is plaintext between meshes, and why.

    The state is applied step by step, and a call is evaluated again only at the steps that
    touch its caller's or callee's namespace (or the whole cluster); the evaluators for that
    step see only the namespaces those calls reach. Re-evaluating every call over the whole
    cluster at every step made the check grow with the square of the mesh.

    ``source_groups`` are the API group suffixes of the source mesh's own objects: such an
    object a step applies (a route re-created in the source's own flavour at step 00, a
    rewritten DestinationRule) is configuration the source side's proxies read from then on,
    in place of the source object of the same name.

    With ``losses`` (a plan's), each step also lists under ``admits_more`` the requests the
    source refused that the mixed state admits, each with the losses explaining it
    (admits.py).
    """
    settings = settings or Settings()
    if source_mesh not in EVALUATORS or target_mesh not in EVALUATORS:
        return [{"step": i + 1, "not_evaluated": f"no evaluator for {source_mesh} or "
                 f"{target_mesh}"} for i in range(len(steps))]
    world = World(source_objects)
    # Memo: the source configuration never changes, so each question is asked of it once.
    baseline = Memo(EVALUATORS[source_mesh](source_objects, world, settings))
    edges = sorted(set((str(a), str(b)) for a, b in deps))
    probes = _edge_probes(source_mesh, source_objects, world, edges)
    reaches: dict[str, set[str]] = {}
    for a, b in edges:
        reaches.setdefault(a, set()).add(b)
    source_by_ns: dict[str, list[dict[str, Any]]] = {}
    for obj in source_objects:
        source_by_ns.setdefault(object_key(obj)[2] if isinstance(obj, dict) else "",
                                []).append(obj)
    state = ClusterState()
    current: dict[tuple[str, str], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    moved_before: set[str] = set()
    out = []
    admits = None if losses is None else AdmitsCheck(
        (source_mesh, target_mesh), source_objects, world, baseline, settings, losses)
    # A Consul source: what its proxies do with the entries left at each step (issue 22).
    consul = source_mesh == "consul"
    patches: dict[Any, dict[str, Any]] = {}
    gateway = consul_side.gateway_routes(source_objects) if consul else []
    control = consul_side.control_namespaces(source_objects) if consul else set()
    if target_mesh == "consul":
        # The Mesh entry step 00 applies (allowEnablingPermissiveMutualTLS) is read by every
        # Consul proxy, whichever namespace a call is in.
        control |= consul_side.control_namespaces(m for step in steps for m in step[0])
    for index, (manifests, commands, moved_now) in enumerate(steps):
        moved = set(moved_now)
        extra: list[dict[str, Any]] = []
        if consul and len(moved - moved_before) > 1:
            extra = _waiting(state, manifests, list(commands), moved - moved_before, edges,
                             probes, baseline, source_by_ns, patches, world, settings, control)
        if consul:
            patches.update(consul_side.entry_patches(commands))
        touched = state.apply(manifests, commands) | (moved ^ moved_before)
        moved_before = moved
        everywhere = index == 0 or "" in touched or settings.root_namespace in touched
        affected = [e for e in edges if everywhere or e[0] in touched or e[1] in touched]
        if affected:
            scope = {settings.root_namespace} | control
            for caller, callee in affected:
                scope |= {caller, callee} | reaches.get(callee, set())
            # Until a step deletes or replaces source objects in reach, the source side is the
            # source configuration itself: the baseline, whose answers are kept across steps.
            # Each side's evaluator is made at its first question (a step often asks only one).
            gone = [k for ns in scope | {""} for k in state.deleted_in.get(ns, ())]
            applied_list = state.target_objects(scope) + state.patched(scope)
            # A source-mesh object a step applies (a route copy made at step 00) is what the
            # source side's proxies read from then on, in place of the original.
            applied = {object_key(o): o for o in applied_list if _in_groups(o, source_groups)}
            source: list[dict[str, Any]] = []
            if gone or applied or consul:
                source = [applied.pop(object_key(o), o) for ns in sorted(scope | {""})
                          for o in source_by_ns.get(ns, []) if object_key(o) not in state.deleted]
                source += [applied[k] for k in sorted(applied)]
                if consul:
                    source = consul_side.present(source, applied_list, patches)
                src_now = Memo(lambda source=source: EVALUATORS[source_mesh](
                    source, world, settings))
            else:
                src_now = baseline
            pins = consul_side.pinned(source) if consul else {}
            target = Unique(applied_list)
            # (Asked within this step only, so the state it reads is this step's.)
            now = {"source": src_now, "target": Memo(
                lambda target=target: EVALUATORS[target_mesh](
                    target, target_world([], target, state.annotations, base=world,
                                         deleted=gone), settings))}
            for caller, callee in affected:
                refused: list[dict[str, Any]] = []
                rerouted: list[dict[str, Any]] = []
                for probe in probes.get((caller, callee), []):
                    try:
                        _check(probe, caller, moved, baseline, now, refused, rerouted,
                               (source_mesh, target_mesh), pins)
                    except _DAMAGED:
                        continue
                current[(caller, callee)] = (refused, rerouted)
        out.append({"step": index + 1, "moved": sorted(moved),
                    "calls_checked": sum(len(probes.get(e, [])) for e in edges),
                    "refused": [r for e in edges for r in current.get(e, ([], []))[0]] + extra
                    + [{"caller": "(ingress)", "callee": ns, "request": f"{label} -> {ns}/{svc}",
                        "client": "Consul API gateway", "workload": f"Service/{ns}/{svc}",
                        "plaintext": False,
                        # fact: consul.api-gateway-mesh-backends
                        "why": "Consul's API gateway routes only to services in Consul's "
                               f"catalog; {ns}/{svc} left it (BackendNotFound)"}
                       for label, key, (ns, svc) in gateway
                       if ns in moved and key not in state.deleted],
                    "routing_changed": [r for e in edges for r in current.get(e, ([], []))[1]]})
        if admits is not None:
            out[-1]["admits_more"] = admits.step(index, state, touched, everywhere, moved)
    return out


def _in_groups(obj: dict[str, Any], groups: tuple[str, ...]) -> bool:
    """Whether an object's API group ends with one of ``groups``."""
    api = str(obj.get("apiVersion", ""))
    return "/" in api and bool(groups) and api.split("/")[0].endswith(groups)


def _edge_probes(mesh: str, objects: list[dict[str, Any]], world: World,
                 edges: list[tuple[str, str]]) -> dict[tuple[str, str], list[Probe]]:
    """Per edge: every caller identity sends the callee's Services a baseline request and the
    routing probes the source configuration gives for them."""
    routing: dict[str, list[Probe]] = {}  # by namespace: one pass, not one per edge
    for p in generate(mesh, objects, world):
        if p.why != "authorization":
            routing.setdefault(p.namespace, []).append(p)
    services: dict[str, list[tuple[str, int]]] = {}
    for (ns, name), svc in sorted(world.services.items()):
        if svc.selector and svc.ports:
            services.setdefault(ns, []).append((name, svc.ports[0][0]))
    out: dict[tuple[str, str], list[Probe]] = {}
    for caller, callee in edges:
        accounts = sorted({w.service_account for w in world.workloads.get(caller, [])}) or \
            ["default"]
        requests = {(p.service, p.port, p.path, p.method, p.headers)
                    for p in routing.get(callee, [])}
        requests |= {(name, port, "/", "GET", ()) for name, port in services.get(callee, [])}
        out[(caller, callee)] = sorted((
            Probe(callee, name, port, path, method, headers, Client(caller, sa), "coexistence")
            for name, port, path, method, headers in sorted(requests)
            for sa in accounts), key=probe_order)[:MAX_PROBES_PER_EDGE]
    return out


def _check(probe: Probe, caller: str, moved: set[str], baseline: Evaluator,
           now: dict[str, Evaluator], refused: list[dict[str, Any]],
           rerouted: list[dict[str, Any]], meshes: tuple[str, str],
           pins: dict[tuple[str, str], str] | None = None) -> None:
    """One call at one step: routed by the caller's mesh, admitted by the callee's (``pins``:
    the Services a Consul source still routes into, ``coexist_consul.pinned``)."""
    mesh_of = {"source": meshes[0], "target": meshes[1]}
    side = "target" if caller in moved else "source"
    call = {"caller": caller, "callee": probe.namespace,
            "request": f"{probe.method} {probe.namespace}/{probe.service}:{probe.port}"
                       f"{probe.path}", "client": str(probe.client)}
    dead = consul_side.dead_end((probe.namespace, probe.service), pins or {}) \
        if side == "source" and probe.namespace in moved else None
    if dead:
        if baseline.route(probe).status == "routed":
            refused.append({**call, "workload": f"Service/{probe.namespace}/{probe.service}",
                            "plaintext": False, "why": dead})
        return
    before, after = baseline.route(probe), now[side].route(probe)
    if _route_key(before) != _route_key(after):
        rerouted.append({**call, "before": before.summary(), "now": after.summary(),
                         "why": f"the caller routes with {mesh_of[side]}'s configuration at "
                                "this step"})
    if after.status != "routed":
        return
    for backend, _ in after.backends:
        for wid in backend.split("+"):
            if not wid or wid.startswith(("Service/", "pods/")):
                continue
            callee_side = "target" if wid.split("/")[1] in moved else "source"
            plaintext = callee_side != side
            sent = dataclasses.replace(probe, client=ANONYMOUS) if plaintext else probe
            ok_before, _ = baseline.allowed(probe, wid, probe.port)
            ok, why = now[callee_side].allowed(sent, wid, probe.port)
            if ok_before and not ok:
                reason = (f"plaintext from a {mesh_of[side]} caller has no identity; "
                          f"{mesh_of[callee_side]} refuses it" if plaintext else
                          f"{mesh_of[callee_side]} refuses {probe.client}")
                refused.append({**call, "workload": wid, "plaintext": plaintext,
                                "why": f"{reason} ({', '.join(why) or 'default policy'})"})


def _waiting(state: ClusterState, manifests: list[dict[str, Any]], commands: list[str],
             arriving: set[str], edges: list[tuple[str, str]],
             probes: dict[tuple[str, str], list[Probe]], baseline: Evaluator,
             source_by_ns: dict[str, list[dict[str, Any]]], patches: dict[Any, dict[str, Any]],
             world: World, settings: Settings, control: set[str]) -> list[dict[str, Any]]:
    """Calls inside a Consul move step while its namespaces restart one after the other: a
    neighbour that moved first sends plaintext to pods still waiting on Consul (refused unless
    permissive), and a pod still waiting calls, through Consul, a Service whose pods already
    left while an entry keeps its virtual IP (``coexist_consul``). The state is the one the
    step's commands leave before its first pod restarts."""
    inside = [(a, b) for a, b in edges if a in arriving and b in arriving]
    order = consul_side.restart_order(commands)
    rank = {ns: i for i, ns in enumerate(order)}
    if not inside or len(order) < 2:
        return []
    early = ClusterState()
    early.apply([], consul_side.before_restarts(commands))
    gone = state.deleted | early.deleted
    scope = {ns for edge in inside for ns in edge} | {settings.root_namespace} | control
    source = [o for ns in sorted(scope | {""}) for o in source_by_ns.get(ns, [])
              if object_key(o) not in gone]
    applied = [o for o in state.target_objects(scope) + list(manifests)
               if object_key(o) not in gone]
    source = consul_side.present(source, applied, {
        **patches, **consul_side.entry_patches(consul_side.before_restarts(commands))})
    consul = EVALUATORS["consul"](source, world, settings)
    pins = consul_side.pinned(source)
    out: list[dict[str, Any]] = []
    for caller, callee in inside:
        if caller not in rank or callee not in rank:
            continue
        for probe in probes.get((caller, callee), []):
            call = {"caller": caller, "callee": callee, "client": str(probe.client),
                    "request": f"{probe.method} {callee}/{probe.service}:{probe.port}"
                               f"{probe.path}", "during": "while the step's pods restart"}
            try:
                before = baseline.route(probe)
                if before.status != "routed":
                    continue
                if rank[caller] > rank[callee]:
                    dead = consul_side.dead_end((callee, probe.service), pins)
                    if dead:
                        out.append({**call, "workload": f"Service/{callee}/{probe.service}",
                                    "plaintext": False, "why": f"{dead} ({callee} restarted "
                                    f"before {caller} in this step)"})
                    continue
                sent = dataclasses.replace(probe, client=ANONYMOUS)
                for backend, _ in before.backends:
                    for wid in backend.split("+"):
                        if not wid or wid.startswith(("Service/", "pods/")):
                            continue
                        ok, why = consul.allowed(sent, wid, probe.port)
                        if baseline.allowed(probe, wid, probe.port)[0] and not ok:
                            out.append({**call, "workload": wid, "plaintext": True, "why": (
                                f"{wid} waits for its restart on Consul in strict mTLS; the "
                                f"plaintext of {caller} (restarted first) is refused "
                                f"({', '.join(why) or 'default mode'})")})
            except _DAMAGED:
                continue
    return out


def _route_key(outcome: Outcome) -> tuple[Any, ...]:
    return outcome.status, outcome.backends


def render_markdown(result: list[dict[str, Any]]) -> str:
    """The coexistence check as a RUNBOOK.md section body: one line per step, then each call
    refused or rerouted, once, with the steps it lasts (a change that persists to the end is
    usually a reported loss showing up as soon as the caller moves)."""
    lines = ["| step | moved so far | calls checked | refused | rerouted |",
             "|---|---|---|---|---|"]
    for step in result:
        if "not_evaluated" in step:
            lines.append(f"| {step['step']} | | | | {step['not_evaluated']} |")
            continue
        lines.append(f"| {step['step']} | {', '.join(step['moved'])} | {step['calls_checked']} "
                     f"| {len(step['refused'])} | {len(step['routing_changed'])} |")
    spans: dict[str, list[Any]] = {}
    for step in result:
        for r in step.get("refused", []):
            text = (f"{r['caller']} -> {r['callee']} `{r['request']}` from {r['client']} "
                    f"refused at {r['workload']}: {r['why']}")
            spans.setdefault(text, []).append(step["step"])
        for r in step.get("routing_changed", []):
            text = (f"{r['caller']} -> {r['callee']} `{r['request']}` was {r['before']}, is "
                    f"{r['now']}: {r['why']}")
            spans.setdefault(text, []).append(step["step"])
    for text, steps in sorted(spans.items(), key=lambda item: (item[1][0], item[0])):
        where = f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}-{steps[-1]}"
        lines.append(f"- {where}: {text}")
    lines += render_admits(result)
    return "\n".join(lines) + "\n"
