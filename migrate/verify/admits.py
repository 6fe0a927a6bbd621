"""The other half of the coexistence check: requests the source refused stay refused.

The rule of docs/coexistence.md ("never more permissive than the source"): at every step, the
requests the mixed state admits are a subset of those the source admitted, except where a
reported loss says otherwise. The call-graph check (coexist.py) asks whether calls that worked
still work; this module asks the reverse question of every authorization probe the source
refused: each identity a policy names, an unknown identity, an unauthenticated client and
one identity of every namespace with workloads, sending each operation a policy names
(probes.py and its Linkerd and Consul counterparts).

At a step, a request goes out from its client's mesh (the target once the client's namespace
moved; an unauthenticated client has no proxy) and is admitted or refused by the callee pod's
mesh; between two meshes it is plaintext, so the callee sees no identity. A request the
mixed state admits and the source refused is "admitted more". It is explained by a loss
whose declared aspect is authorization with direction ``allow-more`` (mappings/aspects.yaml;
for a request without an identity, one limited to plaintext callers will do), filed on the
callee's namespace or on a source object that decided the request, and, when the loss names
its window ("from step N to step M"), only within it. ``unexplained`` records make ``plan``
exit 3.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterable

from migrate.aspects import declarations
from migrate.losses import Loss
from migrate.verify.compare import ClusterState, object_key, target_world
from migrate.verify.model import Client, Outcome, Probe
from migrate.verify.probes import ANONYMOUS, UNKNOWN
from migrate.verify.registry import EVALUATORS, Evaluator, Settings, generate
from migrate.verify.world import World

_DAMAGED = (TypeError, AttributeError, ValueError, KeyError, IndexError)
_WINDOW = re.compile(r"from step (\d+) to step (\d+)")
MAX_REFUSED = 2000
"""Refused probes followed through the steps (the first in sorted order): each is evaluated
again at every step touching its namespaces."""
MEMBER_NAMESPACES = 8
"""Namespaces whose identity re-sends each unknown-identity probe (its own first)."""


@dataclasses.dataclass(frozen=True)
class Refused:
    """One request the source refused at one workload."""

    probe: Probe
    workload: str
    deciding: tuple[str, ...]
    """Source objects that decided the refusal (``Kind/ns/name``)."""

    @property
    def namespaces(self) -> set[str]:
        """The namespaces whose move changes the request's fate."""
        return {self.probe.namespace, self.workload.split("/")[1], self.probe.client.namespace}


def refused_requests(mesh: str, objects: list[dict[str, Any]], world: World,
                     baseline: Evaluator) -> list[Refused]:
    """The source's authorization probes it refuses, with the workload that refuses each."""
    out: list[Refused] = []
    for probe in _with_members(generate(mesh, objects, world), world):
        try:
            for wid in _receivers(baseline.route(probe)):
                ok, why = baseline.allowed(probe, wid, probe.port)
                if not ok:
                    out.append(Refused(probe, wid, tuple(why)))
        except _DAMAGED:
            continue
        if len(out) >= MAX_REFUSED:
            break
    return out


def _receivers(outcome: Outcome) -> list[str]:
    """The workloads a routed request reaches (``Kind/ns/name``), not Services or pod sets."""
    if outcome.status != "routed":
        return []
    return [wid for backend, _ in outcome.backends for wid in backend.split("+")
            if wid and not wid.startswith(("Service/", "pods/"))]


def _with_members(probes: list[Probe], world: World) -> list[Probe]:
    """The authorization probes, and each again from one identity of every namespace with
    workloads: the generators send only identities a policy names (plus an unknown one
    and none), while in the mixed state what matters is a caller of a namespace that has
    moved, whose identity the target sees, and the source refused."""
    authz = [p for p in probes if p.why == "authorization"]
    members = {ns: Client(ns, sorted({w.service_account for w in ws})[0])
               for ns, ws in sorted(world.workloads.items()) if ws}
    extra: set[Probe] = set()
    for p in authz:
        if p.client == UNKNOWN:
            # The callee's own namespace first, then the others by name, a few of them: a
            # mesh of thousands of namespaces would otherwise multiply the probes by them.
            names = ([p.namespace] if p.namespace in members else []) + \
                [ns for ns in members if ns != p.namespace]
            extra |= {dataclasses.replace(p, client=members[ns])
                      for ns in names[:MEMBER_NAMESPACES]}
    return sorted(set(authz) | extra)


def admitted_now(refused: Iterable[Refused], moved: set[str], now: dict[str, Evaluator],
                 meshes: tuple[str, str]) -> list[dict[str, Any]]:
    """The refused requests the mixed state admits at one step, as plain records."""
    out = []
    for r in refused:
        client = r.probe.client
        side = "target" if client.authenticated and client.namespace in moved else "source"
        callee = "target" if r.workload.split("/")[1] in moved else "source"
        plaintext = not client.authenticated or side != callee
        sent = dataclasses.replace(r.probe, client=ANONYMOUS) if plaintext else r.probe
        try:
            ok, why = now[callee].allowed(sent, r.workload, r.probe.port)
        except _DAMAGED:
            continue
        if not ok:
            continue
        mesh = meshes[0] if callee == "source" else meshes[1]
        out.append({"client": str(client), "callee": r.probe.namespace,
                    "request": f"{r.probe.method} {r.probe.namespace}/{r.probe.service}:"
                               f"{r.probe.port}{r.probe.path}",
                    "workload": r.workload, "plaintext": plaintext,
                    "source_refused_by": list(r.deciding),
                    "why": f"{mesh} admits it ({', '.join(why) or 'default policy'})"
                           + (" as plaintext with no identity" if plaintext and
                              client.authenticated else "")})
    return out


def explain(records: list[dict[str, Any]], step: int, losses: Iterable[Loss]) -> None:
    """Name on each record the losses that cover it (``explained_by``; empty: none)."""
    declared = declarations()
    usable = [loss for loss in losses if loss.code in declared
              and "authorization" in declared[loss.code].aspects]
    for record in records:
        identified = not record["plaintext"]
        deciding = set(record["source_refused_by"])
        found = []
        for loss in usable:
            if not declared[loss.code].covers("authorization", "allow-more", identified):
                continue
            if loss.namespace != record["callee"] and str(loss.object) not in deciding:
                continue
            window = _WINDOW.search(loss.message)
            if declared[loss.code].windowed and window is None:
                continue  # a windowed loss whose window cannot be read explains nothing
            if window and not int(window.group(1)) <= step <= int(window.group(2)):
                continue
            found.append(f"{loss.code} {loss.object}")
        record["explained_by"] = sorted(set(found))


class AdmitsCheck:
    """Follows the source's refused requests through the steps of one plan."""

    def __init__(self, meshes: tuple[str, str], source_objects: list[dict[str, Any]],
                 world: World, baseline: Evaluator, settings: Settings,
                 losses: Iterable[Loss]) -> None:
        self.meshes = meshes
        self.world = world
        self.settings = settings
        self.losses = list(losses)
        self.refused = refused_requests(meshes[0], source_objects, world, baseline)
        self.source_by_ns: dict[str, list[dict[str, Any]]] = {}
        for obj in source_objects:
            if isinstance(obj, dict):
                self.source_by_ns.setdefault(object_key(obj)[2], []).append(obj)
        self.current: dict[int, list[dict[str, Any]]] = {}

    def step(self, number: int, state: ClusterState, touched: set[str], everywhere: bool,
             moved: set[str]) -> list[dict[str, Any]]:
        """The refused requests the state after step ``number`` admits, explained."""
        due = [i for i, r in enumerate(self.refused)
               if everywhere or r.namespaces & touched or i not in self.current]
        if due:
            scope = {self.settings.root_namespace, ""}
            for i in due:
                scope |= self.refused[i].namespaces
            source = [o for ns in sorted(scope) for o in self.source_by_ns.get(ns, [])
                      if object_key(o) not in state.deleted]
            # Mesh-wide configuration lives in namespaces without workloads (Consul's Mesh
            # entry in its install namespace): the target evaluator needs it too.
            mesh_wide = {ns for ns in state.namespaces() if ns not in self.world.workloads}
            target = state.target_objects(scope | mesh_wide) + state.patched(scope)
            now = {"source": EVALUATORS[self.meshes[0]](source, self.world, self.settings),
                   "target": EVALUATORS[self.meshes[1]](
                       target, target_world(source, target, state.annotations),
                       self.settings)}
            for i in due:
                self.current[i] = admitted_now([self.refused[i]], moved, now, self.meshes)
        records = [r for i in sorted(self.current) for r in self.current[i]]
        records = [dict(r) for r in records]
        explain(records, number, self.losses)
        return records


def unexplained(result: list[dict[str, Any]]) -> list[tuple[Any, dict[str, Any]]]:
    """(step, record) for every request admitted more that no loss explains."""
    return [(step["step"], r) for step in result for r in step.get("admits_more", [])
            if not r.get("explained_by")]


def render_lines(result: list[dict[str, Any]]) -> list[str]:
    """RUNBOOK.md lines for the requests admitted more, once each with the steps it lasts."""
    spans: dict[str, list[Any]] = {}
    for step in result:
        for r in step.get("admits_more", []):
            said = ", ".join(r.get("explained_by", [])) or "NO LOSS EXPLAINS IT"
            text = (f"admits more: `{r['request']}` from {r['client']} at {r['workload']}, "
                    f"which the source refused: {r['why']}; explained by {said}")
            spans.setdefault(text, []).append(step["step"])
    out = []
    for text, steps in sorted(spans.items(), key=lambda item: (item[1][0], item[0])):
        where = f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}-{steps[-1]}"
        out.append(f"- {where}: {text}")
    return out
