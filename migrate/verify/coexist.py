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

from migrate.verify.compare import final_state, target_world
from migrate.verify.model import Client, Outcome, Probe
from migrate.verify.probes import ANONYMOUS
from migrate.verify.registry import EVALUATORS, Evaluator, Settings, generate
from migrate.verify.world import World, dig

Step = tuple[list[dict[str, Any]], list[str], Iterable[str]]
"""(manifests applied, commands run, namespaces moved to the target once the step ran)."""
_DAMAGED = (TypeError, AttributeError, ValueError, KeyError, IndexError)
MAX_PROBES_PER_EDGE = 40


def coexistence(steps: Sequence[Step], source_objects: list[dict[str, Any]],
                deps: Iterable[tuple[str, str]], *, source_mesh: str = "istio",
                target_mesh: str = "linkerd", settings: Settings | None = None
                ) -> list[dict[str, Any]]:
    """For each step, the calls checked and those refused or rerouted, as plain data:
    ``[{"step": 1, "moved": [...], "calls_checked": n, "refused": [...],
    "routing_changed": [...]}]``; each refusal names caller, callee, Service, workload,
    client, whether the call is plaintext between meshes, and why."""
    settings = settings or Settings()
    if source_mesh not in EVALUATORS or target_mesh not in EVALUATORS:
        return [{"step": i + 1, "not_evaluated": f"no evaluator for {source_mesh} or "
                 f"{target_mesh}"} for i in range(len(steps))]
    world = World(source_objects)
    baseline = EVALUATORS[source_mesh](source_objects, world, settings)
    edges = sorted(set((str(a), str(b)) for a, b in deps))
    probes = _edge_probes(source_mesh, source_objects, world, edges)
    out = []
    for index in range(len(steps)):
        done = steps[:index + 1]
        moved = set(done[-1][2])
        target, annotations = final_state((m, c) for m, c, _ in done)
        remaining = _remaining(source_objects, [c for _, c, _ in done])
        now = {"source": EVALUATORS[source_mesh](remaining, world, settings),
               "target": EVALUATORS[target_mesh](
                   target, target_world(source_objects, target, annotations), settings)}
        refused: list[dict[str, Any]] = []
        rerouted: list[dict[str, Any]] = []
        checked = 0
        for caller, callee in edges:
            for probe in probes.get((caller, callee), []):
                checked += 1
                try:
                    _check(probe, caller, moved, baseline, now, refused, rerouted,
                           (source_mesh, target_mesh))
                except _DAMAGED:
                    continue
        out.append({"step": index + 1, "moved": sorted(moved), "calls_checked": checked,
                    "refused": refused, "routing_changed": rerouted})
    return out


def _edge_probes(mesh: str, objects: list[dict[str, Any]], world: World,
                 edges: list[tuple[str, str]]) -> dict[tuple[str, str], list[Probe]]:
    """Per edge: every caller identity sends the callee's Services a baseline request and the
    routing probes the source configuration gives for them."""
    routing = [p for p in generate(mesh, objects, world) if p.why != "authorization"]
    out: dict[tuple[str, str], list[Probe]] = {}
    for caller, callee in edges:
        accounts = sorted({w.service_account for w in world.workloads.get(caller, [])}) or \
            ["default"]
        requests = {(p.service, p.port, p.path, p.method, p.headers) for p in routing
                    if p.namespace == callee}
        for (ns, name), svc in sorted(world.services.items()):
            if ns == callee and svc.selector and svc.ports:
                requests.add((name, svc.ports[0][0], "/", "GET", ()))
        out[(caller, callee)] = sorted(
            Probe(callee, name, port, path, method, headers, Client(caller, sa), "coexistence")
            for name, port, path, method, headers in sorted(requests)
            for sa in accounts)[:MAX_PROBES_PER_EDGE]
    return out


def _check(probe: Probe, caller: str, moved: set[str], baseline: Evaluator,
           now: dict[str, Evaluator], refused: list[dict[str, Any]],
           rerouted: list[dict[str, Any]], meshes: tuple[str, str]) -> None:
    """One call at one step: routed by the caller's mesh, admitted by the callee's."""
    mesh_of = {"source": meshes[0], "target": meshes[1]}
    side = "target" if caller in moved else "source"
    before, after = baseline.route(probe), now[side].route(probe)
    call = {"caller": caller, "callee": probe.namespace,
            "request": f"{probe.method} {probe.namespace}/{probe.service}:{probe.port}"
                       f"{probe.path}", "client": str(probe.client)}
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


def _route_key(outcome: Outcome) -> tuple[Any, ...]:
    return outcome.status, outcome.backends


def _remaining(objects: list[dict[str, Any]], commands: list[list[str]]
               ) -> list[dict[str, Any]]:
    """Source objects not deleted by the steps' ``kubectl delete`` commands."""
    from migrate.verify.compare import _DELETE

    gone: set[tuple[str, str, str, str]] = set()
    for batch in commands:
        for command in batch:
            m = _DELETE.match(command.split("  #")[0].strip())
            if m:
                kind, group, name, ns = m.groups()
                gone.add((kind, group or "", ns, name))
    if not gone:
        return objects
    out = []
    for obj in objects:
        api = str(obj.get("apiVersion", ""))
        key = (str(obj.get("kind", "")).lower(), api.split("/")[0] if "/" in api else "",
               str(dig(obj, "metadata", "namespace", default="")),
               str(dig(obj, "metadata", "name", default="")))
        if key not in gone:
            out.append(obj)
    return out


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
    return "\n".join(lines) + "\n"
