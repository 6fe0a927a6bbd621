"""Round trips A -> B -> A: the cluster a plan leaves behind, read back as B's input, and a
mesh-neutral summary of an IR graph to compare the first and the last read.

The summary speaks in what a request meets, not in how a mesh spells it: a backend is the
workloads whose pods it reaches (a subset of ``reviews`` and a ``reviews-v2`` Service are the
same pods), weights are percentages, durations milliseconds, authorization rules flattened into
(action, source, operation) triples and mTLS the effective mode of each workload port; a rule
that only sends every request to its own Service (what no route does too) is left out.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from migrate.durations import to_millis
from migrate.emit.manifests import annotated
from migrate.ir.graph import MeshGraph
from migrate.ir.model import (
    AuthzOperation,
    AuthzPolicy,
    AuthzSource,
    Backend,
    DestinationPolicy,
    Labels,
    MTLSPolicy,
    Route,
    RouteMatch,
    Service,
    StringMatch,
    Workload,
)
from migrate.pipeline import SOURCES, PlanOptions, PlanResult, plan_migration
from migrate.plan.commands import Command, render
from migrate.sources.files import read_files
from migrate.verify.compare import final_state

CORE_GROUPS = ("v1", "apps/v1", "batch/v1")
"""apiVersions of the Kubernetes objects every mesh shares (Namespaces, Services, workloads)."""


# -- the cluster after a plan ------------------------------------------------------------------
def merge(base: Any, patch: Any) -> Any:
    """JSON merge patch (RFC 7386) of ``patch`` into a copy of ``base``."""
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


def _key(body: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = body.get("metadata") or {}
    return (str(body.get("apiVersion")), str(body.get("kind")),
            str(meta.get("namespace") or ""), str(meta.get("name")))


def after_plan(result: PlanResult, input_path: Path) -> list[dict[str, Any]]:
    """The objects in the cluster once every step of the plan ran: the target mesh's final
    objects, plus the input's core Kubernetes objects with the plan's patches (workload
    manifests that only add metadata, ``kubectl patch``) and namespace labels and annotations
    (``kubectl label`` / ``kubectl annotate``) applied. The source mesh's own objects are gone
    (the cleanup step uninstalls it with its CRDs), even those a step patched for the
    coexistence window."""
    # As applied: with the meshmigrate.io/source annotation the emitter adds.
    steps = [([annotated(m) for m in s.manifests], s.commands) for s in result.plan.steps]
    # namespace annotations: applied below, in order
    target, _ = final_state((m, [render(c) for c in cmds]) for m, cmds in steps)
    core = {_key(o.body): copy.deepcopy(o.body) for o in read_files([str(input_path)]).objects
            if o.body.get("apiVersion") in CORE_GROUPS}
    mesh: list[dict[str, Any]] = []
    gone = set(SOURCES[result.plan.source].MESH_GROUPS)
    for body in target:
        if body.get("apiVersion") in CORE_GROUPS:
            key = _key(body)
            core[key] = merge(core[key], body) if key in core else copy.deepcopy(body)
        elif str(body.get("apiVersion", "")).split("/")[0] not in gone:
            mesh.append(body)
    for _, commands in steps:
        for command in commands:
            _apply_command(core, command)
    return [core[k] for k in sorted(core)] + mesh


def _apply_command(core: dict[tuple[str, str, str, str], dict[str, Any]],
                   command: Command) -> None:
    """Apply one step command that changes core objects (namespace labels and annotations,
    merge patches), read from its argv; other commands change nothing the readers see."""
    if len(command.pipeline) != 1:
        return
    words = command.pipeline[0]
    if words[:1] != ("kubectl",) or len(words) < 4:
        return
    if words[1] in ("label", "annotate") and words[2] == "namespace":
        ns = words[3]
        body = core.setdefault(("v1", "Namespace", "", ns), {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        field = "labels" if words[1] == "label" else "annotations"
        values = dict(body["metadata"].get(field) or {})
        for pair in words[4:]:
            if pair.startswith("--"):
                continue
            if pair.endswith("-"):
                values.pop(pair[:-1], None)
            elif "=" in pair:
                k, v = pair.split("=", 1)
                values[k] = v
        body["metadata"][field] = values
        return
    if words[1] == "patch" and "--type=merge" in words:
        kind, name = words[2], words[3]
        ns = words[words.index("-n") + 1]
        patch = json.loads(words[words.index("-p") + 1])
        for key, body in core.items():
            if key[1].lower() == kind and key[2] == ns and key[3] == name:
                core[key] = merge(body, patch)


@dataclass
class RoundTrip:
    """The plans of a round trip and the reads along it."""

    there: PlanResult
    """source -> target on the input (its read is the first read)."""
    back: PlanResult
    """target -> source on what ``there`` left (its read is the target's reader's)."""
    home: PlanResult
    """The source's reader on what ``back`` left (planned on to the target again)."""


def _write(objects: list[dict[str, Any]], path: Path) -> Path:
    path.write_text(yaml.safe_dump_all(objects, sort_keys=True), encoding="utf-8")
    return path


def round_trip(source: str, target: str, input_path: Path, tmp: Path) -> RoundTrip:
    """Plan source -> target on the input, target -> source on what that plan leaves, and
    read what the second plan leaves with the source's reader again."""
    there = plan_migration(PlanOptions(source, target, [str(input_path)]))
    middle = _write(after_plan(there, input_path), tmp / f"{target}.yaml")
    back = plan_migration(PlanOptions(target, source, [str(middle)]))
    final = _write(after_plan(back, middle), tmp / f"{source}.yaml")
    home = plan_migration(PlanOptions(source, target, [str(final)]))
    return RoundTrip(there, back, home)


# -- a mesh-neutral summary of the IR ------------------------------------------------------------
@dataclass(frozen=True)
class Summary:
    """What the IR of one read means for requests (see the module docstring), one line per
    fact."""

    rules: frozenset[str]
    """``service [matches] -> pods:percent ... timeout=ms retry=attempts/per-try ms/on``,
    then ``rw=prefix@authority`` for a rule that rewrites."""
    mtls: frozenset[str]
    """``workload:port MODE`` (effective mode per workload port)."""
    authz: frozenset[str]
    """``workload ACTION source -> operation``."""

    def facts(self) -> frozenset[str]:
        """Every fact, prefixed by its kind."""
        return frozenset({f"route {r}" for r in self.rules} | {f"mtls {m}" for m in self.mtls}
                         | {f"authz {a}" for a in self.authz})


def _ms(value: str) -> str:
    return f"{to_millis(value)}ms" if value else "-"


def _string(m: StringMatch | None) -> str:
    if m is None:
        return ""
    return m.value if m.kind == "exact" else f"{m.kind}:{m.value}"


def _match(m: RouteMatch) -> str:
    """A match as ``path=.. method=.. header:k=.. query:k=.. port=..``; a ``/`` prefix is no
    condition."""
    parts = [] if m.path in (None, StringMatch("prefix", "/")) else [f"path={_string(m.path)}"]
    parts += [f"method={_string(m.method)}"] if m.method else []
    parts += [f"{k}={_string(v)}" for k, v in sorted(m.headers, key=repr)]
    parts += [f"?{k}={_string(v)}" for k, v in sorted(m.query, key=repr)]
    parts += [f":{m.port}"] if m.port is not None else []
    return " ".join(parts)


def _matches(rule_matches: tuple[RouteMatch, ...]) -> str:
    """A rule's matches (OR); ``*`` when one of them accepts every request."""
    found = {_match(m) for m in rule_matches}
    return "*" if not found or "" in found else " | ".join(sorted(found))


def _pods(graph: MeshGraph, b: Backend) -> str:
    """The pods a backend reaches (Service selector plus subset labels), named by their
    workloads."""
    if b.service is None:
        return b.host
    service = next((s for s in graph.of(Service) if s.key == b.service), None)
    if service is None:
        return str(b.service)
    selector = dict(service.selector)
    if b.subset:
        for dp in graph.of(DestinationPolicy):
            if dp.service == b.service:
                for subset in dp.subsets:
                    if subset.name == b.subset:
                        selector.update(dict(subset.labels))
    found = graph.workloads_selected(b.service.namespace, tuple(sorted(selector.items())))
    return "+".join(sorted(w.name for w in found)) or "no pods"


def _backends(graph: MeshGraph, backends: tuple[Backend, ...]) -> str:
    weights = [b.weight if b.weight is not None else 1 for b in backends]
    total = sum(weights) or 1
    out: dict[str, int] = {}
    for b, w in zip(backends, weights):
        pods = _pods(graph, b)
        out[pods] = out.get(pods, 0) + round(100 * w / total)
    return " ".join(f"{pods}:{share}%" for pods, share in sorted(out.items()))


def _rules(graph: MeshGraph) -> frozenset[str]:
    found = set()
    for route in graph.of(Route):
        if not route.mesh:
            continue
        for rule in route.rules:
            retry = "-"
            if rule.retry is not None and rule.retry.attempts > 0:
                retry = (f"{rule.retry.attempts}/{_ms(rule.retry.per_try_timeout)}/"
                         f"{','.join(sorted(rule.retry.retry_on))}")
            # A rewrite changes what the backend receives: part of the fact when there is one.
            rw = rule.rewrite
            rewrite = "" if not rw else \
                f" rw={rw.prefix or ('full:' + rw.full_path if rw.full_path else '')}" + \
                (f"@{rw.authority}" if rw.authority else "")
            for host in route.hosts:
                fact = (f"{host} [{_matches(rule.matches)}] {_backends(graph, rule.backends)}"
                        f" t={_ms(rule.timeout)} r={retry}{rewrite}")
                own = _backends(graph, (Backend(service=host, host=host.name),))
                if fact != f"{host} [*] {own} t=- r=-":  # what no route at all does too
                    found.add(fact)
    return frozenset(found)


def _selects(selector: Labels | None, pod: Labels) -> bool:
    return selector is None or set(selector) <= set(pod)


def _mtls(graph: MeshGraph) -> frozenset[str]:
    """Each workload port's effective mode: workload policy (its port modes first), else the
    namespace's, else the mesh-wide one; UNSET inherits."""
    found = set()
    policies = sorted(graph.of(MTLSPolicy), key=lambda p: (p.namespace, p.name))
    for w in sorted(graph.of(Workload), key=lambda w: (w.namespace, w.name)):
        layers = [
            [p for p in policies if p.namespace == w.namespace and p.selector is not None
             and _selects(p.selector, w.pod_labels)],
            [p for p in policies if p.namespace == w.namespace and p.selector is None
             and not p.mesh_wide],
            [p for p in policies if p.mesh_wide],
        ]
        for _, port in sorted(w.ports, key=lambda p: p[1]):
            mode = "UNSET"
            for layer in layers:
                modes = [m for p in layer for n, m in p.port_modes if n == port] + \
                    [p.mode for p in layer]
                mode = next((m for m in modes if m != "UNSET"), "UNSET")
                if mode != "UNSET":
                    break
            found.add(f"{w.namespace}/{w.name}:{port} {mode}")
    return frozenset(found)


def _source(s: AuthzSource) -> str:
    """Identities as ``sa:namespace/name`` (SPIFFE principals of the default trust domain
    too), other principals as they are, then namespaces and address blocks."""
    parts = [f"sa:{p[len('cluster.local/ns/'):].replace('/sa/', '/', 1)}"
             if p.startswith("cluster.local/ns/") else f"principal={p}"
             for p in sorted(s.principals)]
    parts += [f"sa:{sa}" for sa in sorted(s.service_accounts)]
    parts += [f"ns:{n}" for n in sorted(s.namespaces)]
    parts += [f"ip:{ip}" for ip in sorted(s.ip_blocks)]
    return ";".join(parts) or "*"


def _operation(o: AuthzOperation) -> str:
    parts = ["|".join(sorted(o.methods))] if o.methods else []
    parts += ["|".join(sorted(o.paths))] if o.paths else []
    parts += [":" + "|".join(str(p) for p in sorted(o.ports))] if o.ports else []
    return " ".join(parts) or "*"


def _authz(graph: MeshGraph) -> frozenset[str]:
    """(source x operation) pairs of every rule of every policy on each workload: a rule
    matches when one source and one operation do, so the pairs are its meaning."""
    found = set()
    for w in graph.of(Workload):
        for p in graph.of(AuthzPolicy):
            if not (p.mesh_wide or p.namespace == w.namespace) or \
                    not _selects(p.selector, w.pod_labels):
                continue
            if not p.rules:
                found.add(f"{w.namespace}/{w.name} {p.action} nothing")
            for rule in p.rules:
                for s in rule.sources or (AuthzSource(),):
                    for o in rule.operations or (AuthzOperation(),):
                        found.add(f"{w.namespace}/{w.name} {p.action} {_source(s)} -> "
                                  f"{_operation(o)}")
    return frozenset(found)


def summary(graph: MeshGraph) -> Summary:
    """The mesh-neutral meaning of one read."""
    return Summary(_rules(graph), _mtls(graph), _authz(graph))
